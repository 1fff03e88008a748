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


def launched(ctx, agent, target, mode, extra=()):
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", h.WORK,
            "--gdb=127.0.0.1:0"] + list(extra) + [
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
    """A hardware watchpoint (debug registers): gdb stops where the program writes 42 into the
    watched variable and shows old and new values."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "plain")
    r = gdb_batch(gdb, target, sb.address(), [
        f"break gdb_target.c:{line_of('second')}", "continue", "watch watched", "continue",
        "print second", "delete", "continue"])
    expect(r, r"Hardware watchpoint 2: watched", r"Old value = 1", r"New value = 42",
           rf'\$1 = "{SECOND_TEXT}\\n', r"exited with code 07")
    h.check(sb.finish() == 7, f"sbrun must exit 7\n{sb.describe()}")


def case_gdb_kill(ctx):
    """`kill` at a breakpoint: the program dies (SIGKILL) and sbrun says so in its status."""
    gdb, target, agent = setup(ctx)
    sb = launched(ctx, agent, target, "plain")
    r = gdb_batch(gdb, target, sb.address(), [
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
    cases["gdb-flag"] = (case_gdb_flag, False)
