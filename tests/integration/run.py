#!/usr/bin/env python3
"""Integration tests: a real sbrun on this machine (A) against a real sbagent (B).

Each case starts its own agent in fresh UTS and mount namespaces: hostname `board-b`, and a
tmpfs mounted on /srv/sb-b that only the agent's namespace can see (on A the directory stays
empty). A file that a traced program finds under /srv/sb-b therefore came from B.

Differential cases run the same command twice against identical fresh trees on B: natively
inside the agent's namespaces (nsenter) and under sbrun on A. They compare standard output,
exit status and the tree left behind (a manifest of relative paths, types, modes, owners, link
counts, sizes, link targets, content hashes and user xattrs).

Both runs use the same absolute path (/srv/sb-b/work): the native run goes first, its manifest
is taken, the tree is removed and rebuilt, then the traced run goes. So commands that print
absolute paths (readlink -f, realpath, python's getcwd) compare without any rewriting.

Exit status: 0 passed, 1 failed, 77 skipped (namespaces or ptrace unavailable, with the reason
printed), 2 usage error. Python 3 standard library only.

    run.py --list
    run.py --case cat --sbrun build/tracer/sbrun --sbagent build/agent/sbagent \\
           --conformance-dir build/tests/conformance --helpers-dir build/tests/integration
    run.py --case cat --native-only ...   # only the native half: checks the harness itself
"""

import argparse
import ctypes
import difflib
import glob
import hashlib
import json
import re
import os
import socket
import select
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
B_ROOT = "/srv/sb-b"              # tmpfs mount point, visible only in the agent's namespace
WORK = B_ROOT + "/work"           # the tree each differential command runs in
B_HOSTNAME = "board-b"
SYS_PYTHON = "/usr/bin/python3"   # Debian's, present on both sides
FIXED_TIME = 1700000000           # every fixture entry gets this mtime/atime
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "TZ": "UTC",
    "HOME": "/nonexistent-home",  # missing on both sides: no rc files change the behaviour
}
CMD_TIMEOUT = 120
# Gives B its own /etc/hostname (otherwise A's file: B's mount namespace starts as a copy of A's).
B_ETC_HOSTNAME = (f"echo {B_HOSTNAME} > {B_ROOT}/.etc-hostname && "
                  f"mount --bind {B_ROOT}/.etc-hostname /etc/hostname")


# B's network (Agent(net=True)): a namespace of its own whose loopback also holds B_ADDR, an
# address A does not have, and whose /etc/hosts (bind-mounted in B's mount namespace) names it
# B_NAME, a name A cannot resolve.
B_ADDR = "10.77.0.1"
B_NAME = "board-b.sbtest.invalid"
B_NET_SETUP = (f"ip link set lo up && ip addr add {B_ADDR}/32 dev lo && "
               f"{{ cat /etc/hosts; echo '{B_ADDR} {B_NAME}'; }} > {B_ROOT}/.etc-hosts && "
               f"mount --bind {B_ROOT}/.etc-hosts /etc/hosts")


class Skip(Exception):
    pass


class Failure(Exception):
    pass


def log(*args):
    print(*args, flush=True)


def check(cond, what):
    if not cond:
        raise Failure(what)


# ---------------------------------------------------------------------------------------------
# Environment probes

def probe_namespaces():
    """Raises Skip when this machine cannot give the agent its own UTS and mount namespaces."""
    if os.geteuid() != 0:
        raise Skip("needs root: the agent's namespaces use mount(2), sethostname(2) and nsenter")
    for tool in ("unshare", "nsenter", "setpriv", "mount"):
        if shutil.which(tool) is None:
            raise Skip(f"{tool} (util-linux) is not installed")
    r = subprocess.run(["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
                        "hostname sb-probe && mount -t tmpfs sbprobe /mnt 2>/dev/null || "
                        "mount -t tmpfs sbprobe /tmp"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise Skip("cannot create UTS+mount namespaces with a tmpfs (unshare: "
                   f"{r.stderr.strip() or r.returncode})")


def probe_ptrace():
    """Raises Skip when ptrace is forbidden here (a container's seccomp policy, Yama scope 3)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() == "3":
                raise Skip("ptrace is disabled (kernel.yama.ptrace_scope = 3)")
    except FileNotFoundError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        PTRACE_SEIZE = 0x4206
        if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
            e = ctypes.get_errno()
            raise Skip(f"ptrace(PTRACE_SEIZE) is forbidden here: {os.strerror(e)}")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# ---------------------------------------------------------------------------------------------
# Code run on B (inside the agent's namespaces) with Debian's python3.

FIXTURE_CODE = r"""
import os, sys
root = sys.argv[1]
T = int(sys.argv[2])
os.makedirs(root)
def w(rel, data, mode=0o644):
    p = os.path.join(root, rel)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
w("hello.txt", b"hello from board-b\n")
w("data.bin", bytes((i * 7 + i // 251) % 256 for i in range(100000)))
w("exec.sh", b"#!/bin/sh\necho run\n", 0o755)
w("ro.txt", b"read only\n", 0o444)
os.mkdir(os.path.join(root, "sub"))
w("sub/a.txt", b"a\n")
w("sub/b.txt", b"bb\n")
os.mkdir(os.path.join(root, "sub/deep"))
w("sub/deep/c.txt", b"ccc\n")
os.link(os.path.join(root, "sub/a.txt"), os.path.join(root, "sub/hl"))
os.mkdir(os.path.join(root, "empty"))
os.symlink("hello.txt", os.path.join(root, "link"))
os.symlink("nowhere", os.path.join(root, "dangling"))
os.symlink("sub/deep", os.path.join(root, "dirlink"))
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for n in filenames + dirnames:
        os.utime(os.path.join(dirpath, n), (T, T), follow_symlinks=False)
    os.utime(dirpath, (T, T))
os.utime(os.path.dirname(root), (T, T))
"""

MANIFEST_CODE = r"""
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = []
def entry(path):
    st = os.lstat(path)
    rel = os.path.relpath(path, root)
    e = {"path": rel, "type": stat.filemode(st.st_mode)[0], "perm": oct(stat.S_IMODE(st.st_mode)),
         "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns}
    if not stat.S_ISDIR(st.st_mode):
        e["nlink"] = st.st_nlink
    if stat.S_ISREG(st.st_mode):
        e["size"] = st.st_size
        with open(path, "rb") as f:
            e["sha256"] = hashlib.sha256(f.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        e["target"] = os.readlink(path)
    try:
        names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
        if names:
            e["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False).hex() for n in names}
    except OSError:
        pass
    out.append(e)
if os.path.lexists(root):
    entry(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # walk order must not depend on directory listing order
        for n in sorted(dirnames + filenames):
            entry(os.path.join(dirpath, n))
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------------------------
# The agent on B

class Agent:
    """A real sbagent in its own UTS and mount namespaces, listening on a unix socket on A."""

    def __init__(self, ctx, hostname=B_HOSTNAME, root=None, as_nobody=False, prepare="",
                 args=(), net=False, listen=None, wrap=(), binary=None):
        self.ctx = ctx
        # binary: another sbagent than ctx.sbagent (tests/boards: a native agent beside the
        # emulated board agents, which run under `wrap`, e.g. qemu-aarch64).
        self.binary = binary
        # listen: another --listen address than the unix socket (e.g. tcp://127.0.0.1:0; the
        # agent then shares A's network unless net). wrap: a command the agent runs under
        # (e.g. no_landlock).
        self.listen = listen
        self.listen_url = None
        self.wrap = list(wrap)
        # net: B gets a network namespace of its own (unshare --net), with only its loopback,
        # up, holding 127.0.0.1, ::1 and B_ADDR, which A does not have (see B_NET_SETUP).
        self.net = net
        self.args = list(args)    # more sbagent options
        self.hostname = hostname
        self.root = root
        self.as_nobody = as_nobody
        self.prepare = prepare    # shell run on B (as root) after the tmpfs is mounted
        self.proc = None
        self.mntns = None         # B's mount namespace (/proc/PID/ns/mnt), once started
        sockdir = os.path.join(ctx.tmp, "sock")
        os.makedirs(sockdir, exist_ok=True)
        if as_nobody:
            os.chmod(ctx.tmp, 0o755)
            os.chown(sockdir, 65534, 65534)
        # One socket and log per agent: a case may run two (two machines B and C).
        tag = "" if hostname == B_HOSTNAME else "-" + hostname
        self.sock = os.path.join(sockdir, f"agent{tag}.sock")
        self.logpath = os.path.join(ctx.tmp, f"agent{tag}.log")

    def start(self):
        os.makedirs(B_ROOT, exist_ok=True)   # the empty mount point on A
        argv = self.wrap + [self.binary or self.ctx.sbagent, "--listen",
                            self.listen or "unix:" + self.sock]
        if self.root:
            argv += ["--root", self.root]
        argv += self.args
        rfd, wfd = os.pipe()
        argv += ["--ready-fd", str(wfd)]
        if self.as_nobody:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv
        script = (f"mount -t tmpfs -o mode=0755 sbtest {B_ROOT} && hostname {self.hostname} && "
                  f"{B_NET_SETUP + ' && ' if self.net else ''}"
                  f"{self.prepare or 'true'} && exec {shlex.join(argv)}")
        log(f"[agent] {script}")
        logf = open(self.logpath, "wb")
        spaces = ["--uts", "--mount"] + (["--net"] if self.net else [])
        self.proc = subprocess.Popen(
            ["unshare"] + spaces + ["--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            pass_fds=(wfd,), start_new_session=True, env=ENV)
        os.close(wfd)
        logf.close()
        self._await_ready(rfd)
        self.mntns = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
        # Held open until teardown, so that B's namespace (and its inode number, by which
        # b_processes recognises B's processes) cannot be freed and reused by another case's
        # agent running in parallel; and so that restart() can start a new agent in it.
        self.mntns_fd = os.open(f"/proc/{self.proc.pid}/ns/mnt", os.O_RDONLY)
        self.utsns_fd = os.open(f"/proc/{self.proc.pid}/ns/uts", os.O_RDONLY)
        return self

    def _await_ready(self, rfd):
        line = b""
        deadline = time.monotonic() + 20
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"agent did not report ready within 20 s\n{self.log_tail()}")
                ready, _, _ = select.select([rfd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(rfd, 256)
                if not chunk:
                    raise Failure("agent exited or closed its --ready-fd without a ready line "
                                  f"(status {self.proc.poll()})\n{self.log_tail()}")
                line += chunk
        finally:
            os.close(rfd)
        text = line.decode(errors="replace").strip()
        log(f"[agent] pid {self.proc.pid}: {text}")
        check(text.startswith("ready "), f"bad ready line {text!r} (expected 'ready ADDRESS')")
        if self.listen:
            self.listen_url = text.split()[1]
            return
        check(os.path.exists(self.sock), f"agent said ready but {self.sock} does not exist")

    def restart(self):
        """Machine B back after a reboot, as sbrun sees it: a new sbagent on the same socket, in
        B's same mount and UTS namespaces (the files on B's tmpfs are still there). The old
        agent must be gone (kill() it first); it is reaped here."""
        if self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                raise Failure("restart: the old agent is still running 10 s after its kill")
        argv = self.wrap + [self.binary or self.ctx.sbagent, "--listen",
                            self.listen or "unix:" + self.sock]
        if self.root:
            argv += ["--root", self.root]
        argv += self.args
        rfd, wfd = os.pipe()
        argv += ["--ready-fd", str(wfd)]
        if self.as_nobody:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv
        argv = ["nsenter", f"--mount=/proc/self/fd/{self.mntns_fd}",
                f"--uts=/proc/self/fd/{self.utsns_fd}", "--"] + argv
        with open(self.logpath, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT,
                                         pass_fds=(wfd, self.mntns_fd, self.utsns_fd),
                                         start_new_session=True, env=ENV)
        os.close(wfd)
        self._await_ready(rfd)
        check(os.readlink(f"/proc/{self.proc.pid}/ns/mnt") == self.mntns,
              "the restarted agent is not in B's mount namespace")
        return self

    @property
    def url(self):
        return self.listen_url if self.listen else "unix:" + self.sock

    def log_tail(self):
        try:
            with open(self.logpath, "rb") as f:
                data = f.read()[-4000:].decode(errors="replace")
            return "--- agent log ---\n" + data + "--- end of agent log ---"
        except OSError:
            return "(no agent log)"

    def nsenter(self, argv, user=None, **kw):
        """Runs argv on B: inside the agent's mount and UTS namespaces."""
        if user == "nobody":
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv
        spaces = ["-m", "-u"] + (["-n"] if self.net else [])
        return run(["nsenter", "-t", str(self.proc.pid)] + spaces + ["--"] + argv, **kw)

    def spawn(self, argv):
        """Starts argv on B (its namespaces) in the background; stopped at teardown."""
        spaces = ["-m", "-u"] + (["-n"] if self.net else [])
        p = subprocess.Popen(["nsenter", "-t", str(self.proc.pid)] + spaces + ["--"] + argv,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True, env=ENV)
        self.ctx.cleanups.append(lambda: (p.kill(), p.wait()))
        return p

    def sh(self, script, **kw):
        return self.nsenter(["sh", "-c", script], **kw)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        # (No killpg once the agent is reaped: its process group id may be another process's now.)
        # Whatever still runs on B (a process the agent spawned in another process group and
        # failed to kill, a native run's leftovers): B's mount namespace is this case's own.
        for p in b_processes(self, include_agent=True):
            try:
                os.kill(p["pid"], signal.SIGKILL)
                log(f"[teardown] killed a process left on B: {p['pid']} {p['argv']}")
            except ProcessLookupError:
                pass
        for attr in ("mntns_fd", "utsns_fd"):
            if getattr(self, attr, None) is not None:
                os.close(getattr(self, attr))
                setattr(self, attr, None)


class Result:
    def __init__(self, argv, rc, out, err, secs):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs

    def describe(self):
        return (f"$ {shlex.join(self.argv)}\nexit {self.rc} after {self.secs:.2f} s\n"
                f"--- stdout ---\n{self.out}--- stderr ---\n{self.err}--- end ---")


def run(argv, input=None, timeout=CMD_TIMEOUT, env=None, cwd=None):
    """Runs argv to completion in its own session; on timeout kills the whole group."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or ENV, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(input.encode() if isinstance(input, str) else input,
                                 timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        r = Result(argv, None, out.decode(errors="replace"), err.decode(errors="replace"),
                   time.monotonic() - start)
        raise Failure(f"timed out after {timeout} s (hang?)\n{r.describe()}")
    return Result(argv, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                  time.monotonic() - start)


# ---------------------------------------------------------------------------------------------
# Processes on B. The agent's namespaces share the PID namespace with A, so A's /proc shows B's
# processes: they are the ones in the agent's mount namespace.

def proc_table():
    """pid -> {pid, ppid, state, argv, mntns} for every process visible now (mntns None when it
    cannot be read, e.g. for a zombie)."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            rest = stat[stat.rindex(")") + 2:].split()   # comm may hold spaces and parentheses
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        except (FileNotFoundError, ProcessLookupError):
            continue
        try:
            ns = os.readlink(f"/proc/{d}/ns/mnt")
        except OSError:
            ns = None
        table[int(d)] = {"pid": int(d), "ppid": int(rest[1]), "state": rest[0], "argv": argv,
                         "mntns": ns}
    return table


def b_processes(agent, include_agent=False, table=None):
    """The processes running on B (in the agent's mount namespace), the agent itself left out."""
    if agent.proc is None or agent.mntns is None:
        return []
    table = table if table is not None else proc_table()
    return [p for p in table.values() if p["mntns"] == agent.mntns
            and (include_agent or p["pid"] != agent.proc.pid)]


def descends_from(table, pid, ancestor):
    seen = set()
    while pid in table and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = table[pid]["ppid"]
    return pid == ancestor


def b_running(agent, argv, table=None):
    """The processes on B whose command line is argv."""
    return [p for p in b_processes(agent, table=table) if p["argv"] == argv]


def check_runs_on_b(agent, argv, who):
    """Exactly one process with argv runs on B (within 5 s: it may still be starting). During a
    traced run only the agent starts processes in B's mount namespace."""
    found = wait_for(lambda: b_running(agent, argv), 5)
    check(len(found) == 1, f"{who}: expected one `{shlex.join(argv)}` running on B, found {found}")
    log(f"[{who}] on B: {found}, the agent's descendant: "
        f"{descends_from(proc_table(), found[0]['pid'], agent.proc.pid)}")


def agent_state(agent):
    """What the agent holds: its open fds (targets, inode numbers left out), its children and the
    processes running on B. Compared before and after sessions."""
    pid = agent.proc.pid
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        fds.append(re.sub(r"\[\d+\]$", "[N]", target))   # socket:[123] -> socket:[N]
    table = proc_table()
    children = sorted(f"{p['state']} {shlex.join(p['argv']) or '(zombie)'}"
                      for p in table.values() if p["ppid"] == pid)
    on_b = sorted(f"{p['state']} {shlex.join(p['argv']) or '(zombie)'}"
                  for p in b_processes(agent, table=table))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return {"fds": sorted(fds), "children": children, "on_b": on_b, "threads": threads}


def state_diff(before, after):
    lines = []
    for key in ("fds", "children", "on_b"):
        if before[key] != after[key]:
            lines.append(f"{key}:\n" + diff(before[key], after[key], "before", "after"))
    return "\n".join(lines)


def wait_for(pred, secs, step=0.1):
    """Polls pred() until it returns something true or secs pass; returns its last value."""
    deadline = time.monotonic() + secs
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def converse(argv, on_sync, timeout=CMD_TIMEOUT, cwd=None):
    """Runs argv, answering each stdout line 'SYNC TAG' by calling on_sync(TAG) and then writing
    'go' to its stdin. Returns a Result whose out holds the other lines."""
    start = time.monotonic()
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                         env=ENV, cwd=cwd, start_new_session=True)
    out, buf, rc = [], b"", None
    try:
        while True:
            left = start + timeout - time.monotonic()
            if left <= 0:
                raise Failure(f"timed out after {timeout} s (hang?)\n$ {shlex.join(argv)}\n"
                              "--- stdout so far ---\n" + "\n".join(out))
            ready, _, _ = select.select([p.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                if line.startswith("SYNC "):
                    log(f"[sync] {line[5:]}")
                    on_sync(line[5:])
                    p.stdin.write(b"go\n")
                    p.stdin.flush()
                else:
                    out.append(line)
        if buf:
            out.append(buf.decode(errors="replace"))
        try:
            rc = p.wait(max(1, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Failure(f"closed its stdout but did not exit within {timeout} s\n"
                          f"$ {shlex.join(argv)}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        errf.close()
    return Result(argv, rc, "".join(l + "\n" for l in out), err, time.monotonic() - start)


# ---------------------------------------------------------------------------------------------
# Per-case context

class Ctx:
    def __init__(self, args):
        self.args = args
        self.sbrun = os.path.abspath(args.sbrun) if args.sbrun else None
        self.sbagent = os.path.abspath(args.sbagent) if args.sbagent else None
        self.conformance_dir = args.conformance_dir
        self.helpers_dir = args.helpers_dir
        self.native_only = args.native_only
        self.tmp = tempfile.mkdtemp(prefix="sb-int-")
        os.chmod(self.tmp, 0o755)
        self.agents = []
        self.cleanups = []

    def agent(self, **kw):
        a = Agent(self, **kw)
        self.agents.append(a)
        return a.start()

    def close(self):
        for a in self.agents:
            try:
                a.stop()
            except Exception as e:   # keep tearing down
                log(f"[teardown] stopping agent: {e}")
        for fn in self.cleanups:
            try:
                fn()
            except Exception as e:
                log(f"[teardown] {e}")
        if self.args.keep:
            log(f"[teardown] kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def sbrun_argv(self, agent, argv, cwd=WORK, extra=()):
        a = [self.sbrun, "--target", agent.url]
        if cwd:
            a += ["--remote-cwd", cwd]
        return a + list(extra) + ["--"] + list(argv)

    def traced(self, agent, argv, cwd=WORK, extra=(), **kw):
        need_binary(self.sbrun, "sbrun")
        return run(self.sbrun_argv(agent, argv, cwd, extra), cwd=self.tmp, **kw)


def need_binary(path, what):
    if not path or not os.access(path, os.X_OK):
        raise Failure(f"{what} not found or not executable: {path!r} (build it first; pass --{what})")


# ---------------------------------------------------------------------------------------------
# Trees and manifests

def make_tree(agent, path=WORK, owner=None):
    agent.sh(f"rm -rf {shlex.quote(path)}")
    r = agent.nsenter([SYS_PYTHON, "-c", FIXTURE_CODE, path, str(FIXED_TIME)])
    check(r.rc == 0, f"building the fixture failed\n{r.describe()}")
    if owner:
        r = agent.sh(f"chown -R {owner} {shlex.quote(path)}")
        check(r.rc == 0, f"chown failed\n{r.describe()}")


def empty_tree(agent, path=WORK, owner=None):
    r = agent.sh(f"rm -rf {shlex.quote(path)} && mkdir -m 755 {shlex.quote(path)} && "
                 f"touch -d @{FIXED_TIME} {shlex.quote(path)} {B_ROOT}"
                 + (f" && chown {owner} {shlex.quote(path)}" if owner else ""))
    check(r.rc == 0, f"making an empty tree failed\n{r.describe()}")


def manifest(agent, path=WORK):
    r = agent.nsenter([SYS_PYTHON, "-c", MANIFEST_CODE, path])
    check(r.rc == 0, f"manifest failed\n{r.describe()}")
    return json.loads(r.out)


def manifest_lines(m, times_for=()):
    """One line per entry. Times are left out (they differ between two runs made at different
    moments) except under the prefixes in times_for, where the command set them on purpose."""
    lines = []
    for e in m:
        e = dict(e)
        # "x" means x and everything below it, "x/" only what is below x.
        keep_time = any((not p.endswith("/") and e["path"] == p) or
                        e["path"].startswith(p.rstrip("/") + "/") for p in times_for)
        if not keep_time or e["path"] == ".":
            e.pop("mtime")
        # Directory sizes and link counts follow the entries in them; the entries themselves are
        # compared, so nothing is lost by leaving these out.
        lines.append(json.dumps(e, sort_keys=True))
    return lines


def diff(a, b, name_a, name_b):
    return "\n".join(difflib.unified_diff(a, b, name_a, name_b, lineterm="", n=2))


def prove_remote(agent, path=WORK):
    """The tree is on B only: A's mount point stays empty."""
    check(not os.path.lexists(path), f"{path} is visible on A: the tmpfs is not private to B")
    r = agent.sh(f"test -d {shlex.quote(path)}")
    check(r.rc == 0, f"{path} is missing on B")


# ---------------------------------------------------------------------------------------------
# Differential runs

def differential(ctx, cmd, times_for=(), stdin=None, fixture=True, as_nobody=False,
                 native_argv=None, traced_argv=None, expect_rc=None, check_out=None,
                 agent=None, setup=None, timeout=CMD_TIMEOUT, extra=()):
    """Runs CMD natively on B and under sbrun on A against identical fresh trees and compares.
    `agent`: one the case started itself (e.g. with `prepare`); `setup`: shell run on B (as root,
    in the work directory) after each fresh tree; `timeout`: for each of the two runs; `extra`:
    sbrun options for the traced run."""
    agent = agent or ctx.agent(as_nobody=as_nobody)
    owner = "65534:65534" if as_nobody else None
    user = "nobody" if as_nobody else None

    def fresh():
        if fixture:
            make_tree(agent, owner=owner)
        else:
            empty_tree(agent, owner=owner)
        if setup:
            r = agent.sh(f"cd {WORK} && {setup}")
            check(r.rc == 0, f"the case's setup on B failed\n{r.describe()}")

    fresh()
    prove_remote(agent)
    n_argv = native_argv or ["sh", "-c", cmd]
    # Native on B: the same environment, the same cwd.
    native = agent.nsenter(["env", "-C", WORK] + n_argv, user=user, input=stdin, timeout=timeout)
    log(f"[native on B]\n{native.describe()}")
    check(native.rc is not None, "native run did not finish")
    if expect_rc is not None:
        check(native.rc == expect_rc, f"native run: exit {native.rc}, expected {expect_rc} "
              "(the harness or the fixture is wrong)")
    if check_out:
        check_out(native.out, "native")
    m_native = manifest(agent)
    if ctx.native_only:
        log(f"[native-only] manifest has {len(m_native)} entries; traced half not run")
        return native, None

    fresh()
    traced = ctx.traced(agent, traced_argv or n_argv, input=stdin, timeout=timeout, extra=extra)
    log(f"[traced via sbrun]\n{traced.describe()}")
    check(agent.alive(), f"the agent died during the traced run (status {agent.proc.poll()})\n"
          + agent.log_tail())
    m_traced = manifest(agent)
    problems = []
    if traced.out != native.out:
        problems.append("stdout differs:\n" + diff(native.out.splitlines(), traced.out.splitlines(),
                                                   "native", "sbrun"))
    if traced.rc != native.rc:
        problems.append(f"exit status differs: native {native.rc}, sbrun {traced.rc}")
    ln, lt = manifest_lines(m_native, times_for), manifest_lines(m_traced, times_for)
    if ln != lt:
        problems.append("resulting tree differs:\n" + diff(ln, lt, "native", "sbrun"))
    if check_out:
        check_out(traced.out, "sbrun")
    if problems:
        raise Failure("\n\n".join(problems) + "\n" + agent.log_tail())
    return native, traced


# Each: (command, {options}). Commands run with cwd = /srv/sb-b/work on B; stderr is folded in
# with 2>&1 where the error message itself is part of the behaviour.
SHELL_CASES = {
    "cat": ("cat hello.txt sub/a.txt link; cat missing.txt 2>&1; echo rc=$?; cat sub 2>&1; echo rc=$?", {}),
    "ls": ("ls -la; ls -la sub; ls -lan sub; ls -l link dirlink/", {}),
    "stat": ("stat -c '%n %s %F %a %h' hello.txt sub link data.bin empty exec.sh ro.txt sub/hl; "
             "stat -L -c '%n %F %s' link dirlink; stat missing 2>&1; echo rc=$?", {}),
    "cp-a": ("cp -a sub copy && cp -a link link-copy && cp data.bin data2.bin && cp -r empty e2 && "
             # -A, not -a: ".." is the work dir, whose mtime is the moment cp ran.
             "ls -lA copy && cmp data.bin data2.bin && echo same", {"times_for": ["copy", "link-copy"]}),
    "mv": ("mv hello.txt moved.txt && mv sub sub2 && mv link link2 && mv empty sub2/ && "
           "mv data.bin sub2/deep/ && mv missing x 2>&1; echo rc=$?; ls -R", {}),
    "mkdir-p": ("mkdir -p a/b/c && mkdir -p a/b/c && mkdir -m 700 m && mkdir -p -m 750 n/o && "
                "mkdir a 2>&1; echo rc=$?; mkdir -p hello.txt/x 2>&1; echo rc=$?; "
                "stat -c '%n %a' a a/b a/b/c m n n/o", {}),
    "rm-rf": ("rm -rf sub && rm -rf missing && rm -f link && rm hello.txt && rm empty 2>&1; "
              "echo rc=$?; rm -r dirlink && ls -A", {}),
    "find": ("find . | sort; find . -type f -name '*.txt' | sort; "
             "find . -type l -printf '%p -> %l\\n' | sort; find . -newer hello.txt | sort; "
             "find . -size +10k; find . -perm -u+x -type f; find . -empty | sort; "
             "find -L . -name c.txt | sort", {}),
    "du": ("du -a . | sort -k2; du -sb .; du -s --apparent-size sub; du -sh data.bin", {}),
    "tar": ("tar cf sub.tar sub link exec.sh && mkdir x && tar xf sub.tar -C x && "
            "tar tvf sub.tar | sort -k6 && sha256sum sub.tar && tar czf sub.tgz sub && "
            "mkdir y && tar xzf sub.tgz -C y && diff -r sub y/sub && echo extracted-same",
            {"times_for": ["x/", "y/"]}),
    "sha256sum": ("sha256sum hello.txt data.bin sub/*.txt exec.sh; sha256sum missing 2>&1; "
                  "echo rc=$?; sha256sum hello.txt > sums && sha256sum -c sums", {}),
    "touch-d": ("touch -d '2001-02-03 04:05:06' hello.txt newfile && "
                "touch -h -d '2002-01-01 00:00:00' link && touch -r hello.txt sub/a.txt && "
                "touch -m -d @1234567890.5 data.bin && "
                "stat -c '%n %Y %X %y' hello.txt newfile sub/a.txt data.bin && stat -c '%n %Y' link",
                {"times_for": ["hello.txt", "newfile", "link", "sub/a.txt", "data.bin"]}),
    "chmod": ("chmod 600 hello.txt && chmod -R go-rwx sub && chmod u+s exec.sh && "
              "chmod 1777 empty && chmod a-w data.bin && "
              "stat -c '%n %a' hello.txt sub sub/a.txt sub/deep exec.sh empty data.bin; "
              "chmod 644 missing 2>&1; echo rc=$?", {}),
    "ln-s": ("ln -s sub/a.txt l1 && ln -s /nonexistent l2 && ln hello.txt hard && "
             "ln -sf hello.txt l1 && ln -sr sub/deep/c.txt rel && readlink l1 l2 rel && "
             "stat -c '%h' hello.txt; ln -s x hello.txt 2>&1; echo rc=$?; cat l1 rel", {}),
    "readlink-f": ("readlink link; readlink -f link; readlink -f sub/../link; readlink -f dangling; "
                   "readlink -f missing/x; echo rc=$?; readlink -e dangling; echo rc=$?; "
                   "realpath sub/deep dirlink; readlink -f dirlink/../a.txt", {}),
    "sqlite": ("sqlite3 test.db && sqlite3 test.db 'SELECT count(*), sum(x) FROM t;' && "
               "ls test.db-journal 2>&1; echo rc=$?", {"stdin": "sql"}),
    # git maps its pack files and index (mmap of remote files); the repositories are removed at
    # the end because .git/index records inode numbers and times, which differ between runs.
    "git": ("export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@b GIT_COMMITTER_NAME=t "
            "GIT_COMMITTER_EMAIL=t@b GIT_AUTHOR_DATE=2001-01-01T00:00:00Z "
            "GIT_COMMITTER_DATE=2001-01-01T00:00:00Z GIT_CONFIG_NOSYSTEM=1; "
            "git init -q -b main r && cd r && for i in 1 2 3 4 5; do seq $i 20000 > f$i && "
            "git add f$i && git commit -qm c$i; done && git gc -q && ls .git/objects/pack | wc -l && "
            "git log --oneline && git fsck --full --no-progress && echo fsck-ok && "
            "git verify-pack .git/objects/pack/*.idx && echo verify-ok && "
            "git clone -q . ../c && git -C ../c log --format='%s %H' && "
            "git -C ../c show HEAD~2:f3 | sha256sum && git -C ../c fsck --no-progress && "
            "cd .. && rm -rf r c", {}),
    # WAL with exclusive locking keeps its index in the heap: works on a remote file. (Shared WAL
    # needs a writable shared map of the -shm file, which sbrun refuses: see case sqlite-wal-shared.)
    "sqlite-wal": ("sqlite3 wal.db && sqlite3 wal.db 'PRAGMA locking_mode=EXCLUSIVE; "
                   "SELECT count(*), sum(x) FROM t; PRAGMA integrity_check;' && "
                   "ls wal.db-shm 2>&1; echo rc=$?", {"stdin": "sql_wal"}),
    "python": (f"{SYS_PYTHON} -", {"stdin": "py_fs"}),
    # Threads: every thread is traced, each does remote IO at the same time as the others.
    "threads": (f"{SYS_PYTHON} -", {"stdin": "py_threads"}),
    # make: fork, exec and a shell per recipe line, all reading and writing remote files.
    "make": ("printf 'all: out.txt copy.txt\\nout.txt: hello.txt\\n\\tsed s/hello/HELLO/ hello.txt > out.txt\\n"
             "copy.txt: out.txt\\n\\tcp out.txt copy.txt && echo built\\n' > Makefile && make && "
             "cat copy.txt && make", {}),
    # The cwd follows the last chdir to whichever side it went (/usr/lib stays local under the
    # default fallback rule), and /dev/stdout names the program's own stdout, not the agent's.
    # 2>&1: a remote program whose fds 1 and 2 are one open file writes both into one stream, so
    # what it writes to stdout and to stderr stays in the order it wrote it.
    "stderr-merge": ("sh -c 'echo one; echo two >&2; echo three' 2>&1; "
                     "cat hello.txt missing sub/a.txt 2>&1 | cat; "
                     "ls hello.txt missing 2>&1; echo rc=$?", {"exec_on_b": True}),
    "cwd-sides": ("cd /usr/lib && pwd && ls -d x86_64-linux-gnu && cd /srv/sb-b/work && pwd && "
                  "ls hello.txt && (echo via-dev-stdout > /dev/stdout) | cat && "
                  "exec 7<hello.txt && cat /dev/fd/7 && readlink /proc/self/fd/7 | sed 's,.*/,,'",
                  {}),
}

SQL = """\
PRAGMA journal_mode=DELETE;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, x INTEGER);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000)
  INSERT INTO t(name, x) SELECT 'row-' || i, i * 3 FROM c;
COMMIT;
SELECT count(*), sum(x) FROM t;
BEGIN;
DELETE FROM t WHERE id > 10;
UPDATE t SET x = 0;
SELECT count(*), sum(x) FROM t;
ROLLBACK;
SELECT count(*), sum(x) FROM t;
CREATE INDEX t_name ON t(name);
SELECT id, x FROM t WHERE name = 'row-777';
PRAGMA integrity_check;
PRAGMA journal_mode;
"""


# The shell cases test file access from A: the programs the shell runs (cat, tar, git, ...) run
# on A with their files on B. Without these rules a remote scope would exec them on B (remote
# exec, tested by its own cases), which would prove nothing about the files.
PROGRAMS_FROM_A = ("--local", "/usr/bin", "--local", "/bin", "--local", "/usr/sbin",
                   "--local", "/sbin")


def shell_case(name):
    cmd, opts = SHELL_CASES[name]

    def fn(ctx):
        stdin = None
        if opts.get("stdin") == "sql":
            stdin = SQL
        elif opts.get("stdin") == "sql_wal":
            stdin = "PRAGMA locking_mode=EXCLUSIVE;\nPRAGMA journal_mode=WAL;\n" + SQL.replace(
                "PRAGMA journal_mode=DELETE;\n", "")
        elif opts.get("stdin") in ("py_fs", "py_threads"):
            with open(os.path.join(HERE, opts["stdin"] + ".py")) as f:
                stdin = f.read()
        native, _ = differential(ctx, cmd, times_for=opts.get("times_for", ()), stdin=stdin,
                                 extra=() if opts.get("exec_on_b") else PROGRAMS_FROM_A)
        check(native.out.strip() != "", "the native run printed nothing: the case checks nothing")
    return fn


# ---------------------------------------------------------------------------------------------
# Identity: the traced program sees B's hostname, not A's.

def identity_case(cmd):
    def fn(ctx):
        local = run(["sh", "-c", cmd])
        check(local.rc == 0, f"native run on A failed\n{local.describe()}")
        check(local.out.strip() != B_HOSTNAME, f"A is already called {B_HOSTNAME}: cannot tell them apart")

        def on_b(out, who):
            check(out.strip() == B_HOSTNAME, f"{who}: expected {B_HOSTNAME!r}, got {out.strip()!r}")
        differential(ctx, cmd, check_out=on_b)
        log(f"[ok] A says {local.out.strip()!r}, B and the traced program say {B_HOSTNAME!r}")
    return fn


# ---------------------------------------------------------------------------------------------
# Conformance programs

def conformance_names():
    """One case per tests/conformance/*.c (the meson build names the programs conf_NAME)."""
    src = os.path.join(HERE, "..", "conformance")
    return sorted(f[:-2] for f in os.listdir(src) if f.endswith(".c"))


def conformance_case(name, extra_args=(), as_nobody=False, sbrun_extra=()):
    def fn(ctx):
        check(ctx.conformance_dir, "--conformance-dir is required for conformance cases")
        prog = os.path.abspath(os.path.join(ctx.conformance_dir, "conf_" + name))
        need_binary(prog, "conformance program " + name)
        argv = [prog, WORK] + list(extra_args)

        def success(out, who):
            lines = out.splitlines()
            check(lines and lines[-1] == "EXIT-SUCCESS", f"{who}: no EXIT-SUCCESS at the end")
        # The socket programs run against B's own network namespace, natively and under sbrun.
        agent = ctx.agent(as_nobody=as_nobody, net=name.startswith("sock_"))
        differential(ctx, None, fixture=False, native_argv=argv, traced_argv=argv,
                     expect_rc=0, check_out=success, as_nobody=as_nobody, agent=agent,
                     extra=list(sbrun_extra))
    return fn


# ---------------------------------------------------------------------------------------------
# Special cases

def case_eacces(ctx):
    """The agent runs as nobody: B refuses what nobody may not do, although sbrun runs as root."""
    conformance_case("errno_eacces", ["expect-eacces"], as_nobody=True)(ctx)


def case_silent_peer(ctx):
    """A peer that connects and never completes a handshake is dropped after
    --handshake-timeout (the agent closes the connection), the agent lives on, and a real client
    is served meanwhile and afterwards."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME, args=["--handshake-timeout", "1"])
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    empty_tree(agent)
    silent = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(agent.sock)
        silent.append(s)
    start = time.monotonic()
    t = ctx.traced(agent, ["cat", "/etc/hostname"], timeout=30)
    check(t.rc == 0 and t.out == B_HOSTNAME + "\n", f"a real client was not served\n{t.describe()}")
    for s in silent:
        s.settimeout(10)
        data = s.recv(16)
        s.close()
        check(data == b"", f"the agent answered a silent peer: {data!r}")
    took = time.monotonic() - start
    log(f"silent peers dropped after {took:.1f} s")
    check(took < 8, f"silent peers were dropped only after {took:.1f} s (timeout 1 s)")
    check(agent.alive(), "the agent died\n" + agent.log_tail())
    check("no handshake within the timeout" in agent.log_tail(), "the drop was not logged")
    t = ctx.traced(agent, ["cat", "/etc/hostname"], timeout=30)
    check(t.rc == 0 and t.out == B_HOSTNAME + "\n", "a client after the drops was not served")
    # A session that completed its handshake lives longer than the timeout (it once did not:
    # every session was dropped 10 s in).
    t = ctx.traced(agent, ["sh", "-c", "sleep 2.5; cat /etc/hostname"], timeout=30,
                   extra=("--local", "/usr/bin", "--local", "/bin"))
    log(t.describe())
    check(t.rc == 0 and t.out == B_HOSTNAME + "\n" and "lost the connection" not in t.err,
          "a session that outlived the handshake timeout was dropped")


def case_asyncio_mixed(ctx):
    """A Python asyncio program (EpollSelector) waits on a FIFO in the work directory (remote
    under sbrun) and a local pipe at once; data arrives on both while the loop waits."""
    with open(os.path.join(HERE, "py_asyncio.py")) as f:
        code = f.read()
    native, _ = differential(ctx, None, native_argv=[SYS_PYTHON, "-"], stdin=code, fixture=False,
                             timeout=60)
    check("from the fifo: ['remote-0', 'remote-1', 'remote-2']" in native.out,
          "the native run did not see the FIFO's data: the case checks nothing")


# selectors.DefaultSelector (epoll), PollSelector and SelectSelector over a remote FIFO and a
# local pipe, as `python3 -c`.
PY_SELECTORS = (
    "import os, selectors\n"
    "os.mkfifo('fifo'); r = os.open('fifo', os.O_RDONLY | os.O_NONBLOCK); w = os.open('fifo', os.O_WRONLY)\n"
    "pr, pw = os.pipe()\n"
    "for cls in (selectors.DefaultSelector, selectors.PollSelector, selectors.SelectSelector):\n"
    "    s = cls(); s.register(r, selectors.EVENT_READ, 'fifo'); s.register(pr, selectors.EVENT_READ, 'pipe')\n"
    "    show = lambda t: sorted((k.data, e) for k, e in s.select(t))\n"
    "    print(cls.__name__, 'idle', show(0), show(0.1))\n"
    "    os.write(w, b'x'); print(cls.__name__, 'fifo', show(1))\n"
    "    os.write(pw, b'y'); print(cls.__name__, 'both', show(None))\n"
    "    os.read(r, 9); os.read(pr, 9); s.modify(r, selectors.EVENT_READ | selectors.EVENT_WRITE, 'fifo-rw')\n"
    "    s.register(w, selectors.EVENT_WRITE, 'fifo-w'); print(cls.__name__, 'write end', show(1))\n"
    "    s.close()\n"
    "os.unlink('fifo')\n")


def case_selectors_mixed(ctx):
    """python3 -c with selectors.DefaultSelector, PollSelector and SelectSelector on a remote
    FIFO and a local pipe: the same readiness as natively on B."""
    native, _ = differential(ctx, None, native_argv=[SYS_PYTHON, "-c", PY_SELECTORS],
                             fixture=False, timeout=60)
    check("EpollSelector fifo [('fifo', 1)]" in native.out, "the native run saw nothing")


def case_pty_remote(ctx):
    """A serial line on B: conf_pty_serial opens /dev/ptmx and the slave under /dev/pts on the
    agent (--remote rules over the local defaults), configures it with termios, moves data both
    ways and queries it; every ioctl is marshalled to B (the trace shows them on the target) and
    the output is the native run's on B, errnos included."""
    agent = ctx.agent()
    check(ctx.conformance_dir, "--conformance-dir is required")
    prog = os.path.abspath(os.path.join(ctx.conformance_dir, "conf_pty_serial"))
    need_binary(prog, "conformance program pty_serial")
    empty_tree(agent)
    native = agent.nsenter([prog, WORK], timeout=60)
    log(f"[native on B]\n{native.describe()}")
    check(native.rc == 0 and native.out.endswith("EXIT-SUCCESS\n"), "native run failed")
    if ctx.native_only:
        return
    empty_tree(agent)
    trace = os.path.join(ctx.tmp, "pty.trace")
    t = ctx.traced(agent, [prog, WORK], timeout=60,
                   extra=("--remote", "/dev/ptmx", "--remote", "/dev/pts", f"--trace={trace}"))
    log(f"[traced via sbrun]\n{t.describe()}")
    check(t.rc == 0 and t.out == native.out, "sbrun: not as on B")
    with open(trace) as f:
        lines = [l for l in f if "ioctl(" in l]
    log("".join(lines[:5]))
    check(len(lines) >= 10, f"only {len(lines)} ioctls reached the target")
    check("not marshalled" in t.err, "the unknown request must be named once on stderr")


def case_root(ctx):
    """--root confines every path: the tree is the agent's /, and nothing escapes it."""
    conf = B_ROOT + "/confined"
    prepare = (f"mkdir -p {conf}/etc {conf}/data && echo confined-root > {conf}/etc/hostname && "
               f"echo inside > {conf}/data/file.txt && echo TOP-SECRET > {B_ROOT}/secret && "
               f"ln -s {B_ROOT}/secret {conf}/abs-escape && ln -s ../../../secret {conf}/rel-escape && "
               f"ln -s /etc/hostname {conf}/abs-inside")
    agent = ctx.agent(root=conf, prepare=prepare)
    r = agent.sh(f"cat {B_ROOT}/secret {conf}/etc/hostname")
    check(r.rc == 0 and "TOP-SECRET" in r.out, f"fixture on B is wrong\n{r.describe()}")
    if ctx.native_only:
        return
    t = ctx.traced(agent, ["cat", "/etc/hostname"], cwd="/")
    log(t.describe())
    check(t.rc == 0 and t.out == "confined-root\n", "cat /etc/hostname must read the root tree's file")
    t = ctx.traced(agent, ["cat", "abs-inside", "data/file.txt"], cwd="/")
    log(t.describe())
    check(t.rc == 0 and t.out == "confined-root\ninside\n",
          "an absolute symlink inside the root must resolve inside the root")
    # Programs from A (--local): this case is about the paths they use, which the root confines.
    here = ("--local", "/usr/bin", "--local", "/bin")
    t = ctx.traced(agent, ["sh", "-c", "ls -a / | sort"], cwd="/", extra=here)
    log(t.describe())
    check(t.rc == 0 and sorted(t.out.split()) ==
          sorted([".", "..", "abs-escape", "abs-inside", "data", "etc", "rel-escape"]),
          "ls / must list the root tree")
    for path in ("../../../secret", f"{B_ROOT}/secret", "/../secret", "abs-escape", "rel-escape",
                 "data/../../secret", "../../../../etc/shadow"):
        t = ctx.traced(agent, ["cat", path], cwd="/")
        log(t.describe())
        check("TOP-SECRET" not in t.out and "TOP-SECRET" not in t.err, f"{path} escaped the root")
        check(t.rc != 0, f"cat {path} must fail inside the root")
    t = ctx.traced(agent, ["sh", "-c", "cd /data && cat ../../../etc/hostname && pwd"], cwd="/",
                   extra=here)
    log(t.describe())
    check(t.out == "confined-root\n/data\n", ".. at the root stays at the root")
    # A program exec'd on B runs inside the root too: B's own /usr/bin/cat is not there.
    t = ctx.traced(agent, ["sh", "-c", "/usr/bin/cat /etc/hostname; echo rc=$?"], cwd="/")
    log(t.describe())
    check("rc=127" in t.out and "confined-root" not in t.out,
          "exec under --root must not reach the host's programs")


def case_dlopen_remote(ctx):
    """A library that exists only in the agent's root, loaded by a local program with dlopen in
    a remote scope: /usr/lib is a fallback path (A first, then B), and the loader maps the
    remote file (mmap of a remote file: a local copy of its bytes)."""
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "dlopen_vendor"))
    lib = os.path.abspath(os.path.join(ctx.helpers_dir or "", "libsbvendor.so"))
    need_binary(helper, "dlopen_vendor")
    check(os.path.exists(lib), f"{lib} not built")
    check(not os.path.exists("/usr/lib/libsbvendor.so"), "A has /usr/lib/libsbvendor.so: cannot tell the sides apart")
    conf = B_ROOT + "/vendor-root"
    agent = ctx.agent(root=conf, prepare=f"mkdir -p {conf}/usr/lib && cp {shlex.quote(lib)} {conf}/usr/lib/")
    here = run([helper])
    log(here.describe())
    check(here.rc == 1 and "dlopen failed" in here.out, "natively on A the library must not be found")
    if ctx.native_only:
        return
    trace = os.path.join(ctx.tmp, "trace")
    t = ctx.traced(agent, [helper], cwd="/", extra=(f"--trace={trace}",))
    log(t.describe())
    check(t.rc == 0, "the program under sbrun could not load the library from B")
    check(t.out == "vendor library from B, ctor-ran, 42 43, from /usr/lib/libsbvendor.so\n",
          f"unexpected output {t.out!r}")
    with open(trace) as f:
        lines = f.read().splitlines()
    opened = [l for l in lines if "libsbvendor.so" in l and "openat" in l and "= -1" not in l]
    check(opened and all("<target1" in l for l in opened), "the library was not opened on the target")
    maps = [l for l in lines if "mmap(" in l and "<target1" in l]
    check(len(maps) >= 2, f"expected the loader's maps of the remote library, saw {maps}")
    # A second program loading it again, and a missing library: dlopen's own error.
    t = ctx.traced(agent, [helper, "libsbmissing.so"], cwd="/")
    log(t.describe())
    check(t.rc == 1 and "libsbmissing.so: cannot open shared object file" in t.out,
          "a library on neither side must fail as dlopen does")


def case_block_loop(ctx):
    """A block device on B: a loop device over a 3 MiB image made on B, queried under sbrun with
    BLKGETSIZE64, BLKSSZGET and BLKGETSIZE (ioctl through the table) and read through; the same
    as natively on B, and every ioctl went to the target."""
    agent = ctx.agent()
    img = f"{B_ROOT}/disk.img"
    r = agent.sh(f"truncate -s 3M {img} && printf 'block-on-B' | dd of={img} conv=notrunc status=none "
                 f"&& losetup -f --show {img}")
    if r.rc != 0 or not r.out.strip().startswith("/dev/loop"):
        raise Skip(f"cannot make a loop device here (losetup: {r.err.strip() or r.out.strip()})")
    dev = r.out.strip()
    # Loop devices are global: detach from here (cleanups run after the agent has stopped).
    ctx.cleanups.append(lambda: run(["losetup", "-d", dev]))
    prog = f"""
import fcntl, os, struct
fd = os.open({dev!r}, os.O_RDONLY)
print("size", struct.unpack("Q", fcntl.ioctl(fd, 0x80081272, bytes(8)))[0])
print("sector", struct.unpack("i", fcntl.ioctl(fd, 0x1268, bytes(4)))[0])
print("sectors", struct.unpack("L", fcntl.ioctl(fd, 0x1260, bytes(8)))[0])
print("data", os.pread(fd, 10, 0).decode())
try:
    fcntl.ioctl(fd, 0x5401, bytes(60))
except OSError as e:
    print("TCGETS", e.errno)
"""
    native = agent.nsenter([SYS_PYTHON, "-c", prog])
    log(native.describe())
    check(native.rc == 0 and "size 3145728" in native.out, "natively on B")
    if ctx.native_only:
        return
    stats = os.path.join(ctx.tmp, "stats.json")
    t = ctx.traced(agent, [SYS_PYTHON, "-c", prog], cwd="/",
                   extra=["--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0 and t.out == native.out,
          "block ioctls under sbrun differ from B's\n" +
          diff(native.out.splitlines(), t.out.splitlines(), "native", "sbrun"))
    calls = remote_calls(stats)
    check(calls.get("ioctl", 0) >= 4, f"the ioctls did not go to the target: {calls}")


def case_sqlite_wal_shared(ctx):
    """SQLite in (shared) WAL mode needs a writable shared map of its -shm file, which sbrun
    refuses on a remote file (ENODEV, with a note): SQLite must report an error, and the
    database must stay intact."""
    agent = ctx.agent()
    r = agent.sh(f"mkdir -p {WORK} && rm -f {WORK}/w.db*")
    check(r.rc == 0, r.describe())
    if ctx.native_only:
        return
    sql = "PRAGMA journal_mode=WAL;\nCREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n"
    t = ctx.traced(agent, ["sqlite3", "w.db"], extra=PROGRAMS_FROM_A, input=sql)
    log(t.describe())
    check(t.rc != 0 and "disk I/O error" in t.err, "SQLite must report the refused shared map")
    check("writable shared map" in t.err and "ENODEV" in t.err, "sbrun must say why")
    r = agent.nsenter(["sqlite3", f"{WORK}/w.db", "PRAGMA integrity_check;"])
    log(r.describe())
    check(r.rc == 0 and r.out.strip() == "ok", "the database on B must stay intact")


def case_local_target(ctx):
    """--target 'local:ROOT?hostname=NAME': sbrun spawns its own confined agent in new UTS and mount
    namespaces; writes land in ROOT, never on A's /."""
    lroot = os.path.join(ctx.tmp, "lroot")
    os.makedirs(os.path.join(lroot, "etc"))
    with open(os.path.join(lroot, "etc", "hostname"), "w") as f:
        f.write("local-root-host\n")
    mark = f"sb-int-{os.getpid()}.txt"
    ctx.cleanups.append(lambda: os.path.exists("/" + mark) and os.unlink("/" + mark))
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    need_binary(ctx.sbagent, "sbagent")
    env = dict(ENV, SB_AGENT=ctx.sbagent)   # sbrun starts this agent (sbrun(1) ENVIRONMENT)
    before = run(["hostname"]).out
    # The root holds files, not programs: the shell's programs come from A (--local).
    t = run([ctx.sbrun, "--target", f"local:{lroot}?hostname=board-l", "--local", "/usr/bin",
             "--local", "/bin", "--",
             "sh", "-c", f"hostname; uname -n; cat /etc/hostname; echo written-from-A > /{mark}; ls /"],
            env=env, cwd=ctx.tmp)
    log(t.describe())
    check(not os.path.exists("/" + mark), f"/{mark} was written on A's real root")
    check(t.rc == 0, "sbrun with a local target failed")
    lines = t.out.splitlines()
    check(lines[:3] == ["board-l", "board-l", "local-root-host"], "hostname or /etc/hostname not the target's")
    check(mark in lines[3:] and "etc" in lines[3:], "ls / does not list the target root")
    with open(os.path.join(lroot, mark)) as f:
        check(f.read() == "written-from-A\n", "the write did not land in the target root")
    check(run(["hostname"]).out == before, "A's hostname changed")


def case_unreachable(ctx):
    need_binary(ctx.sbrun, "sbrun")
    for target in ("unix:/nonexistent/sb-int.sock", "tcp://127.0.0.1:1"):
        t = run([ctx.sbrun, "--target", target, "--", "true"], timeout=30)
        log(t.describe())
        check(t.rc == 125, f"{target}: exit {t.rc}, expected 125")
        check(t.secs < 10, f"{target}: took {t.secs:.1f} s, expected to fail fast")
        check(t.err.strip() != "", f"{target}: no message on stderr")
        where = target.split(":", 1)[1] if target.startswith("unix:") else "127.0.0.1:1"
        check(where in t.err, f"{target}: the message does not name the address")


def case_tcp_token(ctx):
    """TCP with a token: the right token works, a wrong or missing one is refused with a clear
    message (exit 125), and off loopback the agent refuses to start without --token-file."""
    need_binary(ctx.sbrun, "sbrun")
    need_binary(ctx.sbagent, "sbagent")
    root = os.path.join(ctx.tmp, "troot")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("tcp-root\n")
    good, bad = os.path.join(ctx.tmp, "token"), os.path.join(ctx.tmp, "wrong")
    with open(good, "w") as f:
        # Two line ends: sbrun and sbagent once read this as two different tokens.
        f.write("s3cret-token\n\n")
    with open(bad, "w") as f:
        f.write("not-the-token\n")
    rfd, wfd = os.pipe()
    agent = subprocess.Popen([ctx.sbagent, "--listen", "tcp://127.0.0.1:0", "--root", root,
                              "--token-file", good, "--ready-fd", str(wfd)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, pass_fds=(wfd,), env=ENV)
    ctx.cleanups.append(lambda: (agent.kill(), agent.wait()))
    os.close(wfd)
    ready, _, _ = select.select([rfd], [], [], 20)
    line = os.read(rfd, 256).decode() if ready else ""
    os.close(rfd)
    check(line.startswith("ready tcp://127.0.0.1:"), f"bad ready line {line!r}")
    url = line.split()[1]
    t = run([ctx.sbrun, "--target", url, "--token-file", good, "--", "cat", "/etc/hostname"],
            timeout=60)
    log(t.describe())
    check(t.rc == 0 and t.out == "tcp-root\n", "the right token must work")
    for argv in (["--token-file", bad], []):
        t = run([ctx.sbrun, "--target", url] + argv + ["--", "cat", "/etc/hostname"], timeout=60)
        log(t.describe())
        check(t.rc == 125, f"{argv or 'no token'}: exit {t.rc}, expected 125")
        check("token" in t.err and "tcp-root" not in t.out, "the refusal must say why")
    t = run([ctx.sbagent, "--listen", "tcp://0.0.0.0:0", "--root", root], timeout=30)
    log(t.describe())
    check(t.rc != 0 and "--token-file" in t.err,
          "a non-loopback listen without --token-file must be refused at startup")
    # A directory as the token file: one clear line from each program, no stack trace.
    t = run([ctx.sbagent, "--listen", "tcp://127.0.0.1:0", "--token-file", ctx.tmp], timeout=30)
    log(t.describe())
    check(t.rc != 0 and "--token-file" in t.err and "not a regular file" in t.err
          and "stack" not in t.err.lower(), "sbagent: a directory as --token-file")
    t = run([ctx.sbrun, "--target", url, "--token-file", ctx.tmp, "--", "true"], timeout=30)
    log(t.describe())
    check(t.rc == 125 and "not a regular file" in t.err, "sbrun: a directory as --token-file")


def case_bad_flag(ctx):
    need_binary(ctx.sbrun, "sbrun")
    for argv in (["--definitely-not-a-flag", "--", "true"], ["--mode", "sideways", "--", "true"], []):
        t = run([ctx.sbrun] + argv, timeout=30)
        log(t.describe())
        check(t.rc == 125, f"sbrun {shlex.join(argv)}: exit {t.rc}, expected 125")
        low = t.err.lower()
        check("usage" in low or "--help" in low, "no usage hint on stderr")
    # --deploy takes three words, and "always" contradicts an agent path in an ssh:// URL.
    for argv, says in ((["--deploy=sometimes", "--", "true"],
                        "--deploy takes 'auto', 'always' or 'never', not 'sometimes'"),
                       (["--deploy=always", "--target", "ssh://b/opt/sbagent", "--", "true"],
                        "--deploy=always and ssh://b/opt/sbagent: the path names an agent")):
        t = run([ctx.sbrun] + argv, timeout=30)
        log(t.describe())
        check(t.rc == 125 and says in t.err, f"sbrun {shlex.join(argv)}: not refused with {says!r}")
    t = run([ctx.sbrun, "--help"], timeout=30)
    log(t.describe())
    check(t.rc == 0 and "--target" in t.out, "--help must print the options on stdout and exit 0")
    check("--deploy=auto|always|never" in t.out and "--agent-dir DIR" in t.out,
          "--help must describe --deploy and --agent-dir")
    # One version and one protocol number, the schema's, for both programs.
    schema = open(os.path.join(HERE, "..", "..", "schema", "splitbrain.capnp")).read()
    proto = re.search(r"const protocolVersion :UInt32 = (\d+);", schema).group(1)
    for prog, name in ((ctx.sbrun, "sbrun"), (ctx.sbagent, "sbagent")):
        t = run([prog, "--version"], timeout=30)
        log(t.describe())
        check(t.rc == 0 and re.fullmatch(rf"{name} \d+\.\d+\.\d+ \(protocol {proto}\)\n", t.out),
              f"{name} --version must print its version and protocol {proto}")
    # A --trace file that cannot be written: the reason, no assertion text.
    t = run([ctx.sbrun, "--trace=/nonexistent/dir/t", "--", "true"], timeout=30)
    log(t.describe())
    check(t.rc == 125 and t.err == "sbrun: cannot write --trace file /nonexistent/dir/t: No such "
          "file or directory\n", "a bad --trace path must give one clear line")


def case_bad_url(ctx):
    need_binary(ctx.sbrun, "sbrun")
    for url in ("bogus://x", "unix:", "tcp://no-port-here", "tcp://127.0.0.1:99999", "=unix:/x"):
        t = run([ctx.sbrun, "--target", url, "--", "true"], timeout=30)
        log(t.describe())
        check(t.rc == 125, f"--target {url}: exit {t.rc}, expected 125")
        check(t.err.strip() != "", f"--target {url}: no message on stderr")
    t = run([ctx.sbrun, "--target", "bogus://x", "--", "true"], timeout=30)
    check("bogus://x" in t.err, "the message must quote the bad URL")


def case_print_rules(ctx):
    need_binary(ctx.sbrun, "sbrun")
    t = run([ctx.sbrun, "--print-rules"], timeout=30)
    log(t.describe())
    check(t.rc == 0, "--print-rules must exit 0")
    lines = t.out.splitlines()

    def line_of(prefix, kind):
        for i, l in enumerate(lines):
            words = l.replace(":", " ").replace("\t", " ").split()
            if prefix in words and any(kind in w.lower() for w in words):
                return i
        raise Failure(f"--print-rules: no {kind} rule for {prefix}\n{t.out}")
    for p in ("/proc/self", "/proc/thread-self", "/dev/tty", "/dev/pts", "/dev/null",
              "/dev/urandom", "/dev/shm", "/etc/ld.so.cache", "/usr/share/locale"):
        line_of(p, "local")
    line_of("/usr/lib", "fallback")
    # Programs follow the scope (exec inside a remote scope runs on B): no rule for bin dirs.
    check(not any("/usr/bin" in l.split() for l in lines), "/usr/bin must have no default rule")
    t = run([ctx.sbrun, "--local", "/opt/sb-l", "--remote", "/proc/self/sb-r",
             "--fallback", "/opt/sb-f", "--print-rules"], timeout=30)
    log(t.describe())
    check(t.rc == 0, "--print-rules with rules must exit 0")
    lines = t.out.splitlines()
    ul, ur, uf = line_of("/opt/sb-l", "local"), line_of("/proc/self/sb-r", "remote"), line_of("/opt/sb-f", "fallback")
    d = line_of("/proc/self", "local")
    check(ul < ur < uf < d, "user rules must come first, in order, before the defaults")


def case_exit_codes(ctx):
    agent = ctx.agent()
    empty_tree(agent)
    if ctx.native_only:
        return
    for cmd, want in (("exit 3", 3), ("true", 0), ("kill -TERM $$", 143), ("kill -KILL $$", 137),
                      ("exit 255", 255)):
        t = ctx.traced(agent, ["sh", "-c", cmd])
        log(t.describe())
        check(t.rc == want, f"sh -c {cmd!r}: exit {t.rc}, expected {want}")
    t = ctx.traced(agent, ["/nonexistent/program"])
    log(t.describe())
    check(t.rc == 127 and t.err.strip(), "a missing program must give 127 and a message")
    noexec = os.path.join(ctx.tmp, "not-executable")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\n")
    t = ctx.traced(agent, [noexec])
    log(t.describe())
    check(t.rc == 126 and t.err.strip(), "a program that cannot be executed must give 126 and a message")


def case_agent_killed(ctx):
    """The agent dies under a program that reads a remote file in a loop: the program gets EIO,
    sbrun says so once and exits; nothing hangs."""
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "read_loop"))
    need_binary(helper, "helper read_loop (--helpers-dir)")
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        r = agent.nsenter([helper, WORK + "/hello.txt", "1"])
        check(r.rc == 4 and r.out.startswith("opened"), f"helper misbehaves natively\n{r.describe()}")
        return
    need_binary(ctx.sbrun, "sbrun")
    argv = ctx.sbrun_argv(agent, [helper, WORK + "/hello.txt", "60"])
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV, cwd=ctx.tmp, start_new_session=True)
    ctx.cleanups.append(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
    ready, _, _ = select.select([p.stdout], [], [], 30)
    first = p.stdout.readline().decode() if ready else ""
    if first != "opened\n":
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise Failure(f"the traced helper did not start: {first!r}\n{out.decode()}\n{err.decode()}")
    time.sleep(0.5)
    agent.kill(signal.SIGKILL)
    killed = time.monotonic()
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise Failure(f"sbrun hangs after the agent died\n{out.decode()}\n{err.decode()}")
    secs = time.monotonic() - killed
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    log(f"exit {p.returncode} {secs:.2f} s after the kill\n--- stdout ---\n{out}--- stderr ---\n{err}")
    check("EIO" in out, "the program must see EIO")
    check(p.returncode == 3, f"exit {p.returncode}, expected the program's own 3")
    check(err.strip() != "", "sbrun must say that the agent went away")
    check(len(err.strip().splitlines()) <= 3, "one message, not one per failed call")


def case_trace_stats(ctx):
    """--trace prints one strace-style line per redirected call with its target and latency;
    --stats counts exactly what a program with known syscall counts did."""
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "syscall_counts"))
    need_binary(helper, "helper syscall_counts (--helpers-dir)")
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    trace = os.path.join(ctx.tmp, "trace.txt")
    stats = os.path.join(ctx.tmp, "stats.json")
    path = WORK + "/hello.txt"
    t = ctx.traced(agent, [helper, path, "5"],
                   extra=["--trace=" + trace, "--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0, "the traced helper failed")
    with open(trace) as f:
        lines = f.read().splitlines()
    log("--- trace ---\n" + "\n".join(lines))
    opens = [l for l in lines if re.search(r'\] openat\(AT_FDCWD, "' + re.escape(path) +
                                           r'", O_RDONLY\) = 3 <target1 \d+us>$', l)]
    check(len(opens) == 5, f"expected 5 openat lines for {path}, got {len(opens)}")
    reads = [l for l in lines if re.search(r'\] read\(3, "(hello from board-b\\n)?", 4096\) = \d+ '
                                           r'<target1 ', l)]
    check(len(reads) == 10, f"expected 10 read lines, got {len(reads)}")
    closes = [l for l in lines if re.search(r"\] close\(3\) = 0 <target1 ", l)]
    check(len(closes) == 5, f"expected 5 close lines, got {len(closes)}")
    with open(stats) as f:
        data = json.load(f)
    remote = {s["name"]: s for s in data["syscalls"] if s["where"] == "remote"}
    log(json.dumps(data, indent=1))
    check(remote.get("openat", {}).get("calls") == 5, "stats: 5 remote openat")
    check(remote.get("read", {}).get("calls") == 10, "stats: 10 remote reads")
    check(remote.get("close", {}).get("calls") == 5, "stats: 5 remote closes")
    size = len("hello from board-b\n")
    check(remote["read"]["bytes"] == 5 * size, f"stats: {5 * size} bytes read")
    check(remote["openat"]["errors"] == 0, "stats: no errors")


def case_trace_verbose(ctx):
    """--trace with -v: every path call's line says why it went where it went (the rule that
    matched, the scope, the cwd's side, a magic link), and path calls that stayed here are
    traced too as <local>; without -v neither shows."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    here = os.path.join(ctx.tmp, "here")
    os.makedirs(here, exist_ok=True)
    with open(os.path.join(here, "a.txt"), "w") as f:
        f.write("local\n")
    prog = (f"import os\n"
            f"fd = os.open('{WORK}/hello.txt', os.O_RDONLY); os.close(fd)\n"
            f"fd = os.open('{here}/a.txt', os.O_RDONLY); os.close(fd)\n"
            f"os.chdir('{WORK}')\n"
            f"fd = os.open('hello.txt', os.O_RDONLY)\n"
            f"os.stat('/proc/self/fd/%d' % fd)\n"
            f"os.close(fd)\n")
    expect = [
        r'\] openat\(AT_FDCWD, "' + re.escape(WORK) + r'/hello.txt", O_RDONLY\|O_CLOEXEC\) = 3 '
        r'<target1 \d+us> \(no rule; in the scope of target1\)$',
        r'\] openat\(AT_FDCWD, "' + re.escape(here) + r'/a.txt", O_RDONLY\|O_CLOEXEC\) = 3 '
        r'<local> \(rule: local ' + re.escape(here) + r'\)$',
        r'\] chdir\("' + re.escape(WORK) + r'"\) = 0 <target1 \d+us> '
        r'\(no rule; in the scope of target1\)$',
        r'\] openat\(AT_FDCWD, "hello.txt", O_RDONLY\|O_CLOEXEC\) = 3 <target1 \d+us> '
        r'\(relative; the cwd is on target1\)$',
        r'\] newfstatat\(AT_FDCWD, "/proc/self/fd/3", \{st_mode=S_IFREG\|0644, st_size=19, \.\.\.\}, 0\) '
        r'= 0 <target1 \d+us> '
        r'\(a magic link to a remote fd\)$',
        r'<local> \(rule: local /usr\)$',
    ]
    for verbose in (True, False):
        trace = os.path.join(ctx.tmp, "trace.txt")
        t = ctx.traced(agent, [SYS_PYTHON, "-c", prog], timeout=120,
                       extra=["--trace=" + trace, "--local", here, "--local", "/usr"] +
                       (["-v"] if verbose else []))
        log(t.describe())
        check(t.rc == 0, "the traced program failed")
        with open(trace) as f:
            lines = f.read().splitlines()
        log(f"--- trace (-v: {verbose}) ---\n" + "\n".join(lines))
        if verbose:
            for pattern in expect:
                check(any(re.search(pattern, l) for l in lines), f"no trace line matches {pattern}")
        else:
            check(not any("<local>" in l or l.endswith(")") and " (" in l.rsplit(">", 1)[-1]
                          for l in lines), "without -v: no <local> lines and no reasons")
            check(any(re.search(r'\] openat\(AT_FDCWD, "hello.txt", O_RDONLY\|O_CLOEXEC\) = 3 '
                                r'<target1 \d+us>$', l) for l in lines),
                  "without -v the remote open is traced as before")


# Reads a 1 MiB file in 4 KiB os.read()s and prints their count and a digest.
PY_READ_4K = (
    "import hashlib, os\n"
    "fd = os.open('ra.bin', os.O_RDONLY); h = hashlib.sha256(); n = 0\n"
    "while True:\n"
    "    b = os.read(fd, 4096); n += 1\n"
    "    if not b: break\n"
    "    h.update(b)\n"
    "print(n, h.hexdigest())\n")


def case_read_ahead_trace(ctx):
    """Read-ahead shows in --trace and --stats: every read of a 1 MiB file read in 4 KiB pieces
    has its trace line, most of them marked `cached` (answered from the window, no round trip),
    the stats count cached and remote reads apart and they add up; --no-read-ahead sends each
    read to the target. The content is the same in all three runs."""
    agent = ctx.agent()
    empty_tree(agent)
    r = agent.sh(f"head -c 1048576 /dev/urandom > {WORK}/ra.bin")
    check(r.rc == 0, f"making the file failed\n{r.describe()}")
    if ctx.native_only:
        return
    outs = []
    for extra in ([], ["--no-read-ahead"]):
        trace = os.path.join(ctx.tmp, "trace.txt")
        stats = os.path.join(ctx.tmp, "stats.json")
        t = ctx.traced(agent, [SYS_PYTHON, "-c", PY_READ_4K], timeout=120,
                       extra=extra + ["--trace=" + trace, "--stats=" + stats,
                                      "--stats-format=json", "--local", "/usr"])
        log(t.describe())
        check(t.rc == 0, "the traced reader failed")
        outs.append(t.out)
        reads_expected = 1048576 // 4096 + 1
        check(t.out.split()[0] == str(reads_expected), f"expected {reads_expected} reads")
        with open(trace) as f:
            lines = [l for l in f.read().splitlines()
                     if re.search(r'\] read\(3, "(?:[^"\\]|\\.)*"(?:\.\.\.)?, 4096\)', l)]
        cached = [l for l in lines if re.search(r" <target1 cached \d+us>$", l)]
        with open(stats) as f:
            rows = {(s["name"], s["where"]): s for s in json.load(f)["syscalls"]}
        remote = rows.get(("read", "remote"), {}).get("calls", 0)
        from_window = rows.get(("read", "cached"), {}).get("calls", 0)
        log(f"{extra}: {len(lines)} read lines, {len(cached)} cached; stats remote {remote}, "
            f"cached {from_window}")
        check(len(lines) == reads_expected, f"every read must have its trace line: {len(lines)}")
        check(remote + from_window == reads_expected, "stats: remote + cached reads != reads")
        check(from_window == len(cached), "stats and trace disagree on cached reads")
        if extra:
            check(from_window == 0, "--no-read-ahead: no read may be answered from a window")
        else:
            # 3 windows' fetches at most per MiB (128 + 256 + 512 KiB ...) plus the first reads
            # and the final EOF read.
            check(remote <= 10, f"read-ahead must save the round trips: {remote} remote reads")
            bytes_ = rows[("read", "cached")]["bytes"] + rows[("read", "remote")]["bytes"]
            check(bytes_ == 1048576, f"stats: {bytes_} bytes read")
    check(outs[0] == outs[1], "the content differs with and without read-ahead")
    r = agent.sh(f"sha256sum {WORK}/ra.bin")
    check(r.out.split()[0] == outs[0].split()[1], "the digest is not the file's on B")


PY_READ_1M = (
    "import hashlib, os\n"
    "fd = os.open('big.bin', os.O_RDONLY); h = hashlib.sha256(); n = 0\n"
    "while True:\n"
    "    b = os.read(fd, 1048576); n += 1\n"
    "    if not b: break\n"
    "    h.update(b)\n"
    "p = os.pread(fd, 1048576, 5)\n"
    "print(n, h.hexdigest(), len(p), os.lseek(fd, 0, os.SEEK_CUR))\n")


def case_big_read_trace(ctx):
    """Big reads in pipelined chunks (--read-chunk) look like one call each: a 3 MiB + 5 file
    read in 1 MiB reads has one --trace line per read() and one for the pread, --stats counts 5
    remote reads of all the bytes and one pread, none cached; the same without chunks and with
    --no-read-ahead, and the digest is the file's on B."""
    agent = ctx.agent()
    empty_tree(agent)
    r = agent.sh(f"head -c 3145733 /dev/urandom > {WORK}/big.bin")
    check(r.rc == 0, f"making the file failed\n{r.describe()}")
    if ctx.native_only:
        return
    outs = []
    for extra in (["--read-chunk=128"], ["--read-chunk=128", "--no-read-ahead"], []):
        trace = os.path.join(ctx.tmp, "trace.txt")
        stats = os.path.join(ctx.tmp, "stats.json")
        t = ctx.traced(agent, [SYS_PYTHON, "-c", PY_READ_1M], timeout=120,
                       extra=extra + ["--trace=" + trace, "--stats=" + stats,
                                      "--stats-format=json", "--local", "/usr"])
        log(t.describe())
        check(t.rc == 0, "the traced reader failed")
        outs.append(t.out)
        n, _, plen, pos = t.out.split()
        check((n, plen, pos) == ("5", "1048576", "3145733"), f"reads, pread, offset: {t.out}")
        with open(trace) as f:
            text = f.read()
        reads = re.findall(r'\] read\(3, "(?:[^"\\]|\\.)*"(?:\.\.\.)?, 1048576\) = (\d+) '
                           r'<target1 (cached )?\d+us>',
                           text)
        preads = re.findall(r'\] pread64\(3, "(?:[^"\\]|\\.)*"(?:\.\.\.)?, 1048576, 5\) = (\d+) '
                            r'<target1 \d+us>',
                            text)
        log(f"{extra}: reads {reads}, preads {preads}")
        check([r[0] for r in reads] == ["1048576"] * 3 + ["5", "0"],
              f"one trace line per read, with its result: {reads}")
        check(not any(r[1] for r in reads), "a big read is never answered from a window")
        check(preads == ["1048576"], f"one trace line for the pread: {preads}")
        with open(stats) as f:
            rows = {(s["name"], s["where"]): s for s in json.load(f)["syscalls"]}
        read_row = rows.get(("read", "remote"), {})
        check(read_row.get("calls") == 5 and read_row.get("bytes") == 3145733,
              f"stats: {read_row}")
        check(("read", "cached") not in rows, "stats: no cached reads")
        pread_row = rows.get(("pread64", "remote"), {})
        check(pread_row.get("calls") == 1 and pread_row.get("bytes") == 1048576,
              f"stats: {pread_row}")
    check(outs[0] == outs[1] == outs[2], "the content differs with and without chunks")
    r = agent.sh(f"sha256sum {WORK}/big.bin")
    check(r.out.split()[0] == outs[0].split()[1], "the digest is not the file's on B")


def case_two_clients(ctx):
    """Two sbrun sessions on one agent at once: both work, neither disturbs the other, and a POSIX
    lock taken through one session blocks the other (the processes differ, as on one machine)."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    holder = (f"{SYS_PYTHON} -c 'import fcntl, os, sys, time\n"
              "f = open(\"lockfile\", \"w\")\n"
              "fcntl.lockf(f, fcntl.LOCK_EX)\n"
              "print(\"locked\", flush=True)\n"
              "sys.stdin.readline()\n'")
    p = subprocess.Popen(ctx.sbrun_argv(agent, ["sh", "-c", holder]), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: p.poll() is None and p.kill())
    ready, _, _ = select.select([p.stdout], [], [], 30)
    first = p.stdout.readline().decode() if ready else ""
    check(first == "locked\n", f"the first session did not take its lock: {first!r}")
    prober = (f"{SYS_PYTHON} -c 'import fcntl\n"
              "f = open(\"lockfile\", \"w\")\n"
              "try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print(\"got it\")\n"
              "except OSError as e: print(\"refused\", e.errno)\n'; "
              "for i in 1 2 3 4 5; do echo $i > mine.$i; cat mine.$i; done")
    t = ctx.traced(agent, ["sh", "-c", prober], timeout=60)
    log(t.describe())
    p.stdin.write(b"done\n")
    p.stdin.close()
    p.wait(timeout=30)
    check(t.rc == 0, "the second session failed")
    check(t.out.splitlines()[0] == "refused 11", "the second session must see the first's lock")
    check(t.out.splitlines()[1:] == ["1", "2", "3", "4", "5"], "the second session's IO is wrong")
    check(p.returncode == 0, f"the first session ended with {p.returncode}")
    t = ctx.traced(agent, ["sh", "-c", prober.replace("; for i in 1 2 3 4 5; do echo $i > mine.$i; cat mine.$i; done", "")],
                   timeout=60)
    log(t.describe())
    check(t.out.strip() == "got it", "the lock must be free once its session is gone")


def case_sbrun_killed(ctx):
    """sbrun is SIGKILLed under a running program: the program dies with it (PTRACE_O_EXITKILL)
    instead of running on untraced, where every trapped syscall would fail with ENOSYS."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    mark = os.path.join(ctx.tmp, "still-running")
    # The program writes a local mark file every 0.1 s for 30 s: if it survived sbrun, the mark
    # would keep changing after the kill.
    script = f"i=0; while [ $i -lt 300 ]; do echo $i > {mark}; i=$((i+1)); sleep 0.1; done"
    argv = [ctx.sbrun, "--target", agent.url, "--local", ctx.tmp, "--remote-cwd", WORK, "--",
            "sh", "-c", script]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: p.poll() is None and p.kill())
    deadline = time.monotonic() + 20
    while not os.path.exists(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(os.path.exists(mark), "the traced program never started")
    children = run(["pgrep", "-P", str(p.pid)]).out.split()
    check(children, "no traced child under sbrun")
    p.kill()
    p.wait()
    time.sleep(0.5)
    for pid in children:
        alive = os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read()
        check(not alive, f"the program (pid {pid}) outlived sbrun")
    before = open(mark).read()
    time.sleep(0.5)
    check(open(mark).read() == before, "something still writes the mark after sbrun died")


PY_LEASE_HOLD = (
    "import fcntl, os, signal, sys, time\n"
    "signal.signal(signal.SIGIO, signal.SIG_IGN)\n"
    "fd = os.open('leased', os.O_RDWR)\n"
    "fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n")


def case_lease_sbrun_killed(ctx):
    """A lease B granted to a program under sbrun holds an opener on B while the program does
    not answer its break (it ignores SIGIO), and goes with the connection: once sbrun is killed
    the opener on B goes on at once, not after lease-break-time (45 s)."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    agent.sh(f"echo content > {WORK}/leased")
    argv = [ctx.sbrun, "--target", agent.url, "--remote-cwd", WORK, "--",
            SYS_PYTHON, "-c", PY_LEASE_HOLD]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV, cwd=ctx.tmp)
    ctx.cleanups.append(lambda: p.poll() is None and p.kill())
    line = p.stdout.readline().decode()
    if line != "held\n":
        p.kill()
        check(False, f"the program did not take the lease: {line!r}\n"
              + p.communicate()[1].decode())
    opener = agent.spawn(["sh", "-c", f"exec 3< {WORK}/leased; echo opened"])
    time.sleep(1.0)
    check(opener.poll() is None, "the opener on B did not wait for the lease's break")
    start = time.monotonic()
    p.kill()
    p.wait()
    try:
        out, _ = opener.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        check(False, "the opener on B still waits after sbrun died: the lease outlived its "
              "session")
    took = time.monotonic() - start
    log(f"the opener went on {took:.1f} s after sbrun died")
    check(opener.returncode == 0 and out.decode() == "opened\n", f"the opener failed: {out!r}")
    check(took < 10, f"the opener waited {took:.1f} s: the lease outlived its session")


# ---------------------------------------------------------------------------------------------
# Losing and regaining B (issue 7, docs/failure-semantics.md): the agent is killed, frozen or
# restarted under a running program. tests/integration/reconnect_probe.c is the program; the
# agent is target "b" so that the status events read "disconnected b".

LOST = "lost the connection to target 'b'"
BACK = "reconnected to target 'b'"
# A program that exits 0 after an outage in fail mode: sbrun exits 122 (and says why).
OUTAGE_EXIT = 122
OUTAGE_MSG = "but target 'b' was lost 1 time(s) during the run; exiting 122"


class Traced:
    """A traced program in the background: stdout read line by line with deadlines (each line
    with the time it arrived), stdin for answers, stderr kept for the end."""

    def __init__(self, argv, cwd, pass_fds=()):
        self.argv = argv
        log("$ " + shlex.join(argv))
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.errf, env=ENV, cwd=cwd, start_new_session=True,
                                  pass_fds=pass_fds)
        self.buf = b""
        self.lines = []   # (arrival time, line)
        self.rc = None

    def line(self, secs, what):
        """The next stdout line within secs (None at the end of the output)."""
        deadline = time.monotonic() + secs
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"no output for {secs} s while waiting for {what} (hang?)\n"
                              + self.describe())
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                if not self.buf:
                    return None
                self.buf += b"\n"
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\n")
        text = raw.decode(errors="replace")
        self.lines.append((time.monotonic(), text))
        return text

    def until(self, pred, secs, what):
        """Reads lines until pred(line); returns that line. The output ending first fails."""
        deadline = time.monotonic() + secs
        while True:
            text = self.line(max(0.1, deadline - time.monotonic()), what)
            if text is None:
                raise Failure(f"the program ended while waiting for {what}\n" + self.describe())
            if pred(text):
                return text

    def say(self, text):
        self.p.stdin.write((text + "\n").encode())
        self.p.stdin.flush()

    def finish(self, secs, what="the end"):
        """Reads the rest; sbrun must exit within secs. Returns its exit status."""
        deadline = time.monotonic() + secs
        try:
            self.p.stdin.close()
        except OSError:
            pass
        while self.line(max(0.1, deadline - time.monotonic()), what) is not None:
            pass
        try:
            self.rc = self.p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Failure(f"sbrun did not exit within {secs} s (hang?)\n" + self.describe())
        return self.rc

    def out(self):
        return "".join(l + "\n" for _, l in self.lines)

    def err(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()

    def describe(self):
        return (f"$ {shlex.join(self.argv)}\nexit {self.p.poll()}\n--- stdout ---\n{self.out()}"
                f"--- stderr ---\n{self.err()}--- end ---")


def probe_path(ctx):
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "reconnect_probe"))
    need_binary(helper, "helper reconnect_probe (--helpers-dir)")
    need_binary(ctx.sbrun, "sbrun")
    return helper


def traced_b(ctx, agent, argv, extra=(), pass_fds=()):
    """sbrun with the agent as target b, cwd WORK on B, running argv (a Traced)."""
    t = Traced([ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", WORK] + list(extra)
               + ["--"] + list(argv), cwd=ctx.tmp, pass_fds=pass_fds)
    ctx.cleanups.append(t.kill)
    return t


def check_reported(t, drops, backs=None):
    """sbrun said each disconnect and each reconnect exactly once on stderr."""
    err = t.err()
    lost, back = err.count(LOST), err.count(BACK)
    check(lost == drops, f"expected {drops} disconnect message(s), got {lost}\n{err}")
    if backs is not None:
        check(back == backs, f"expected {backs} reconnect message(s), got {back}\n{err}")


def control_pair():
    """A socketpair for --control-fd: (ours, theirs); the status events arrive on ours."""
    ours, theirs = socket.socketpair()
    return ours, theirs


def events_on(sock):
    sock.setblocking(False)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    return data.decode(errors="replace").split("\n")[:-1]


def synced_values(t):
    return [int(l.split()[1]) for _, l in t.lines if l.startswith("synced ")]


def check_file_holds(agent, path, values):
    r = agent.sh(f"cat {shlex.quote(path)}")
    check(r.rc == 0, f"cannot read {path} on B\n{r.describe()}")
    on_b = [int(x) for x in r.out.split()]
    missing = sorted(set(values) - set(on_b))
    check(not missing, f"{len(missing)} fsynced values missing on B: {missing[:20]}")
    return on_b


def case_reconnect_wait(ctx):
    """The issue's demonstration: a program appends a counter to a file on B and fsyncs it, 400
    times; the agent is killed (-9) mid-loop and restarted on the same socket 0.5 s later. With
    --on-disconnect=wait the program finishes, and the file on B holds every value that was
    fsynced. sbrun reports the disconnect and the reconnect once each, on stderr and as status
    events."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    empty_tree(agent)
    if ctx.native_only:
        return
    ours, theirs = control_pair()
    t = traced_b(ctx, agent, [helper, "counter", WORK + "/count.txt", "400"],
                 extra=["--on-disconnect=wait", "--control-fd", str(theirs.fileno())],
                 pass_fds=(theirs.fileno(),))
    theirs.close()
    t.until(lambda l: l.startswith("synced 100 "), 60, "synced 100")
    agent.kill(signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(0.5)
    agent.restart()
    restarted = time.monotonic()
    after = t.until(lambda l: l.startswith("synced "), 30, "progress after the restart")
    resumed = time.monotonic()
    rc = t.finish(60)
    log(t.describe())
    check(rc == 0, "the program must finish")
    values = synced_values(t)
    check(values == list(range(1, 401)), "every value 1..400 must be synced once, in order")
    on_b = check_file_holds(agent, WORK + "/count.txt", values)
    errors = [l for _, l in t.lines if l.startswith("error ")]
    log(f"[reconnect] killed at 0, restarted at {restarted - killed:.2f} s, progress again at "
        f"{resumed - killed:.2f} s ({after}); errors the program saw: {errors}; "
        f"{len(on_b)} lines on B ({len(on_b) - len(set(on_b))} written twice: a write that "
        "failed with EIO when the connection went may have reached B)")
    check(all(" EIO " in e for e in errors), "only EIO, and only for the call in flight")
    check(len(errors) <= 1, "at most the one call in flight fails")
    check_reported(t, 1, 1)
    events = events_on(ours)
    check(events == ["disconnected b", "reconnected b"], f"status events: {events}")


def case_reconnect_fail(ctx):
    """--on-disconnect=fail (the default): the agent is killed under a program holding a remote
    fd: the fd and new opens fail with EIO while B is away; once the agent is restarted on the
    same socket, new opens work at once (the call reconnects), the old fd stays EIO (read, fstat,
    lseek, write, a dup of it) until it is closed, and close succeeds. Relative paths resolve in
    the same working directory, found again on B by its path."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return

    def on_sync(tag):
        if tag == "opened":
            agent.kill(signal.SIGKILL)
            agent.proc.wait(10)
        elif tag == "away":
            agent.restart()
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", WORK, "--",
            helper, "stale", WORK + "/hello.txt", WORK + "/sub/a.txt"]
    r = converse(argv, on_sync, timeout=60, cwd=ctx.tmp)
    log(r.describe())
    check(r.rc == OUTAGE_EXIT and "ALL OK" in r.out,
          "the program saw something else than documented (or sbrun did not exit "
          f"{OUTAGE_EXIT} for the outage)")
    check(OUTAGE_MSG in r.err, "sbrun must say why it exits 122")
    check("relative content: hello from board-b" in r.out and f"cwd: {WORK}" in r.out,
          "relative paths after the reconnect must resolve in the same directory")
    check(r.err.count(LOST) == 1 and r.err.count(BACK) == 1,
          "one disconnect and one reconnect message")


def killed_mid_read(agent, t, what):
    """Kills `agent` while `t` (the reconnect probe) waits in a read: the read fails with EIO
    within 2 s, the program exits 0, and sbrun reports the disconnect once."""
    t.until(lambda l: l.startswith("reading"), 30, "the read")
    time.sleep(0.5)   # the read is in the agent now
    agent.kill(signal.SIGKILL)
    killed = time.monotonic()
    ended = t.until(lambda l: l.startswith("read "), 10, "the read's end")
    secs = float(ended.split()[-1]) - killed
    rc = t.finish(10)
    log(t.describe() + f"\n[reconnect] {what} failed {secs:.3f} s after the kill")
    check(ended.startswith("read EIO"), "the read must fail with EIO")
    check(rc == OUTAGE_EXIT, f"the program must see EIO and exit 0, and sbrun {OUTAGE_EXIT}")
    check(secs < 2, f"the read took {secs:.2f} s to fail")
    check_reported(t, 1)


def case_agent_killed_mid_read(ctx):
    """The agent is SIGKILLed while a program's read waits in it (an empty FIFO on B): the read
    fails with EIO at once, and sbrun exits with the program; nothing hangs."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    empty_tree(agent)
    if ctx.native_only:
        return
    check(agent.sh(f"mkfifo {WORK}/ff").rc == 0, "mkfifo on B failed")
    t = traced_b(ctx, agent, [helper, "block", WORK + "/ff"])
    killed_mid_read(agent, t, "the read")


def case_agent_killed_mid_big_read(ctx):
    """The agent is SIGKILLed while a program streams a regular file in 1 MiB reads (each one
    several pipelined chunks, --read-chunk): the read in flight fails with EIO, or returns the
    bytes of the chunks that had arrived and the next read fails with EIO; within 2 s, and sbrun
    exits with the program."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    empty_tree(agent)
    if ctx.native_only:
        return
    r = agent.sh(f"head -c 8388608 /dev/urandom > {WORK}/big.bin")
    check(r.rc == 0, f"making the file failed\n{r.describe()}")
    t = traced_b(ctx, agent, [helper, "bigreads", WORK + "/big.bin"], extra=["--read-chunk=128"])
    killed_mid_read(agent, t, "the big reads")


def case_agent_stopped(ctx):
    """A frozen agent (SIGSTOP: no FIN, no RST) is found by the heartbeat: with --heartbeat=2 a
    program's pread in flight fails with EIO within 2 s (plus scheduling slack). Once the agent
    runs again it sees the closed connection and ends the session: its fds and processes are as
    before."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    before = agent_state(agent)
    t = traced_b(ctx, agent, [helper, "preads", WORK + "/hello.txt"], extra=["--heartbeat=2"])
    t.until(lambda l: l.startswith("reading"), 30, "the reads")
    time.sleep(1)
    agent.kill(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        ended = t.until(lambda l: l.startswith("pread "), 15, "the heartbeat's verdict")
    finally:
        agent.kill(signal.SIGCONT)
    secs = float(ended.split()[-1]) - stopped
    rc = t.finish(10)
    log(t.describe() + f"\n[reconnect] a frozen agent found after {secs:.3f} s (--heartbeat=2)")
    check(ended.startswith("pread EIO"), "the read in flight must fail with EIO")
    check(rc == OUTAGE_EXIT, f"the program must see EIO and exit 0, and sbrun {OUTAGE_EXIT}")
    check(secs <= 2.0 + 1.0, f"found after {secs:.2f} s: more than the heartbeat allows")
    check_reported(t, 1)
    ok = wait_for(lambda: not state_diff(before, agent_state(agent)), 10)
    check(ok, "the resumed agent still holds the session:\n"
          + state_diff(before, agent_state(agent)))


def case_agent_frozen_calls(ctx):
    """A frozen agent (SIGSTOP) under the default --on-disconnect=fail: once sbrun has declared
    the link lost (--heartbeat=1), a three-line script (a remote cat, a remote uname, a remote
    cat) ends in under 5 s: each call fails at once instead of waiting for a reconnect attempt
    that a frozen agent accepts but never answers (10 s each before). The script exits 0, and
    sbrun exits 122 and says why."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    t = traced_b(ctx, agent, ["sh", "-c", "cat hello.txt; read x; cat hello.txt; uname -n; "
                              "cat sub/a.txt; echo done"], extra=["--heartbeat=1"])
    t.until(lambda l: l.startswith("hello"), 30, "the first cat")
    agent.kill(signal.SIGSTOP)
    try:
        check(wait_for(lambda: LOST in t.err(), 10), "sbrun did not find the frozen agent\n"
              + t.describe())
        t.say("go")
        went = time.monotonic()
        t.until(lambda l: l == "done", 30, "the script's end")
        took = time.monotonic() - went
        rc = t.finish(10)
    finally:
        agent.kill(signal.SIGCONT)
    log(t.describe() + f"\n[outage] three remote commands against a frozen agent: {took:.2f} s")
    check(took < 5, f"the script took {took:.1f} s against a frozen agent")
    check(rc == OUTAGE_EXIT, f"sbrun must exit {OUTAGE_EXIT} after an outage")
    check(OUTAGE_MSG in t.err(), "sbrun must say why it exits 122")
    check_reported(t, 1)


def case_on_disconnect_exit(ctx):
    """--on-disconnect=exit: the agent is killed under a program that sleeps after reading a
    file on B: the program is ended at once (it never prints again), sbrun says so and exits
    122; in wait mode a program that finishes after an outage keeps its own status
    (reconnect-wait)."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    prog = ("import time\nprint(open('hello.txt').read().strip(), flush=True)\n"
            "time.sleep(60)\nprint('survived', flush=True)\n")
    t = traced_b(ctx, agent, ["python3", "-c", prog], extra=["--on-disconnect=exit"])
    t.until(lambda l: l.startswith("hello"), 30, "the read")
    agent.kill(signal.SIGKILL)
    killed = time.monotonic()
    rc = t.finish(20)
    took = time.monotonic() - killed
    log(t.describe() + f"\n[outage] sbrun exited {took:.2f} s after the agent was killed")
    check(rc == OUTAGE_EXIT, f"sbrun must exit {OUTAGE_EXIT}")
    check("survived" not in t.out(), "the program ran on after the disconnect")
    check("ending the program (--on-disconnect=exit)" in t.err(), "sbrun must say why")
    check(took < 10, f"sbrun took {took:.1f} s to end the program")
    r = run([ctx.sbrun, "--on-disconnect=never", "--", "true"], timeout=30)
    check(r.rc == 125 and "'fail', 'wait' or 'exit'" in r.err, "a bad mode must be refused\n"
          + r.describe())


def case_signals_forwarded(ctx):
    """SIGINT, SIGTERM and SIGHUP sent to sbrun alone (kill, a CI runner's timeout) reach the
    program once: its handler runs, it exits 3, and so does sbrun."""
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        prog = ("import os, signal, time\n"
                "def on(n, f):\n    os.write(1, f'got {signal.Signals(n).name}\\n'.encode())\n"
                "    os._exit(3)\n"
                f"signal.signal({int(sig)}, on)\n"
                "print(open('hello.txt').read().strip(), flush=True)\ntime.sleep(60)\n")
        t = traced_b(ctx, agent, ["python3", "-c", prog])
        t.until(lambda l: l.startswith("hello"), 30, "the read")
        os.kill(t.p.pid, sig)
        rc = t.finish(20)
        log(t.describe())
        got = [l for _, l in t.lines if l.startswith("got")]
        check(got == [f"got {sig.name}"], f"{sig.name} to sbrun: the program saw {got}")
        check(rc == 3, f"{sig.name}: sbrun must exit with the program's status 3, not {rc}")


def case_reconnect_eintr(ctx):
    """--on-disconnect=wait: a call waiting for B is interrupted by a signal as the kernel's own
    waits are: EINTR without SA_RESTART; with SA_RESTART the call restarts and succeeds once B
    is back; past --reconnect-timeout (5 s here) calls fail with ETIMEDOUT."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    import threading
    timers = []

    def on_sync(tag):
        if tag in ("ready", "timeout"):
            agent.kill(signal.SIGKILL)
            agent.proc.wait(10)
        elif tag == "restart":
            th = threading.Timer(2.0, agent.restart)
            th.start()
            timers.append(th)
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", WORK,
            "--on-disconnect=wait", "--reconnect-timeout=5", "--", helper, "eintr",
            WORK + "/hello.txt"]
    try:
        r = converse(argv, on_sync, timeout=60, cwd=ctx.tmp)
    finally:
        for th in timers:
            th.join()
    log(r.describe())
    check(r.rc == 0 and "ALL OK" in r.out, "the program saw something else than documented")
    m = re.search(r"past the timeout: open ETIMEDOUT after ([0-9.]+) s", r.out)
    check(m and float(m.group(1)) <= 6, "ETIMEDOUT must come at the timeout")
    check(r.err.count(LOST) == 2 and r.err.count(BACK) == 1, "messages: two drops, one return")


def case_reconnect_children(ctx):
    """A remote program started before the disconnect (`sleep 30` on B) is reported to its
    parent as killed by SIGHUP (status 129 in the shell), and it is gone from B; programs
    started after the reconnect run on B again."""
    need_binary(ctx.sbrun, "sbrun")
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    empty_tree(agent)
    if ctx.native_only:
        return

    def on_sync(tag):
        check_runs_on_b(agent, ["sleep", "30"], "before the kill")
        agent.kill(signal.SIGKILL)
        agent.proc.wait(10)
        agent.restart()
    script = ("sleep 30 & echo SYNC started; read x; wait $!; echo \"status $?\"; uname -n; "
              "cat /etc/hostname")
    argv = [ctx.sbrun, "--target", f"b={agent.url}", "--remote-cwd", WORK, "--",
            "sh", "-c", script]
    r = converse(argv, on_sync, timeout=60, cwd=ctx.tmp)
    log(r.describe())
    check(r.rc == OUTAGE_EXIT, f"the shell failed (or sbrun did not exit {OUTAGE_EXIT})")
    check(r.out == f"status 129\n{B_HOSTNAME}\n{B_HOSTNAME}\n",
          "expected status 129 (SIGHUP) for the lost program, then B's name from new programs")
    check(not b_running(agent, ["sleep", "30"]), "the lost program still runs on B")


def case_reconnect_cycles(ctx):
    """100 back-to-back kill -9 / restart cycles (at least 50 if the machine is slow: at most
    50 s) under one sbrun (--on-disconnect=wait) whose program appends and fsyncs a counter all
    along: after each restart the program fsyncs a value on the new agent within 10 s (no hang),
    every fsynced value is on B, sbrun reports each disconnect and reconnect once, and its own
    fds, children and threads are the same after the last cycle as after the first (no leak)."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    empty_tree(agent)
    if ctx.native_only:
        return
    t = traced_b(ctx, agent, [helper, "loop", WORK + "/count.txt"],
                 extra=["--on-disconnect=wait"])
    t.until(lambda l: l.startswith("synced "), 30, "the first value")
    sbrun_pid = t.p.pid

    def sbrun_state():
        fds = len(os.listdir(f"/proc/{sbrun_pid}/fd"))
        threads = len(os.listdir(f"/proc/{sbrun_pid}/task"))
        children = [p for p in proc_table().values() if p["ppid"] == sbrun_pid]
        with open(f"/proc/{sbrun_pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return {"fds": fds, "threads": threads, "children": len(children), "rss_kb": rss}

    start = time.monotonic()
    cycles, gaps, states = 0, [], []
    while cycles < 100 and time.monotonic() - start < 50:
        agent.kill(signal.SIGKILL)
        killed = time.monotonic()
        agent.restart()
        # Progress on the new agent: a value whose write began after it started (the old one is
        # reaped). Not the time the fsync returned: the program may be descheduled between the
        # old agent's answer and its clock reading.
        restarted = time.monotonic()
        line = t.until(lambda l: l.startswith("synced ") and float(l.split()[3]) > restarted,
                       10, f"progress after restart {cycles + 1}")
        gaps.append(float(line.split()[2]) - killed)
        cycles += 1
        states.append(sbrun_state())
    rc = t.finish(30)
    log(t.describe().splitlines()[0])
    values = synced_values(t)
    check(rc == 0 and t.lines[-1][1] == "done", f"the program did not end well (exit {rc})")
    check(values == list(range(1, len(values) + 1)), "synced values must go 1, 2, 3... once each")
    check_file_holds(agent, WORK + "/count.txt", values)
    err = t.err()
    lost, back = err.count(LOST), err.count(BACK)
    errors = [l for _, l in t.lines if l.startswith("error ")]
    log(f"[reconnect] {cycles} kill/restart cycles in {time.monotonic() - start:.1f} s, 0 hangs; "
        f"kill to the first value fsynced on the new agent: min {min(gaps):.2f} s, median {sorted(gaps)[len(gaps) // 2]:.2f} s, "
        f"max {max(gaps):.2f} s; {len(values)} values synced; {len(errors)} calls failed "
        f"(in flight at a kill); messages: {lost} lost, {back} reconnected")
    log(f"[reconnect] sbrun after cycle 1: {states[0]}; after cycle {cycles}: {states[-1]}")
    check(cycles >= 50, f"only {cycles} cycles in 50 s")
    check(lost == cycles and back == cycles, "one disconnect and one reconnect message per cycle")
    for key in ("fds", "threads", "children"):
        check(states[-1][key] == states[0][key],
              f"sbrun leaks {key}: {states[0][key]} after cycle 1, {states[-1][key]} at the end")
    check(states[-1]["rss_kb"] < states[0]["rss_kb"] + 16 * 1024,
          f"sbrun's memory grew by {states[-1]['rss_kb'] - states[0]['rss_kb']} KiB")
    check(wait_for(lambda: not b_processes(agent), 10),
          f"left running on B: {[p['argv'] for p in b_processes(agent)]}")


def case_kill_cleanup(ctx):
    """The agent cleans a session within a bound when its program dies mid-call: every traced
    process SIGKILLed while one waits in a remote FIFO read and a remote `sleep 300` runs (the
    tracees die, sbrun ends the session), and sbrun itself SIGKILLed in the same state (the
    kernel closes the connection). Both times the agent's fds, children and processes on B come
    back to their baseline; the times are printed."""
    helper = probe_path(ctx)
    agent = ctx.agent()
    make_tree(agent)
    if ctx.native_only:
        return
    # The first session may leave what the agent sets up once (see agent-clean).
    t = ctx.traced(agent, ["cat", "hello.txt"], timeout=60)
    check(t.rc == 0, "warm-up session failed\n" + t.describe())
    wait_for(lambda: not agent_state(agent)["children"], 10)
    time.sleep(0.5)
    baseline = agent_state(agent)
    check(agent.sh(f"mkfifo {WORK}/ff").rc == 0, "mkfifo on B failed")

    def busy():
        t = traced_b(ctx, agent, ["sh", "-c", f"sleep 300 & exec {helper} block {WORK}/ff"])
        t.until(lambda l: l.startswith("reading"), 30, "the read")
        check_runs_on_b(agent, ["sleep", "300"], "busy session")
        time.sleep(0.5)
        return t

    def settled(what, since):
        ok = wait_for(lambda: not state_diff(baseline, agent_state(agent)), 10, step=0.02)
        secs = time.monotonic() - since
        check(ok, f"after {what} the agent still holds:\n"
              + state_diff(baseline, agent_state(agent)))
        log(f"[reconnect] {what}: the agent was back to its baseline {secs:.2f} s later")
        return secs

    # Every tracee (the probe, the stub of the remote sleep), not sbrun.
    t = busy()
    table = proc_table()
    tracees = [p for p in table if p != t.p.pid and descends_from(table, p, t.p.pid)]
    check(tracees, "no traced processes under sbrun")
    for pid in tracees:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    rc = t.finish(10, "sbrun's exit after its tracees died")
    log(f"sbrun exit {rc}")
    settled("tracees killed mid-call", killed)

    t = busy()
    os.kill(t.p.pid, signal.SIGKILL)
    killed = time.monotonic()
    t.p.wait(10)
    settled("sbrun killed mid-call", killed)
    check(agent.alive(), "the agent died\n" + agent.log_tail())


def case_reconnect_local(ctx):
    """The embedded agent (--target local:ROOT) is SIGKILLed under a program writing and
    fsyncing a counter (--on-disconnect=wait): sbrun starts a new one and the program finishes
    with every fsynced value in the file."""
    helper = probe_path(ctx)
    if ctx.native_only:
        return
    root = os.path.join(ctx.tmp, "root")
    os.makedirs(root + "/work")
    t = Traced([ctx.sbrun, "--target", f"b=local:{root}", "--remote-cwd", "/work",
                "--on-disconnect=wait", "--", helper, "counter", "/work/count.txt", "300"],
               cwd=ctx.tmp)
    ctx.cleanups.append(t.kill)
    t.until(lambda l: l.startswith("synced 50 "), 60, "synced 50")
    agents = [p for p in proc_table().values()
              if p["ppid"] == t.p.pid and os.path.basename(p["argv"][0] if p["argv"] else "")
              == "sbagent"]
    check(len(agents) == 1, f"expected one embedded agent under sbrun: {agents}")
    os.kill(agents[0]["pid"], signal.SIGKILL)
    rc = t.finish(60)
    log(t.describe())
    check(rc == 0, "the program must finish")
    values = synced_values(t)
    check(values == list(range(1, 301)), "every value synced once, in order")
    with open(root + "/work/count.txt") as f:
        on_disk = [int(x) for x in f.read().split()]
    check(set(values) <= set(on_disk), "fsynced values are missing from the file")
    check_reported(t, 1, 1)
    now = [p for p in proc_table().values()
           if os.path.basename(p["argv"][0] if p["argv"] else "") == "sbagent"
           and p["argv"][-2:] == ["--root", root]]
    check(not now, f"an embedded agent outlived sbrun: {now}")


# ---------------------------------------------------------------------------------------------
# Processes (DESIGN D7): a program that a traced process execs inside a remote scope runs on B;
# locally a stub stands in for it (waitpid, kill and stdio work on the stub).

def case_exec_hostname(ctx):
    """`sh -c 'uname -n; cat /etc/hostname | tr a-z A-Z; exit 3'`: the shell runs on A, the
    programs it starts run on B (B's name twice, the second through a local pipe between two
    remote programs), and sbrun exits with the shell's 3. That output alone could come from
    local programs whose syscalls are redirected, so the case also asks an exec'd readlink for
    /proc/self/ns/mnt, which only a process on B answers with B's mount namespace."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    with open("/etc/hostname") as f:
        a_name = f.read().strip()
    check(a_name.upper() != B_HOSTNAME.upper(), f"A's /etc/hostname already says {a_name!r}")
    want = f"{B_HOSTNAME}\n{B_HOSTNAME.upper()}\n"

    def on_b(out, who):
        check(out == want, f"{who}: expected {want!r}, got {out!r}")
    differential(ctx, "uname -n; cat /etc/hostname | tr a-z A-Z; exit 3", expect_rc=3,
                 check_out=on_b, agent=agent)

    where = ("readlink /proc/self/ns/mnt; readlink /proc/self/ns/mnt | cat; "
             "sh -c 'readlink /proc/self/ns/mnt'")
    a_ns = os.readlink("/proc/self/ns/mnt")
    check(a_ns != agent.mntns, "the agent shares A's mount namespace")
    native = agent.sh(where)
    log(f"[native on B]\n{native.describe()}")
    check(native.rc == 0 and native.out.split() == [agent.mntns] * 3,
          f"harness: a native readlink on B does not name B's mount namespace {agent.mntns}")
    if ctx.native_only:
        return
    t = ctx.traced(agent, ["sh", "-c", where], timeout=60)
    log(f"[traced via sbrun]\n{t.describe()}")
    check(t.rc == 0 and t.out.split() == [agent.mntns] * 3,
          f"the programs the shell started did not run on B: B is {agent.mntns}, A is {a_ns}")


PY_SUBPROCESS = r"""
import errno, os, subprocess, sys

def sync(tag):
    # The harness looks at B's processes, then answers.
    print("SYNC", tag, flush=True)
    if sys.stdin.readline() != "go\n":
        sys.exit("no answer from the harness at " + tag)

r = subprocess.run(["uname", "-n"], capture_output=True)
print("uname -n:", r.stdout, r.returncode, r.stdout == b"board-b\n")
# stdin from /dev/null: the harness answers on this script's stdin, and a stub pumps its local
# stdin to B as soon as its program starts, like ssh without -n (docs/user-guide.md), so it would
# race the script for the harness's "go".
p = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
sync("sleep-running")
p.kill()
print("Popen(sleep 30).kill(); wait():", p.wait())
sync("sleep-killed")
p = subprocess.Popen(["sleep", "31"])
p.terminate()
print("Popen(sleep 31).terminate(); wait():", p.wait())
print('os.system("exit 7") >> 8:', os.system("exit 7") >> 8)
print("sh -c 'kill -TERM $$':", subprocess.run(["sh", "-c", "kill -TERM $$"]).returncode)
r = subprocess.run(["sh", "-c", "echo to stdout; echo to stderr >&2; exit 4"], capture_output=True)
print("capture_output:", r.stdout, r.stderr, r.returncode)
r = subprocess.run(["tr", "a-z", "A-Z"], input=b"through pipes both ways\n", capture_output=True)
print("tr:", r.stdout, r.returncode)
data = bytes(range(256)) * 2000
r = subprocess.run(["cat"], input=data, capture_output=True)
print("cat of", len(data), "bytes:", len(r.stdout), r.stdout == data, r.returncode)
print("check_output cat hello.txt:", subprocess.check_output(["cat", "hello.txt"]))
r = subprocess.run(["./exec.sh"], capture_output=True)
print("./exec.sh (a script in the work dir):", r.stdout)
with open("spawned.txt", "w") as f:
    rc = subprocess.run(["echo", "stdout on a file in the work dir"], stdout=f).returncode
with open("spawned.txt") as f:
    print("stdout=file:", rc, f.read().strip())
print("cwd=sub:", subprocess.run(["ls"], cwd="sub", capture_output=True).stdout)
r = subprocess.run("echo $((6*7)) | tr 0-9 a-j", shell=True, capture_output=True)
print("shell=True:", r.stdout)
for argv in (["sb-no-such-program-3"], ["./ro.txt"], ["./sub"]):
    try:
        subprocess.run(argv)
        print(argv[0], "ran")
    except OSError as e:
        print(argv[0], "->", errno.errorcode[e.errno])
"""

PY_SUBPROCESS_OUT = """\
uname -n: b'board-b\\n' 0 True
Popen(sleep 30).kill(); wait(): -9
Popen(sleep 31).terminate(); wait(): -15
os.system("exit 7") >> 8: 7
sh -c 'kill -TERM $$': -15
capture_output: b'to stdout\\n' b'to stderr\\n' 4
tr: b'THROUGH PIPES BOTH WAYS\\n' 0
cat of 512000 bytes: 512000 True 0
check_output cat hello.txt: b'hello from board-b\\n'
./exec.sh (a script in the work dir): b'run\\n'
stdout=file: 0 stdout on a file in the work dir
cwd=sub: b'a.txt\\nb.txt\\ndeep\\nhl\\n'
shell=True: b'ec\\n'
sb-no-such-program-3 -> ENOENT
./ro.txt -> EACCES
./sub -> EACCES
"""


def case_py_subprocess(ctx):
    """python3's subprocess under sbrun: run/Popen/os.system start their programs on B; kill and
    terminate reach the program on B (while the script waits, the harness sees `sleep 30` running
    on B, and gone once wait() returned -9); exit codes, deaths by signal, pipes both ways, stdout
    on a remote file, cwd, a script that exists only on B, exec errors as on B."""
    agent = ctx.agent()
    argv = [SYS_PYTHON, "-c", PY_SUBPROCESS]

    def on_sync(who):
        def fn(tag):
            if tag == "sleep-running":
                check_runs_on_b(agent, ["sleep", "30"], who)
            elif tag == "sleep-killed":
                check(wait_for(lambda: not b_running(agent, ["sleep", "30"]), 5),
                      f"{who}: `sleep 30` still on B after kill() and wait(): "
                      f"{b_running(agent, ['sleep', '30'])}")
            else:
                raise Failure(f"{who}: unknown sync {tag!r}")
        return fn

    make_tree(agent)
    prove_remote(agent)
    native = converse(["nsenter", "-t", str(agent.proc.pid), "-m", "-u", "--", "env", "-C", WORK]
                      + argv, on_sync("native"), timeout=60)
    log(f"[native on B]\n{native.describe()}")
    check(native.rc == 0 and native.out == PY_SUBPROCESS_OUT,
          "native run: not the expected output (the harness or the script is wrong)\n"
          + diff(PY_SUBPROCESS_OUT.splitlines(), native.out.splitlines(), "expected", "native"))
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    make_tree(agent)
    traced = converse(ctx.sbrun_argv(agent, argv), on_sync("sbrun"), timeout=90, cwd=ctx.tmp)
    log(f"[traced via sbrun]\n{traced.describe()}")
    check(agent.alive(), "the agent died during the traced run\n" + agent.log_tail())
    problems = []
    if traced.out != native.out:
        problems.append("stdout differs:\n" + diff(native.out.splitlines(),
                                                   traced.out.splitlines(), "native", "sbrun"))
    if traced.rc != native.rc:
        problems.append(f"exit status differs: native {native.rc}, sbrun {traced.rc}")
    if problems:
        raise Failure("\n\n".join(problems) + "\n" + agent.log_tail())


B_ONLY_SETUP = " && ".join([
    "mkdir bin", "cp /bin/sh bin/bsh",
    "printf %s " + shlex.quote('#!/bin/sh\necho "script 0=$0 1=$1"; uname -n; cat /etc/hostname\n')
    + " > bonly.sh",
    "printf %s " + shlex.quote(f'#!{WORK}/bin/bsh\necho "$0 run by an interpreter only B has"\n')
    + " > viabsh.sh",
    "printf %s " + shlex.quote('#!/bin/sh\necho "bonly-cmd found in PATH"; exit 5\n')
    + " > bin/bonly-cmd",
    "chmod 755 bonly.sh viabsh.sh bin/bonly-cmd"])

B_ONLY_CMD = (f"./bonly.sh first; {WORK}/bonly.sh second; sh -c './bonly.sh third'; ./viabsh.sh; "
              f"PATH={WORK}/bin:$PATH bonly-cmd; echo rc=$?; "
              "rm bonly.sh; ./bonly.sh 2>&1; echo rc=$?")

B_ONLY_OUT = (f"script 0=./bonly.sh 1=first\n{B_HOSTNAME}\n{B_HOSTNAME}\n"
              f"script 0={WORK}/bonly.sh 1=second\n{B_HOSTNAME}\n{B_HOSTNAME}\n"
              f"script 0=./bonly.sh 1=third\n{B_HOSTNAME}\n{B_HOSTNAME}\n"
              "./viabsh.sh run by an interpreter only B has\n"
              "bonly-cmd found in PATH\nrc=5\n"
              "sh: 1: ./bonly.sh: not found\nrc=127\n")


def case_exec_b_only(ctx):
    """`#!` scripts that exist only on B (in its tmpfs) run there, by relative and absolute path,
    from a nested shell, with an interpreter that also exists only on B, and found through a PATH
    entry that only B has; once removed, the shell says `not found` (ENOENT) as on B."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)

    def expected(out, who):
        check(out == B_ONLY_OUT, f"{who}: not the expected output\n"
              + diff(B_ONLY_OUT.splitlines(), out.splitlines(), "expected", who))
    differential(ctx, B_ONLY_CMD, setup=B_ONLY_SETUP, check_out=expected, expect_rc=0,
                 agent=agent, timeout=60)
    check(not os.path.exists(WORK + "/bonly.sh"), "the script is visible on A")


# Run by bash (the launched program, on A), so that PIPESTATUS shows how each remote program of
# a pipeline ended: yes and sort die of SIGPIPE (141) once head has gone, as on B. tr reads the
# harness's stdin first: a stub may drain stdin for a remote program that never reads it (yes),
# as `ssh host cmd` does, and that is not what this case is about.
PIPELINE_CMD = ("tr a-z A-Z; echo \"status $?\"; "
                "yes | head -1; echo \"statuses ${PIPESTATUS[*]}\"; "
                "yes | head -c 5; s=\"${PIPESTATUS[*]}\"; echo; echo \"statuses $s\"; "
                "seq 1 200000 | sort -rn | head -3; echo \"statuses ${PIPESTATUS[*]}\"; "
                "cat data.bin | sha256sum; "
                "yes abc | tr a-z A-Z | head -2; echo \"statuses ${PIPESTATUS[*]}\"")
PIPELINE_OUT = ("FROM THE HARNESS STDIN\nstatus 0\n"
                "y\nstatuses 141 0\ny\ny\ny\nstatuses 141 0\n200000\n199999\n199998\n"
                "statuses 0 141 0\n"
                "6b4e3f3d1dee15db72c519f5962bad253dfc7d4183d7e30e656259ce1eeab007  -\n"
                "ABC\nABC\nstatuses 141 141 0\n")


def case_pipeline_sigpipe(ctx):
    """Pipelines of remote programs joined by local pipes end: `yes | head -1` (yes dies of
    SIGPIPE once head is gone, and its stub reports that death: 141 as on B), a 1.2 MB sort cut
    short by head, 100 kB through sha256sum, and tr reading sbrun's own stdin to its EOF."""
    def expected(out, who):
        check(out == PIPELINE_OUT, f"{who}: not the expected output\n"
              + diff(PIPELINE_OUT.splitlines(), out.splitlines(), "expected", who))
    argv = ["bash", "-c", PIPELINE_CMD]
    differential(ctx, None, native_argv=argv, traced_argv=argv, stdin="from the harness stdin\n",
                 check_out=expected, expect_rc=0, timeout=60)


# Remote programs in a loop over a local file on their stdin: the stub pumps the file to B ahead
# of the program, and gives back what the program did not consume once it ends, so the loop goes
# on as natively: one that never reads takes nothing (sleep), one that reads part takes that part
# (head -c 2), one that reads all takes all (cat).
STDIN_LOOP = ('while read l; do echo "got $l"; head -c 2; echo; done < "$1"; echo ---; '
              'while read l; do echo "got $l"; sleep 0.1; done < "$1"; echo ---; '
              'while read l; do echo "got $l"; cat; done < "$1"; echo ---; '
              'head -c 3 >/dev/null; cat; uname -n')


def case_stdin_given_back(ctx):
    """`while read l; do remote-cmd; done < list` reads every line, as natively: each remote
    program's stub gives the local file back what the program left unread (issue 16 fidelity;
    before, the first stub swallowed the rest of the list, like ssh without -n)."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    lines = os.path.join(ctx.tmp, "stdin-list")
    with open(lines, "w") as f:
        f.write("a\nb\nc\nd\ne\n")
    argv = ["sh", "-c", STDIN_LOOP, "loop", lines]
    # Natively here (the file is here); uname -n stands for B's name.
    native = run(["sh", "-c", STDIN_LOOP.replace("uname -n", "echo board-b"), "loop", lines],
                 timeout=60)
    log(f"[native here]\n{native.describe()}")
    check(native.rc == 0 and native.out.count("got ") == 9, "native run: unexpected")
    if ctx.native_only:
        return
    empty_tree(agent)
    t = ctx.traced(agent, argv, timeout=60, extra=("--local", ctx.tmp, "-v"))
    log(f"[traced via sbrun]\n{t.describe()}")
    check(t.rc == 0 and t.out == native.out, "sbrun: not as natively")
    check("exec of /usr/bin/head" in t.err and "runs on" in t.err,
          "head did not run on B (see -v)")


def case_background_kill(ctx):
    """A background remote program killed by its shell: while the shell waits for the harness,
    `sleep 100` runs on B; then `kill $!` reaches it there, `wait $!` gives 143, sbrun ends
    promptly and nothing is left on B."""
    cmd = ("sleep 100 & echo 'SYNC bg'; read go; kill $!; wait $!; echo \"status $?\"; "
           "echo end")
    agent = ctx.agent()
    empty_tree(agent)

    def on_sync(who):
        return lambda tag: check_runs_on_b(agent, ["sleep", "100"], who)
    native = converse(["nsenter", "-t", str(agent.proc.pid), "-m", "-u", "--", "env", "-C", WORK,
                       "sh", "-c", cmd], on_sync("native"), timeout=60)
    log(f"[native on B]\n{native.describe()}")
    check(native.rc == 0 and native.out == "status 143\nend\n", "native run: unexpected")
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    traced = converse(ctx.sbrun_argv(agent, ["sh", "-c", cmd]), on_sync("sbrun"), timeout=60,
                      cwd=ctx.tmp)
    log(f"[traced via sbrun]\n{traced.describe()}")
    check(traced.rc == native.rc and traced.out == native.out, "sbrun: not as on B")
    check(wait_for(lambda: not b_running(agent, ["sleep", "100"]), 10),
          "`sleep 100` still runs on B")


SCOPES_PY = r"""
import errno, os
fd = int(os.environ["SB_CONTROL_FD"])
def cmd(c):
    try:
        os.write(fd, c.encode())
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def scope():
    return os.read(fd, 64).decode().strip()
def host():
    with open("/etc/hostname") as f:
        return f.read().strip()
def work(name):
    with open("/srv/sb-b/work/" + name) as f:
        return f.read().strip()
print("start", scope(), host() == os.environ["A_NAME"])
print("enter b", cmd("enter b"), scope(), os.uname().nodename, host(), work("who.txt"))
kept = open("/srv/sb-b/work/who.txt")
print("enter c", cmd("enter c"), scope(), os.uname().nodename, host(), work("who.txt"))
print("fd from b, read in c:", kept.read().strip())
print("local", cmd("local"), scope(), host() == os.environ["A_NAME"])
print("exit", cmd("exit"), scope(), os.uname().nodename)
print("exit", cmd("exit"), scope(), os.uname().nodename)
print("exit", cmd("exit"), scope(), host() == os.environ["A_NAME"])
print("exit again", cmd("exit"), "enter zz", cmd("enter zz"), "junk", cmd("hello world"))
print("enter", cmd("enter"), scope())
"""
SCOPES_OUT = """start local True
enter b ok b board-b board-b from-b
enter c ok c board-c board-c from-c
fd from b, read in c: from-b
local ok local True
exit ok c board-c
exit ok b board-b
exit ok local True
exit again EINVAL enter zz ENOENT junk EINVAL
enter ok b
"""


def two_boards(ctx):
    """Agents on B (board-b) and C (board-c), each with its own /etc/hostname and who.txt."""
    agents = []
    for name in (B_HOSTNAME, "board-c"):
        prep = (f"echo {name} > {B_ROOT}/.etc-hostname && "
                f"mount --bind {B_ROOT}/.etc-hostname /etc/hostname && mkdir -p {WORK} && "
                f"echo from-{name[-1]} > {WORK}/who.txt")
        agents.append(ctx.agent(hostname=name, prepare=prep))
    return agents


def case_scopes_nested(ctx):
    """Two real agents (B and C): the program, started outside every target (--mode local),
    steers its scope through SB_CONTROL_FD: enter b, enter c inside it, local inside that, and
    back out one exit at a time; an fd opened in b is still read from b while the thread is in
    c; errors: exit with nothing to leave (EINVAL), an unknown name (ENOENT), junk (EINVAL)."""
    b, c = two_boards(ctx)
    if ctx.native_only:
        return
    with open("/etc/hostname") as f:
        a_name = f.read().strip()
    need_binary(ctx.sbrun, "sbrun")
    t = run([ctx.sbrun, "--mode", "local", "--target", f"b={b.url}", "--target", f"c={c.url}",
             "--", SYS_PYTHON, "-c", SCOPES_PY], env=dict(ENV, A_NAME=a_name), cwd=ctx.tmp,
            timeout=60)
    log(t.describe())
    check(t.rc == 0 and t.out == SCOPES_OUT, "scopes did not behave as documented")
    # Outside sbrun the variable is not set and the program can tell.
    t = run([SYS_PYTHON, "-c", "import os; print(os.environ.get('SB_CONTROL_FD'))"])
    check(t.out == "None\n", "SB_CONTROL_FD leaked outside sbrun")


def case_control_fd(ctx):
    """A harness flips a running shell loop between local and remote through --control-fd on a
    socketpair: its output goes A... B... A..., every command gets its status line, and bad
    commands get clear errors."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    with open("/etc/hostname") as f:
        a_name = f.read().strip()
    ours, theirs = socket.socketpair()
    loop = "for i in $(seq 1 60); do cat /etc/hostname; sleep 0.1; done; echo done"
    argv = [ctx.sbrun, "--mode", "local", "--target", f"b={agent.url}",
            "--control-fd", str(theirs.fileno()), "--", "sh", "-c", loop]
    log("$ " + shlex.join(argv))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         pass_fds=(theirs.fileno(),), cwd=ctx.tmp, env=ENV,
                         start_new_session=True)
    theirs.close()
    ours.settimeout(20)
    answers = []
    try:
        def say(line):
            ours.sendall((line + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                data += ours.recv(256)
            answers.append(data.decode().strip())
        time.sleep(1.5)
        say("enter b")
        time.sleep(2)
        say("exit all")
        say("enter nosuch")
        say("bogus command")
        say("exit 999999")
        say("detach")
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    log(f"answers: {answers}\nexit {p.returncode}\n--- stdout ---\n{out}--- stderr ---\n{err}")
    check(p.returncode == 0, "sbrun failed")
    check(answers[0] == "ok enter b" and answers[1] == "ok exit all",
          f"enter/exit answers: {answers[:2]}")
    check(answers[2].startswith("error ENOENT") and answers[3].startswith("error EINVAL") and
          answers[4].startswith("error ESRCH") and answers[5].startswith("error EOPNOTSUPP"),
          f"error answers: {answers[2:]}")
    lines = out.split()
    check(lines[-1] == "done", "the loop did not finish")
    seen = "".join("B" if l == B_HOSTNAME else "A" if l == a_name else "?" for l in lines[:-1])
    log(f"sides: {seen}")
    check("?" not in seen and re.fullmatch(r"A+B+A+", seen) is not None,
          f"output did not go A, then B, then A: {seen}")


def proc_status_text(pid):
    """The state and tracer of each thread of pid, for a failure message."""
    lines = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                wchan = f.read().strip()
            lines.append(f"thread {tid}: {fields.get('State', '?').strip()}, TracerPid "
                         f"{fields.get('TracerPid', '?').strip()}, wchan {wchan}")
    except OSError as e:
        lines.append(f"process {pid}: {e}")
    return "\n".join(lines)


def detach_with_sigint(sb, pid, secs, what):
    """SIGINT to an attached sbrun: its stderr once it has let go of pid; a Failure with that
    stderr and the threads' state if it has not exited within secs."""
    sb.send_signal(signal.SIGINT)
    try:
        _, err = sb.communicate(timeout=secs)
    except subprocess.TimeoutExpired:
        sb.kill()
        _, err = sb.communicate()
        raise Failure(f"{what}: sbrun did not exit within {secs} s of SIGINT\n"
                      f"--- its stderr ---\n{err}--- end ---\n{proc_status_text(pid)}")
    return err


ATTACH_PY = r"""
import os, sys, time
print("pid", os.getpid(), flush=True)
for i in range(100):
    with open("/etc/hostname") as f:
        print(os.uname().nodename, f.read().strip(), flush=True)
    time.sleep(0.1)
print("done", flush=True)
"""


ATTACH_BUSY_PY = r"""
import os, time
print("pid", os.getpid(), flush=True)
for i in range(300):
    with open("/etc/hostname") as f:
        f.read()
    time.sleep(0.01)
print("done", flush=True)
"""


def case_attach_detach_in_flight(ctx):
    """SIGINT reaches an attached sbrun while a redirected call is in flight (each answer is
    100 ms late, --link-fault=delay): the thread is let go when that answer comes, not at a stop,
    and sbrun must still see that every thread is gone and exit 0 (it hung for good before);
    the process runs on to its end. Five times, each at another point of the loop."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    for attempt in range(5):
        loop = subprocess.Popen([SYS_PYTHON, "-c", ATTACH_BUSY_PY], stdout=subprocess.PIPE,
                                text=True, env=ENV, start_new_session=True)
        try:
            first = loop.stdout.readline()
            check(first.startswith("pid "), f"loop did not start: {first!r}")
            pid = int(first.split()[1])
            argv = [ctx.sbrun, "-v", "--target", f"b={agent.url}", "--link-fault=delay=100ms",
                    "--pid", str(pid)]
            sb = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, env=ENV, start_new_session=True)
            time.sleep(1 + 0.05 * attempt)
            sb_err = detach_with_sigint(sb, pid, 20, f"attempt {attempt} (a thread let go from "
                                        "a call's answer)")
            check(sb.returncode == 0, f"attempt {attempt}: sbrun exited {sb.returncode}\n{sb_err}")
            rest, _ = loop.communicate(timeout=60)
            check(loop.returncode == 0 and rest.strip().endswith("done"),
                  f"attempt {attempt}: the process did not run on to its end "
                  f"(exit {loop.returncode})")
            log(f"[attempt {attempt}] sbrun let go and exited 0; the process ran on")
        finally:
            if loop.poll() is None:
                os.killpg(loop.pid, signal.SIGKILL)
                loop.wait()


def case_attach(ctx):
    """sbrun --pid attaches to a running Python loop (printing uname -n and /etc/hostname every
    100 ms): its output switches to B's after attach and back after SIGINT detaches sbrun; the
    process survives and exits 0. Also the clear errors: no such pid, already traced."""
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    if ctx.native_only:
        return
    need_binary(ctx.sbrun, "sbrun")
    with open("/etc/hostname") as f:
        a_name = f.read().strip()
    loop = subprocess.Popen([SYS_PYTHON, "-c", ATTACH_PY], stdout=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    try:
        first = loop.stdout.readline()
        check(first.startswith("pid "), f"loop did not start: {first!r}")
        pid = int(first.split()[1])
        time.sleep(1)
        argv = [ctx.sbrun, "--target", f"b={agent.url}", "--pid", str(pid)]
        log("$ " + shlex.join(argv + ["-v"]))
        sb = subprocess.Popen(argv + ["-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ENV, start_new_session=True)
        time.sleep(2)
        # A second tracer is refused with the reason.
        again = run(argv, timeout=30)
        log(again.describe())
        check(again.rc == 125 and "already traced" in again.err,
              "a second attach must fail: already traced")
        sb_err = detach_with_sigint(sb, pid, 30, "detach")
        log(f"sbrun exit {sb.returncode}\n{sb_err}")
        check(sb.returncode == 0, "sbrun must exit 0 after detaching")
        rest, _ = loop.communicate(timeout=60)
    finally:
        for p in (loop,):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    log(f"loop exit {loop.returncode}\n{rest}")
    check(loop.returncode == 0, "the attached process did not survive")
    lines = rest.strip().splitlines()
    check(lines[-1] == "done", "the loop did not finish")
    sides = ""
    for l in lines[:-1]:
        names = l.split()
        sides += ("B" if names == [B_HOSTNAME, B_HOSTNAME] else
                  "A" if names == [os.uname().nodename, a_name] else "?")
    log(f"sides: {sides}")
    check("?" not in sides and re.fullmatch(r"A+B+A+", sides) is not None,
          f"output did not go A, then B, then A: {sides}")
    t = run([ctx.sbrun, "--pid", "999999999"], timeout=30)
    check(t.rc == 125 and "no process with pid" in t.err, f"no such pid: {t.describe()}")


CLEAN_WORKLOAD = """\
exec 3<hello.txt 4>>out.txt
cat <&3 >&4
cat out.txt
uname -n
ls sub | wc -l
yes | head -1
mkfifo ff && { (sleep 0.3; echo via-fifo > ff) & cat ff; wait; }
sleep 30 & sleep 0.3; kill $!; wait $!; echo "killed $?"
exec 3<&- 4>&-
echo end
"""
CLEAN_OUT = f"hello from board-b\n{B_HOSTNAME}\n4\ny\nvia-fifo\nkilled 143\nend\n"


def case_agent_clean(ctx):
    """After a session the agent holds nothing for it: the same open fds as before the session, no
    children (no zombies) and nothing running on B. Checked after a session that ended normally
    (remote fds, remote programs, pipelines, a FIFO, a killed background program) and after one
    whose sbrun was SIGKILLed while a remote `sleep 300` ran and a remote `cat` waited on a FIFO.
    The first session may leave fds that the agent sets up once for every session to come; the
    sessions after it must leave none."""
    agent = ctx.agent()
    make_tree(agent)
    before = agent_state(agent)
    log(f"[agent] before any session: {json.dumps(before)}")
    if ctx.native_only:
        # The harness sees a process on B, and sees it go.
        p = subprocess.Popen(["nsenter", "-t", str(agent.proc.pid), "-m", "-u", "--",
                              "sleep", "77"], start_new_session=True)
        ctx.cleanups.append(lambda: p.poll() is None and p.kill())
        seen = wait_for(lambda: b_running(agent, ["sleep", "77"]), 5)
        check(seen, "harness: a process started on B is not seen there")
        check("S sleep 77" in agent_state(agent)["on_b"], "harness: agent_state misses it")
        p.kill()
        p.wait()
        check(wait_for(lambda: not state_diff(before, agent_state(agent)), 5),
              "harness: the state does not come back\n" + state_diff(before, agent_state(agent)))
        return

    def settled(what, base, keys=("fds", "children", "on_b")):
        def same():
            now = agent_state(agent)
            return all(now[k] == base[k] for k in keys)
        ok = wait_for(same, 10)
        now = agent_state(agent)
        log(f"[agent] after {what}: {json.dumps(now)}")
        check(ok, f"after {what} the agent still holds:\n{state_diff(base, now)}\n"
              + agent.log_tail())
        check(agent.alive(), "the agent died\n" + agent.log_tail())
        return now

    def workload(what):
        make_tree(agent)
        t = ctx.traced(agent, ["sh", "-c", CLEAN_WORKLOAD], timeout=90)
        log(t.describe())
        check(t.rc == 0 and t.out == CLEAN_OUT,
              f"{what}: the workload failed: expected {CLEAN_OUT!r}")

    # The first session may leave what the agent sets up once for all sessions (fds only: no
    # process may stay); the second must leave exactly what the first left. (The fds of a session
    # go some moments after sbrun exits: wait for them before taking the baseline.)
    workload("first session")
    settled("the first session", before, keys=("children", "on_b"))
    wait_for(lambda: agent_state(agent)["fds"] == before["fds"], 10)
    baseline = agent_state(agent)
    if baseline["fds"] != before["fds"]:
        log("[agent] fds the first session left (allowed once):\n"
            + diff(before["fds"], baseline["fds"], "before", "after"))
    workload("second session")
    settled("a second session that ended normally", baseline)

    need_binary(ctx.sbrun, "sbrun")
    script = "exec 3<hello.txt; mkfifo ff2; cat ff2 & sleep 300 & echo ready; wait"
    p = subprocess.Popen(ctx.sbrun_argv(agent, ["sh", "-c", script]), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, cwd=ctx.tmp,
                         start_new_session=True)
    ctx.cleanups.append(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))
    ready, _, _ = select.select([p.stdout], [], [], 30)
    first = p.stdout.readline().decode() if ready else ""
    check(first == "ready\n", f"the traced shell did not start: {first!r}")
    running = wait_for(lambda: {tuple(x["argv"]) for x in b_processes(agent)}
                       >= {("sleep", "300"), ("cat", "ff2")}, 10)
    check(running, "`sleep 300` and `cat ff2` do not both run on B: "
          f"{[x['argv'] for x in b_processes(agent)]}")
    p.kill()    # sbrun alone: its tracees die with it (EXITKILL), the connection closes
    p.wait()
    settled("a session whose sbrun was killed", baseline)


# ---------------------------------------------------------------------------------------------
# Scopes through SB_CONTROL_FD (include/splitbrain.h, python/splitbrain.py): the agent is target
# "b" (--target b=URL); B's /etc/hostname says board-b (B_ETC_HOSTNAME), A's says what it says.

PYTHON_API_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "python"))
SCOPE_ITERATIONS = 200


def a_identity():
    """(A's nodename, the first line of A's /etc/hostname) as the scope helpers print them."""
    node = os.uname().nodename
    try:
        with open("/etc/hostname") as f:
            first = f.read().split("\n")[0]
    except OSError as e:
        first = "error:" + os.strerror(e.errno)
    check(B_HOSTNAME not in (node, first), f"A is already called {B_HOSTNAME}: cannot tell them apart")
    return node, first


def scope_sbrun_argv(ctx, agent, mode, argv, extra=()):
    need_binary(ctx.sbrun, "sbrun")
    a = [ctx.sbrun, "--target", "b=" + agent.url, "--mode", mode]
    if mode == "remote":
        a += ["--remote-cwd", "/"]
    return a + list(extra) + ["--"] + list(argv)


def check_lines(result, expected, who):
    log(f"[{who}]\n{result.describe()}")
    got = result.out.splitlines()
    check(got == expected and result.rc == 0,
          f"{who}: exit {result.rc}, output not as expected\n" + diff(expected, got, "expected", who))


def case_scope_threads(ctx):
    """Two threads at once, 200 rounds in step: thread R in `enter b` reads /etc/hostname and
    uname on B, thread L in the local scope reads them on A, every round; a thread R starts and a
    child it forks are in b too; an unknown target is ENOENT, an exit on an empty stack EINVAL, and
    the main thread's scope never moves. Under --mode local and --mode remote."""
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "scope_threads"))
    need_binary(helper, "helper scope_threads (--helpers-dir)")
    a_node, a_file = a_identity()
    # Outside sbrun: the API says so (ENOSYS), and the helper fails.
    r = run([helper, "b", "3"])
    log(f"[outside sbrun]\n{r.describe()}")
    check(r.rc == 1 and r.out == "not under sbrun: sb_enter: Function not implemented\n",
          "outside sbrun the helper must report ENOSYS")
    if ctx.native_only:
        return
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    n = SCOPE_ITERATIONS
    for mode in ("local", "remote"):
        main = "local" if mode == "local" else "b"
        expected = [f"main scope: {main}", "enter nope: No such file or directory"]
        if mode == "local":
            expected.append("exit on an empty stack: Invalid argument")
        expected += [
            f"remote thread: scope b, /etc/hostname '{B_HOSTNAME}' {n}/{n}, "
            f"nodename '{B_HOSTNAME}' {n}/{n}",
            f"remote thread inherits: thread b {B_HOSTNAME}, child b {B_HOSTNAME}",
            f"local thread: scope local, /etc/hostname '{a_file}' {n}/{n}, nodename '{a_node}' {n}/{n}",
            f"local thread inherits: thread local {a_node}, child local {a_file}",
            f"main scope after: {main}",
        ]
        t = run(scope_sbrun_argv(ctx, agent, mode, [helper, "b", str(n)]), cwd=ctx.tmp,
                timeout=120)
        check_lines(t, expected, f"sbrun --mode {mode}")
        check(agent.alive(), "the agent died\n" + agent.log_tail())


PY_SCOPE = r"""
import errno, os, platform, socket, sys, threading
import splitbrain

def say(*args):
    print(*args, flush=True)   # flushed before every fork

def hostname_file():
    with open("/etc/hostname") as f:
        return f.read().split("\n")[0]

say("available", splitbrain.available())
say("start", splitbrain.current())
with splitbrain.remote("b"):
    say("in b", splitbrain.current(), platform.node(), os.uname().nodename, socket.gethostname(),
        hostname_file())
    with splitbrain.local():
        say("local in b", splitbrain.current(), os.uname().nodename, hostname_file())
    say("back in b", splitbrain.current(), os.uname().nodename)
    seen = []
    t = threading.Thread(target=lambda: seen.append(f"{splitbrain.current()} {os.uname().nodename}"))
    t.start()
    t.join()
    say("thread started in b", seen[0])
    pid = os.fork()
    if pid == 0:
        say("child forked in b", splitbrain.current(), os.uname().nodename)
        os._exit(0)
    os.waitpid(pid, 0)
platform._uname_cache = None   # platform.uname() asks the kernel once per process: forget it
say("outside", splitbrain.current(), platform.node(), os.uname().nodename, socket.gethostname(),
    hostname_file())
with splitbrain.remote():
    say("first target", splitbrain.current(), os.uname().nodename)
try:
    with splitbrain.remote("nope"):
        say("entered nope?!")
except splitbrain.UnknownTarget as e:
    say("unknown target:", e.strerror, e.errno == errno.ENOENT, isinstance(e, LookupError))
say("end", splitbrain.current())
"""

PY_SCOPE_REMOTE_MODE = r"""
import os, splitbrain
print("start", splitbrain.current(), os.uname().nodename)
with splitbrain.local():
    print("local", splitbrain.current(), os.uname().nodename)
print("end", splitbrain.current(), os.uname().nodename)
"""


def case_scope_python(ctx):
    """The Python module under python3 run by sbrun: `with splitbrain.remote("b"):
    platform.node()` is B's name and outside it A's (--mode local); nested local(), a thread and
    a forked child inherit; remote() enters the first target; an unknown target raises
    UnknownTarget (a LookupError); local() inside --mode remote is A. Outside sbrun the module
    raises NotUnderSbrun."""
    a_node, a_file = a_identity()
    env = dict(ENV, PYTHONPATH=PYTHON_API_DIR)
    r = run([SYS_PYTHON, "-c", PY_SCOPE], env=env)
    log(f"[outside sbrun]\n{r.describe()}")
    check(r.rc == 1 and "splitbrain.NotUnderSbrun: splitbrain: not running under sbrun "
          "(SB_CONTROL_FD is not set)" in r.err and r.out == "available False\n",
          "outside sbrun the module must raise NotUnderSbrun")
    if ctx.native_only:
        return
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    b = B_HOSTNAME
    expected = [
        "available True",
        "start local",
        f"in b b {b} {b} {b} {b}",
        f"local in b local {a_node} {a_file}",
        f"back in b b {b}",
        f"thread started in b b {b}",
        f"child forked in b b {b}",
        f"outside local {a_node} {a_node} {a_node} {a_file}",
        f"first target b {b}",
        "unknown target: splitbrain: no target named 'nope' True True",
        "end local",
    ]
    t = run(scope_sbrun_argv(ctx, agent, "local", [SYS_PYTHON, "-c", PY_SCOPE]), env=env,
            cwd=ctx.tmp)
    check_lines(t, expected, "sbrun --mode local")
    # --mode remote: the program starts in b. The module itself is read here (--local).
    t = run(scope_sbrun_argv(ctx, agent, "remote", [SYS_PYTHON, "-c", PY_SCOPE_REMOTE_MODE],
                             extra=["--local", PYTHON_API_DIR]), env=env, cwd=ctx.tmp)
    check_lines(t, [f"start b {b}", f"local local {a_node}", f"end b {b}"], "sbrun --mode remote")
    check(agent.alive(), "the agent died\n" + agent.log_tail())


PYTEST_WHERE = """\
import os, platform, pytest

B_FILE = os.environ["SB_TEST_B_FILE"]

@pytest.mark.remote("b")
def test_on_b():
    assert platform.node() == os.environ["SB_TEST_B_NAME"]
    with open(B_FILE) as f:
        assert f.read() == "hello from board-b\\n"

def test_on_a():
    assert platform.node() == os.environ["SB_TEST_A_NAME"]
    assert not os.path.exists(B_FILE)

@pytest.mark.remote
def test_first_target():
    assert platform.node() == os.environ["SB_TEST_B_NAME"]

def test_fixture(splitbrain):
    with splitbrain.remote("b"):
        assert platform.node() == os.environ["SB_TEST_B_NAME"]
    assert platform.node() == os.environ["SB_TEST_A_NAME"]
"""


def case_pytest_plugin(ctx):
    """The Python package, pip-installed offline (--no-build-isolation, Debian's setuptools),
    registers its pytest plugin: under `sbrun --mode local`, tests marked
    @pytest.mark.remote("b") read B's hostname and a file only on B, an unmarked test after them
    reads A's hostname (the platform cache is cleared on every scope change), the fixture
    switches inside a test; `pytest -v` says "PASSED on b" and the summary lists where tests
    ran. Outside sbrun the tests that need a target are skipped with the reason, or fail with
    --splitbrain-require."""
    if any(subprocess.run([SYS_PYTHON, "-c", f"import {m}"], capture_output=True).returncode
           for m in ("pytest", "pip", "setuptools", "wheel")):
        raise Skip("needs python3-pytest, python3-pip, python3-setuptools, python3-wheel")
    a_node, _ = a_identity()
    src = os.path.join(ctx.tmp, "pysrc")
    shutil.copytree(PYTHON_API_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                        "*.egg-info"))
    site = os.path.join(ctx.tmp, "site")
    r = run([SYS_PYTHON, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
             "--no-index", "--disable-pip-version-check", "--target", site, src], timeout=120)
    log(r.describe())
    check(r.rc == 0, "pip install --no-build-isolation ./python failed")
    eps = glob.glob(os.path.join(site, "splitbrain-*.dist-info", "entry_points.txt"))
    check(eps and "splitbrain = splitbrain.pytest_plugin" in open(eps[0]).read(),
          f"no pytest11 entry point in the installed package: {eps}")
    tests = os.path.join(ctx.tmp, "t")
    os.makedirs(tests)
    with open(os.path.join(tests, "test_where.py"), "w") as f:
        f.write(PYTEST_WHERE)
    env = dict(ENV, PYTHONPATH=site, PYTHONDONTWRITEBYTECODE="1", SB_TEST_A_NAME=a_node,
               SB_TEST_B_NAME=B_HOSTNAME, SB_TEST_B_FILE=WORK + "/hello.txt")
    pytest_argv = [SYS_PYTHON, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_where.py"]
    r = run(pytest_argv, env=env, cwd=tests)
    log(f"[outside sbrun]\n{r.describe()}")
    check(r.rc == 0 and "1 passed, 3 skipped" in r.out
          and "splitbrain: not under sbrun" in r.out,
          "outside sbrun: the tests that need a target must be skipped, the others run")
    r = run(pytest_argv + ["-rs", "--splitbrain-require"], env=env, cwd=tests)
    log(f"[outside sbrun, --splitbrain-require]\n{r.describe()}")
    check(r.rc == 1 and "1 passed, 3 errors" in r.out and "not running under sbrun" in r.out,
          "--splitbrain-require must fail the tests that need a target")
    if ctx.native_only:
        return
    check(not os.path.exists(WORK), f"{WORK} exists on A: the test cannot tell the sides apart")
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    make_tree(agent)
    r = run([ctx.sbrun, "--mode", "local", "--target", "b=" + agent.url, "--"] + pytest_argv,
            env=env, cwd=tests)
    log(f"[under sbrun]\n{r.describe()}")
    check(r.rc == 0 and "4 passed" in r.out, "under sbrun every test must pass")
    check(r.out.count("PASSED on b") == 2, "pytest -v must say which tests ran on b")
    check("splitbrain: where test bodies ran" in r.out and "b: 2 test(s)" in r.out
          and "local: 2 test(s)" in r.out, "the summary must list where tests ran")


def case_scope_cxx(ctx):
    """The C++ guards: splitbrain::Scope{"b"} switches uname and /etc/hostname to B for its
    lifetime, a nested LocalScope back to A, a std::thread started inside inherits b, a default
    Scope enters the first target, and Scope{"nope"} throws std::system_error (ENOENT) with a
    clear message. Outside sbrun the first call throws "not running under sbrun"."""
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "scope_cxx"))
    need_binary(helper, "helper scope_cxx (--helpers-dir)")
    a_node, a_file = a_identity()
    r = run([helper, "b"])
    log(f"[outside sbrun]\n{r.describe()}")
    check(r.rc == 1 and r.out == "available: no\nunexpected: splitbrain: not running under sbrun "
          "(SB_CONTROL_FD is not set): Function not implemented\n",
          "outside sbrun the guards must throw 'not running under sbrun'")
    if ctx.native_only:
        return
    agent = ctx.agent(prepare=B_ETC_HOSTNAME)
    b = B_HOSTNAME
    expected = [
        "available: yes",
        f"start: local {a_node} {a_file}",
        f"in target: b {b} {b}",
        f"local inside target: local {a_node} {a_file}",
        f"back in target: b {b} {b}",
        f"thread started in target: b {b}",
        f"after target: local {a_node} {a_file}",
        f"in the first target: b {b} {b}",
        f"end: local {a_node} {a_file}",
        "unknown target: splitbrain: no target named 'nope': No such file or directory "
        "(errno ENOENT)",
    ]
    t = run(scope_sbrun_argv(ctx, agent, "local", [helper, "b"]), cwd=ctx.tmp)
    check_lines(t, expected, "sbrun --mode local")
    check(agent.alive(), "the agent died\n" + agent.log_tail())


# ---------------------------------------------------------------------------------------------
# Transports (sbrun(1) --target): ssh://[USER@]HOST[:PORT][/PATH] against a real sshd that the
# case starts on a loopback port of its own choosing, with its own config, host key and
# authorized_keys (never the system's sshd, never a non-loopback address); and exec:COMMAND.

SSHD = "/usr/sbin/sshd"
PR_SET_CHILD_SUBREAPER = 36


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def become_subreaper():
    """Makes this harness the subreaper of everything it starts: a process that sbrun leaves
    behind unreaped then turns up as the harness's child (see orphans())."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise Failure(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def orphans(comms, keep=()):
    """Children of the harness that it did not start itself (keep: pids it did) and whose
    command name is in comms (what sbrun starts: `ssh`, `sh` for exec:): processes that sbrun
    left behind unreaped, alive or zombie, as 'PID STATE COMM ARGV'. (Their own children, which
    sbrun cannot reap, do not count.) Zombies are reaped here, so the next check starts clean."""
    found = []
    me = os.getpid()
    for p in proc_table().values():
        if p["ppid"] != me or p["pid"] in keep:
            continue
        try:
            with open(f"/proc/{p['pid']}/comm") as f:
                comm = f.read().strip()
        except OSError:
            comm = "?"
        if comm in comms:
            found.append(f"{p['pid']} {p['state']} {comm} {shlex.join(p['argv'])}")
        if p["state"] == "Z":
            try:
                os.waitpid(p["pid"], os.WNOHANG)
            except ChildProcessError:
                pass
    return found


class Sshd:
    """A real sshd on 127.0.0.1:PORT, in the foreground (-D -e), with everything in the case's
    temp dir: config, host key, and an authorized_keys that lets root in with `self.key` only
    (`self.wrong_key` is a key sshd has never seen)."""

    def __init__(self, ctx):
        if os.geteuid() != 0:
            raise Skip("needs root: sshd's privilege separation, and a login as root")
        for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
            if not tool or not os.access(tool, os.X_OK):
                raise Skip("openssh-server and openssh-client are needed (scripts/test installs "
                           "them): no sshd, ssh or ssh-keygen here")
        self.ctx = ctx
        self.dir = os.path.join(ctx.tmp, "ssh")
        os.makedirs(self.dir)
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.key = os.path.join(self.dir, "id_ed25519")
        self.wrong_key = os.path.join(self.dir, "wrong_ed25519")
        for path in (self.host_key, self.key, self.wrong_key):
            r = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sb-int", "-f", path],
                    timeout=30)
            check(r.rc == 0, "ssh-keygen failed\n" + r.describe())
        self.authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copy(self.key + ".pub", self.authorized)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation dir
        self.logpath = os.path.join(self.dir, "sshd.log")
        self.extra_config = ""
        self.proc = None
        ctx.cleanups.append(self.stop)
        # The port is free when picked; another process could take it before sshd binds it, so
        # a failed start tries another one.
        for attempt in range(5):
            self.port = free_loopback_port()
            if self.start():
                return
        raise Failure(f"sshd did not start\n{self.log_tail()}")

    def start(self):
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"""# sbrun integration test: loopback only, keys only, this case's files only
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
AuthorizedKeysFile {self.authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PidFile none
LogLevel VERBOSE
{self.extra_config}""")
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([SSHD, "-f", self.config, "-D", "-e"],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, env=ENV)
        logf.close()
        log(f"[sshd] pid {self.proc.pid} on 127.0.0.1:{self.port}")

        def listening():
            if self.proc.poll() is not None:
                return "exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    return "up" if s.recv(64).startswith(b"SSH-") else None
            except OSError:
                return None
        state = wait_for(listening, 20)
        if state == "up":
            return True
        log(f"[sshd] not listening ({state})\n{self.log_tail()}")
        self.stop()
        return False

    def env(self, key=None):
        """sbrun's environment: SB_SSH with this case's key, no user ssh config, no known_hosts."""
        ssh = (f"ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
               f"-o LogLevel=ERROR -i {key or self.key}")
        return dict(ENV, SB_SSH=ssh)

    def log_tail(self):
        try:
            with open(self.logpath, "rb") as f:
                return ("--- sshd log ---\n" + f.read()[-4000:].decode(errors="replace")
                        + "--- end of sshd log ---")
        except OSError:
            return "(no sshd log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def b_wrapper(ctx, path, hostname, agent):
    """A script that plays machine B's sbagent: the agent in new UTS and mount namespaces, with
    hostname HOSTNAME and an /etc/hostname of its own (`HOSTNAME-etc`), which only B sees."""
    etc = os.path.join(os.path.dirname(path), f"{hostname}.etc-hostname")
    inner = (f"hostname {hostname} && echo {hostname}-etc > {etc} && "
             f"mount --bind {etc} /etc/hostname && exec {agent} \"$@\"")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"exec unshare --uts --mount --propagation private sh -c {shlex.quote(inner)} "
                "sh \"$@\"\n")
    os.chmod(path, 0o755)


# The program run on A in the ssh-target and exec-target cases: B's identity, a write on B.
TRANSPORT_PROGRAM = "uname -n; cat /etc/hostname; echo written-from-A > written.txt; cat written.txt"


def check_transport_run(ctx, t, hostname, out_dir):
    check(t.rc == 0, "sbrun failed")
    check(t.out.splitlines() == [hostname, f"{hostname}-etc", "written-from-A"],
          f"the program did not see B ({hostname}) or its write")
    with open(os.path.join(out_dir, "written.txt")) as f:
        check(f.read() == "written-from-A\n", "the write did not land")
    check(run(["uname", "-n"]).out.strip() != hostname, "A's hostname changed")
    with open("/etc/hostname") as f:
        check(f.read().strip() != f"{hostname}-etc", "A's /etc/hostname changed")


def check_nothing_left(what, needle, comms, keep=()):
    """After sbrun: within 5 s no process (but those in keep) whose command line mentions needle
    (a path unique to the case: ssh's key, the remote shell's command, the agent's own name),
    and no child of sbrun named in comms left unreaped for the harness (its subreaper)."""
    def running():
        return [f"{p['pid']} {shlex.join(p['argv'])}" for p in proc_table().values()
                if p["pid"] not in keep and needle and needle in " ".join(p["argv"])]
    wait_for(lambda: not running(), 5)
    left = running()
    check(not left, f"{what}: still running after sbrun exited: {left}")
    stray = orphans(comms, keep)
    check(not stray, f"{what}: sbrun exited without reaping its children: {stray}")


def agent_alias(ctx, directory):
    """A symlink to sbagent in the case's directory: the agent's command line then names the
    case, so check_nothing_left can tell it from the agents of cases running in parallel."""
    path = os.path.join(directory, "sbagent")
    os.symlink(ctx.sbagent, path)
    return path


def case_ssh_target(ctx):
    """--target ssh://root@127.0.0.1:PORT/PATH: sbrun runs `ssh ... PATH --stdio` (SB_SSH adds
    the case's key) and speaks to the agent over ssh's stdin/stdout, through a real sshd on a
    loopback port with its own keys. PATH is a wrapper that puts the agent in namespaces of its
    own (hostname board-s, its own /etc/hostname), so the program proves it reached B through
    ssh; its write lands; and when sbrun exits, ssh, the remote shell and the agent are gone and
    sbrun has reaped what it started."""
    need_binary(ctx.sbrun, "sbrun")
    need_binary(ctx.sbagent, "sbagent")
    become_subreaper()
    sshd = Sshd(ctx)
    out = os.path.join(sshd.dir, "out")
    os.makedirs(out)
    wrapper = os.path.join(sshd.dir, "sbagent-on-b")
    b_wrapper(ctx, wrapper, "board-s", agent_alias(ctx, sshd.dir))
    url = f"ssh://root@127.0.0.1:{sshd.port}{wrapper}"
    if ctx.native_only:
        return
    t = run([ctx.sbrun, "-v", "--target", url, "--remote-cwd", out, "--",
             "sh", "-c", TRANSPORT_PROGRAM], env=sshd.env(), cwd=ctx.tmp, timeout=60)
    log(t.describe())
    check_transport_run(ctx, t, "board-s", out)
    check("board-s" in t.err, "sbrun -v does not name B's host")
    with open(sshd.logpath) as f:
        check("Accepted publickey for root from 127.0.0.1" in f.read(),
              "sshd did not log the key login: the agent was not reached through sshd\n"
              + sshd.log_tail())
    check_nothing_left("ssh target", sshd.dir, {"ssh"}, keep={sshd.proc.pid})

    # The same, named, with the agent found on the remote PATH (`sbagent`, no path, no deploy:
    # --deploy=never): the wrapper's directory is put first on root's PATH through a symlink
    # named sbagent.
    bindir = os.path.join(sshd.dir, "bin")
    os.makedirs(bindir)
    os.symlink(wrapper, os.path.join(bindir, "sbagent"))
    sshd.extra_config = f"SetEnv PATH={bindir}:{ENV['PATH']}\n"
    sshd.stop()
    check(sshd.start(), "sshd did not restart with the new PATH")
    t = run([ctx.sbrun, "--target", f"b=ssh://root@127.0.0.1:{sshd.port}", "--deploy=never",
             "--remote-cwd", out, "--", "sh", "-c", TRANSPORT_PROGRAM], env=sshd.env(),
            cwd=ctx.tmp, timeout=60)
    log(t.describe())
    check_transport_run(ctx, t, "board-s", out)
    check_nothing_left("ssh target on PATH", sshd.dir, {"ssh"}, keep={sshd.proc.pid})


def case_ssh_refused(ctx):
    """ssh targets that cannot work fail with exit 125, a message that names the target and how
    ssh ended, and ssh's own message (stderr is passed through), without hanging: a key sshd does
    not know, an agent path that does not exist there, a closed port, and a server that accepts
    the connection but never speaks (CONNECT_TIMEOUT, 10 s, stops ssh)."""
    need_binary(ctx.sbrun, "sbrun")
    need_binary(ctx.sbagent, "sbagent")
    become_subreaper()
    sshd = Sshd(ctx)
    if ctx.native_only:
        return
    base = f"ssh://root@127.0.0.1:{sshd.port}"

    def refused(url, env, says, secs=8):
        t = run([ctx.sbrun, "--target", url, "--", "true"], env=env, cwd=ctx.tmp, timeout=60)
        log(t.describe())
        check(t.rc == 125, f"{url}: exit {t.rc}, expected 125")
        check(t.secs < secs, f"{url}: took {t.secs:.1f} s, expected at most {secs}")
        check(f"cannot connect to target 'target1' ({url})" in t.err,
              f"{url}: the message does not name the target")
        for s in says:
            check(s in t.err, f"{url}: the message does not say {s!r}")
        check_nothing_left(url, sshd.dir, {"ssh"}, keep={sshd.proc.pid})
        return t

    # A key sshd has never seen: ssh says "Permission denied", sbrun gives ssh's status.
    refused(base + ctx.sbagent, sshd.env(sshd.wrong_key),
            ["Permission denied (publickey)", "exited with status 255 before the handshake",
             "could not connect or log in"])
    # Logged in, but no agent at that path on B: the remote shell says so, status 127.
    refused(base + "/nonexistent/sbagent", sshd.env(),
            ["/nonexistent/sbagent", "exited with status 127", "is the agent path right"])
    # Nothing listens on the port.
    closed = free_loopback_port()
    refused(f"ssh://root@127.0.0.1:{closed}", sshd.env(), ["Connection refused", "status 255"])
    # Something listens and accepts, and never says a word: the connect timeout stops ssh.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    ctx.cleanups.append(silent.close)
    url = f"ssh://root@127.0.0.1:{silent.getsockname()[1]}"
    refused(url, sshd.env(), ["no handshake within 10 s", "(stopped it"], secs=20)


# Zero-deploy (sbrun(1) --deploy, tracer/deploy.h): an ssh:// target without an agent path gets
# sbrun's own agent for B's `uname -m`, uploaded to ~/.cache/splitbrain/VERSION/ on B over the
# same ssh connection. B here is the loopback sshd with a HOME of the case's own, a PATH without
# sbagent, and a `uname` that says the machine written in B's `machine` file (else the real one).

def sbrun_version(ctx):
    t = run([ctx.sbrun, "--version"])
    check(t.rc == 0 and t.out.startswith("sbrun "), "sbrun --version failed\n" + t.describe())
    return t.out.split()[1]


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class DeployBoard:
    """The loopback sshd as a machine B with no sbagent: sessions get HOME=<dir>/home and a PATH
    of a directory with a `uname` wrapper, then /usr/bin:/bin (checked to hold no sbagent).
    With path_agent, that directory also has it as `sbagent`."""

    def __init__(self, ctx, path_agent=None):
        self.sshd = Sshd(ctx)
        d = self.sshd.dir
        self.home = os.path.join(d, "home")
        self.bin = os.path.join(d, "b-bin")
        self.machine_file = os.path.join(d, "machine")
        self.out = os.path.join(d, "out")
        for p in (self.home, self.bin, self.out):
            os.makedirs(p)
        with open(os.path.join(self.bin, "uname"), "w") as f:
            f.write("#!/bin/sh\n"
                    f"if [ \"$1\" = -m ] && [ -f {self.machine_file} ]; then\n"
                    f"  cat {self.machine_file}; exit 0\n"
                    "fi\n"
                    "exec /bin/uname \"$@\"\n")
        os.chmod(os.path.join(self.bin, "uname"), 0o755)
        path = f"{self.bin}:/usr/bin:/bin"
        for p in path.split(":")[1:]:
            check(not os.path.exists(os.path.join(p, "sbagent")),
                  f"{p}/sbagent exists: B must have no sbagent on its PATH for this case")
        if path_agent:
            os.symlink(path_agent, os.path.join(self.bin, "sbagent"))
        self.sshd.extra_config = f"SetEnv HOME={self.home} PATH={path}\n"
        self.sshd.stop()
        check(self.sshd.start(), "sshd did not restart with the case's HOME and PATH")
        self.url = f"ssh://root@127.0.0.1:{self.sshd.port}"
        self.version = sbrun_version(ctx)
        self.cache = os.path.join(self.home, ".cache", "splitbrain", self.version)

    def say_machine(self, machine):
        with open(self.machine_file, "w") as f:
            f.write(machine + "\n")

    def sbrun(self, ctx, extra=(), program=("sh", "-c", "echo deployed > written.txt; "
                                                   "cat written.txt")):
        t = run([ctx.sbrun, "-v", "--target", self.url, "--remote-cwd", self.out] + list(extra)
                + ["--"] + list(program), env=self.sshd.env(), cwd=ctx.tmp, timeout=60)
        log(t.describe())
        return t

    def in_session(self):
        """Processes of B's ssh sessions, whose environment has this case's HOME: the remote
        shell, the deploy script (`sh -c SCRIPT sbdeploy VERSION`), the agent."""
        found = []
        needle = f"HOME={self.home}".encode()
        for pid, p in proc_table().items():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(f"{pid} {p['state']} {shlex.join(p['argv'])[:200]}")
            except OSError:
                continue
        return found

    def nothing_left(self, what):
        # ssh and sbrun's other children: by the key's path in ssh's command line (the case's
        # dir), and unreaped children of sbrun; then B's side: the script and the agent.
        check_nothing_left(what, self.sshd.dir, {"ssh"}, keep={self.sshd.proc.pid})
        wait_for(lambda: not self.in_session(), 5)
        left = self.in_session()
        check(not left, f"{what}: still running on B after sbrun exited: {left}")
        stray = [n for n in os.listdir(self.cache) if n.startswith(".")] \
            if os.path.isdir(self.cache) else []
        check(not stray, f"{what}: temporary upload files left in {self.cache}: {stray}")


def check_ran(t, board, what):
    check(t.rc == 0, f"{what}: sbrun failed")
    check(t.out == "deployed\n", f"{what}: the program's output is not the file it wrote on B")
    with open(os.path.join(board.out, "written.txt")) as f:
        check(f.read() == "deployed\n", f"{what}: the write did not land")


def case_ssh_deploy(ctx):
    """sbrun --target ssh://root@127.0.0.1:PORT (no agent path) against a B with no sbagent: the
    first run uploads the build tree's x86_64 agent (tracer/agents/) to B's
    ~/.cache/splitbrain/VERSION/ (dir and file 0700, the same bytes) and runs the program
    through it; the second reuses it (-v says "no upload", the file is the same inode); a
    corrupted cached agent is replaced; --deploy=always uploads again; --deploy=never fails
    saying there is no sbagent on B's PATH; a B whose uname -m is armv6l fails saying there is
    no agent for it. After each run no agent, script or ssh of the case is left running."""
    need_binary(ctx.sbrun, "sbrun")
    become_subreaper()
    board = DeployBoard(ctx)
    local_agent = os.path.join(os.path.dirname(ctx.sbrun), "agents", "sbagent-x86_64")
    check(os.path.isfile(local_agent), f"the build tree has no {local_agent} (tracer/meson.build)")
    if os.uname().machine != "x86_64":
        raise Skip("B is this machine, and the build tree's agent to deploy is for x86_64")
    if ctx.native_only:
        return
    cached = os.path.join(board.cache, "sbagent-x86_64")

    # 1. Nothing on B: upload, then run.
    t = board.sbrun(ctx)
    check_ran(t, board, "first run")
    check("uploading sbagent-x86_64" in t.err and "not there yet" in t.err,
          "sbrun -v does not say it uploaded the agent")
    check(os.path.isfile(cached), f"no agent at {cached} on B")
    check(stat.S_IMODE(os.stat(cached).st_mode) == 0o700,
          f"the cached agent's mode is {oct(os.stat(cached).st_mode)}, expected 0700")
    check(stat.S_IMODE(os.stat(board.cache).st_mode) == 0o700,
          f"the cache directory's mode is {oct(os.stat(board.cache).st_mode)}, expected 0700")
    check(sha256_of(cached) == sha256_of(local_agent), "the cached agent is not sbrun's")
    with open(board.sshd.logpath) as f:
        check("Accepted publickey for root from 127.0.0.1" in f.read(),
              "sshd did not log the key login\n" + board.sshd.log_tail())
    board.nothing_left("first run")
    inode = os.stat(cached).st_ino

    # 2. The same agent is there: no upload.
    t = board.sbrun(ctx)
    check_ran(t, board, "second run")
    check("reusing sbagent-x86_64" in t.err and "no upload" in t.err,
          "sbrun -v does not say it reused the cached agent")
    check("uploading" not in t.err, "the second run uploaded the agent again")
    check(os.stat(cached).st_ino == inode, "the cached agent was replaced on the second run")
    board.nothing_left("second run")

    # While a program runs, its agent is seen on B (so that the checks after each run can fail);
    # the program waits for a line on its stdin (A's).
    p = subprocess.Popen([ctx.sbrun, "--target", board.url, "--", "sh", "-c", "read x"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=board.sshd.env(), cwd=ctx.tmp)
    try:
        seen = wait_for(lambda: [x for x in board.in_session() if "sbagent-x86_64" in x], 20)
        check(seen, "no agent seen on B while the program ran\n" + str(board.in_session()))
    finally:
        p.communicate(b"go\n", timeout=30)
    check(p.returncode == 0, f"sbrun of `read x` exited {p.returncode}")
    board.nothing_left("after a program that waited")

    # 3. A damaged cached agent is replaced, never run.
    with open(cached, "r+b") as f:
        f.seek(4096)
        f.write(b"\0damaged\0")
    t = board.sbrun(ctx)
    check_ran(t, board, "after damage")
    check("uploading sbagent-x86_64" in t.err and "its copy there differs" in t.err,
          "sbrun -v does not say it replaced the damaged agent")
    check(sha256_of(cached) == sha256_of(local_agent), "the damaged agent was not replaced")
    board.nothing_left("after damage")

    # 4. --deploy=always uploads although B has the agent.
    t = board.sbrun(ctx, ["--deploy=always"])
    check_ran(t, board, "--deploy=always")
    check("uploading sbagent-x86_64" in t.err and "--deploy=always" in t.err,
          "--deploy=always did not upload")
    board.nothing_left("--deploy=always")

    # 5. --deploy=never runs sbagent from B's PATH, where there is none.
    t = board.sbrun(ctx, ["--deploy=never"], ["true"])
    check(t.rc == 125, f"--deploy=never: exit {t.rc}, expected 125")
    for says in ("exited with status 127 before the handshake", "no sbagent on the remote PATH",
                 "--deploy=auto"):
        check(says in t.err, f"--deploy=never: the message does not say {says!r}")
    board.nothing_left("--deploy=never")

    # 6. A machine this sbrun has no agent for.
    board.say_machine("armv6l")
    t = board.sbrun(ctx, [], ["true"])
    check(t.rc == 125, f"armv6l: exit {t.rc}, expected 125")
    agents = os.path.dirname(local_agent)
    for says in (f"cannot connect to target 'target1' ({board.url})",
                 f"B is armv6l; no agent for it in {agents} (it has ", "sbagent-x86_64",
                 "docs/boards.md", "--deploy=never"):
        check(says in t.err, f"armv6l: the message does not say {says!r}")
    check(not os.path.exists(os.path.join(board.cache, "sbagent-armv6l")),
          "something was uploaded for armv6l")
    board.nothing_left("armv6l")


def case_ssh_version_mismatch(ctx):
    """B has an sbagent of another protocol version on its PATH (other_version_agent, which
    refuses the handshake in a real agent's words). --deploy=never reaches it: sbrun exits 125
    with the agent's refusal and says how to fix it, naming zero-deploy; the default
    (--deploy=auto) deploys sbrun's own agent instead, and the program runs."""
    need_binary(ctx.sbrun, "sbrun")
    other = os.path.join(ctx.helpers_dir, "other_version_agent")
    need_binary(other, "other_version_agent")
    become_subreaper()
    board = DeployBoard(ctx, path_agent=other)
    if ctx.native_only:
        return
    t = board.sbrun(ctx, ["--deploy=never"], ["true"])
    check(t.rc == 125, f"--deploy=never: exit {t.rc}, expected 125")
    for says in (f"cannot connect to target 'target1' ({board.url})",
                 "protocol version mismatch", "upgrade sbrun or sbagent so they match",
                 "or let sbrun deploy an agent of its own version to B", "not --deploy=never"):
        check(says in t.err, f"--deploy=never: the message does not say {says!r}")
    board.nothing_left("mismatch")
    t = board.sbrun(ctx)
    check_ran(t, board, "deployed")
    check("uploading sbagent-x86_64" in t.err, "sbrun -v does not say it deployed its agent")
    board.nothing_left("deployed")


def case_ssh_deploy_reconnect(ctx):
    """The deployed agent is killed on B mid-session (B rebooting, say): with
    --on-disconnect=wait, sbrun runs the deploy dialogue again, reuses the agent cached on B (no
    second upload), and the program's next call works; nothing is left running after."""
    need_binary(ctx.sbrun, "sbrun")
    become_subreaper()
    board = DeployBoard(ctx)
    if ctx.native_only:
        return
    written = os.path.join(board.out, "written.txt")
    with open(written, "w") as f:
        f.write("on B\n")
    # Absolute paths: the cwd of the first session is stale after a reconnect.
    p = subprocess.Popen([ctx.sbrun, "-v", "--on-disconnect=wait", "--target", board.url, "--",
                          "sh", "-c", f"cat {written}; read x; cat {written}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=board.sshd.env(), cwd=ctx.tmp)
    try:
        # The program's first line says the session is up: an agent killed before that dies in
        # sbrun's first handshake, which fails at once (exit 125) whatever --on-disconnect says.
        first = first_line(p, "the program's first cat", 60)
        agents = wait_for(lambda: [x.split()[0] for x in board.in_session()
                                   if "sbagent-x86_64 --stdio" in x], 20)
        check(agents, "no agent seen on B while the program ran")
        for pid in agents:
            os.kill(int(pid), signal.SIGKILL)
        out, err = p.communicate(b"go\n", timeout=60)
        out = first.encode() + b"\n" + out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    log(f"exit {p.returncode}\n--- stdout ---\n{out}--- stderr ---\n{err}--- end ---")
    check(p.returncode == 0, f"sbrun exited {p.returncode}")
    check(out == "on B\non B\n", "the program's read after the reconnect did not work")
    check(err.count("uploading sbagent-x86_64") == 1, "the agent must be uploaded once")
    check("reusing sbagent-x86_64" in err and "no upload" in err,
          "the reconnect did not reuse the cached agent")
    board.nothing_left("reconnect")


def binfmt_registered(name):
    try:
        with open(f"/proc/sys/fs/binfmt_misc/{name}") as f:
            return f.readline().strip() == "enabled"
    except OSError:
        return False


def case_ssh_deploy_aarch64(ctx):
    """A loopback "board" whose uname -m says aarch64 gets the cross-built aarch64 agent
    (build-aarch64, linked from the build tree's tracer/agents/) and runs it, under qemu-user
    through binfmt_misc: the program's write lands on B and its uname -m is aarch64 (the agent's
    own view, under qemu). Skipped, saying why, without the cross-built agent or a registered
    qemu-aarch64 binfmt handler (nothing here registers one)."""
    need_binary(ctx.sbrun, "sbrun")
    local_agent = os.path.join(os.path.dirname(ctx.sbrun), "agents", "sbagent-aarch64")
    if not os.path.isfile(local_agent):
        raise Skip(f"no cross-built aarch64 agent ({local_agent} -> "
                   f"{os.path.realpath(local_agent)}): scripts/test builds build-aarch64 "
                   "(docs/boards.md)")
    if not binfmt_registered("qemu-aarch64"):
        raise Skip("qemu-aarch64 is not registered with binfmt_misc here "
                   "(/proc/sys/fs/binfmt_misc/qemu-aarch64): B could not run an aarch64 "
                   "program (apt-get install qemu-user-binfmt)")
    become_subreaper()
    board = DeployBoard(ctx)
    board.say_machine("aarch64")
    if ctx.native_only:
        return
    t = board.sbrun(ctx, [], ["sh", "-c", "echo deployed > written.txt; cat written.txt; "
                                          "uname -m"])
    check(t.rc == 0, "sbrun failed")
    check(t.out == "deployed\naarch64\n", "the program did not run through the aarch64 agent")
    check("uploading sbagent-aarch64" in t.err, "sbrun -v does not say it uploaded the agent")
    cached = os.path.join(board.cache, "sbagent-aarch64")
    check(sha256_of(cached) == sha256_of(local_agent), "the cached agent is not the aarch64 one")
    board.nothing_left("aarch64")


def case_exec_target(ctx):
    """--target 'exec:COMMAND': sbrun runs `sh -c COMMAND` and speaks to the agent over its
    stdin/stdout. COMMAND starts the agent in new UTS and mount namespaces (the way `nsenter`,
    `docker exec -i` or `kubectl exec -i` would reach one): the program sees hostname board-e and
    B's /etc/hostname, its write lands, and sbrun leaves nothing running or unreaped."""
    need_binary(ctx.sbrun, "sbrun")
    need_binary(ctx.sbagent, "sbagent")
    become_subreaper()
    d = os.path.join(ctx.tmp, "exec")
    out = os.path.join(d, "out")
    os.makedirs(out)
    etc = os.path.join(d, "board-e.etc-hostname")
    inner = (f"hostname board-e && echo board-e-etc > {etc} && mount --bind {etc} /etc/hostname "
             f"&& exec {agent_alias(ctx, d)} --stdio")
    command = f"unshare --uts --mount --propagation private sh -c {shlex.quote(inner)}"
    if ctx.native_only:
        return
    t = run([ctx.sbrun, "--target", "exec:" + command, "--remote-cwd", out, "--",
             "sh", "-c", TRANSPORT_PROGRAM], cwd=ctx.tmp, timeout=60)
    log(t.describe())
    check_transport_run(ctx, t, "board-e", out)
    check_nothing_left("exec target", d, {"sh"})


def case_exec_fail(ctx):
    """exec: targets that give no agent fail with exit 125 and a message naming the target and
    how the command ended, without hanging: `false` (status 1), a command that is not found
    (127, the shell's message passed through), and one that never answers (`sleep`: stopped
    after the 10 s connect timeout, not left running)."""
    need_binary(ctx.sbrun, "sbrun")
    become_subreaper()
    nap = f"sleep {57000 + os.getpid() % 1000}"   # this case's own, to look for afterwards
    cases = [
        ("exec:false", ["`sh -c false` exited with status 1 before the handshake"], 8, None),
        ("exec:sb-int-no-such-command --stdio",
         ["sb-int-no-such-command: not found", "exited with status 127"], 8, None),
        ("exec:" + nap, ["no handshake within 10 s", nap, "(stopped it"], 20, nap),
    ]
    for url, says, secs, needle in cases:
        t = run([ctx.sbrun, "--target", url, "--", "true"], cwd=ctx.tmp, timeout=60)
        log(t.describe())
        check(t.rc == 125, f"{url}: exit {t.rc}, expected 125")
        check(t.secs < secs, f"{url}: took {t.secs:.1f} s, expected at most {secs}")
        check(f"cannot connect to target 'target1' ({url})" in t.err,
              f"{url}: the message does not name the target")
        for s in says:
            check(s in t.err, f"{url}: the message does not say {s!r}")
        check_nothing_left(url, needle, {"sh"})
    t = run([ctx.sbrun, "--target", "exec:", "--", "true"], cwd=ctx.tmp, timeout=30)
    log(t.describe())
    check(t.rc == 125 and "missing COMMAND" in t.err, "exec: with no command must be refused")


# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Sockets on B (Agent(net=True)): servers run only in B's network namespace; programs on A,
# started locally by sbrun, reach them through remote sockets.

ECHO_SERVER = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def first_line(p, what, secs=20):
    """The first line a background process on B prints (a port number)."""
    ready, _, _ = select.select([p.stdout], [], [], secs)
    check(ready, f"{what} printed nothing within {secs} s")
    line = p.stdout.readline().decode().strip()
    check(line, f"{what} ended without output (status {p.poll()})")
    return line


def unreachable_from_a(port):
    """B_ADDR:port must not be reachable here on A, or the case proves nothing."""
    try:
        with socket.create_connection((B_ADDR, int(port)), timeout=2):
            raise Failure(f"{B_ADDR}:{port} is reachable from A: the case cannot tell A from B")
    except OSError as e:
        log(f"[ok] from A, {B_ADDR}:{port} is unreachable ({e})")
    try:
        socket.getaddrinfo(B_NAME, port)
        raise Failure(f"A resolves {B_NAME}: the case cannot tell A's /etc/hosts from B's")
    except socket.gaierror as e:
        log(f"[ok] A cannot resolve {B_NAME} ({e})")


def remote_calls(stats_path):
    """{syscall name: remote call count} from sbrun --stats-format=json."""
    with open(stats_path) as f:
        data = json.load(f)
    return {s["name"]: s["calls"] for s in data["syscalls"] if s["where"] == "remote"}


def echo_server_on_b(ctx):
    """The echo cases' set-up: the echo_client helper, an agent with B's network and its tree,
    and an echo server on B: (client, agent, port)."""
    client = os.path.abspath(os.path.join(ctx.helpers_dir or "", "echo_client"))
    need_binary(client, "helper echo_client (--helpers-dir)")
    agent = ctx.agent(net=True)
    make_tree(agent)
    port = first_line(agent.spawn([SYS_PYTHON, "-c", ECHO_SERVER, B_ADDR]), "the echo server on B")
    return client, agent, port


def case_net_echo(ctx):
    """A TCP echo server running only in B's network namespace; a local client program under
    sbrun resolves a name only B's /etc/hosts has, connects to an address only B has, and plays
    ping-pong. --stats proves the socket calls went to the target."""
    client, agent, port = echo_server_on_b(ctx)
    unreachable_from_a(port)
    native = agent.nsenter([client, B_NAME, port, "20"])
    check(native.rc == 0 and f"connected to {B_ADDR}" in native.out,
          f"the client natively on B failed: the harness is wrong\n{native.describe()}")
    if ctx.native_only:
        return
    stats = os.path.join(ctx.tmp, "stats.json")
    t = ctx.traced(agent, [client, B_NAME, port, "200"],
                   extra=["--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0, "the client under sbrun failed")
    check(t.out == f"connected to {B_ADDR}\nechoed 200 bytes\n", f"unexpected output {t.out!r}")
    calls = remote_calls(stats)
    log(f"remote calls: {calls}")
    check(calls.get("socket", 0) >= 1 and calls.get("connect", 0) >= 1,
          "socket/connect did not go to the target")
    check(calls.get("sendto", 0) == 200 and calls.get("recvfrom", 0) == 200,
          "expected 200 remote sendto and recvfrom")


def case_net_http(ctx):
    """python3's urllib under sbrun fetches a page from `python3 -m http.server` that listens
    only in B's network namespace, by a name only B's /etc/hosts has."""
    agent = ctx.agent(net=True)
    make_tree(agent)
    agent.sh(f"mkdir -p {B_ROOT}/www && echo 'served by {B_HOSTNAME}' > {B_ROOT}/www/page.txt")
    server = agent.spawn(["sh", "-c", f"cd {B_ROOT}/www && exec {SYS_PYTHON} -u -c "
                          f"\"import http.server as h, socketserver; "
                          f"s = socketserver.TCPServer(('{B_ADDR}', 0), h.SimpleHTTPRequestHandler); "
                          f"print(s.server_address[1], flush=True); s.serve_forever()\""])
    port = first_line(server, "the HTTP server on B")
    unreachable_from_a(port)
    if ctx.native_only:
        return
    url = f"http://{B_NAME}:{port}/page.txt"
    stats = os.path.join(ctx.tmp, "stats.json")
    t = ctx.traced(agent, [SYS_PYTHON, "-c", "import urllib.request, sys; "
                           f"sys.stdout.write(urllib.request.urlopen({url!r}).read().decode())"],
                   extra=["--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0 and t.out == f"served by {B_HOSTNAME}\n", "urllib under sbrun failed")
    calls = remote_calls(stats)
    log(f"remote calls: {calls}")
    check(calls.get("connect", 0) >= 1, "connect did not go to the target")
    # curl waits for its connect and its answer with poll on the remote socket.
    if shutil.which("curl"):
        t = ctx.traced(agent, ["curl", "-sS", "--max-time", "30", url])
        log(t.describe())
        check(t.rc == 0 and t.out == f"served by {B_HOSTNAME}\n", "curl under sbrun failed")
    # asyncio waits on the remote socket and a local pipe in one epoll: the request is sent only
    # when the pipe (written by a timer) wakes the loop, while the socket's read is pending.
    prog = f"""
import asyncio, os
async def main():
    r, w = os.pipe()
    reader, writer = await asyncio.open_connection({B_NAME!r}, {port})
    loop = asyncio.get_running_loop()
    def on_pipe():
        print("pipe:", os.read(r, 100).decode(), flush=True)
        loop.remove_reader(r)
        writer.write(b"GET /page.txt HTTP/1.0\\r\\nHost: b\\r\\n\\r\\n")
    loop.add_reader(r, on_pipe)
    loop.call_later(0.3, os.write, w, b"local-ready")
    data = await asyncio.wait_for(reader.read(), 30)
    print(data.split(b"\\r\\n\\r\\n", 1)[1].decode(), end="")
asyncio.run(main())
"""
    t = ctx.traced(agent, [SYS_PYTHON, "-c", prog], extra=["--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0 and t.out == f"pipe: local-ready\nserved by {B_HOSTNAME}\n",
          "asyncio on a remote socket and a local pipe failed")
    calls = remote_calls(stats)
    check(calls.get("connect", 0) >= 1 and calls.get("epoll_wait", 0) >= 1,
          f"the socket or the wait did not go to the target: {calls}")


def case_net_ip_addr(ctx):
    """`ip -brief addr` (rtnetlink) and `cat /proc/net/dev` under sbrun show the interfaces of
    B's network namespace, exactly as they are natively there, and not A's."""
    agent = ctx.agent(net=True)
    make_tree(agent)
    native = agent.nsenter(["ip", "-brief", "addr"])
    check(native.rc == 0 and B_ADDR in native.out, f"ip natively on B\n{native.describe()}")
    here = run(["ip", "-brief", "addr"])
    check(here.out != native.out, "A has the same interfaces as B: the case proves nothing")
    if ctx.native_only:
        return
    stats = os.path.join(ctx.tmp, "stats.json")
    t = ctx.traced(agent, ["ip", "-brief", "addr"],
                   extra=["--stats=" + stats, "--stats-format=json"])
    log(t.describe())
    check(t.rc == 0 and t.out == native.out,
          "ip -brief addr under sbrun differs from B's\n" +
          diff(native.out.splitlines(), t.out.splitlines(), "native", "sbrun"))
    calls = remote_calls(stats)
    check(calls.get("socket", 0) >= 1 and calls.get("recvmsg", 0) >= 1,
          f"the netlink socket did not go to the target: {calls}")

    def interfaces(text):
        return sorted(l.split(":")[0].strip() for l in text.splitlines()[2:] if ":" in l)
    n = agent.nsenter(["cat", "/proc/net/dev"])
    t = ctx.traced(agent, ["cat", "/proc/net/dev"])
    log(t.describe())
    check(t.rc == 0 and interfaces(t.out) == interfaces(n.out) == ["lo"],
          f"/proc/net/dev under sbrun: {interfaces(t.out)}, natively on B: {interfaces(n.out)}")


def case_net_read_only(ctx):
    """A read-only agent refuses to bind a unix socket path (EROFS; EADDRINUSE for an existing
    name, as a read-only mount does), and still serves network sockets."""
    agent = ctx.agent(net=True, args=["--read-only"])
    make_tree(agent)
    port = first_line(agent.spawn([SYS_PYTHON, "-c", ECHO_SERVER, "127.0.0.1"]), "the echo server")
    if ctx.native_only:
        return
    script = ("import socket, errno\n"
              "def bind(p):\n"
              "    s = socket.socket(socket.AF_UNIX)\n"
              "    try:\n"
              "        s.bind(p); return 'bound'\n"
              "    except OSError as e:\n"
              "        return errno.errorcode[e.errno]\n"
              f"print('new name:', bind('{WORK}/new.sock'))\n"
              f"print('existing name:', bind('{WORK}/hello.txt'))\n"
              f"c = socket.create_connection(('127.0.0.1', {port}))\n"
              "c.sendall(b'ro'); print('tcp echo:', c.recv(2).decode())\n")
    t = ctx.traced(agent, [SYS_PYTHON, "-c", script])
    log(t.describe())
    check(t.rc == 0 and t.out == "new name: EROFS\nexisting name: EADDRINUSE\ntcp echo: ro\n",
          "unexpected answers from a read-only agent")


PY_SCM_LOCAL = (
    "import errno, os, socket\n"
    "a, b = socket.socketpair()\n"
    "r, w = os.pipe()\n"
    "try:\n"
    "    socket.send_fds(a, [b'x'], [r]); print('local fd: sent')\n"
    "except OSError as e:\n"
    "    print('local fd:', 'EOPNOTSUPP' if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno])\n"
    "f = os.open('hello.txt', os.O_RDONLY)\n"
    "print('remote fd:', socket.send_fds(a, [b'y'], [f]))\n"
    "msg, fds, flags, addr = socket.recv_fds(b, 16, 4)\n"
    "print('received:', msg, len(fds), os.read(fds[0], 10))\n")


def case_scm_local_fd(ctx):
    """Passing a local fd (a pipe of A) over a remote socketpair (SCM_RIGHTS): sendmsg answers
    EOPNOTSUPP, nothing is sent, and sbrun says why once on stderr; a remote fd (a file on B)
    passes over the same socket and reads B's file."""
    agent = ctx.agent(net=True)
    make_tree(agent)
    if ctx.native_only:
        return
    t = ctx.traced(agent, [SYS_PYTHON, "-c", PY_SCM_LOCAL])
    log(t.describe())
    check(t.rc == 0 and t.out == "local fd: EOPNOTSUPP\nremote fd: 1\n"
          "received: b'y' 1 b'hello from'\n", "unexpected answers")
    check("SCM_RIGHTS" in t.err and "fd of this machine" in t.err and "EOPNOTSUPP" in t.err,
          "sbrun must say why the local fd was refused")
    check(t.err.count("fd of this machine") == 1, "the note must be said once")


def build_cases():
    cases = {}   # name -> (function, needs namespaces+ptrace)
    for name in SHELL_CASES:
        cases[name] = (shell_case(name), True)
    cases["hostname"] = (identity_case("hostname"), True)
    cases["uname-n"] = (identity_case("uname -n"), True)
    for name in conformance_names():
        if name == "errno_eacces":
            cases["conformance-" + name] = (conformance_case(name, ["expect-root"]), True)
        else:
            cases["conformance-" + name] = (conformance_case(name), True)
    # Issue 16: the limits and locks hold for a program that dropped from root to nobody too.
    for name in ("rlimit_fsize", "rlimit_nofile", "locks_getlk", "opath_fd",
                 "errno_dirfd_order", "locks_deadlock", "leases", "lease_break", "openat2_resolve",
                 "rlimit_fsize_size", "proc_fd_link", "open_signal", "locks_close_paths",
                 "splice_mixed"):
        cases[f"conformance-{name}-as-nobody"] = (conformance_case(name, ["as-nobody"]), True)
    # Big reads in pipelined chunks (--read-chunk): small chunks, so that every big read of the
    # program is several of them.
    cases["conformance-read_big-chunked"] = (
        conformance_case("read_big", sbrun_extra=["--read-chunk=64"]), True)
    # Every answer 5 ms late: each open parks its thread (after 2 ms) while the 1 ms timer's
    # signals come; an open of a regular file must still never fail with EINTR.
    cases["conformance-open_signal-delayed"] = (
        conformance_case("open_signal", sbrun_extra=["--link-fault=delay=5ms"]), True)
    cases["conformance-open_signal-remote-pty"] = (
        conformance_case("open_signal", sbrun_extra=["--link-fault=delay=5ms", "--remote",
                                                     "/dev/ptmx", "--remote", "/dev/pts"]), True)
    cases["eacces"] = (case_eacces, True)
    cases["root"] = (case_root, True)
    cases["dlopen-remote"] = (case_dlopen_remote, True)
    cases["sqlite-wal-shared"] = (case_sqlite_wal_shared, True)
    cases["block-loop"] = (case_block_loop, True)
    cases["pty-remote"] = (case_pty_remote, True)
    cases["asyncio-mixed"] = (case_asyncio_mixed, True)
    cases["selectors-mixed"] = (case_selectors_mixed, True)
    cases["silent-peer"] = (case_silent_peer, True)
    cases["local-target"] = (case_local_target, True)
    cases["unreachable"] = (case_unreachable, False)
    cases["tcp-token"] = (case_tcp_token, True)
    cases["bad-flag"] = (case_bad_flag, False)
    cases["bad-url"] = (case_bad_url, False)
    cases["print-rules"] = (case_print_rules, False)
    cases["exit-codes"] = (case_exit_codes, True)
    cases["agent-killed"] = (case_agent_killed, True)
    cases["sbrun-killed"] = (case_sbrun_killed, True)
    cases["lease-sbrun-killed"] = (case_lease_sbrun_killed, True)
    cases["reconnect-wait"] = (case_reconnect_wait, True)
    cases["reconnect-fail"] = (case_reconnect_fail, True)
    cases["agent-killed-mid-read"] = (case_agent_killed_mid_read, True)
    cases["agent-killed-mid-big-read"] = (case_agent_killed_mid_big_read, True)
    cases["agent-stopped"] = (case_agent_stopped, True)
    cases["reconnect-eintr"] = (case_reconnect_eintr, True)
    cases["agent-frozen-calls"] = (case_agent_frozen_calls, True)
    cases["pytest-plugin"] = (case_pytest_plugin, True)
    cases["on-disconnect-exit"] = (case_on_disconnect_exit, True)
    cases["signals-forwarded"] = (case_signals_forwarded, True)
    cases["reconnect-children"] = (case_reconnect_children, True)
    cases["reconnect-cycles"] = (case_reconnect_cycles, True)
    cases["kill-cleanup"] = (case_kill_cleanup, True)
    cases["reconnect-local"] = (case_reconnect_local, True)
    cases["two-clients"] = (case_two_clients, True)
    cases["trace-stats"] = (case_trace_stats, True)
    cases["trace-verbose"] = (case_trace_verbose, True)
    cases["read-ahead-trace"] = (case_read_ahead_trace, True)
    cases["big-read-trace"] = (case_big_read_trace, True)
    cases["exec-hostname"] = (case_exec_hostname, True)
    cases["py-subprocess"] = (case_py_subprocess, True)
    cases["exec-b-only"] = (case_exec_b_only, True)
    cases["pipeline-sigpipe"] = (case_pipeline_sigpipe, True)
    cases["background-kill"] = (case_background_kill, True)
    cases["stdin-given-back"] = (case_stdin_given_back, True)
    cases["agent-clean"] = (case_agent_clean, True)
    cases["scope-threads"] = (case_scope_threads, True)
    cases["scope-python"] = (case_scope_python, True)
    cases["scope-cxx"] = (case_scope_cxx, True)
    cases["scopes-nested"] = (case_scopes_nested, True)
    cases["control-fd"] = (case_control_fd, True)
    cases["attach"] = (case_attach, True)
    cases["attach-detach-in-flight"] = (case_attach_detach_in_flight, True)
    cases["ssh-target"] = (case_ssh_target, True)
    cases["ssh-refused"] = (case_ssh_refused, False)
    cases["ssh-deploy"] = (case_ssh_deploy, True)
    cases["ssh-deploy-aarch64"] = (case_ssh_deploy_aarch64, True)
    cases["ssh-version-mismatch"] = (case_ssh_version_mismatch, True)
    cases["ssh-deploy-reconnect"] = (case_ssh_deploy_reconnect, True)
    cases["exec-target"] = (case_exec_target, True)
    cases["exec-fail"] = (case_exec_fail, False)
    cases["net-echo"] = (case_net_echo, True)
    cases["net-http"] = (case_net_http, True)
    cases["net-ip-addr"] = (case_net_ip_addr, True)
    cases["net-read-only"] = (case_net_read_only, True)
    cases["scm-local-fd"] = (case_scm_local_fd, True)
    # The agent's defences (issue 7): TLS, admission, limits, garbage on the wire.
    import security_cases
    security_cases.register(cases, sys.modules[__name__])
    # Network partitions (issue 7): a proxy that stops forwarding, the agent's silence check.
    import fault_cases
    fault_cases.register(cases, sys.modules[__name__])
    # A root agent safe to leave running (issue 17): who connects, pre-handshake limits, what a
    # session's programs may do on B.
    import isolation_cases
    isolation_cases.register(cases, sys.modules[__name__])
    # A debugger on the program (issue 15): gdb through sbrun --gdb.
    import gdb_cases
    gdb_cases.register(cases, sys.modules[__name__])

    # Where a program runs (issue 15): the exec chain stays here, --spawn, exec rules.
    import exec_place_cases
    exec_place_cases.register(cases, sys.modules[__name__])

    # strace-style tracing and fault injection (issue 19).
    import trace_cases
    trace_cases.register(cases, sys.modules[__name__])

    # Record and replay of B (issue 19): --record, --replay, the divergence report.
    import replay_cases
    replay_cases.register(cases, sys.modules[__name__])

    # Installing (issue 20): meson install, socket activation.
    import install_cases
    install_cases.register(cases, sys.modules[__name__])
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--case", help="the case to run")
    ap.add_argument("--sbrun", help="path of the sbrun executable")
    ap.add_argument("--sbagent", help="path of the sbagent executable")
    ap.add_argument("--conformance-dir", help="build directory of tests/conformance")
    ap.add_argument("--helpers-dir", help="build directory of tests/integration (read_loop)")
    ap.add_argument("--native-only", action="store_true",
                    help="run only the native half (checks the harness without sbrun)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    cases = build_cases()
    if args.list:
        print("\n".join(cases))
        return 0
    if not args.case or args.case not in cases:
        print(f"run.py: unknown or missing --case {args.case!r}; see --list", file=sys.stderr)
        return 2
    fn, needs_ns = cases[args.case]
    log(f"=== case {args.case}")
    try:
        if needs_ns:
            probe_namespaces()
            if not args.native_only:
                probe_ptrace()
            need_binary(args.sbagent and os.path.abspath(args.sbagent), "sbagent")
    except Skip as e:
        print(f"SKIP {args.case}: {e}", flush=True)
        return 77
    except Failure as e:
        print(f"FAIL {args.case}: {e}", flush=True)
        return 1
    ctx = Ctx(args)
    try:
        fn(ctx)
    except Skip as e:   # a case's own probe (sshd not installed)
        print(f"SKIP {args.case}: {e}", flush=True)
        return 77
    except Failure as e:
        print(f"FAIL {args.case}: {e}", flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"FAIL {args.case}: error in the harness", flush=True)
        return 1
    finally:
        ctx.close()
    print(f"PASS {args.case}" + (" (native half only)" if args.native_only else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
