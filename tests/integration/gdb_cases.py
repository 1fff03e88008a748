"""Integration cases for `sbrun --gdb` (issue 15): Debian's real gdb, in batch mode, debugs a
program (gdb_target.c) through the gdbserver inside sbrun, while the program's files come from a
real agent on B. run.py registers them (register()) and passes itself as `h`.

Each case lets sbrun pick a free port (--gdb=127.0.0.1:0) and reads it from sbrun's
"sbrun: gdb: listening on ADDRESS" line; the files the program reads exist only on B."""

import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import time

h = None   # run.py, set by register()

FIRST = "first.txt"
SECOND = "second.txt"
FIRST_TEXT = "first, only on board-b"
SECOND_TEXT = "second, only on board-b"
GDB_TIMEOUT = 30


def setup(ctx):
    """An agent whose work directory holds the two files, and gdb and the program, or Skip."""
    gdb = shutil.which("gdb")
    if gdb is None:
        raise h.Skip("gdb is not installed (apt-get install gdb)")
    target = os.path.abspath(os.path.join(ctx.helpers_dir or "", "gdb_target"))
    h.need_binary(target, "helper gdb_target (--helpers-dir)")
    agent = ctx.agent()
    h.empty_tree(agent)
    r = agent.sh(f"printf '%s\\n' '{FIRST_TEXT}' > {h.WORK}/{FIRST} && "
                 f"printf '%s\\n' '{SECOND_TEXT}' > {h.WORK}/{SECOND}")
    h.check(r.rc == 0, f"cannot make the files on B\n{r.describe()}")
    h.check(not os.path.exists(f"{h.WORK}/{FIRST}"), "the file must exist only on B")
    return gdb, target, agent


def line_of(tag):
    """The line of gdb_target.c marked `GDB-LINE tag`."""
    with open(os.path.join(h.HERE, "gdb_target.c")) as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith(f"GDB-LINE {tag}"):
                return n
    raise h.Failure(f"no GDB-LINE {tag} in gdb_target.c")


class Sbrun:
    """sbrun --gdb in the background: its stderr is read until it says where it listens."""

    def __init__(self, ctx, argv):
        self.argv = argv
        h.log("$ " + shlex.join(argv))
        self.errf = open(os.path.join(ctx.tmp, f"sbrun-gdb-{len(ctx.cleanups)}.err"), "w+b")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self.errf, env=h.ENV, cwd=ctx.tmp,
                                  start_new_session=True)
        ctx.cleanups.append(self.kill)

    def err(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def address(self, secs=20):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            m = re.search(r"sbrun: gdb: listening on (\S+)", self.err())
            if m:
                return m.group(1)
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise h.Failure(f"sbrun did not say where gdb should connect\n{self.describe()}")

    def finish(self, secs=GDB_TIMEOUT):
        try:
            out, _ = self.p.communicate(timeout=secs)
        except subprocess.TimeoutExpired:
            self.kill()
            raise h.Failure(f"sbrun did not exit within {secs} s\n{self.describe()}")
        self.out = out.decode(errors="replace")
        h.log(f"sbrun exit {self.p.returncode}\n--- stdout ---\n{self.out}--- stderr ---\n"
              f"{self.err()}--- end ---")
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()

    def describe(self):
        return f"$ {shlex.join(self.argv)}\nexit {self.p.poll()}\n--- stderr ---\n{self.err()}"


def gdb_batch(gdb, program, address, commands):
    """gdb -batch on `program`, connected to `address`, running `commands`; its output."""
    argv = [gdb, "-batch", "-nx", "-ex", "set pagination off", "-ex", "set confirm off",
            "-ex", f"target remote {address}"]
    for c in commands:
        argv += ["-ex", c]
    argv.append(program)
    r = h.run(argv, timeout=GDB_TIMEOUT)
    h.log(r.describe())
    return r


def launched(ctx, agent, target, mode, extra=(), listen="127.0.0.1:0"):
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", h.WORK,
            f"--gdb={listen}"] + list(extra) + [
            "--", target, mode, f"{h.WORK}/{FIRST}", f"{h.WORK}/{SECOND}"]
    return Sbrun(ctx, argv)


def expect(r, *patterns):
    text = r.out + r.err
    for p in patterns:
        h.check(re.search(p, text, re.M) is not None, f"gdb's output lacks {p!r}\n{r.describe()}")


def case_gdb_break(ctx):
    """A breakpoint after a read of a file that exists only on B: `print` shows B's bytes;
    `next` steps over a second remote read, whose bytes `print` shows too; `continue` runs to a
    clean exit with the program's status (7), which sbrun returns too."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "plain")
    r = gdb_batch(gdb, target, sb.address(), [
        f"break gdb_target.c:{line_of('first')}", "continue", "print first", "next", "next",
        "print second", "info registers rip", "bt", "continue"])
    expect(r, rf'\$1 = "{FIRST_TEXT}\\n', rf'\$2 = "{SECOND_TEXT}\\n', r"^rip\s+0x",
           r"#0\s+main \(", r"exited with code 07")
    h.check(sb.finish() == 7, f"sbrun must exit with the program's status 7\n{sb.describe()}")
    h.check(f"second: {SECOND_TEXT}" in sb.out, f"the program's output is wrong: {sb.out!r}")


def case_gdb_threads(ctx):
    """Two threads: a breakpoint in the second one (after its remote read) stops the program;
    `info threads` shows both, the buffer holds B's bytes, and the program then finishes with
    the main thread's own remote read intact."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "threads")
    r = gdb_batch(gdb, target, sb.address(), [
        "break thread_mark", "continue", "info threads", "print from_thread", "bt",
        "thread 1", "bt", "continue"])
    expect(r, r"Breakpoint 1, thread_mark", rf'\$1 = "{FIRST_TEXT}\\n', r"#1 .* worker \(",
           r"exited with code 07")
    threads = re.findall(r"^[ *]\s*(\d+)\s+Thread ", r.out, re.M)
    h.check(len(threads) == 2, f"info threads must list 2 threads, not {threads}\n{r.out}")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")
    h.check(f"thread: {FIRST_TEXT}" in sb.out and f"second: {SECOND_TEXT}" in sb.out,
            f"the program's output is wrong: {sb.out!r}")


def case_gdb_attach(ctx):
    """sbrun --pid --gdb: gdb connects to a running program (started outside sbrun), lets it
    go on (`set var go = 1`), stops at the breakpoint after its read, which came from B, and
    detaches at the end; the program finishes redirected and exits 7."""
    gdb, target, agent = setup(ctx)
    prog = subprocess.Popen([target, "attach", f"{h.WORK}/{FIRST}", f"{h.WORK}/{SECOND}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.ENV,
                            start_new_session=True)
    ctx.cleanups.append(lambda: (prog.poll() is None and os.killpg(prog.pid, signal.SIGKILL),
                                 prog.wait()))
    first = prog.stdout.readline().decode()
    h.check(first.startswith("waiting "), f"the program did not start: {first!r}")
    sb = Sbrun(ctx, [ctx.sbrun, "--target", f"b={agent.url}", "--pid", str(prog.pid),
                     "--gdb=127.0.0.1:0"])
    r = gdb_batch(gdb, target, sb.address(), [
        "info threads", "set var go = 1", f"break gdb_target.c:{line_of('first')}", "continue",
        "print first", "delete", "detach"])
    expect(r, r"Breakpoint 1, main", rf'\$1 = "{FIRST_TEXT}\\n', r"\(Remote target\) detached\]")
    try:
        out, err = prog.communicate(timeout=GDB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise h.Failure(f"the program did not finish after gdb detached\n{sb.describe()}")
    out = out.decode(errors="replace")
    h.log(f"program exit {prog.returncode}\n{out}{err.decode(errors='replace')}")
    h.check(prog.returncode == 7, f"the program must exit 7, not {prog.returncode}")
    h.check(f"second: {SECOND_TEXT}" in out,
            f"after the detach its reads must still go to B: {out!r}")
    h.check(sb.finish() == 7, f"sbrun must exit with the program's status\n{sb.describe()}")


def case_gdb_watch(ctx):
    """Debug registers: a hardware breakpoint (hbreak) stops after the second remote read; a
    hardware watchpoint then stops where the program writes 42 into the watched variable and
    shows old and new values."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "plain")
    r = gdb_batch(gdb, target, sb.address(), [
        "break main", "continue", f"hbreak gdb_target.c:{line_of('second')}", "continue",
        "watch watched", "continue", "print second", "delete", "continue"])
    expect(r, r"Hardware assisted breakpoint 2", r"Breakpoint 2, main",
           r"Hardware watchpoint 3: watched", r"Old value = 1", r"New value = 42",
           rf'\$1 = "{SECOND_TEXT}\\n', r"exited with code 07")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")


def case_gdb_kill(ctx):
    """`kill` at a breakpoint: the program dies (SIGKILL) and sbrun says so in its status.
    Over the unix-socket form (--gdb=unix:PATH), whose socket only this user may use (0600)."""
    gdb, target, agent = setup(ctx)
    path = os.path.join(ctx.tmp, "gdb.sock")
    sb = launched(ctx, agent, target, "plain", listen=f"unix:{path}")
    h.check(sb.address() == f"unix:{path}", f"sbrun must name the socket\n{sb.describe()}")
    mode = os.stat(path).st_mode & 0o777
    h.check(mode == 0o600, f"the gdb socket must be 0600, not {oct(mode)}")
    r = gdb_batch(gdb, target, path, [
        f"break gdb_target.c:{line_of('first')}", "continue", "kill"])
    expect(r, r"Breakpoint 1, main", r"\[Inferior 1 \(.*\) killed\]")
    h.check(sb.finish() == 128 + signal.SIGKILL, f"sbrun must exit 137\n{sb.describe()}")
    h.check("second:" not in sb.out, "the killed program must not have gone on")


def case_gdb_detach(ctx):
    """`detach` at a breakpoint: the program runs on under sbrun, still redirected (its second
    read comes from B), and exits 7; a Ctrl-C style interrupt before that is not needed."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "plain")
    r = gdb_batch(gdb, target, sb.address(), [
        f"break gdb_target.c:{line_of('first')}", "continue", "print first", "delete",
        "detach"])
    expect(r, rf'\$1 = "{FIRST_TEXT}\\n', r"\(Remote target\) detached\]")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")
    h.check(f"second: {SECOND_TEXT}" in sb.out, f"the program's output is wrong: {sb.out!r}")
    h.check("gdb detached; the program runs on" in sb.err(), "sbrun must say gdb detached")


def case_gdb_in_flight(ctx):
    """A breakpoint hits in one thread while the main thread waits in a remote read (a FIFO on
    B: its call is in flight on the agent). gdb stops the program; while it is stopped, a
    writer on B answers that read; after `continue` the main thread's read returns exactly what
    was written, and the program exits 7."""
    gdb, target, agent = setup(ctx)
    r = agent.sh(f"mkfifo {h.WORK}/fifo")
    h.check(r.rc == 0, f"mkfifo on B failed\n{r.describe()}")
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", h.WORK,
            "--gdb=127.0.0.1:0", "--", target, "fifo", f"{h.WORK}/{FIRST}", f"{h.WORK}/fifo"]
    sb = Sbrun(ctx, argv)
    write = shlex.join(["nsenter", "-t", str(agent.proc.pid), "-m", "-u", "--", "sh", "-c",
                        f"echo written while gdb had it stopped > {h.WORK}/fifo"])
    r = gdb_batch(gdb, target, sb.address(), [
        "break thread_mark", "continue", "print from_thread", "info threads",
        f"shell {write}", "continue"])
    expect(r, r"hit Breakpoint 1, thread_mark", rf'\$1 = "{FIRST_TEXT}\\n',
           r"exited with code 07")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")
    h.check("fifo: written while gdb had it stopped" in sb.out,
            f"the read in flight must complete with B's bytes: {sb.out!r}")


def case_gdb_signal(ctx):
    """A signal stops the program for gdb ("received signal SIGUSR1"); `continue` delivers it to
    the program's handler, as under gdbserver; the program then runs on, redirected."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "signal")
    r = gdb_batch(gdb, target, sb.address(), ["continue", "bt 1", "continue"])
    expect(r, r"received signal SIGUSR1", r"exited with code 07")
    h.check(sb.finish() == 7, f"sbrun must exit 7 (4: the handler did not run)\n{sb.describe()}")
    h.check(f"second: {SECOND_TEXT}" in sb.out, f"the program's output is wrong: {sb.out!r}")


def case_gdb_fork(ctx):
    """gdb debugs one process: a child the program forks while a breakpoint is inserted gets
    the original bytes back (no int3 to die of), runs its remote read and exits 0."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "fork")
    r = gdb_batch(gdb, target, sb.address(), ["break child_work", "continue"])
    expect(r, r"exited with code 07")
    h.check("Breakpoint 1, child_work" not in r.out, "gdb must not stop in the child")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")
    h.check(f"child: {FIRST_TEXT}" in sb.out and "child status: 1 0" in sb.out,
            f"the child must run its read and exit 0: {sb.out!r}")


class Raw:
    """A hand-made gdb: packets in ack mode, replies read whole and run-length expanded."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.buf = b""

    def send(self, payload):
        self.sock.sendall(b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xff))

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise h.Failure("sbrun closed the gdb connection")
        self.buf += chunk

    def ack(self):
        while not self.buf:
            self._more()
        c, self.buf = self.buf[:1], self.buf[1:]
        return c

    def reply(self):
        """The next packet's payload (acks before it skipped), checksum checked."""
        while True:
            while b"$" not in self.buf:
                self._more()
            start = self.buf.index(b"$")
            end = self.buf.find(b"#", start)
            if end >= 0 and len(self.buf) >= end + 3:
                break
            self._more()
        body = self.buf[start + 1:end]
        h.check(int(self.buf[end + 1:end + 3], 16) == sum(body) & 0xff,
                f"bad checksum: {self.buf!r}")
        self.buf = self.buf[end + 3:]
        out = bytearray()
        i = 0
        while i < len(body):
            if body[i:i + 1] == b"*":
                out += out[-1:] * (body[i + 1] - 29)
                i += 2
            else:
                out.append(body[i])
                i += 1
        return bytes(out)

    def ask(self, payload):
        self.send(payload)
        return self.reply()


def case_gdb_protocol(ctx):
    """The protocol by hand, with what gdb itself never sends: every malformed packet gets an
    error or the empty reply and sbrun serves on; a bad checksum gets '-'; `g` has the size
    target.xml promises; Ctrl-C (0x03) stops a running program with SIGINT; `k` kills it."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "attach")   # loops until `go` is set: never, here
    raw = Raw(sb.address())
    h.check(raw.ask(b"?").startswith(b"T05thread:"), "the first stop must be reported")
    h.check(b"qXfer:features:read+" in raw.ask(b"qSupported:multiprocess+;swbreak+"),
            "qSupported must offer target.xml")
    xml = raw.ask(b"qXfer:features:read:target.xml:0,3fff")
    h.check(xml[:1] in (b"l", b"m") and b"i386:x86-64" in xml, f"target.xml: {xml[:80]!r}")
    regs = raw.ask(b"g")
    h.check(len(regs) == 2 * 560 and all(c in b"0123456789abcdef" for c in regs),
            f"g must hold 560 bytes of registers in hex, not {len(regs)} characters")
    bad = {b"m": b"E01", b"mzz,4": b"E01", b"M10,2:zz": b"E14", b"X10,5:ab": b"E14",
           b"Hgqq": b"E01", b"Hx1": b"E01", b"P999=00": b"E01", b"pzz": b"E01",
           b"p12345678901234567": b"E01", b"vCont;x": b"E01", b"vCont;": b"E01",
           b"vCont;c:zz": b"E01", b"qXfer:features:read:target.xml:zz": b"E01",
           b"qXfer:features:read:other.xml:0,10": b"E00", b"Z2,1000,3": b"E01",
           b"Zq": b"E01", b"z2,zz,4": b"E01", b"Tzz": b"E01", b"QPassSignals:zz": b"E01",
           b"uNKNOWN": b"", b"vUnknown;1": b"", b"Z0,1000,1": b"", b"": b""}
    for packet, want in bad.items():
        got = raw.ask(packet)
        h.check(got == want, f"{packet!r}: expected {want!r}, got {got!r}")
    raw.sock.sendall(b"$g#00")   # the acks of the packets above were consumed with them
    h.check(raw.ack() == b"-", f"a bad checksum must get '-': {raw.buf!r}")
    h.check(raw.ask(b"QPassSignals:e;14") == b"OK", "QPassSignals")
    raw.send(b"vCont;c")
    time.sleep(0.5)
    raw.sock.sendall(b"\x03")
    stop = raw.reply()
    h.check(stop.startswith(b"T02thread:"), f"Ctrl-C must stop the program with SIGINT: {stop!r}")
    h.check(sb.p.poll() is None, "sbrun must still run")
    raw.send(b"k")
    h.check(sb.finish() == 128 + signal.SIGKILL, f"k must kill the program\n{sb.describe()}")


def case_gdb_flag(ctx):
    """--gdb's address is checked before anything starts: bad ones fail with 125 and a reason;
    a port in use says so."""
    h.need_binary(ctx.sbrun, "sbrun")
    for bad in ("", "host:", "70000", "::1:5", "unix:"):
        t = h.run([ctx.sbrun, f"--gdb={bad}", "--", "true"], timeout=30)
        h.check(t.rc == 125 and "--gdb" in t.err, f"--gdb={bad!r} must be refused\n{t.describe()}")


def register(cases, harness):
    global h
    h = harness
    cases["gdb-break"] = (case_gdb_break, True)
    cases["gdb-threads"] = (case_gdb_threads, True)
    cases["gdb-attach"] = (case_gdb_attach, True)
    cases["gdb-watch"] = (case_gdb_watch, True)
    cases["gdb-kill"] = (case_gdb_kill, True)
    cases["gdb-detach"] = (case_gdb_detach, True)
    cases["gdb-in-flight"] = (case_gdb_in_flight, True)
    cases["gdb-signal"] = (case_gdb_signal, True)
    cases["gdb-fork"] = (case_gdb_fork, True)
    cases["gdb-protocol"] = (case_gdb_protocol, True)
    cases["gdb-flag"] = (case_gdb_flag, False)
