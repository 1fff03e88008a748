"""Integration cases for --record and --replay (issue 19, docs/replay.md): a run against a real
agent is recorded; the agent is stopped (its namespaces, tmpfs and hostname go with it); the
same program replayed gives the same output and exit status with no agent at all, and a changed
program stops with a divergence report. run.py registers them (register()) and passes itself as
`h`."""

import os
import shlex
import stat

h = None   # run.py, set by register()

# sqlite3 and git run here with their files on B (--spawn=here); `uname -n` runs on B (an
# --exec-there rule), spawned by a Python script; /etc/hostname is B's. git's dates are pinned:
# a replay does not turn the clock back (docs/replay.md).
JOB = r"""
set -e
sqlite3 db.sqlite "create table t(a); insert into t values (1),(2),(3); select sum(a) from t;"
git init -q repo
cd repo
echo hello > a.txt
git add a.txt
git -c user.name=x -c user.email=x@example.com commit -q -m first
git log --format='%H %s'
cd ..
python3 -c 'import subprocess, tempfile, os
d = tempfile.mkdtemp(dir=".")
open(os.path.join(d, "x"), "w").write("tmp\n")
print(subprocess.run(["uname", "-n"], capture_output=True, text=True).stdout.strip())
print(sorted(os.listdir(d)))'
cat /etc/hostname
echo "$MARK" > mark.txt
ls
"""

GIT_ENV = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "GIT_CONFIG_NOSYSTEM": "1", "MARK": "one"}


def flags():
    return ["--spawn=here", "--exec-there", "*/uname", "--remote-cwd", h.WORK]


def job_argv(ctx, script):
    # On the command line: a script file would be read from B (an unmatched path), and so be
    # part of the recording itself.
    return ["sh", "-c", script]


def record(ctx, agent, rec, script=JOB, env=None):
    argv = [ctx.sbrun, "--target", agent.url] + flags() + ["--record", rec, "--"] + \
        job_argv(ctx, script)
    return h.run(argv, cwd=ctx.tmp, env={**h.ENV, **GIT_ENV, **(env or {})})


def replay(ctx, rec, script=JOB, env=None, extra=()):
    argv = [ctx.sbrun] + flags() + list(extra) + ["--replay", rec, "--"] + job_argv(ctx, script)
    return h.run(argv, cwd=ctx.tmp, env={**h.ENV, **GIT_ENV, **(env or {})})


def recorded_run(ctx):
    """A recording of JOB against a fresh agent, which is then stopped."""
    h.need_binary(ctx.sbrun, "sbrun")
    for tool in ("sqlite3", "git"):
        h.need_binary(shutil_which(tool), tool)
    agent = ctx.agent(prepare=h.B_ETC_HOSTNAME)
    h.empty_tree(agent)
    rec = os.path.join(ctx.tmp, "run.sbrec")
    r = record(ctx, agent, rec)
    h.log(r.describe())
    h.check(r.rc == 0, "the recorded run failed")
    h.check(h.B_HOSTNAME + "\n" in r.out, "uname -n / /etc/hostname did not come from B")
    h.check("6\n" in r.out and " first\n" in r.out, "sqlite3 or git did not run")
    mode = stat.S_IMODE(os.stat(rec).st_mode)
    h.check(mode == 0o600, f"the recording is mode {oct(mode)}, not 0600")
    # B goes: its processes, its tmpfs and its hostname with it.
    agent.stop()
    h.check(not h.b_processes(agent, include_agent=True), "the agent left processes behind")
    return rec, r


def shutil_which(tool):
    import shutil
    return shutil.which(tool)


def case_record_replay(ctx):
    rec, first = recorded_run(ctx)
    again = replay(ctx, rec)
    h.log(again.describe())
    h.check(again.rc == first.rc, f"exit status {again.rc}, recorded run {first.rc}")
    h.check(again.out == first.out,
            f"the replay printed other output\nrecorded:\n{first.out}\nreplayed:\n{again.out}")
    h.check("diverged" not in again.err and "other data" not in again.err,
            "the replay reported a difference")
    # No agent anywhere: the recorded target was a unix socket that no longer exists.
    h.check("cannot connect" not in again.err, "the replay tried to reach an agent")


def case_replay_diverge(ctx):
    rec, first = recorded_run(ctx)
    # Another file read on B: the program asks what the recording does not have.
    changed = JOB.replace("cat /etc/hostname", "cat /etc/os-release")
    r = replay(ctx, rec, script=changed)
    h.log(r.describe())
    h.check(r.rc == 125, f"a diverging replay exited {r.rc}, not 125")
    h.check("diverged from the recording" in r.err and "the program asked" in r.err and
            "the recording has next" in r.err, "no divergence report")
    h.check("os-release" in r.err, "the report does not show what was asked")
    h.check("thread " in r.err and "openat" in r.err,
            "the report does not say which thread and call")
    # Other data written: reported, the run goes on with the program's own status.
    r = replay(ctx, rec, env={"MARK": "two"})
    h.log(r.describe())
    h.check(r.rc == 0 and r.out == first.out, "a replay with other written data did not finish")
    h.check("passed other data than the recording" in r.err and "write" in r.err,
            "written data that differs was not reported")
    # Fewer calls than recorded: the program stopped early.
    shorter = JOB.split("cat /etc/hostname")[0]
    r = replay(ctx, rec, script=shorter)
    h.log(r.describe())
    h.check(r.rc == 125 and "not made" in r.err,
            f"recorded calls left unmade were not reported (exit {r.rc})")


def case_replay_bad_input(ctx):
    h.need_binary(ctx.sbrun, "sbrun")
    missing = os.path.join(ctx.tmp, "missing.sbrec")
    r = h.run([ctx.sbrun, "--replay", missing, "--", "true"])
    h.check(r.rc == 125 and "--replay" in r.err and "No such file" in r.err,
            f"a missing recording: exit {r.rc}\n{r.err}")
    r = h.run([ctx.sbrun, "--replay", "/etc/passwd", "--", "true"])
    h.check(r.rc == 125 and "not a recording" in r.err, f"not a recording: exit {r.rc}\n{r.err}")
    empty = os.path.join(ctx.tmp, "empty.sbrec")
    open(empty, "w").close()
    r = h.run([ctx.sbrun, "--replay", empty, "--", "true"])
    h.check(r.rc == 125 and "empty" in r.err, f"an empty recording: exit {r.rc}\n{r.err}")
    r = h.run([ctx.sbrun, "--record", missing, "--replay", missing, "--", "true"])
    h.check(r.rc == 125 and "give one of them" in r.err, f"--record with --replay: {r.err}")
    r = h.run([ctx.sbrun, "--target", "local", "--replay", missing, "--", "true"])
    h.check(r.rc == 125 and "give no --target" in r.err, f"--replay with --target: {r.err}")
    r = h.run([ctx.sbrun, "--record", "/nonexistent-dir/x.sbrec", "--", "true"])
    h.check(r.rc == 125 and "--record" in r.err, f"an unwritable recording: {r.err}")


def register(cases, harness):
    global h
    h = harness
    cases["record-replay"] = (case_record_replay, True)
    cases["replay-diverge"] = (case_replay_diverge, True)
    cases["replay-bad-input"] = (case_replay_bad_input, False)
