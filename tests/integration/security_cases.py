"""Integration cases for the agent's defences (issue 7): TLS with client certificates, the
admission preamble (token, --max-sessions), per-session limits (--max-fds, --max-procs) and
garbage on the wire. run.py registers them (register()); they use run.py's helpers through the
module `h` it passes, so that its Failure/Skip exceptions are the ones its main() catches.

Every agent here listens on a unix socket or on 127.0.0.1 only."""

import os
import select
import shutil
import socket
import struct
import subprocess
import time

h = None   # run.py, set by register()

PREAMBLE_MAGIC = b"SBAUTH1\n"


# ---------------------------------------------------------------------------------------------
# Helpers

def make_pki(ctx):
    """A CA with an agent certificate for 127.0.0.1 and a client certificate, and a second CA
    with a client certificate of its own (a stranger's). EC keys: fast to make. Returns the
    directory; files are NAME.pem and NAME.key."""
    if shutil.which("openssl") is None:
        raise h.Failure("openssl is not installed (scripts/test installs it)")
    d = os.path.join(ctx.tmp, "pki")
    os.makedirs(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*argv):
        r = h.run(["openssl"] + list(argv), timeout=60)
        h.check(r.rc == 0, f"openssl failed\n{r.describe()}")

    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN=splitbrain test {ca}",
                "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.pem")
    leaves = [("agent", "ca", "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n"
                              "extendedKeyUsage=serverAuth\n"),
              ("client", "ca", "extendedKeyUsage=clientAuth\n"),
              ("stranger", "other-ca", "extendedKeyUsage=clientAuth\n")]
    for name, ca, ext in leaves:
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        openssl("req", *ec, "-subj", f"/CN=sb-{name}", "-keyout", f"{d}/{name}.key",
                "-out", f"{d}/{name}.csr")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.pem",
                "-CAkey", f"{d}/{ca}.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")
    for n in os.listdir(d):
        if n.endswith(".key"):
            os.chmod(os.path.join(d, n), 0o600)
    return d


class TcpAgent:
    """sbagent --listen tcp://127.0.0.1:0 with a plain directory as --root (no namespaces)."""

    def __init__(self, ctx, root, args):
        self.logpath = os.path.join(ctx.tmp, "tcp-agent.log")
        rfd, wfd = os.pipe()
        logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [ctx.sbagent, "--listen", "tcp://127.0.0.1:0", "--root", root, "--ready-fd",
             str(wfd)] + list(args),
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, pass_fds=(wfd,),
            env=h.ENV)
        logf.close()
        ctx.cleanups.append(self.stop)
        os.close(wfd)
        ready, _, _ = select.select([rfd], [], [], 20)
        line = os.read(rfd, 256).decode() if ready else ""
        os.close(rfd)
        h.check(line.startswith("ready tcp://127.0.0.1:"), f"bad ready line {line!r}\n"
                + self.log())
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return "--- agent log ---\n" + f.read()[-4000:] + "--- end of agent log ---"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def connect(address):
    """A raw socket to a unix path or a (host, port)."""
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
    else:
        s = socket.socket()
    s.settimeout(10)
    s.connect(address)
    return s


def admit(s, token=b""):
    """Sends the admission preamble and returns the agent's answer line."""
    s.sendall(PREAMBLE_MAGIC + struct.pack("<I", len(token)) + token)
    answer = b""
    while not answer.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        answer += b
    return answer


def dropped_within(s, secs):
    """Seconds until the agent closed `s` (reading and discarding what it sends), or None."""
    start = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - start < secs:
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


def send_quietly(s, data):
    """Sends what the agent still takes; it may close the connection halfway (that is the point)."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# Cap'n Proto frames by hand (layouts from `capnp compile -ocapnp capnp/rpc.capnp`)

def sptr(at, target, data, ptrs):
    """A struct pointer in word `at` to a struct in word `target`."""
    return (((target - at - 1) & 0x3FFFFFFF) << 2) | (data << 32) | (ptrs << 48)


def lptr(at, target, size_code, count):
    return (((target - at - 1) & 0x3FFFFFFF) << 2) | 1 | (size_code << 32) | (count << 35)


def frame(words, segment_count=None, sizes=None):
    """One message: the segment table, then the words (one segment unless told otherwise)."""
    if sizes is None:
        sizes = [len(words)]
    n = len(sizes) if segment_count is None else segment_count
    table = struct.pack("<I", (n - 1) & 0xFFFFFFFF) + b"".join(struct.pack("<I", s)
                                                               for s in sizes)
    if len(table) % 8:
        table += b"\0" * 4
    return table + b"".join(struct.pack("<Q", w & 0xFFFFFFFFFFFFFFFF) for w in words)


def bootstrap_message():
    # Message{bootstrap = Bootstrap{questionId = 0}}
    return frame([sptr(0, 1, 1, 1), 8, sptr(2, 3, 1, 1), 0, 0])


def abort_with_type(t):
    # Message{abort = Exception{reason = "boom", type = t}}: capnp 0.9.2 would use t unchecked.
    return frame([sptr(0, 1, 1, 1), 1, sptr(2, 3, 1, 2), t << 32, lptr(4, 6, 2, 5), 0,
                  int.from_bytes(b"boom\0\0\0\0", "little")])


def call_words(content_words=(), cap_table=None):
    """Message{call = Call{questionId 1, target = promisedAnswer(0), interfaceId 0x1234,
    methodId 0, params = Payload{content, capTable}}}. content_words are appended at word 16 and
    the content pointer points there; cap_table (list pointer, extra words) goes in word 14."""
    w = [sptr(0, 1, 1, 1), 2, sptr(2, 3, 3, 3),
         1, 0x1234, 0,                       # questionId, interfaceId, (flags)
         sptr(6, 9, 1, 1), sptr(7, 13, 0, 2), 0,
         1 << 32, sptr(10, 11, 1, 1),        # MessageTarget: promisedAnswer
         0, 0,                               # PromisedAnswer{questionId 0, transform null}
         0, 0,                               # Payload{content, capTable}
         0]                                  # word 15: spare
    if content_words:
        w[13] = sptr(13, 16, 0, 1)
        w += list(content_words)
    if cap_table is not None:
        pointer, extra = cap_table
        w[14] = pointer
        w[15] = extra
    return w


def payloads():
    """(name, bytes before, bytes, keep_open): each goes on a fresh connection after the
    preamble (before=True: instead of the preamble)."""
    rnd = bytes((i * 131 + (i >> 7) * 17) & 0xFF for i in range(65536))
    deep = 20000
    nested_unimpl = [sptr(0, 1, 1, 1)]
    for i in range(deep):
        nested_unimpl += [0, sptr(len(nested_unimpl) + 1, len(nested_unimpl) + 2, 1, 1)]
    nested_unimpl[-1] = 0
    chain = []
    for i in range(deep):
        chain.append(sptr(16 + i, 17 + i, 0, 1))
    chain[-1] = 0
    # A composite list of 2^29-1 structs of size zero in no words: reading it would charge
    # 2^29 words of traversal for nothing.
    amplified = (lptr(14, 15, 7, 0), (0x1FFFFFFF << 2))
    return [
        ("garbage-before-preamble", True, rnd, False),
        ("tls-hello-on-plain-port", True, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rnd[:500], False),
        ("token-length-4GiB", True, PREAMBLE_MAGIC + b"\xff\xff\xff\xff", True),
        ("truncated-preamble", True, PREAMBLE_MAGIC[:5], False),
        ("garbage", False, rnd, False),
        ("truncated-frame", False, frame([0] * 100)[:8 + 80], False),
        ("segment-count-ffffffff", False, struct.pack("<II", 0xFFFFFFFF, 1) + b"\0" * 64, True),
        ("huge-segment", False, struct.pack("<II", 0, 0x7FFFFFFF) + b"\0" * 64, True),
        ("huge-total", False, struct.pack("<IIIII", 3, 0x3FFFFFFF, 0x3FFFFFFF, 0x3FFFFFFF,
                                          0x3FFFFFFF) + b"\0" * 4 + b"\0" * 64, True),
        ("many-segments", False, frame([0] * 600, sizes=[1] * 600), True),
        ("abort-exception-type-99", False, abort_with_type(99), True),
        ("nested-unimplemented", False, frame(nested_unimpl), True),
        ("nested-params", False, bootstrap_message() + frame(call_words(chain)), True),
        ("amplified-cap-table", False,
         bootstrap_message() + frame(call_words(cap_table=amplified)), True),
        ("far-pointer-loop", False, frame([2 | (0 << 3), 0], sizes=[2]), True),
    ]


# ---------------------------------------------------------------------------------------------
# Cases

def case_tls(ctx):
    """TLS with client certificates and a token on 127.0.0.1: a client with a certificate from
    the agent's CA (and the token) reads a file on B; no client certificate, a certificate from
    another CA, a wrong token and plain TCP to the TLS port are each refused with exit 125 and a
    message saying why, and a silent client is dropped after --handshake-timeout — all while a
    real TLS session reads on. Off loopback the agent refuses to start without TLS."""
    h.need_binary(ctx.sbrun, "sbrun")
    h.need_binary(ctx.sbagent, "sbagent")
    pki = make_pki(ctx)
    root = os.path.join(ctx.tmp, "troot")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("tls-root\n")
    token, wrong = os.path.join(ctx.tmp, "token"), os.path.join(ctx.tmp, "wrong")
    with open(token, "w") as f:
        f.write("s3cret-token\n")
    with open(wrong, "w") as f:
        f.write("not-the-token\n")
    os.chmod(token, 0o600)
    agent = TcpAgent(ctx, root, ["--tls-cert", f"{pki}/agent.pem", "--tls-key", f"{pki}/agent.key",
                                 "--tls-ca", f"{pki}/ca.pem", "--token-file", token,
                                 "--handshake-timeout", "2", "-v"])
    good = ["--tls-ca", f"{pki}/ca.pem", "--tls-cert", f"{pki}/client.pem",
            "--tls-key", f"{pki}/client.key", "--token-file", token]

    t = h.run([ctx.sbrun, "--target", agent.url] + good + ["--", "cat", "/etc/hostname"],
              timeout=60)
    h.log(t.describe())
    h.check(t.rc == 0 and t.out == "tls-root\n", "a client with a good certificate and token "
            "must read B's file over TLS\n" + agent.log())

    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "read_loop"))
    h.need_binary(helper, "helper read_loop (--helpers-dir)")
    reader = subprocess.Popen([ctx.sbrun, "--target", agent.url] + good
                              + ["--", helper, "/etc/hostname", "6"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=h.ENV)
    ctx.cleanups.append(lambda: reader.poll() is None and reader.kill())
    ready, _, _ = select.select([reader.stdout], [], [], 30)
    first = reader.stdout.readline().decode() if ready else ""
    h.check(first == "opened\n", f"the long TLS session did not start: {first!r}\n" + agent.log())

    silent = connect(("127.0.0.1", agent.port))
    silent_start = time.monotonic()
    refusals = [
        ("no client certificate", ["--tls-ca", f"{pki}/ca.pem", "--token-file", token],
         "client certificate"),
        ("a certificate from another CA",
         ["--tls-ca", f"{pki}/ca.pem", "--tls-cert", f"{pki}/stranger.pem",
          "--tls-key", f"{pki}/stranger.key", "--token-file", token], "certificate"),
        ("a wrong token", good[:-1] + [wrong], "bad token"),
        ("plain TCP to the TLS port", ["--token-file", token], "TLS"),
        ("an agent certificate from another CA",
         ["--tls-ca", f"{pki}/other-ca.pem", "--tls-cert", f"{pki}/stranger.pem",
          "--tls-key", f"{pki}/stranger.key", "--token-file", token], "not trusted"),
    ]
    for what, argv, phrase in refusals:
        t = h.run([ctx.sbrun, "--target", agent.url] + argv + ["--", "cat", "/etc/hostname"],
                  timeout=60)
        h.log(f"[{what}]\n{t.describe()}")
        h.check(t.rc == 125, f"{what}: exit {t.rc}, expected 125")
        h.check(phrase in t.err and "tls-root" not in t.out,
                f"{what}: the message must say why ({phrase!r})")
        h.check(t.secs < 10, f"{what}: took {t.secs:.1f} s")
    took = dropped_within(silent, 10)
    h.check(took is not None, "a silent client was not dropped within 10 s")
    took = time.monotonic() - silent_start
    h.log(f"silent TLS client dropped after {took:.2f} s (--handshake-timeout 2)")
    h.check(took < 6, f"the silent client was dropped only after {took:.1f} s")

    out, err = reader.communicate(timeout=60)
    h.log(f"[long session] exit {reader.returncode}\n{out.decode()}{err.decode()}")
    h.check(reader.returncode == 4, "the long TLS session must read without a failure while "
            "others are refused (read_loop exits 4 when no read failed)")
    h.check(agent.alive(), "the agent died\n" + agent.log())
    log = agent.log()
    for phrase in ("no client certificate", "refused: bad token", "not TLS",
                   "no handshake within the timeout (TLS and the admission preamble)"):
        h.check(phrase in log, f"the agent log does not say {phrase!r}\n{log}")
    t = h.run([ctx.sbrun, "--target", agent.url] + good + ["--", "cat", "/etc/hostname"],
              timeout=60)
    h.check(t.rc == 0 and t.out == "tls-root\n", "a good client after the refusals failed")

    t = h.run([ctx.sbagent, "--listen", "tcp://0.0.0.0:0", "--root", root, "--token-file",
               token], timeout=30)
    h.log(t.describe())
    h.check(t.rc != 0 and "without TLS" in t.err,
            "a non-loopback listen without TLS must be refused at startup, token or not")
    t = h.run([ctx.sbagent, "--listen", "unix:" + os.path.join(ctx.tmp, "x.sock"),
               "--tls-cert", f"{pki}/agent.pem"], timeout=30)
    h.check(t.rc != 0 and "tcp://" in t.err, "TLS options on a unix socket must be refused")


def case_session_limits(ctx):
    """--max-fds, --max-procs and --max-sessions: opening past the limit gives the program EMFILE,
    running a third program at once EAGAIN, a client past --max-sessions is refused with a
    message (exit 125); the agent serves on, and a session that ended frees its slot."""
    agent = ctx.agent(prepare=h.B_ETC_HOSTNAME,
                      args=["--max-fds", "12", "--max-procs", "2", "--max-sessions", "1"])
    h.make_tree(agent)
    if ctx.native_only:
        return
    h.need_binary(ctx.sbrun, "sbrun")
    opener = ("import os\nfds = []\ntry:\n    while len(fds) < 100:\n"
              "        fds.append(os.open('hello.txt', os.O_RDONLY))\n"
              "except OSError as e:\n    print(len(fds), e.errno)\n"
              "os.close(fds.pop())\nfds.append(os.open('hello.txt', os.O_RDONLY))\n"
              "print('reopened')\n")
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", opener], timeout=60)
    h.log(t.describe())
    lines = t.out.split()
    h.check(t.rc == 0 and len(lines) == 3 and lines[1] == "24" and lines[2] == "reopened",
            "opening past --max-fds must fail with EMFILE (24) and work again after a close")
    h.check(5 <= int(lines[0]) < 12, f"{lines[0]} opens before EMFILE with --max-fds 12")

    # Three programs at once (which one comes third is up to the scheduler): exactly one fails.
    t = ctx.traced(agent, ["sh", "-c", "sleep 2 & sleep 2 & sleep 2; wait"], timeout=60)
    h.log(t.describe())
    h.check(t.err.count("Resource temporarily unavailable") == 1,
            "exactly one of three programs at once must fail with EAGAIN (--max-procs 2)")
    t = ctx.traced(agent, ["sh", "-c", "sleep 0.1; echo ok"], timeout=60)
    h.check(t.rc == 0 and t.out == "ok\n", "running a program after the others ended failed")

    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "read_loop"))
    h.need_binary(helper, "helper read_loop (--helpers-dir)")
    holder = subprocess.Popen(ctx.sbrun_argv(agent, [helper, "hello.txt", "4"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=h.ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: holder.poll() is None and holder.kill())
    ready, _, _ = select.select([holder.stdout], [], [], 30)
    first = holder.stdout.readline().decode() if ready else ""
    h.check(first == "opened\n", f"the first session did not start: {first!r}")
    t = ctx.traced(agent, ["cat", "hello.txt"], timeout=60)
    h.log(t.describe())
    h.check(t.rc == 125 and "maximum of 1 sessions" in t.err,
            "a client past --max-sessions must be refused with a message")
    holder.communicate(timeout=60)
    h.check(holder.returncode == 4, f"the first session failed ({holder.returncode})")
    ok = h.wait_for(lambda: ctx.traced(agent, ["cat", "hello.txt"], timeout=60).rc == 0, 5,
                    step=0.3)
    h.check(ok, "a session slot must be free once the first session ended")
    h.check(agent.alive(), "the agent died\n" + agent.log_tail())


def case_wire_garbage(ctx):
    """Garbage on a listening agent's socket, one connection each: before the preamble (random
    bytes, a TLS hello, a 4 GiB token length, a cut preamble) and after it (random bytes, a cut
    frame, a 0xFFFFFFFF segment count, huge segment sizes, too many segments, an abort with an
    exception type kj does not know, 20000-deep nesting, a capability table amplified to 2^29
    entries, a far pointer to itself). Each connection is dropped (the malformed frames at once,
    the rest by the handshake timeout); a real session reads on meanwhile; the agent lives, and
    its fds come back to what they were and its memory stays near."""
    agent = ctx.agent(prepare=h.B_ETC_HOSTNAME, args=["--handshake-timeout", "2", "-v"])
    h.make_tree(agent)
    if ctx.native_only:
        return
    h.need_binary(ctx.sbrun, "sbrun")
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "read_loop"))
    h.need_binary(helper, "helper read_loop (--helpers-dir)")
    # A first session sets up what the agent keeps for all sessions; the baseline comes after.
    t = ctx.traced(agent, ["cat", "hello.txt"], timeout=60)
    h.check(t.rc == 0, "the first session failed\n" + t.describe())
    time.sleep(0.5)   # the first session's fds go some moments after sbrun exits
    before = h.agent_state(agent)
    rss_before = rss_kib(agent.proc.pid)

    reader = subprocess.Popen(ctx.sbrun_argv(agent, [helper, "hello.txt", "8"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=h.ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: reader.poll() is None and reader.kill())
    ready, _, _ = select.select([reader.stdout], [], [], 30)
    first = reader.stdout.readline().decode() if ready else ""
    h.check(first == "opened\n", f"the real session did not start: {first!r}")

    times = {}
    for name, before_preamble, data, keep_open in payloads():
        s = connect(agent.sock)
        if not before_preamble:
            answer = admit(s)
            h.check(answer == b"ok\n", f"{name}: the preamble was not admitted: {answer!r}")
        send_quietly(s, data)
        if not keep_open:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        took = dropped_within(s, 8)
        s.close()
        h.check(took is not None, f"{name}: the connection was not dropped within 8 s\n"
                + agent.log_tail())
        times[name] = took
        h.check(agent.alive(), f"{name}: the agent died\n" + agent.log_tail())
    h.log("dropped after (s): " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    for name in ("segment-count-ffffffff", "huge-segment", "huge-total", "many-segments",
                 "abort-exception-type-99", "nested-unimplemented", "amplified-cap-table",
                 "token-length-4GiB"):
        h.check(times[name] < 1.5, f"{name}: a malformed frame must be dropped at once, not "
                f"after {times[name]:.2f} s")

    out, err = reader.communicate(timeout=60)
    h.log(f"[real session] exit {reader.returncode}\n{out.decode()}{err.decode()}")
    h.check(reader.returncode == 4, "the real session must read on without a failure")
    log = agent.log_tail()
    for phrase in ("segments (at most", "bytes (at most", "exception of unknown type 99",
                   "not a splitbrain client", "a TLS client on a plain port"):
        h.check(phrase in open(agent.logpath, errors="replace").read(),
                f"the agent log does not say {phrase!r}\n{log}")

    def settled():
        return h.agent_state(agent)["fds"] == before["fds"]
    ok = h.wait_for(settled, 10)
    h.check(ok, "the agent's fds did not come back:\n"
            + h.state_diff(before, h.agent_state(agent)))
    rss_after = rss_kib(agent.proc.pid)
    h.log(f"agent RSS {rss_before} KiB before, {rss_after} KiB after")
    h.check(rss_after - rss_before < 32 * 1024,
            f"the agent's memory grew by {(rss_after - rss_before) // 1024} MiB")
    t = ctx.traced(agent, ["cat", "hello.txt"], timeout=60)
    h.check(t.rc == 0 and t.out == "hello from board-b\n", "a client after the garbage failed")


def case_root_landlock(ctx):
    """--root with Landlock in force (where the kernel has it): a static program that exists only
    in the root runs there (chroot), reads the root's /etc/hostname, writes a file that lands in
    the root, and runs with no_new_privs; the agent says which Landlock ABI holds it."""
    h.need_binary(ctx.sbrun, "sbrun")
    h.need_binary(ctx.sbagent, "sbagent")
    probe = os.path.abspath(os.path.join(ctx.helpers_dir or "", "root_probe"))
    h.need_binary(probe, "helper root_probe (--helpers-dir)")
    root = os.path.join(ctx.tmp, "lroot")
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(os.path.join(root, "opt"))
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("landlocked\n")
    shutil.copy(probe, os.path.join(root, "opt", "root_probe"))
    sock = os.path.join(ctx.tmp, "ll.sock")
    logpath = os.path.join(ctx.tmp, "ll-agent.log")
    rfd, wfd = os.pipe()
    with open(logpath, "wb") as logf:
        agent = subprocess.Popen([ctx.sbagent, "--listen", "unix:" + sock, "--root", root, "-v",
                                  "--ready-fd", str(wfd)], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, pass_fds=(wfd,), env=h.ENV)
    ctx.cleanups.append(lambda: agent.poll() is None and (agent.terminate(), agent.wait()))
    os.close(wfd)
    ready, _, _ = select.select([rfd], [], [], 20)
    line = os.read(rfd, 256).decode() if ready else ""
    os.close(rfd)
    h.check(line.startswith("ready unix:"), f"bad ready line {line!r}")
    t = h.run([ctx.sbrun, "--target", "unix:" + sock, "--local", "/usr", "--local", "/bin", "--",
               "sh", "-c", "/opt/root_probe; echo rc=$?"], timeout=60, cwd=ctx.tmp)
    h.log(t.describe())
    h.check(t.out == "hostname landlocked\nno_new_privs 1\nrc=0\n",
            "the program in the root must run there, read and write, without new privileges")
    with open(os.path.join(root, "opt", "written.txt")) as f:
        h.check(f.read() == "from the probe\n", "the write did not land in the root")
    agent.terminate()
    agent.wait(10)
    with open(logpath, errors="replace") as f:
        log = f.read()
    h.log(log)
    h.check("Landlock ABI" in log or "Landlock is not available" in log,
            "the agent must say whether Landlock holds it")
    h.check(not os.path.exists(sock), "the agent must remove its socket at exit (Landlock "
            "allows that removal)")


# ---------------------------------------------------------------------------------------------
# --root escapes by races and by link/rename across the boundary. Each runs twice: with the
# agent as it is (Landlock on, where the kernel has it) and under no_landlock, so that openat2
# (RESOLVE_IN_ROOT) and the agent's own path handling are shown to hold the root by themselves.

JAIL = "/srv/sb-b/jail"
AWAY = "/srv/sb-b/away/x"        # where the racing helper puts /dir while it is out


def escape_helper(ctx):
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "root_escape"))
    h.need_binary(helper, "helper root_escape (--helpers-dir)")
    wrapper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "no_landlock"))
    h.need_binary(wrapper, "helper no_landlock (--helpers-dir)")
    h.need_binary(ctx.sbrun, "sbrun")
    return helper, wrapper


def escape_agents(ctx, prepare, wrapper):
    """(label, agent) for an agent with Landlock and one without, each on its own B."""
    with_ll = ctx.agent(root=JAIL, prepare=prepare, args=["-v"])
    without = ctx.agent(hostname="board-nll", root=JAIL, prepare=prepare, args=["-v"],
                        wrap=[wrapper])
    with open(without.logpath, errors="replace") as f:
        log = f.read()
    h.check("Landlock is not available" in log,
            "under no_landlock the agent must say that Landlock is not available\n" + log)
    return [("landlock", with_ll), ("openat2 alone", without)]


RACE_SECS = 3
RENAMER = r"""
import os, sys, time
a, b, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + secs
n = 0
print("renaming", flush=True)
while time.monotonic() < end:
    os.rename(a, b)
    os.rename(b, a)
    n += 1
print("swaps", n, flush=True)
"""


def run_race(ctx, agent, label, argv):
    """Runs `root_escape ARGV` under sbrun while a process on B renames /dir out of the root and
    back as fast as it can; checks that no escape was seen. Returns {probe: (ok, set of
    errnos)}."""
    renamer = agent.spawn([h.SYS_PYTHON, "-c", RENAMER, f"{JAIL}/dir", f"{AWAY}/dir",
                           str(RACE_SECS + 2)])
    ready, _, _ = select.select([renamer.stdout], [], [], 20)
    first = renamer.stdout.readline().decode() if ready else ""
    h.check(first == "renaming\n", f"[{label}] the renamer did not start: {first!r}")
    t = h.run([ctx.sbrun, "--target", agent.url, "--remote-cwd", "/", "--", *argv],
              timeout=90, cwd=ctx.tmp)
    h.log(f"[{label}]\n" + t.describe())
    out, _ = renamer.communicate(timeout=30)
    h.log(f"[{label}] renamer: {out.decode().strip()}")
    h.check("ESCAPE" not in t.out and "FAIL" not in t.out and "escapes 0\n" in t.out,
            f"[{label}] an operation reached outside the root")
    h.check(t.rc == 0, f"[{label}] the program failed")
    swaps = int(out.split()[-1])
    h.check(swaps > 100, f"[{label}] only {swaps} swaps: the race proves little")
    h.check(agent.alive(), f"[{label}] the agent died\n" + agent.log_tail())
    results = {}
    for line in t.out.splitlines():
        words = line.split()
        if len(words) >= 8 and words[1] == "ok":
            results[words[0]] = (int(words[2]), {w.split(":")[0] for w in words[8:]})
    return results


OUTSIDE_LISTING = (f"find /srv/sb-b -path {JAIL} -prune -o -path '*/dir' -prune -o -print | "
                   f"sort | xargs stat -c '%n %F %s %i %h'; cat {AWAY}/marker {AWAY}/../marker "
                   f"{AWAY}/../../marker")


def case_root_rename_race(ctx):
    """A directory renamed out of the root and back by a process on B, as fast as it can, while
    a program under sbrun works through it for 3 s. First opens: by absolute paths with `..`
    (2 to 4 levels), a relative symlink `up -> ../..` inside it, and relative to a directory fd
    and to the working directory taken inside it. Where `..` would land while it is out lie
    files reading OUTSIDE; not one open may read them (the kernel's RESOLVE_IN_ROOT rename
    check, the agent's RESOLVE_BENEATH-then-root for node-relative paths); they fail with ENOENT
    while the directory is away. Then links, renames and RENAME_EXCHANGEs through the same
    names: each lands in the root or fails with ENOENT, and nothing outside the root changes.
    With Landlock and without."""
    helper, wrapper = escape_helper(ctx)
    prepare = (f"mkdir -p {JAIL}/dir/sub {JAIL}/data {AWAY} && "
               f"echo INSIDE-DATA > {JAIL}/data/file.txt && "
               f"echo INSIDE-SWAP > {JAIL}/data/swap.txt && "
               f"echo INSIDE-FILE > {JAIL}/dir/sub/file && "
               f"echo INSIDE-MARKER > {JAIL}/marker && ln -s ../.. {JAIL}/dir/sub/up && "
               f"echo OUTSIDE-away-x > {AWAY}/marker && echo OUTSIDE-away > {AWAY}/../marker && "
               f"echo OUTSIDE-b-root > {AWAY}/../../marker")
    agents = escape_agents(ctx, prepare, wrapper)
    if ctx.native_only:
        return
    for label, agent in agents:
        outside_before = agent.sh(OUTSIDE_LISTING).out
        results = run_race(ctx, agent, label, [helper, "race", str(RACE_SECS)])
        h.check(len(results) == 12, f"[{label}] expected 12 probes, got {sorted(results)}")
        for probe, (ok, errnos) in results.items():
            h.check(ok > 0, f"[{label}] {probe}: never read the INSIDE file "
                    "(the race proves nothing)")
            # ENOENT while /dir is away. Landlock refuses (EACCES) a file whose directory went
            # out of the root after the lookup, before the open's own check; names beneath a
            # held directory resolve wherever it is, so only Landlock fails them.
            allowed = set() if probe.endswith("-file") and probe != "abs-file" else {"ENOENT"}
            if label == "landlock" and probe.endswith("-file"):
                allowed.add("EACCES")
            h.check(errnos <= allowed, f"[{label}] {probe}: unexpected failures "
                    f"{sorted(errnos)}; expected only {sorted(allowed)}")
        results = run_race(ctx, agent, label, [helper, "links-race", str(RACE_SECS)])
        h.check(len(results) == 6, f"[{label}] expected 6 operations, got {sorted(results)}")
        for op, (ok, errnos) in results.items():
            h.check(ok > 0, f"[{label}] {op}: never worked (the race proves nothing)")
            h.check(errnos <= {"ENOENT"}, f"[{label}] {op}: unexpected failures "
                    f"{sorted(errnos)}; while the directory is away, ENOENT")
        outside_after = agent.sh(OUTSIDE_LISTING).out
        h.check(outside_after == outside_before and "OUTSIDE-away-x" in outside_after,
                f"[{label}] something changed outside the root:\n"
                + h.diff(outside_before.splitlines(), outside_after.splitlines(), "before",
                         "after"))
        r = agent.sh(f"cd {JAIL} && ls -A && ls -A data && cat marker data/file.txt data/swap.txt")
        h.check(r.out.split() == ["data", "dir", "marker", "file.txt", "swap.txt",
                                  "INSIDE-MARKER", "INSIDE-DATA", "INSIDE-SWAP"],
                f"[{label}] the root's files are not as before\n{r.describe()}")


# Expected answers of `root_escape links`: names outside the root do not exist inside it (as
# under chroot), so every path that means "outside" fails with ENOENT; A <-> B is EXDEV (two
# file systems); the symlinks themselves are linked and moved inside.
LINK_EXPECT = {
    "link-in-to-dotdot": "ENOENT", "link-in-to-abs": "ENOENT",
    "link-in-to-abs-symlink": "ENOENT", "link-in-to-rel-symlink": "ENOENT",
    "linkat-in-to-dirfd-dotdot": "ENOENT",
    "link-out-dotdot-to-in": "ENOENT", "link-out-abs-to-in": "ENOENT",
    "linkat-follow-abs-symlink-to-in": "ENOENT", "linkat-follow-rel-symlink-to-in": "ENOENT",
    "linkat-dirfd-dotdot-to-in": "ENOENT", "linkat-nofollow-symlink": "ok",
    "rename-in-to-dotdot": "ENOENT", "rename-in-to-abs": "ENOENT",
    "rename-in-to-abs-symlink": "ENOENT", "rename-in-to-rel-symlink": "ENOENT",
    "renameat-in-to-dirfd-dotdot": "ENOENT", "rename-noreplace-in-to-abs": "ENOENT",
    "rename-out-dotdot-to-in": "ENOENT", "rename-out-abs-to-in": "ENOENT",
    "rename-outdir-abs-to-in": "ENOENT", "rename-out-via-symlink-to-in": "ENOENT",
    "exchange-in-dotdot": "ENOENT", "exchange-in-abs": "ENOENT", "exchange-abs-in": "ENOENT",
    "exchange-via-symlink": "ENOENT", "exchange-dir-out": "ENOENT",
    "rename-symlink-itself": "ok",
    "link-remote-to-local": "EXDEV", "link-local-to-remote": "EXDEV",
    "rename-remote-to-local": "EXDEV", "rename-local-to-remote": "EXDEV",
    "exchange-remote-local": "EXDEV",
    "link-inside": "ok", "rename-inside": "ok", "exchange-inside": "ok",
    "rename-inside-dotdot": "ok",
}


def case_root_link_rename(ctx):
    """link, linkat and renameat2 (plain, RENAME_NOREPLACE, RENAME_EXCHANGE) across the --root
    boundary, both ways, through `..`, absolute paths, absolute and relative symlinks and a
    directory fd: each fails with ENOENT (what lies outside does not exist inside the root);
    between B and a local directory on A, EXDEV. Nothing outside the root or in the local
    directory changes; the same operations inside work. With Landlock and without."""
    helper, wrapper = escape_helper(ctx)
    out = "/srv/sb-b/outdir"
    prepare = (f"mkdir -p {JAIL}/data/sub {out} && echo INSIDE > {JAIL}/data/file.txt && "
               f"echo INSIDE-2 > {JAIL}/data/file2.txt && echo OUTSIDE-SECRET > {out}/secret.txt && "
               f"ln -s {out} {JAIL}/abs-out && ln -s ../outdir {JAIL}/rel-out && "
               f"ln -s {out}/secret.txt {JAIL}/abs-secret && "
               f"ln -s ../outdir/secret.txt {JAIL}/rel-secret")
    agents = escape_agents(ctx, prepare, wrapper)
    if ctx.native_only:
        return
    for label, agent in agents:
        local = os.path.join(ctx.tmp, f"local-{agent.hostname}")
        os.makedirs(local)
        with open(os.path.join(local, "local.txt"), "w") as f:
            f.write("LOCAL\n")
        outside_before = agent.sh(f"cd /srv/sb-b && find . -path ./jail -prune -o -print "
                                  f"| sort | xargs stat -c '%n %F %s %i %h'").out
        t = h.run([ctx.sbrun, "--target", agent.url, "--remote-cwd", "/", "--local", local,
                   "--", helper, "links", local], timeout=90, cwd=ctx.tmp)
        h.log(f"[{label}]\n" + t.describe())
        h.check(t.rc == 0, f"[{label}] the program failed")
        got = dict(line.split(None, 1) for line in t.out.splitlines() if " " in line)
        wrong = [f"{k}: {got.get(k)} (expected {v})" for k, v in LINK_EXPECT.items()
                 if got.get(k) != v]
        h.check(not wrong, f"[{label}] unexpected answers:\n  " + "\n  ".join(wrong))
        outside_after = agent.sh(f"cd /srv/sb-b && find . -path ./jail -prune -o -print "
                                 f"| sort | xargs stat -c '%n %F %s %i %h'").out
        h.check(outside_after == outside_before, f"[{label}] something changed outside the "
                f"root:\n" + h.diff(outside_before.splitlines(), outside_after.splitlines(),
                                    "before", "after"))
        r = agent.sh(f"cat {out}/secret.txt")
        h.check(r.out == "OUTSIDE-SECRET\n", f"[{label}] the outside file changed")
        h.check(sorted(os.listdir(local)) == ["local.txt"], f"[{label}] the local directory "
                f"changed: {sorted(os.listdir(local))}")
        r = agent.sh(f"cd {JAIL} && ls -A . data data/sub && readlink data/got-link "
                     f"data/abs-out-moved && cat data/file.txt data/sub/file2.txt")
        h.log(r.out)
        h.check(r.rc == 0 and "hard2" in r.out.split() and f"{out}/secret.txt" in r.out
                and "INSIDE-2\nINSIDE\n" in r.out, f"[{label}] the inside operations did not "
                f"land inside\n{r.describe()}")
        h.check(agent.alive(), f"[{label}] the agent died\n" + agent.log_tail())


def register(cases, harness):
    global h
    h = harness
    cases["tls"] = (case_tls, True)
    cases["session-limits"] = (case_session_limits, True)
    cases["wire-garbage"] = (case_wire_garbage, True)
    cases["root-landlock"] = (case_root_landlock, True)
    cases["root-rename-race"] = (case_root_rename_race, True)
    cases["root-link-rename"] = (case_root_link_rename, True)
