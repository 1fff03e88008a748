#!/usr/bin/env python3
"""splitbrain benchmark (issue 6): sbrun against native, strace -f, sshfs and the physical floors.

Run by hand as root from anywhere (never in CI; it loads the machine for a while):

    python3 tests/bench/bench.py            # full sizes, 5 runs per figure (~15 min, 2 cores)
    python3 tests/bench/bench.py --quick    # sizes /10, 3 runs: a smoke check (~1.5 min)
    python3 tests/bench/bench.py --markdown table.md   # also write the tables as markdown

What it does, in one run:
  1. builds a release build in <repo>/build-bench (meson setup --buildtype=release; only the
     targets it needs: sbrun, sb-stub, sbagent and the helpers in tests/bench);
  2. makes a bench tree in /tmp/sb-bench-*/fs (a tmpfs of its own when run as root; --on-disk
     keeps it on /tmp's file system) and starts two real sbagents with --root on it, one on a
     unix socket and one on TCP 127.0.0.1 (the agent runs on this machine: "native" is the
     same workload run directly on the files the agents serve);
  3. starts sshd on a free 127.0.0.1 port with its own config and keys and mounts the same tree
     with sshfs (installs `sshfs` and `openssh-server` with apt-get when missing); without FUSE the
     sshfs column says why it is unavailable;
  4. measures the two floors: a bare seccomp trap round trip through a ptrace tracer
     (bench_trap.c) and a bare Cap'n Proto round trip on each transport (bench_rpc.cc);
  5. runs every workload in every configuration (native, sbrun over unix and TCP,
     `strace -f -o /dev/null`, sshfs), round robin, and prints the median of the runs, each as a
     ratio against native and against the floor, then the issue's targets (met / not met).
Everything is torn down at the end, on failure and on ^C too: agents, sshfs mount, sshd, tmpfs,
files.

The measured program is always the one sbrun launches (bench_load, sha256sum, find, sh), so it
runs here, traced; programs it executes would run on the agent (remote exec), except in the tar
workload, which keeps them here with --local /usr/bin --local /bin.

The floor of a figure is native plus, for each syscall sbrun trapped in that workload (counted
from one extra `sbrun --stats-format=json` run; for the loops of bench_load only the loop's
calls, and for a loop of never-trapped calls what a minimal seccomp filter adds to each), the
bare cost of what it has to do at least:
a trap round trip for a call that ran here; a trap plus a Cap'n Proto round trip for a call that
went to the agent (a close: the trap only, it need not wait for its answer); and for the bytes
such calls moved, the Cap'n Proto payload cost and the process_vm_readv/writev copy. A ratio
below 1 against the floor means sbrun avoided calls the one-trap-one-round-trip model counts
(read-ahead, calls it did not trap). All ratios are slowdowns, time against time: for
throughputs a ratio of 2 means half the reference's MB/s. sshfs and strace are compared with the
TCP floor.
"""

import argparse
import getpass
import glob
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MIB = 1 << 20
ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
RUN_TIMEOUT = 900


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def sh(argv, **kw):
    """Runs a set-up command; raises BenchError with its output when it fails."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=ENV, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n{r.stdout[-3000:]}")
    return r.stdout


# ---------------------------------------------------------------------------------------------
# Build


TARGETS = ["tracer/sbrun", "tracer/sb-stub", "agent/sbagent",
           "tests/bench/bench_load", "tests/bench/bench_trap", "tests/bench/bench_rpc"]


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        log(f"bench: meson setup {build_dir} --buildtype=release")
        sh(["meson", "setup", build_dir, "--buildtype=release"], cwd=REPO)
    with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
        buildtype = next(o["value"] for o in json.load(f) if o["name"] == "buildtype")
    if buildtype != "release":
        raise BenchError(f"{build_dir} is a {buildtype} build; remove it or pass --build-dir")
    log(f"bench: meson compile -C {build_dir} (sbrun, sbagent, bench helpers)")
    sh(["meson", "compile", "-C", build_dir] + TARGETS)
    return {os.path.basename(t): os.path.join(build_dir, t) for t in TARGETS}


# ---------------------------------------------------------------------------------------------
# Fixtures


class Sizes:
    def __init__(self, quick):
        d = 10 if quick else 1
        self.calls = 100_000 // d          # getppid, 1-byte writes
        self.files = 10_000 // d           # stat, find
        self.cycles = 10_000 // d          # open/read/close, pread 64 B
        self.read_big = (1024 // d) * MIB  # 1 MiB reads
        self.read_small = (256 // d) * MIB  # 4 KiB reads
        self.write = (512 // d) * MIB
        self.sha = (256 // d) * MIB
        self.tar_files = 2000 // d         # ~64 KiB max, ~32 KiB mean each
        self.trap_calls = 20_000 // d
        self.rpc_calls = 10_000 // d


def write_file(path, size, block):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def make_tree(tmp, sz):
    """The agents' root (tmp/tree) and a local directory (tmp/local) for the local-file sha256."""
    tree = os.path.join(tmp, "tree")
    data = os.path.join(tree, "data")
    rnd = random.Random(6)
    block = rnd.randbytes(MIB)
    os.makedirs(os.path.join(data, "out"))
    write_file(os.path.join(data, "big"), sz.read_big, block)
    write_file(os.path.join(data, "mid"), sz.read_small, block)
    write_file(os.path.join(data, "small"), 4096, block)
    for i in range(sz.files):
        d = os.path.join(data, "meta", f"d{i // 100:03d}")
        if i % 100 == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"f{i % 100:03d}"), "wb") as f:
            f.write(b"x" * (i % 7))
    for i in range(sz.tar_files):
        d = os.path.join(data, "tar", f"dir{i // 100:02d}")
        if i % 100 == 0:
            os.makedirs(d)
        n = rnd.randrange(0, 64 * 1024)
        off = rnd.randrange(0, MIB - n)
        with open(os.path.join(d, f"file{i:05d}.bin"), "wb") as f:
            f.write(block[off:off + n])
    # Same mtimes everywhere: tar's stream (and so its hash) must not depend on when we ran.
    for root, dirs, files in os.walk(os.path.join(data, "tar")):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (1700000000, 1700000000))
    os.utime(os.path.join(data, "tar"), (1700000000, 1700000000))
    if shutil.which("git"):
        # A repository of tar_files small files in one commit, its index fresh: `git status`
        # then stats every file, reads the index (mmap) and the tree objects, and writes nothing.
        repo = os.path.join(data, "repo")
        for i in range(sz.tar_files):
            d = os.path.join(repo, f"dir{i // 100:02d}")
            if i % 100 == 0:
                os.makedirs(d)
            with open(os.path.join(d, f"file{i:05d}.c"), "wb") as f:
                f.write(block[i * 97 % 4096:][:rnd.randrange(200, 4000)])
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"], ["status"]):
            subprocess.run(git + argv, check=True, stdout=subprocess.DEVNULL)
    local = os.path.join(tmp, "local")
    os.makedirs(local)
    write_file(os.path.join(local, "sha"), sz.sha, block)
    subprocess.run(["sync"])
    return tree, local


# ---------------------------------------------------------------------------------------------
# Agents, sshd + sshfs


class Agent:
    def __init__(self, sbagent, root, listen, logpath):
        self.proc = None
        r, w = os.pipe()
        self.log = open(logpath, "w")
        self.proc = subprocess.Popen([sbagent, f"--listen={listen}", f"--root={root}",
                                      f"--ready-fd={w}"], pass_fds=[w], stdout=self.log,
                                     stderr=self.log, env=ENV)
        os.close(w)
        with os.fdopen(r) as f:
            line = f.readline().strip()
        if not line.startswith("ready "):
            self.stop()
            raise BenchError(f"sbagent --listen={listen} did not start (see {logpath})")
        self.url = line.split(" ", 1)[1]

    def hwm_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshfs:
    """sshd on a free loopback port with its own config and keys, and an sshfs mount of `tree`.
    `self.mnt` is the mount point, or None with `self.why` saying why sshfs is unavailable."""

    def __init__(self, tmp, tree, allow_install):
        self.tmp, self.tree = tmp, tree
        self.sshd = None
        self.mnt = None
        self.mounted = False
        self.why = None
        try:
            self._start(allow_install)
        except BenchError as e:
            self.why = str(e).strip().splitlines()[0][:200]
            self.stop()

    def _start(self, allow_install):
        if not os.path.exists("/dev/fuse"):
            raise BenchError("no /dev/fuse")
        if not shutil.which("sshfs") or not os.path.exists("/usr/sbin/sshd"):
            if not allow_install:
                raise BenchError("sshfs or sshd missing and --no-install given")
            if os.geteuid() != 0:
                raise BenchError("sshfs or sshd missing, and not root to apt-get install them")
            log("bench: apt-get install sshfs openssh-server")
            env = dict(ENV, DEBIAN_FRONTEND="noninteractive")
            cmd = ["apt-get", "install", "-y", "--no-install-recommends", "sshfs",
                   "openssh-server"]
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                if r.returncode != 0:
                    raise BenchError(f"apt-get install failed: {r.stdout.strip()[-200:]}")
        d = os.path.join(self.tmp, "ssh")
        os.makedirs(d, mode=0o700)
        for key in ("host_key", "id"):
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, key)])
        shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
        port = free_port()
        config = os.path.join(d, "sshd_config")
        with open(config, "w") as f:
            f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
                    f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.sshd_log = open(os.path.join(d, "sshd.log"), "w")
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-f", config, "-D", "-e"],
                                     stdout=self.sshd_log, stderr=self.sshd_log)
        deadline = time.monotonic() + 10
        while True:
            if self.sshd.poll() is not None:
                raise BenchError(f"sshd exited: {open(self.sshd_log.name).read().strip()[-200:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("sshd did not listen within 10 s")
                time.sleep(0.05)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(self.mnt)
        user = getpass.getuser()
        r = subprocess.run(
            ["sshfs", "-o", f"IdentityFile={d}/id,StrictHostKeyChecking=no,"
             f"UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR,port={port}",
             f"{user}@127.0.0.1:{self.tree}", self.mnt],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0 or not os.path.ismount(self.mnt):
            raise BenchError(f"sshfs mount failed: {r.stdout.strip()[-200:]}")
        self.mounted = True

    def stop(self):
        if self.mounted:
            for cmd in (["fusermount3", "-u", self.mnt], ["fusermount", "-u", self.mnt],
                        ["umount", "-l", self.mnt]):
                if shutil.which(cmd[0]) and subprocess.run(
                        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                    break
            self.mounted = False
        if self.sshd and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
        self.sshd = None


# ---------------------------------------------------------------------------------------------
# Running and measuring


class Result:
    def __init__(self, rc, out, err, seconds, maxrss_kib):
        self.rc, self.out, self.err = rc, out, err
        self.seconds, self.maxrss_kib = seconds, maxrss_kib


def run(argv, stdout_devnull=False, timeout=RUN_TIMEOUT):
    """Runs argv with wall time and the peak RSS of it and its descendants (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL if stdout_devnull else out, stderr=err,
                             env=ENV, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(p.pid, 0)
                p.returncode = -9
                out.seek(0)
                err.seek(0)
                return Result(-9, out.read().decode(errors="replace"),
                              "timeout\n" + err.read().decode(errors="replace"),
                              time.monotonic() - start, rusage.ru_maxrss)
            time.sleep(0.002)
        seconds = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(p.returncode, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"), seconds, rusage.ru_maxrss)


def keyvals(text):
    """Every 'key number' pair in text, as a dict (a later pair wins)."""
    vals = {}
    for m in re.finditer(r"([a-zA-Z_0-9]+) (-?[0-9]+(?:\.[0-9]+)?)\b", text):
        vals[m.group(1)] = float(m.group(2))
    return vals


class Floors:
    """The two floors: medians over every sample() (the bench takes one at the start and one at
    the end, `runs` runs of bench_trap and bench_rpc each, so both see the machine's load)."""

    def __init__(self, exe, sz, runs, transports):
        self.exe, self.sz, self.runs, self.transports = exe, sz, runs, transports
        self.trap_samples = []
        self.rpc_samples = {t: [] for t in transports}
        self.pinned_samples = {k: [] for k in ["trap"] + transports}

    def sample(self):
        exe, sz = self.exe, self.sz
        # Also pinned to one CPU (taskset -c 0), for the report only: on a VM, waking a process
        # on another, idle vCPU can cost more than the work itself; the gap says how much.
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else None
        for _ in range(self.runs):
            # The trap's figure is bimodal on a VM (tracer and tracee on one vCPU or on two):
            # three samples per run, so the median follows the common case.
            for _ in range(3):
                self.trap_samples.append(keyvals(self._ok([exe["bench_trap"],
                                                           str(sz.trap_calls)])))
            if pin:
                self.pinned_samples["trap"].append(
                    keyvals(self._ok(pin + [exe["bench_trap"], str(sz.trap_calls)])))
            for t in self.transports:
                argv = [exe["bench_rpc"], t, str(sz.rpc_calls)]
                self.rpc_samples[t].append(keyvals(self._ok(argv)))
                if pin:
                    self.pinned_samples[t].append(keyvals(self._ok(pin + argv)))
        med = lambda rows: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        self.trap = med(self.trap_samples)
        self.rpc = {t: med(rows) for t, rows in self.rpc_samples.items()}
        self.pinned = {k: med(rows) for k, rows in self.pinned_samples.items() if rows}

    def filter_us(self):
        """What a minimal seccomp filter adds to a syscall it lets through (µs)."""
        return max(self.trap["filtered_ns"] - self.trap["bare_ns"], 0) / 1e3

    def spread(self):
        """min..max of the trap and ping samples, for the report."""
        tr = [s["trap_us"] for s in self.trap_samples]
        out = [f"trap {min(tr):.1f}..{max(tr):.1f} µs"]
        for t, rows in self.rpc_samples.items():
            p = [r["ping_us"] for r in rows]
            out.append(f"{t} round trip {min(p):.1f}..{max(p):.1f} µs")
        return ", ".join(out)

    @staticmethod
    def _ok(argv):
        r = run(argv, timeout=300)
        if r.rc != 0:
            raise BenchError(f"{' '.join(argv)} failed ({r.rc}): {r.err[-1000:]}")
        return r.out

    def T(self):
        return self.trap["trap_us"]

    def R(self, t):
        return self.rpc[t]["ping_us"]

    def overhead_us(self, t, stats, only=None):
        """The floor's extra time (µs) for the trapped calls of one `sbrun --stats` run; with
        `only`, just the calls of those names (a workload's timed loop, not its start-up)."""
        T, R = self.T(), self.R(t)
        fetch_b = max(self.rpc[t]["fetch1m_us"] - R, 0) / MIB
        push_b = max(self.rpc[t]["push1m_us"] - R, 0) / MIB
        pvw_b = self.trap["pvw1m_us"] / MIB
        pvr_b = self.trap["pvr1m_us"] / MIB
        us = 0.0
        for s in stats["syscalls"]:
            if only is not None and s["name"] not in only:
                continue
            n = s["calls"]
            if s["where"] == "cached":
                # Answered from a read-ahead window: a trap each; their bytes crossed the wire
                # once, in the window's fetch (counted by the remote row's calls, not bytes).
                us += n * T + s["bytes"] * (fetch_b + pvw_b)
                continue
            if s["where"] != "remote":
                us += n * T
                continue
            us += n * T if s["name"] in ("close", "close_range") else n * (T + R)
            name = s["name"]
            if name.startswith("read") or name.startswith("pread") or name == "getdents64":
                us += s["bytes"] * (fetch_b + pvw_b)
            elif name.startswith("write") or name.startswith("pwrite"):
                us += s["bytes"] * (push_b + pvr_b)
        return us


# Configurations (table columns).
NATIVE, SB_UNIX, SB_TCP, STRACE, SSHFS = "native", "sbrun unix", "sbrun tcp", "strace -f", "sshfs"
COLUMNS = [NATIVE, SB_UNIX, SB_TCP, STRACE, SSHFS]


class Workload:
    """kind: 'op' (µs per operation, printed by bench_load), 'bulk' (MB/s, printed by
    bench_load) or 'wall' (ms, the whole command, measured here). `argv(p)` builds the command
    from a path mapper p('data/x') -> the path in this configuration."""

    def __init__(self, key, title, kind, argv, remote=True, sbrun_extra=(), devnull=False,
                 check=None, how=None, after=None, loop=None):
        self.key, self.title, self.kind, self.argv = key, title, kind, argv
        self.loop = loop  # syscall names of the timed loop (op and bulk workloads)
        self.remote, self.sbrun_extra, self.devnull = remote, list(sbrun_extra), devnull
        self.check, self.after = check, after
        # What runs under sbrun, and where: the launched program always runs here, traced.
        self.how = how or f"launched: {os.path.basename(argv(lambda rel: rel)[0])}"

    @property
    def unit(self):
        return {"op": "µs/op", "bulk": "MB/s", "wall": "ms"}[self.kind]

    def value(self, r):
        if self.kind == "wall":
            return r.seconds * 1e3
        kv = keyvals(r.out + "\n" + r.err)
        key = "us_per_op" if self.kind == "op" else "MB_per_s"
        if key not in kv:
            raise BenchError(f"no '{key}' in the output: {(r.out + r.err)[-300:]}")
        return kv[key]


def workloads(exe, sz, local):
    load = exe["bench_load"]
    sha_path = os.path.join(local, "sha")

    def lines(n):
        return lambda out: len(out.splitlines()) == n

    dirs = (sz.files + 99) // 100
    seq = itertools.count()  # a new file per write run: sshfs caches what it saw of the old one
    return [
        Workload("startup", "start-up: `true`", "wall", lambda p: ["/bin/true"], remote=False),
        Workload("getppid", f"{sz.calls // 1000}k getppid (never redirected)", "op",
                 lambda p: [load, "getppid", str(sz.calls)], remote=False, loop={"getppid"}),
        Workload("write1", f"{sz.calls // 1000}k 1-byte writes, stdout=/dev/null", "op",
                 lambda p: [load, "write1", str(sz.calls)], remote=False, devnull=True,
                 loop={"write"}),
        Workload("sha256", f"sha256sum, {sz.sha // MIB} MiB local file", "wall",
                 lambda p: ["sha256sum", sha_path], remote=False,
                 sbrun_extra=["--local", local], check="same",
                 how="launched: sha256sum; --local its dir"),
        Workload("stat", f"stat {sz.files // 1000}k remote files", "op",
                 lambda p: [load, "stat", p("data/meta"), str(sz.files)],
                 loop={"stat", "newfstatat", "statx"}),
        Workload("find", f"find over {sz.files // 1000}k remote files", "wall",
                 lambda p: ["find", p("data/meta")], check=lines(sz.files + dirs + 1)),
        Workload("pread64", f"{sz.cycles // 1000}k pread 64 B, remote file", "op",
                 lambda p: [load, "pread64", p("data/small"), str(sz.cycles)], loop={"pread64"}),
        Workload("orc", f"{sz.cycles // 1000}k open/read 64 B/close", "op",
                 lambda p: [load, "orc", p("data/small"), str(sz.cycles)],
                 loop={"open", "openat", "read", "close"}),
        Workload("read1m", f"read {sz.read_big // MIB} MiB, 1 MiB reads", "bulk",
                 lambda p: [load, "read", p("data/big"), str(MIB)], loop={"read"}),
        Workload("read4k", f"read {sz.read_small // MIB} MiB, 4 KiB reads", "bulk",
                 lambda p: [load, "read", p("data/mid"), "4096"], loop={"read"}),
        Workload("write", f"write {sz.write // MIB} MiB, 1 MiB writes + fsync", "bulk",
                 lambda p: [load, "write", p(f"data/out/w{next(seq)}"), str(sz.write), str(MIB)],
                 after="rm data/out/*", loop={"openat", "write", "fsync", "close"}),
        Workload("tar", f"tar cf - tree | sha256sum ({sz.tar_files} files)", "wall",
                 lambda p: ["sh", "-c",
                            f"tar --numeric-owner -cf - -C {p('data')} tar | sha256sum"],
                 sbrun_extra=["--local", "/usr/bin", "--local", "/bin"], check="same",
                 how="launched: sh; --local /usr/bin /bin keeps tar, sha256sum here"),
    ] + ([
        Workload("git", f"git status in a {sz.tar_files}-file repository", "wall",
                 lambda p: ["git", "-C", p("data/repo"), "--no-optional-locks", "status",
                            "--porcelain"],
                 check="same", how="launched: git"),
    ] if shutil.which("git") else [])


class Bench:
    def __init__(self, args):
        self.args = args
        self.sz = Sizes(args.quick)
        self.runs = args.runs or (3 if args.quick else 5)
        self.results = {}      # (workload key, column) -> list of values
        self.failures = {}     # (workload key, column) -> message
        self.stats = {}        # workload key -> sbrun --stats json (unix)
        self.sbrun_rss = {}    # workload key -> peak RSS (KiB) of sbrun runs
        self.notes = []

    def setup(self):
        a = self.args
        self.exe = build(a.build_dir)
        self.tmp = tempfile.mkdtemp(prefix="sb-bench-")
        os.chmod(self.tmp, 0o755)
        self.fs = os.path.join(self.tmp, "fs")
        os.makedirs(self.fs)
        self.tmpfs = False
        if not a.on_disk and os.geteuid() == 0:
            # The files on a tmpfs of their own: what is measured is splitbrain, not this
            # machine's disk (which other users share), and fsync costs nothing but the call.
            size = (self.sz.read_big + self.sz.read_small + self.sz.write + self.sz.sha) * 2
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755",
                                "sb-bench", self.fs], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            self.tmpfs = r.returncode == 0
            if not self.tmpfs:
                self.notes.append(f"tree on {self.tmp}'s file system: tmpfs mount failed "
                                  f"({r.stdout.strip()})")
        log(f"bench: fixtures in {self.fs}{' (tmpfs)' if self.tmpfs else ''}")
        self.tree, self.local = make_tree(self.fs, self.sz)
        self.agents = {}
        self.agents["unix"] = Agent(self.exe["sbagent"], self.tree,
                                    f"unix:{self.tmp}/agent.sock", f"{self.tmp}/agent-unix.log")
        self.agents["tcp"] = Agent(self.exe["sbagent"], self.tree, "tcp://127.0.0.1:0",
                                   f"{self.tmp}/agent-tcp.log")
        self.sshfs = None
        if not a.no_sshfs:
            log("bench: sshd + sshfs")
            self.sshfs = Sshfs(self.tmp, self.tree, not a.no_install)
            if self.sshfs.why:
                log(f"bench: sshfs unavailable: {self.sshfs.why}")

    def teardown(self):
        for agent in getattr(self, "agents", {}).values():
            agent.stop()
        if getattr(self, "sshfs", None):
            self.sshfs.stop()
        if getattr(self, "tmpfs", False) and not self.args.keep:
            subprocess.run(["umount", self.fs])
            self.tmpfs = False
        if getattr(self, "tmp", None) and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- commands per configuration

    def mapper(self, col):
        if col in (NATIVE, STRACE):
            return lambda rel: os.path.join(self.tree, rel)
        if col == SSHFS:
            return lambda rel: os.path.join(self.sshfs.mnt, rel)
        return lambda rel: "/" + rel

    def command(self, w, col, extra=()):
        argv = w.argv(self.mapper(col))
        if col == STRACE:
            return ["strace", "-f", "-o", "/dev/null", "--"] + argv
        if col in (SB_UNIX, SB_TCP):
            url = self.agents["unix" if col == SB_UNIX else "tcp"].url
            return ([self.exe["sbrun"], "--target", url] + w.sbrun_extra + list(extra) + ["--"]
                    + argv)
        return argv

    def columns(self, w):
        cols = [NATIVE, SB_UNIX, SB_TCP]
        if shutil.which("strace"):
            cols.append(STRACE)
        if w.remote and self.sshfs and self.sshfs.mnt and not self.sshfs.why:
            cols.append(SSHFS)
        return cols

    def after(self, w):
        if w.after:
            for path in glob.glob(os.path.join(self.tree, w.after.split(" ", 1)[1])):
                os.unlink(path)

    def once(self, w, col, extra=()):
        r = run(self.command(w, col, extra), stdout_devnull=w.devnull)
        self.after(w)
        if r.rc != 0:
            raise BenchError(f"exit {r.rc}: {r.err.strip()[-400:]}")
        return r

    def measure(self, w):
        cols = self.columns(w)
        log(f"bench: {w.key}: {w.title} ({', '.join(cols)}; {self.runs} runs)")
        try:  # warm the page cache and check the workload works natively
            ref = self.once(w, NATIVE)
        except BenchError as e:
            for col in cols:
                self.failures[(w.key, col)] = f"native failed: {e}"
            return
        for _ in range(self.runs):
            for col in cols:
                if (w.key, col) in self.failures:
                    continue
                try:
                    r = self.once(w, col)
                    if w.check == "same" and r.out != ref.out:
                        raise BenchError(f"output differs from native: {r.out[:100]!r} "
                                         f"vs {ref.out[:100]!r}")
                    if callable(w.check) and not w.check(r.out):
                        raise BenchError(f"unexpected output ({len(r.out.splitlines())} lines)")
                    self.results.setdefault((w.key, col), []).append(w.value(r))
                    if col in (SB_UNIX, SB_TCP):
                        rss = self.sbrun_rss.get(w.key, 0)
                        self.sbrun_rss[w.key] = max(rss, r.maxrss_kib)
                except BenchError as e:
                    self.failures[(w.key, col)] = str(e)
                    log(f"bench:   {col}: FAILED: {e}")
        if (w.key, SB_UNIX) not in self.failures:
            path = os.path.join(self.tmp, f"stats-{w.key}.json")
            try:
                self.once(w, SB_UNIX, [f"--stats={path}", "--stats-format=json"])
                with open(path) as f:
                    self.stats[w.key] = json.load(f)
            except (BenchError, OSError, ValueError) as e:
                self.notes.append(f"{w.key}: no --stats run ({e}); no floor")

    # -- figures

    def median(self, key, col):
        vals = self.results.get((key, col))
        return statistics.median(vals) if vals else None

    def floor(self, w, col):
        """The floor in the workload's unit for the transport of `col`, or None."""
        native = self.median(w.key, NATIVE)
        if native is None or w.key == "startup" or w.key not in self.stats:
            return None
        t = "unix" if col == SB_UNIX else "tcp"
        stats = self.stats[w.key]
        if w.loop is not None and w.remote:  # the loop's calls go to the agent; start-up's stay
            # ("cached": reads answered from the read-ahead window, a trap each and no RPC)
            stats = {"syscalls": [s for s in stats["syscalls"]
                                  if s["where"] in ("remote", "cached")]}
        over = self.floors.overhead_us(t, stats, w.loop)
        if w.kind == "wall":
            return native + over / 1e3
        if w.kind == "op":
            ops = self.sz.calls if w.key in ("getppid", "write1") else (
                self.sz.files if w.key == "stat" else self.sz.cycles)
            # A call that no filter traps still pays for running the filter.
            filt = self.floors.filter_us() if not w.remote else 0
            return native + filt + over / ops
        nbytes = self.sz.read_big if w.key == "read1m" else (
            self.sz.read_small if w.key == "read4k" else self.sz.write)
        seconds = nbytes / (native * 1e6) + over / 1e6
        return nbytes / seconds / 1e6

    def slowdown(self, w, value, ref):
        if value is None or ref is None or value == 0 or ref == 0:
            return None
        return ref / value if w.kind == "bulk" else value / ref


def fmt_value(v, kind):
    if v is None:
        return "—"
    if kind == "op":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if kind == "bulk":
        return f"{v:.0f}"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def table(header, rows):
    """Markdown table, padded so it reads as text too."""
    header = [str(c).replace("|", "\\|") for c in header]
    rows = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])


def report(b, wls):
    out = []
    sshfs_note = None
    if b.args.no_sshfs:
        sshfs_note = "not run (--no-sshfs)"
    elif b.sshfs and b.sshfs.why:
        sshfs_note = f"unavailable ({b.sshfs.why})"

    f = b.floors
    out.append("Floors (medians):")
    pt = f.pinned.get("trap")
    out.append(f"  seccomp trap round trip through ptrace (PTRACE_CONT): {f.T():.1f} µs; "
               f"with GETREGS/SETREGS to complete the call: {f.trap['emulate_us']:.1f} µs"
               + (f" (both on one CPU: {pt['trap_us']:.1f} / {pt['emulate_us']:.1f} µs)"
                  if pt else ""))
    out.append(f"  getppid: {f.trap['bare_ns']:.0f} ns bare, {f.trap['filtered_ns']:.0f} ns "
               "through a minimal (6-instruction) seccomp filter that lets it run")
    out.append(f"  process_vm_readv 64 B {f.trap['pvr64_us']:.1f} µs, 1 MiB "
               f"{f.trap['pvr1m_us']:.0f} µs ({MIB / f.trap['pvr1m_us'] / 1e3:.1f} GB/s); "
               f"process_vm_writev 1 MiB {f.trap['pvw1m_us']:.0f} µs")
    for t, r in f.rpc.items():
        out.append(f"  Cap'n Proto over {t}: round trip {r['ping_us']:.1f} µs; 64 B back "
                   f"{r['fetch64_us']:.1f} µs; 4 KiB back {r['fetch4k_us']:.1f} µs; 1 MiB back "
                   f"{r['fetch1m_us']:.0f} µs ({r['fetch_MBps']:.0f} MB/s); 1 MiB there "
                   f"{r['push1m_us']:.0f} µs ({r['push_MBps']:.0f} MB/s)"
                   + (f"; on one CPU: round trip {f.pinned[t]['ping_us']:.1f} µs, 1 MiB back "
                      f"{f.pinned[t]['fetch1m_us']:.0f} µs" if t in f.pinned else ""))
    out.append(f"  trap + RPC: unix {f.T() + f.R('unix'):.1f} µs, tcp {f.T() + f.R('tcp'):.1f} µs")
    out.append(f"  spread of the samples (start and end of the run): {f.spread()}")
    out.append("")

    sshfs_head = f"sshfs: {sshfs_note}" if sshfs_note else SSHFS
    head = ["workload", "unit", "how", NATIVE, SB_UNIX, SB_TCP, STRACE, sshfs_head,
            "floor unix", "floor tcp"]
    rows = []
    for w in wls:
        row = [w.title, w.unit, w.how]
        for col in COLUMNS:
            if (w.key, col) in b.failures:
                row.append("FAIL")
            elif col == SSHFS and not w.remote:
                row.append("n/a")
            elif col == SSHFS and sshfs_note:
                row.append("—")
            else:
                row.append(fmt_value(b.median(w.key, col), w.kind))
        row.append(fmt_value(b.floor(w, SB_UNIX), w.kind))
        row.append(fmt_value(b.floor(w, SB_TCP), w.kind))
        rows.append(row)
    out.append(f"Medians of {b.runs} runs (op: µs per operation, lower is better; bulk: MB/s, "
               "higher is better; wall: whole command in ms, lower is better):")
    out.append(table(head, rows))
    out.append("")

    head = ["workload", SB_UNIX, SB_TCP, STRACE, SSHFS]
    cols = head[1:]
    head[-1] = sshfs_head
    rows = []
    for w in wls:
        native = b.median(w.key, NATIVE)
        row = [w.title]
        for col in cols:
            v = b.median(w.key, col)
            if v is None:
                row.append("FAIL" if (w.key, col) in b.failures else "—")
                continue
            fl = b.floor(w, SB_UNIX if col == SB_UNIX else SB_TCP)
            row.append(f"{fmt_ratio(b.slowdown(w, v, native))} / "
                       f"{fmt_ratio(b.slowdown(w, v, fl))}")
        rows.append(row)
    out.append("Slowdown against native / against the floor (time ratios; 1.00 = as fast):")
    out.append(table(head, rows))
    out.append("")
    rows = []
    for w in wls:
        row = [w.title]
        for col in COLUMNS:
            vals = b.results.get((w.key, col))
            row.append(f"{fmt_value(min(vals), w.kind)}–{fmt_value(max(vals), w.kind)}"
                       if vals else "—")
        rows.append(row)
    out.append("Spread (min–max of the runs; the machine's load shows here):")
    out.append(table(["workload"] + COLUMNS[:-1] + [sshfs_head], rows))
    out.append("")
    if sshfs_note:
        out.append(f"sshfs: {sshfs_note}")

    out.append("Targets (issue 6):")
    out.append(table(["target", "unix", "tcp", "met"], targets(b)))
    out.append("")
    rss = b.sbrun_rss.get("read1m")
    hwm = {t: a.hwm_kib() for t, a in b.agents.items()}
    mem = []
    if rss:
        mem.append(f"sbrun peak RSS while streaming {b.sz.read_big // MIB} MiB "
                   f"{rss / 1024:.1f} MiB (wait4 maxrss of sbrun and the tracee)")
    mem.append("agents' peak RSS over the whole run " + ", ".join(
        f"{t} {v / 1024:.1f} MiB" for t, v in hwm.items() if v))
    out.append("Memory (target: under 50 MiB each): " + "; ".join(mem))
    if b.failures:
        out.append("")
        out.append("Failures:")
        for (k, col), msg in b.failures.items():
            out.append(f"  {k} / {col}: {msg}")
    for n in b.notes:
        out.append(f"Note: {n}")
    return "\n".join(out)


def targets(b):
    """(target, unix, tcp, met) rows for the targets the issue sets."""
    rows = []
    f = b.floors
    m = b.median

    def row(name, fn, ok):
        vals = {}
        for col, t in ((SB_UNIX, "unix"), (SB_TCP, "tcp")):
            try:
                vals[t] = fn(col, t)
            except (TypeError, ZeroDivisionError, KeyError):
                vals[t] = None
        cells = [f"{v[0]}" if v else "—" for v in (vals["unix"], vals["tcp"])]
        met = [ok(v[1]) for v in vals.values() if v]
        verdict = "—" if not met else "met" if all(met) else "not met" if not any(met) else \
            "unix only" if vals["unix"] and ok(vals["unix"][1]) else "tcp only"
        rows.append([name, cells[0], cells[1], verdict])

    def ratio(key):
        def fn(col, t):
            r = m(key, col) / m(key, NATIVE)
            return (f"{r:.2f}×", r)
        return fn

    def of_floor(key):
        def fn(col, t):
            r = m(key, col) / (f.T() + f.R(t))
            return (f"{m(key, col):.0f} µs = {r:.2f}× (trap+RPC)", r)
        return fn

    rows_spec = [
        ("getppid (never redirected) ≤ 1.1× native", ratio("getppid"), lambda r: r <= 1.1),
        ("1-byte writes to local stdio ≤ 1.2× native", ratio("write1"), lambda r: r <= 1.2),
        ("sha256sum of a local file ≤ 1.15× native", ratio("sha256"), lambda r: r <= 1.15),
        ("remote stat ≤ 1.3× (trap + RPC)", of_floor("stat"), lambda r: r <= 1.3),
        ("redirected 64-byte read ≤ 1.3× (trap + RPC)", of_floor("pread64"), lambda r: r <= 1.3),
    ]
    for spec in rows_spec:
        row(*spec)

    def orc(col, t):
        v, s = m("orc", col), m("orc", SSHFS)
        txt = f"{v:.0f} µs" + (f", sshfs/this {s / v:.1f}×" if s else "")
        return (txt, (v, s))
    row("open/read/close ≤ 250 µs and ≥ 3× faster than sshfs", orc,
        lambda x: x[0] <= 250 and (x[1] is None or x[1] / x[0] >= 3))

    def read1m(col, t):
        v = m("read1m", col)
        frac = v / f.rpc[t]["fetch_MBps"]
        return (f"{v:.0f} MB/s, {frac * 100:.0f}% of payload floor", (v, frac))
    row("1 MiB reads ≥ 1200 MB/s and ≥ 40% of the Cap'n Proto payload floor", read1m,
        lambda x: x[0] >= 1200 and x[1] >= 0.4)

    def read4k(col, t):
        v, s = m("read4k", col), m("read4k", SSHFS)
        return (f"{v:.0f} MB/s" + (f" (sshfs {s:.0f})" if s else ""), (v, s))
    row("4 KiB reads ≥ sshfs", read4k, lambda x: x[1] is not None and x[0] >= x[1])

    def write(col, t):
        v = m("write", col)
        return (f"{v:.0f} MB/s", v)
    row("bulk write ≥ 600 MB/s", write, lambda v: v >= 600)

    def find(col, t):
        v, s = m("find", col), m("find", SSHFS)
        return (f"{v:.0f} ms" + (f" = {v / s:.2f}× sshfs" if s else ""), (v, s))
    row(f"find over {b.sz.files // 1000}k remote files ≤ 2× sshfs (warm)", find,
        lambda x: x[1] is not None and x[0] <= 2 * x[1])
    return rows


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1).strip()
    except (OSError, AttributeError):
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {model}, {os.cpu_count()} CPUs, "
            f"{mem:.0f} GiB; kernel {os.uname().release}; commit {commit.strip() or '?'}"
            f"{' (with local changes)' if dirty.strip() else ''}; "
            f"load average at the start {load[0]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sizes /10 and 3 runs: a smoke check")
    ap.add_argument("--runs", type=int, help="runs per figure (median); default 5, quick 3")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--only", help="comma-separated workload keys (startup, getppid, write1, "
                    "sha256, stat, find, pread64, orc, read1m, read4k, write, tar, git)")
    ap.add_argument("--no-sshfs", action="store_true", help="skip the sshfs column")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install")
    ap.add_argument("--keep", action="store_true", help="keep the /tmp/sb-bench-* tree (and "
                    "its tmpfs mount: umount /tmp/sb-bench-*/fs when done)")
    ap.add_argument("--on-disk", action="store_true", help="keep the files on /tmp's file "
                    "system instead of a tmpfs of their own (then fsync reaches the disk)")
    ap.add_argument("--markdown", help="also write the report to this file")
    args = ap.parse_args()

    b = Bench(args)
    # ^C and SIGTERM unwind through `finally`, so the mount, sshd and agents always go away.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        header = machine()
        b.setup()
        log("bench: floors")
        b.floors = Floors(b.exe, b.sz, b.runs, ["unix", "tcp"])
        b.floors.sample()
        wls = workloads(b.exe, b.sz, b.local)
        if args.only:
            keep = args.only.split(",")
            wls = [w for w in wls if w.key in keep]
        for w in wls:
            b.measure(w)
        log("bench: floors again")
        b.floors.sample()
        text = f"splitbrain benchmark{' (--quick)' if args.quick else ''}: {header}\n\n" + \
            report(b, wls)
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text + "\n")
    except BenchError as e:
        sys.exit(f"bench: {e}")
    finally:
        b.teardown()


if __name__ == "__main__":
    main()
