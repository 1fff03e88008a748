"""Integration cases for issue 15: where a program runs. The program sbrun launches keeps
running on A, traced, through its own exec chain (env shebangs, shell-script shims,
`sh -c 'exec ./prog'`); a program a child execs inside a remote scope runs on B; --spawn and
--exec-here/--exec-there choose otherwise; --trace and -v say where each one went.

How a case tells A from B: a process's own /proc/self/ns/mnt (always read here, /proc/self is
a local rule) names A's mount namespace when the process runs on A and B's (the agent's) when
it runs there; /proc/self/status's TracerPid is sbrun's pid on A and 0 on B. What it sees of
the world comes from B all the same: uname's node name is board-b and WORK/hello.txt exists
only on B's tmpfs.

run.py registers them (register()); they use its helpers through the module `h` it passes."""

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time

h = None   # run.py, set by register()

# Prints where it runs and what it sees, one `key=value` a line.
PROBE = r"""
import os, sys
status = open("/proc/self/status").read()
tracer = [l.split()[1] for l in status.splitlines() if l.startswith("TracerPid:")][0]
print("tracer=" + tracer)
print("mntns=" + os.readlink("/proc/self/ns/mnt"))
print("node=" + os.uname().nodename)
try:
    print("hello=" + open(sys.argv[1]).read().strip())
except OSError as e:
    print("hello=" + type(e).__name__)
"""

CHILD = r"""
import subprocess
r = subprocess.run(["uname", "-n"], capture_output=True)
print("child-node=" + r.stdout.decode().strip())
r = subprocess.run(["readlink", "/proc/self/ns/mnt"], capture_output=True)
print("child-mntns=" + r.stdout.decode().strip())
"""


def write(path, text, mode=0o755):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def parse(out):
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def scripts(ctx):
    """The programs on A (in ctx.tmp, which B's mount namespace sees too, as /tmp is shared):
    an env-shebang probe, a direct-shebang probe, a shim directory with a shell-script
    `python3` that execs the real one, and a probe of what a child process sees."""
    d = os.path.join(ctx.tmp, "progs")
    os.makedirs(os.path.join(d, "shim"), exist_ok=True)
    write(os.path.join(d, "probe-env.py"), "#!/usr/bin/env python3\n" + PROBE)
    write(os.path.join(d, "prog"), f"#!{h.SYS_PYTHON}\n" + PROBE)
    write(os.path.join(d, "shim", "python3"), f'#!/bin/sh\nexec {h.SYS_PYTHON} "$@"\n')
    write(os.path.join(d, "child.py"), "#!/usr/bin/env python3\n" + CHILD)
    return d


def traced(ctx, agent, argv, extra=(), path=None, cwd=None):
    env = dict(h.ENV)
    if path:
        env["PATH"] = path + ":" + env["PATH"]
    # The remote cwd is the same directory as here (it exists on B too).
    t = h.run(ctx.sbrun_argv(agent, argv, cwd=None, extra=extra), env=env, cwd=cwd or ctx.tmp,
              timeout=25)
    h.log(t.describe())
    h.check(agent.alive(), "the agent died\n" + agent.log_tail())
    return t


def check_here(t, who, a_ns):
    got = parse(t.out)
    h.check(t.rc == 0, f"{who}: exit {t.rc}")
    h.check(got.get("mntns") == a_ns,
            f"{who}: did not run on A (its mount namespace is {got.get('mntns')}, A's {a_ns})")
    h.check(got.get("tracer", "0") != "0", f"{who}: runs on A untraced (TracerPid 0)")
    h.check(got.get("node") == h.B_HOSTNAME, f"{who}: uname says {got.get('node')!r}, not B's")
    h.check(got.get("hello") == "hello from board-b",
            f"{who}: B's {h.WORK}/hello.txt read as {got.get('hello')!r}")


def check_there(t, who, agent):
    got = parse(t.out)
    h.check(t.rc == 0, f"{who}: exit {t.rc}")
    h.check(got.get("mntns") == agent.mntns,
            f"{who}: did not run on B (its mount namespace is {got.get('mntns')}, "
            f"B's {agent.mntns})")
    h.check(got.get("tracer") == "0", f"{who}: runs on B but is traced?")
    h.check(got.get("node") == h.B_HOSTNAME, f"{who}: uname says {got.get('node')!r}")


def start(ctx):
    h.need_binary(ctx.sbrun, "sbrun")
    agent = ctx.agent()
    h.make_tree(agent)
    a_ns = os.readlink("/proc/self/ns/mnt")
    h.check(a_ns != agent.mntns, "the agent shares A's mount namespace")
    return agent, a_ns, scripts(ctx)


def case_exec_chain_here(ctx):
    """An env-shebang script, a script run through a shell-script `python3` shim on PATH, and
    `sh -c 'exec ./prog'` (also after the shell forked a child) each end in a process traced on
    A that sees B's name and files; -v
    says each exec stayed here. A child's `subprocess.run` in the same program still runs on B,
    and --trace prints its start with B's pid."""
    agent, a_ns, d = start(ctx)
    hello = h.WORK + "/hello.txt"
    t = traced(ctx, agent, ["./probe-env.py", hello], extra=["-v"], cwd=d)
    check_here(t, "env shebang", a_ns)
    h.check(re.search(r"exec of /usr/bin/python3 by pid \d+ stays here \(the program's own "
                      r"exec chain\)", t.err), "-v did not say that python3 stayed here")
    t = traced(ctx, agent, ["./probe-env.py", hello], path=os.path.join(d, "shim"), cwd=d)
    check_here(t, "env shebang through a shim", a_ns)
    t = traced(ctx, agent, ["sh", "-c", f"exec ./prog {hello}"], cwd=d)
    check_here(t, "sh -c 'exec ./prog'", a_ns)
    # The shell forks a child (uname, on B) and then execs: the parent still heads the chain.
    t = traced(ctx, agent, ["sh", "-c", f"uname -n; exec ./prog {hello}"], cwd=d)
    check_here(t, "sh -c 'uname -n; exec ./prog' (an exec after a fork, in the parent)", a_ns)
    h.check(t.out.splitlines()[0] == h.B_HOSTNAME, "the forked uname did not answer B's name")

    t = traced(ctx, agent, ["./child.py"], extra=["--trace"], cwd=d)
    got = parse(t.out)
    h.check(t.rc == 0 and got.get("child-node") == h.B_HOSTNAME,
            f"subprocess.run(['uname', '-n']) did not answer B's name: {got}")
    h.check(got.get("child-mntns") == agent.mntns,
            f"a child's program did not run on B: {got.get('child-mntns')} (B: {agent.mntns})")
    starts = re.findall(r'^\[pid \d+\] started on target1: \["uname", "-n"\] = pid (\d+) '
                        r'<target1 \d+us> \(a child process in a remote scope\)$', t.err, re.M)
    h.check(len(starts) == 1 and int(starts[0]) > 0,
            f"--trace: expected one line for the start of uname on B, found {starts}")
    h.check(len(re.findall(r"started on target1", t.err)) == 2,
            "--trace: expected two remote starts (uname, readlink)")


def case_exec_spawn_flags(ctx):
    """--spawn=there sends the exec chain to B again (the old behaviour); --exec-there pins
    python3 to B and --exec-here pins it to A whatever --spawn says; --spawn=here keeps a
    child's program on A; a program only B has runs there even in the exec chain; and
    --print-rules shows the exec rules and the policy."""
    agent, a_ns, d = start(ctx)
    hello = h.WORK + "/hello.txt"
    t = traced(ctx, agent, ["sh", "-c", f"exec ./prog {hello}"], extra=["--spawn=there"], cwd=d)
    check_there(t, "--spawn=there", agent)
    t = traced(ctx, agent, ["./probe-env.py", hello], extra=["--exec-there", "python3*"], cwd=d)
    check_there(t, "--exec-there python3*", agent)
    t = traced(ctx, agent, ["sh", "-c", f"exec ./prog {hello}"],
               extra=["--spawn=there", "--exec-here", d + "/*"], cwd=d)
    check_here(t, "--spawn=there --exec-here DIR/*", a_ns)
    t = traced(ctx, agent, ["./child.py"], extra=["--spawn=here"], cwd=d)
    got = parse(t.out)
    h.check(got.get("child-mntns") == a_ns and got.get("child-node") == h.B_HOSTNAME,
            f"--spawn=here: a child's program did not run on A: {got}")

    # Only B has it: the exec chain cannot run it here.
    agent.sh(f"cp {shlex.quote(d)}/prog {h.WORK}/bonly && chmod 755 {h.WORK}/bonly")
    t = h.run(ctx.sbrun_argv(agent, ["sh", "-c", f"exec ./bonly {hello}"], extra=["-v"]),
              cwd=ctx.tmp, timeout=25)
    h.log(t.describe())
    check_there(t, "a program only B has", agent)
    h.check("this machine has no such file" in t.err, "-v did not say why bonly ran on B")

    t = h.run([ctx.sbrun, "--exec-there", "make", "--exec-here", "/opt/*/bin/*",
               "--spawn=there", "--print-rules"], timeout=25)
    h.log(t.describe())
    lines = t.out.splitlines()
    rules = [l.split()[:2] for l in lines if l.startswith("exec-")]
    h.check(rules == [["exec-there", "make"], ["exec-here", "/opt/*/bin/*"]],
            f"--print-rules: exec rules {rules}")
    h.check(any("--spawn=there" in l for l in lines), "--print-rules does not show --spawn")
    t = h.run([ctx.sbrun, "--print-rules"], timeout=25)
    h.check(any("--spawn=chain" in l for l in t.out.splitlines()),
            "--print-rules does not show the default --spawn=chain")
    t = h.run([ctx.sbrun, "--spawn=remote", "--", "true"], timeout=25)
    h.check(t.rc == 125 and "--spawn takes" in t.err, f"a bad --spawn: {t.rc} {t.err!r}")


def in_script(ctx, agent, inner, chunks=(), timeout=25):
    """Runs `sh -c inner` under util-linux `script`, which gives it a terminal here. For each
    (marker, data) of `chunks`, waits for `marker` in the output, then types `data` (or calls
    it with the output so far, when it is a function). Returns the
    output with carriage returns removed. stdin stays open until the end, as a user's terminal
    does."""
    if shutil.which("script") is None:
        raise h.Skip("script (util-linux) is not installed")
    p = subprocess.Popen(["script", "-qc", inner, "/dev/null"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=h.ENV,
                         cwd=ctx.tmp, start_new_session=True)
    out = b""
    pending = list(chunks)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise h.Failure(f"script -qc {inner!r}: no end within {timeout} s; output so far:"
                                f"\n{out.decode(errors='replace')}")
            ready, _, _ = select.select([p.stdout], [], [], left)
            if not ready:
                continue
            data = os.read(p.stdout.fileno(), 4096)
            if not data:
                break
            out += data
            while pending and pending[0][0].encode() in out:
                action = pending.pop(0)[1]
                if callable(action):
                    action(out.decode(errors="replace"))
                else:
                    p.stdin.write(action.encode())
                    p.stdin.flush()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        p.stdin.close()
        p.stdout.close()
    text = out.decode(errors="replace").replace("\r", "")
    h.log(f"$ script -qc {inner!r}\n{text}")
    return text


def case_exec_pty(ctx):
    """A program started on B whose stdin is a terminal here gets a pseudo-terminal there, with
    the window size of the one here: `tty` prints a /dev/pts path and `stty size` the size set
    here, while `tty` with stdin from a pipe or /dev/null stays "not a tty"; afterwards the
    terminal here has its modes back. ^C typed here interrupts the program on B (exit 130); a
    window size change here reaches it as SIGWINCH with the new size."""
    h.need_binary(ctx.sbrun, "sbrun")
    agent = ctx.agent()
    sbrun = shlex.join(ctx.sbrun_argv(agent, ["sh", "-c",
        "tty; stty size; readlink /proc/self/ns/mnt; echo x | tty; tty </dev/null; "
        "echo modes-after; exec stty -g"], cwd=None))
    text = in_script(ctx, agent, f"stty rows 33 cols 101; echo modes-before; stty -g; {sbrun}")
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    h.check(any(re.fullmatch(r"/dev/pts/\d+", l) for l in lines),
            "tty on B did not print a /dev/pts path")
    h.check("33 101" in lines, "stty size on B did not show the window size set here")
    h.check(agent.mntns in lines, "the programs did not run on B")
    h.check(lines.count("not a tty") == 2, "tty with stdin from a pipe or /dev/null: expected "
            "'not a tty' twice")
    before = lines[lines.index("modes-before") + 1]
    after = lines[lines.index("modes-after") + 1]
    h.check(before == after, f"the terminal's modes here changed: {before} -> {after}")

    sbrun = shlex.join(ctx.sbrun_argv(agent, ["sh", "-c",
        "sh -c 'echo sleeping-on-b; exec sleep 60'; echo rc=$?"], cwd=None))
    text = in_script(ctx, agent, sbrun, chunks=[("sleeping-on-b\r", "\x03")])
    h.check(re.search(r"rc=130$", text, re.M),  # after B's echo of ^C
            "^C typed here did not end the program on B as SIGINT (rc=130)")

    # The window here changes (stty -F on script's terminal, which signals SIGWINCH to its
    # foreground job, the stub): B's terminal follows, and B's kernel signals the program.
    def resize(out):
        here = re.search(r"^here=(/dev/pts/\d+)", out.replace("\r", ""), re.M).group(1)
        r = h.run(["stty", "-F", here, "rows", "40", "cols", "90"], timeout=10)
        h.check(r.rc == 0, f"stty -F {here}: {r.err}")
    sbrun = shlex.join(ctx.sbrun_argv(agent, ["sh", "-c",
        "sh -c 'trap \"stty size; exit 0\" WINCH; echo winch-ready; sleep 60 & wait'"],
        cwd=None))
    text = in_script(ctx, agent, f"stty rows 33 cols 101; echo here=$(tty); {sbrun}",
                     chunks=[("winch-ready\r", resize)])
    h.check(re.search(r"^40 90$", text, re.M),
            "a window size change here did not reach the program on B")


def register(cases, harness):
    global h
    h = harness
    cases["exec-chain-here"] = (case_exec_chain_here, True)
    cases["exec-spawn-flags"] = (case_exec_spawn_flags, True)
    cases["exec-pty"] = (case_exec_pty, True)
