"""Integration cases for issue 17: a root agent is safe to leave running. Who may connect (the
socket's mode, SO_PEERCRED), what strangers can do before a handshake (a flood of half-open
connections, frames that would pin memory), and what a session's programs can do on B under
--root (device nodes, signals outside the session, detached survivors, fork bombs).

run.py registers them (register()); they use its helpers through the module `h` it passes. Every
agent here is a real sbagent, root, in its own UTS and mount namespaces, on a unix socket; the
unprivileged user is `nobody` (setpriv)."""

import os
import select
import socket
import stat
import struct
import subprocess
import sys
import time

h = None   # run.py, set by register()

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
JAIL = "/srv/sb-b/jail"
PREAMBLE_MAGIC = b"SBAUTH1\n"


def jail_agent(ctx, args=(), hostname=None):
    """A root agent confined to JAIL, which holds only the static jail_probe and /dev."""
    probe = os.path.abspath(os.path.join(ctx.helpers_dir or "", "jail_probe"))
    h.need_binary(probe, "helper jail_probe (--helpers-dir)")
    h.need_binary(ctx.sbrun, "sbrun")
    prepare = f"mkdir -p {JAIL}/dev && cp {probe} {JAIL}/jail_probe"
    kw = {"hostname": hostname} if hostname else {}
    return ctx.agent(root=JAIL, prepare=prepare, args=["-v"] + list(args), **kw)


def probe(ctx, agent, script, timeout=25):
    """Runs `sh -c script` under sbrun (sh here, the jail_probe runs it starts on B)."""
    t = ctx.traced(agent, ["sh", "-c", script], cwd="/", timeout=timeout)
    h.log(t.describe())
    return t


def agent_log(agent):
    with open(agent.logpath, errors="replace") as f:
        return f.read()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# Who may connect

def case_peer_refused(ctx):
    """A root agent's socket is 0600 and only root (and the agent's own uid) may connect: nobody
    gets EACCES from the file mode; with --socket-mode 0666 the SO_PEERCRED check still refuses
    nobody, with a message sbrun prints (exit 125), while root gets in; --allow-uid nobody lets
    nobody in."""
    h.need_binary(ctx.sbrun, "sbrun")
    a = ctx.agent(prepare=h.B_ETC_HOSTNAME)
    h.make_tree(a)
    mode = stat.S_IMODE(os.stat(a.sock).st_mode)
    h.check(mode == 0o600, f"the socket must be created 0600, not {mode:04o}")
    t = h.run(NOBODY + ctx.sbrun_argv(a, ["cat", "hello.txt"]), cwd=ctx.tmp, timeout=25)
    h.log(t.describe())
    h.check(t.rc == 125 and "Permission denied" in t.err,
            "nobody must not be able to connect to a 0600 socket")

    b = ctx.agent(hostname="board-open", prepare=h.B_ETC_HOSTNAME,
                  args=["--socket-mode", "0666"])
    h.make_tree(b)
    mode = stat.S_IMODE(os.stat(b.sock).st_mode)
    h.check(mode == 0o666, f"--socket-mode 0666 gave {mode:04o}")
    t = h.run(NOBODY + ctx.sbrun_argv(b, ["cat", "hello.txt"]), cwd=ctx.tmp, timeout=25)
    h.log(t.describe())
    h.check(t.rc == 125 and "uid 65534 is not allowed" in t.err and t.out == "",
            "nobody must be refused by the peer check, with the reason")
    h.check("uid 65534: refused" in agent_log(b) or "uid 65534 is not allowed" in agent_log(b),
            "the agent must log the refusal\n" + b.log_tail())
    t = ctx.traced(b, ["cat", "hello.txt"], timeout=25)
    h.check(t.rc == 0 and t.out.startswith("hello"), f"root must get in\n{t.describe()}")

    c = ctx.agent(hostname="board-nobody", prepare=h.B_ETC_HOSTNAME,
                  args=["--socket-mode", "0666", "--allow-uid", "nobody"])
    h.make_tree(c)
    t = h.run(NOBODY + ctx.sbrun_argv(c, ["cat", "hello.txt"]), cwd=ctx.tmp, timeout=25)
    h.log(t.describe())
    h.check(t.rc == 0 and t.out.startswith("hello"), "--allow-uid nobody must let nobody in")

    # Bad input is refused at start, clearly.
    for args, words in ((["--socket-mode", "0077"], "--socket-mode"),
                        (["--allow-uid", "no-such-user-sb"], "no such user"),
                        (["--socket-group", "no-such-group-sb"], "no such group")):
        r = h.run([ctx.sbagent, "--listen", f"unix:{ctx.tmp}/bad.sock"] + args, timeout=10)
        h.check(r.rc != 0 and words in r.err, f"{args} must be refused\n{r.describe()}")


# ---------------------------------------------------------------------------------------------
# Before the handshake

FLOOD = r"""
import socket, sys, time
path, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks, opened, failed = [], 0, 0
end = time.monotonic() + secs
while time.monotonic() < end:
    # Keep n half-open connections: whatever the agent dropped is opened again.
    alive = []
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        alive.append(s)
    socks = alive
    while len(socks) < n:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.sendall(b"SBAUT")      # a preamble that never ends
            socks.append(s)
            opened += 1
        except OSError:
            s.close()
            failed += 1
            break
    time.sleep(0.05)
print("opened", opened, "failed", failed, "open-at-end", len(socks), flush=True)
"""


def case_halfopen_flood(ctx):
    """200 half-open connections from nobody (allowed on the socket), re-opened whenever the
    agent drops them, while real sbrun sessions of root start and complete: the per-peer cap
    (8 before the handshake) keeps the stranger from taking the pending or session slots."""
    h.need_binary(ctx.sbrun, "sbrun")
    a = ctx.agent(prepare=h.B_ETC_HOSTNAME, args=["-v", "--socket-mode", "0666",
                                                    "--allow-uid", "65534"])
    h.make_tree(a)
    flood_secs = 12
    flood = subprocess.Popen(NOBODY + [h.SYS_PYTHON, "-c", FLOOD, a.sock, "200", str(flood_secs)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.ENV)
    ctx.cleanups.append(lambda: flood.poll() is None and (flood.kill(), flood.wait()))
    time.sleep(1.5)   # the flood is on
    times = []
    for i in range(3):
        t = ctx.traced(a, ["sh", "-c", "cat hello.txt && hostname"], timeout=25)
        h.log(t.describe())
        h.check(t.rc == 0 and t.out.startswith("hello") and t.out.endswith(f"\n{h.B_HOSTNAME}\n"),
                f"session {i} failed during the flood")
        times.append(t.secs)
    out, err = flood.communicate(timeout=flood_secs + 15)
    h.log(f"flood: {out.decode().strip()} {err.decode().strip()}; sessions took {times}")
    words = out.split()
    h.check(len(words) == 6 and int(words[1]) >= 200,
            f"the flood did not open its 200 connections: {out!r} {err!r}")
    h.check(max(times) < 10, f"sessions during the flood took {times} s")
    log = agent_log(a)
    h.check("(at most 8 per peer)" in log,
            "the agent must have dropped the flood's connections past the per-peer cap\n"
            + a.log_tail())
    h.check(a.alive(), "the agent died\n" + a.log_tail())


def case_preauth_memory(ctx):
    """40 connections that pass the preamble, announce a 64 MiB frame and send 1 MiB of it, then
    stall: each is dropped at the frame header (frames before the handshake are held to 64 KiB),
    and the agent's RSS comes back within 10 % of where it began once they are gone."""
    h.need_binary(ctx.sbrun, "sbrun")
    a = ctx.agent(prepare=h.B_ETC_HOSTNAME, args=["-v", "--max-pending-per-peer", "64"])
    h.make_tree(a)
    with open(f"/proc/{a.proc.pid}/comm") as f:
        h.check(f.read().strip() == "sbagent", "the agent's pid is not sbagent's")
    t = ctx.traced(a, ["cat", "hello.txt"], timeout=25)
    h.check(t.rc == 0, f"a first session failed\n{t.describe()}")
    time.sleep(0.5)
    before = rss_kib(a.proc.pid)
    header = struct.pack("<II", 0, (64 << 20) // 8)     # one segment of 64 MiB
    chunk = b"\0" * (1 << 20)
    socks = []
    peak = before
    for i in range(40):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(a.sock)
        s.sendall(PREAMBLE_MAGIC + struct.pack("<I", 0))
        answer = s.recv(64)
        h.check(answer == b"ok\n", f"preamble answer {answer!r}")
        try:
            s.sendall(header)
            s.settimeout(0.5)
            s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass   # dropped at the header: that is the point
        socks.append(s)
        peak = max(peak, rss_kib(a.proc.pid))
    dropped = 0
    for s in socks:
        s.settimeout(3)
        try:
            while s.recv(65536):
                pass
            dropped += 1
        except (ConnectionResetError, BrokenPipeError):
            dropped += 1
        except socket.timeout:
            pass
        s.close()
    h.check(dropped == 40, f"only {dropped} of 40 stalled 64 MiB frames were dropped")
    ok = h.wait_for(lambda: rss_kib(a.proc.pid) <= before * 1.10, 5, step=0.2)
    after = rss_kib(a.proc.pid)
    h.log(f"agent RSS: {before} KiB before, {peak} KiB at most during, {after} KiB after")
    h.check(ok, f"agent RSS {after} KiB is not within 10 % of {before} KiB")
    h.check("before the handshake (at most 65536" in agent_log(a),
            "the agent must say why it dropped the frames\n" + a.log_tail())
    t = ctx.traced(a, ["cat", "hello.txt"], timeout=25)
    h.check(t.rc == 0 and t.out.startswith("hello"), f"a session after the frames failed\n{t.describe()}")


# ---------------------------------------------------------------------------------------------
# What a session's programs may do under --root

def case_root_devices(ctx):
    """Under --root, a client's mknod of a character or block device is refused with EPERM (a
    FIFO is fine), and so is a program's own mknod on B (no CAP_MKNOD); with --allow-devices the
    client's mknod works."""
    a = jail_agent(ctx)
    if ctx.native_only:
        return
    mk = ("import os, stat, sys\n"
          "for kind in (stat.S_IFCHR, stat.S_IFBLK):\n"
          "    try:\n"
          "        os.mknod('/dev/n%d' % kind, kind | 0o600, os.makedev(1, 11)); print('made')\n"
          "    except OSError as e:\n"
          "        print('errno', e.errno)\n"
          "os.mkfifo('/dev/fifo'); print('fifo')\n")
    t = ctx.traced(a, [h.SYS_PYTHON, "-c", mk], cwd="/", timeout=25)
    h.log(t.describe())
    h.check(t.out == "errno 1\nerrno 1\nfifo\n", "device mknod under --root must be EPERM")
    r = a.sh(f"ls -l {JAIL}/dev")
    h.check("n8192" not in r.out and "n24576" not in r.out and "fifo" in r.out,
            f"device nodes were made on B\n{r.describe()}")
    t = probe(ctx, a, "/jail_probe mknod /dev/kmsg")
    h.check(t.out == "mknod -1 1\n", "a program on B must not make device nodes either")
    b = jail_agent(ctx, args=["--allow-devices"], hostname="board-dev")
    t = ctx.traced(b, [h.SYS_PYTHON, "-c", mk], cwd="/", timeout=25)
    h.log(t.describe())
    h.check(t.out == "made\nmade\nfifo\n", "--allow-devices must allow device mknod")


def case_root_signals(ctx):
    """Under --root, programs run on B live in their session's pid namespace with a cut
    capability bounding set and no_new_privs: a signal to a process outside the session (a
    process on B, and the agent itself) is refused with ESRCH and the target lives; abstract
    unix sockets of B's are out of reach (EPERM), from the program and through the agent."""
    a = jail_agent(ctx)
    victim = subprocess.Popen(["sleep", "60"])
    ctx.cleanups.append(lambda: (victim.kill(), victim.wait()))
    listener = socket.socket(socket.AF_UNIX)
    name = f"sb-isolation-{os.getpid()}"
    listener.bind("\0" + name)
    listener.listen()
    ctx.cleanups.append(listener.close)
    t = probe(ctx, a, f"/jail_probe kill {victim.pid}; /jail_probe kill {a.proc.pid}; "
                      f"/jail_probe caps; /jail_probe abstract {name}")
    h.check(t.rc == 0, "the probes failed to run")
    h.check(t.out.count("kill0 -1 3\n") == 2 and t.out.count("kill9 -1 3\n") == 2,
            "signals outside the session must fail with ESRCH")
    h.check(victim.poll() is None and a.alive(), "a process outside the session was killed")
    h.check("bnd sys_admin=0 mknod=0 sys_chroot=0 dac_read_search=0 nnp=1" in t.out,
            "the program's capabilities must be cut and no_new_privs set")
    if "abstract-socket scope" in agent_log(a):
        h.log("this kernel has no Landlock abstract-socket scope: the program-side check is off")
    else:
        h.check(f"connect -1 1\n" in t.out, "a program on B must not reach B's abstract sockets")
    py = ("import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
          f"    s.connect('\\0{name}'); print('connected')\n"
          "except OSError as e:\n    print('errno', e.errno)\n")
    t = ctx.traced(a, [h.SYS_PYTHON, "-c", py], cwd="/", timeout=25)
    h.log(t.describe())
    h.check(t.out == "errno 1\n", "the agent must refuse abstract addresses under --root")


def jail_processes(argv_prefix):
    return [p for p in h.proc_table().values() if p["argv"][:len(argv_prefix)] == argv_prefix]


def case_session_survivor(ctx):
    """A program on B that detaches a child (fork, setsid, stdio closed) and exits: the child
    runs while the session lives and is gone within 5 s of the session's end."""
    a = jail_agent(ctx)
    marker = ["/jail_probe", "daemon", "57"]
    script = ("import subprocess, time\n"
              "subprocess.run(['/jail_probe', 'daemon', '57'])\n"
              "print('started', flush=True)\ntime.sleep(2)\n")
    p = subprocess.Popen(ctx.sbrun_argv(a, [h.SYS_PYTHON, "-c", script], cwd="/"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: p.poll() is None and (p.kill(), p.wait()))
    seen = h.wait_for(lambda: jail_processes(marker), 10)
    h.check(seen, "the detached child never ran on B")
    h.log(f"detached child on B: {seen}")
    out, err = p.communicate(timeout=20)
    h.check(p.returncode == 0 and b"started" in out, f"the session failed: {out!r} {err!r}")
    gone = h.wait_for(lambda: not jail_processes(marker), 5)
    h.check(gone, f"the setsid child survived its session: {jail_processes(marker)}")
    h.check(a.alive(), "the agent died\n" + a.log_tail())


def case_session_fork_bomb(ctx):
    """--max-procs 64 bounds every process of a session, not only the programs the agent
    starts: a program on B that forks 600 children gets EAGAIN at 64 at most."""
    a = jail_agent(ctx, args=["--max-procs", "64"])
    if "sessions run without a cgroup" in agent_log(a):
        raise h.Skip("no pids cgroup (v2 or v1) can be made here: --max-procs counts only the "
                     "programs the agent starts")
    start = time.monotonic()
    t = probe(ctx, a, "/jail_probe fork 600")
    words = t.out.split()
    h.check(t.rc == 0 and len(words) == 4 and words[0] == "forked",
            "the fork probe did not report")
    made, error = int(words[1]), int(words[3])
    h.log(f"forked {made} of 600 (errno {error}) in {time.monotonic() - start:.1f} s")
    h.check(made <= 64 and error == 11, f"{made} forks with --max-procs 64 (errno {error})")
    h.check(made >= 32, f"only {made} forks: the limit is far below --max-procs 64")
    # The session's cgroup is removed at its end.
    h.check(h.wait_for(lambda: "cannot remove the session cgroup" not in agent_log(a), 1),
            "the session cgroup was not removed\n" + a.log_tail())
    t = probe(ctx, a, "/jail_probe fork 10")
    h.check(t.out == "forked 10 errno 0\n", "a new session must have its own count")


def register(cases, harness):
    global h
    h = harness
    cases["peer-refused"] = (case_peer_refused, True)
    cases["halfopen-flood"] = (case_halfopen_flood, True)
    cases["preauth-memory"] = (case_preauth_memory, True)
    cases["root-devices"] = (case_root_devices, True)
    cases["root-signals"] = (case_root_signals, True)
    cases["session-survivor"] = (case_session_survivor, True)
    cases["session-fork-bomb"] = (case_session_fork_bomb, True)
