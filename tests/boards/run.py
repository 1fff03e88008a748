#!/usr/bin/env python3
"""Boards: an aarch64 or armhf sbagent, cross-built (cross/*.ini) and run under qemu-user, serving
the native sbrun (issue 18, docs/boards.md).

The machinery is the integration runner's (tests/integration/run.py: an agent in its own UTS and
mount namespaces, differential runs natively on B and under sbrun); here the agent is the board's
binary under qemu. The cases are a differential subset:

  conformance-NAME  the conformance programs, natively on B and under sbrun (emulated agent),
                    but those CONFORMANCE_EXCLUDED names with the reason;
  edges             times past 2038 and before 1970, a 5 GiB sparse file, device numbers with the
                    bit 30 set, statfs counts over 2^32, getdents64 offsets over 2^32 (ext4)
                    and a remote spawn: three ways, natively on B, under sbrun with
                    the native x86-64 agent, and under sbrun with the board's agent;
  python, stat, ls  Python os/stat/listdir and coreutils against the fixture tree;
  exec-hostname,
  py-subprocess     programs spawned on B by the emulated agent (execve standing in for execveat,
                    which qemu 7.2 lacks);
  cost              the per-call cost of a stat through the emulated agent against the native
                    one, measured in the same run and printed (never a pass/fail threshold).

Exit status: 0 passed, 1 failed, 77 skipped (qemu-user, the board's libc or the board agent
missing, or the integration runner's own reasons: namespaces, ptrace), with the reason printed.

    run.py --list
    run.py --case edges --arch armhf --sbrun build/tracer/sbrun --sbagent build/agent/sbagent \\
           --board-agent build-armhf/agent/sbagent --conformance-dir build/tests/conformance \\
           --helpers-dir build/tests/integration
"""

import argparse
import os
import shutil
import statistics
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import run as integ  # noqa: E402  (the integration runner, imported as a module)

# What uname -m says on each board (qemu-user reports the emulated CPU).
MACHINE = {"aarch64": "aarch64", "armhf": "armv7l"}

# Per arch: the qemu-user binary, the dynamic loader its agent needs (from libc6:ARCH), and the
# Debian architecture name to install that from.
ARCHES = {
    "aarch64": ("qemu-aarch64", "/lib/ld-linux-aarch64.so.1", "arm64", "aarch64-linux-gnu"),
    "armhf": ("qemu-arm", "/lib/ld-linux-armhf.so.3", "armhf", "arm-linux-gnueabihf"),
}

# The conformance programs run against the board agents: all of them but these, each for a
# reason that is not the agent's arch getting an answer wrong (docs/boards.md):
CONFORMANCE_EXCLUDED = {
    # qemu-user 7.2 lacks openat2 (ENOSYS) and pwritev2's RWF_APPEND (EOPNOTSUPP).
    "openat_dirfd": "qemu-user 7.2 has no openat2",
    "readv_writev": "qemu-user 7.2 refuses pwritev2 RWF_APPEND",
    # B's machine is the board's: case edges checks uname -m says so.
    "uname": "uname -m is the board's (armv7l, aarch64), not x86_64",
    # Socket option values and control messages cross only between agents of one ABI
    # (tracer/sockopt_table.h): ENOPROTOOPT / refused with a note.
    "sock_tcp": "setsockopt does not cross to an agent of another ABI",
    "sock_udp": "setsockopt does not cross to an agent of another ABI",
    "sock_nonblock": "getsockopt(SO_ERROR) does not cross to an agent of another ABI",
    "sock_eintr": "setsockopt(SO_RCVTIMEO) does not cross to an agent of another ABI",
    "sock_scm_rights": "control messages do not cross to an agent of another ABI",
    # Not a fault, a cost: its threads stat thousands of times, ~70 s per arch under qemu
    # (the CI budget for this suite is ~3 minutes); the native suite runs it.
    "threads_stat": "70 s under qemu; run by the integration suite",
    # The same: a stress test of the tracer's fd table (issue 21), ~40 s per arch under qemu.
    "threads_fds": "40 s under qemu; a tracer stress test the integration suite runs",
    # Waits that test the tracer and the link, not the agent's ABI: 8 s holds and timers; the
    # integration suite runs them against the native agent (CI budget).
    "slow_call": "two 8 s holds on B: the link's liveness, run by the integration suite",
    "fifo_eintr": "timer-driven EINTR of a parked call: the tracer's, run by the integration suite",
    "locks_eintr": "timer-driven EINTR of a lock wait: the tracer's, run by the integration suite",
    "open_signal": "timer-driven signals against opens: the tracer's, run by the integration suite",
    "splice_mixed": "the tracer moves the bytes (plain pread/pwrite on B); 1.3 s of waits",
    # qemu-user 7.2 does not emulate openat2(2): the agent under it gets ENOSYS, as a board
    # with a kernel before 5.6 would give the program. A real board's kernel has it.
    "openat2_resolve": "qemu-user has no openat2 (ENOSYS); run by the integration suite",
}
CONFORMANCE = [n for n in integ.conformance_names() if n not in CONFORMANCE_EXCLUDED]

# Run natively on B and through both agents; every line must be the same three times. argv:
# WORK (B's fresh tmpfs tree), BIG (a 20 TiB tmpfs: statfs counts over 2^32), DENTS (a directory
# on an ext4 file system: 64-bit getdents64 offsets).
EDGES = r"""
import ctypes, os, socket, stat, struct, subprocess, sys
work, big, dents = sys.argv[1:4]
os.chdir(work)
NS = 10**9

def show(name, st, times=True):
    kind = stat.S_IFMT(st.st_mode)
    rdev = f" rdev={os.major(st.st_rdev)}:{os.minor(st.st_rdev)} ({st.st_rdev:#x})" \
        if kind in (stat.S_IFCHR, stat.S_IFBLK) else ""
    when = f" mtime={st.st_mtime_ns} atime={st.st_atime_ns}" if times else ""
    print(f"{name}: size={st.st_size}{when} mode={st.st_mode:o} nlink={st.st_nlink}{rdev}")

# Times: past 2038 (32-bit time_t wraps), before 1970, the last second int64 ns can hold.
times = {"y2040": 2208988800, "y2106": 2**32 + 5, "y2262": 9223372035, "y1938": -1009843200,
         "epoch-minus-1": -1, "y2038-edge": 2**31}
for name, sec in times.items():
    with open(name, "w") as f:
        f.write(name)
    os.utime(name, ns=(sec * NS + 123456789, sec * NS + 987654321))
    show(name, os.stat(name))
    with open(name) as f:               # a 32-bit fstatat of this file said EOVERFLOW
        print("  read back:", f.read())
    fd = os.open(name, os.O_RDWR)       # futimens on an fd
    os.utime(fd, ns=(sec * NS + 1, (sec + 1) * NS + 2))
    show("  fd", os.fstat(fd))
    os.close(fd)
os.symlink("y2040", "lnk")
os.utime("lnk", ns=(2**33 * NS, 2**33 * NS + 5), follow_symlinks=False)
show("lnk (nofollow)", os.lstat("lnk"))
print("listdir:", sorted(os.listdir(".")))
for e in sorted(os.scandir("."), key=lambda e: e.name):
    print("scandir:", e.name, e.is_file(follow_symlinks=False), e.stat(follow_symlinks=False).st_mtime_ns)

# A file over 4 GiB, sparse: size, offsets and data past 2^32.
with open("sparse", "wb") as f:
    f.truncate(5 << 30)
    f.seek((9 << 29) + 7)
    f.write(b"past 4 GiB")
fd = os.open("sparse", os.O_RDWR)
print("sparse pread:", os.pread(fd, 10, (9 << 29) + 7))
print("sparse SEEK_END:", os.lseek(fd, 0, os.SEEK_END))
print("sparse SEEK_DATA:", os.lseek(fd, 1 << 32, os.SEEK_DATA))
print("sparse SEEK_HOLE:", os.lseek(fd, 9 << 29, os.SEEK_HOLE))
os.pwrite(fd, b"at 6 GiB", 6 << 30)
os.ftruncate(fd, (6 << 30) + 4)
print("sparse after ftruncate:", os.fstat(fd).st_size, os.pread(fd, 8, 6 << 30))
os.close(fd)
os.truncate("sparse", 7 << 30)
show("sparse", os.stat("sparse"), times=False)
os.unlink("sparse")   # the harness's manifest would read all 7 GiB of it

# Device numbers: the largest major (12 bits) and a minor of 19 bits, in the kernel's 32-bit
# encoding 0x7fffffff. (Minor 2^20-1 would set bit 31, which qemu-arm 7.2 sign-extends into an
# EINVAL from the host's mknodat: a fault of the emulator, not of the agent or a board.)
os.mknod("chr", stat.S_IFCHR | 0o600, os.makedev(4095, (1 << 19) - 1))
show("chr", os.stat("chr"), times=False)

# statfs: counts over 2^32 (a 20 TiB tmpfs with 5e9 inodes), and the magic, unsigned.
v = os.statvfs(big)
print("statvfs big:", v.f_bsize, v.f_frsize, v.f_blocks, v.f_bfree, v.f_bavail, v.f_files,
      v.f_ffree, v.f_favail, v.f_flag, v.f_namemax)
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(120)   # x86-64 struct statfs
for path in (big, dents):
    if libc.statfs(path.encode(), buf) != 0:
        print("statfs", path, "errno", ctypes.get_errno())
    else:
        f_type, f_bsize, f_blocks = struct.unpack_from("<qqQ", buf.raw)
        print("statfs type:", hex(f_type), "bsize", f_bsize)

# getdents64 offsets: ext4 hands out 64-bit hash offsets; read them, seek to one, read on.
libc.syscall.restype = ctypes.c_long
fd = os.open(dents, os.O_RDONLY | os.O_DIRECTORY)
def getdents():
    out = []
    dbuf = ctypes.create_string_buffer(1 << 16)
    while True:
        n = libc.syscall(217, fd, dbuf, len(dbuf))   # x86-64 SYS_getdents64
        if n <= 0:
            return out
        pos = 0
        while pos < n:
            ino, off, reclen, typ = struct.unpack_from("<QqHB", dbuf.raw, pos)
            name = dbuf.raw[pos + 19:pos + reclen].split(b"\0")[0].decode()
            out.append((name, off))
            pos += reclen
listing = getdents()
print("getdents:", len(listing), "entries; offsets over 2^32:",
      sum(1 for _, off in listing if off > 2**32))
print("getdents order:", [name for name, _ in listing])
print("getdents offsets:", [off for _, off in listing])
k = len(listing) // 2
os.lseek(fd, listing[k][1], os.SEEK_SET)
print("after seek to entry", k, ":", [name for name, _ in getdents()])
os.close(fd)

# A program spawned on B: the agent's execveat, or execve where qemu has no execveat.
r = subprocess.run(["/bin/sh", "-c", "uname -n; stat -c '%Y' y2040; exit 5"],
                   capture_output=True, text=True)
print("spawn:", r.returncode, r.stdout.split(), r.stderr)
"""


def prepare_edges(ctx):
    """A 20 TiB tmpfs and a bind-mounted ext4 directory on B, for case edges."""
    dents = os.path.join(ctx.tmp, "dents")   # one for both agents: the same offsets
    os.makedirs(dents, exist_ok=True)
    for i in range(40):
        open(os.path.join(dents, f"entry-{i:02d}"), "w").close()
    return (f"mkdir -p {integ.B_ROOT}/big {integ.B_ROOT}/ext4 && "
            f"mount -t tmpfs -o size=20t,nr_inodes=5000000000 sbbig {integ.B_ROOT}/big && "
            f"mount --bind {dents} {integ.B_ROOT}/ext4")


# Socket option values cross as raw bytes, and only between equal ABIs (tracer/sockopt_table.h):
# to a board agent every setsockopt is refused with ENOPROTOOPT and a note, never passed in the
# wrong layout (a struct timeval is 16 bytes on x86-64, 8 or 16 on armhf).
SOCKOPT = r"""
import errno, socket, struct
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@qq", 5, 250000))
    print("SO_RCVTIMEO:", struct.unpack("@qq", s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)))
except OSError as e:
    print("SO_RCVTIMEO:", errno.errorcode[e.errno])
"""


def check_edges_sane(out, who):
    """What the edges script must say whatever agent answered (beyond being equal to native)."""
    integ.check("statvfs big: 4096 4096 5368709120" in out,
                f"{who}: the 20 TiB tmpfs does not report 5368709120 blocks:\n{out}")
    integ.check("read back: y2040" in out and "mtime=2208988800987654321" in out,
                f"{who}: the 2040 mtime did not survive:\n{out}")
    integ.check("sparse pread: b'past 4 GiB'" in out, f"{who}: data past 4 GiB lost:\n{out}")
    integ.check("spawn: 5 ['board-b', '2208988801']" in out, f"{who}: the spawn on B failed:\n{out}")


def case_edges(ctx):
    agent = ctx.agent(prepare=prepare_edges(ctx))
    argv = [integ.SYS_PYTHON, "-c", EDGES, integ.WORK, f"{integ.B_ROOT}/big",
            f"{integ.B_ROOT}/ext4"]
    native, board = integ.differential(ctx, None, fixture=False, native_argv=argv,
                                       traced_argv=argv, expect_rc=0, agent=agent,
                                       check_out=check_edges_sane)
    if ctx.native_only:
        return
    # The same through the native x86-64 agent, on a B of its own: the third column.
    ref = ctx.native_agent(prepare=prepare_edges(ctx))
    integ.empty_tree(ref)
    via_native = ctx.traced(ref, argv)
    integ.log(f"[traced via sbrun, native agent]\n{via_native.describe()}")
    integ.check(via_native.rc == 0, "the native agent's run failed")
    # B's identity is the board's: uname -m through the board agent is its machine.
    t = ctx.traced(agent, [integ.SYS_PYTHON, "-c", "import os; print(os.uname().machine)"])
    integ.check(t.rc == 0 and t.out.strip() == MACHINE[ctx.arch],
                f"uname -m through the {ctx.arch} agent: {t.out.strip()!r}, expected "
                f"{MACHINE[ctx.arch]!r}\n{t.describe()}")
    # Socket options to a board agent: a clear errno and a note (see SOCKOPT).
    t = ctx.traced(agent, [integ.SYS_PYTHON, "-c", SOCKOPT])
    integ.log(f"[socket option via the {ctx.arch} agent]\n{t.describe()}")
    integ.check(t.rc == 0 and t.out == "SO_RCVTIMEO: ENOPROTOOPT\n"
                and "cannot cross to an agent of another ABI" in t.err,
                "a socket option to an agent of another ABI must fail with ENOPROTOOPT and a note")
    if via_native.out != board.out:
        raise integ.Failure(f"{ctx.arch} agent and native agent differ:\n" +
                            integ.diff(via_native.out.splitlines(), board.out.splitlines(),
                                       "native agent", f"{ctx.arch} agent"))


# The cost of one redirected call: os.stat in a loop, in one python process per agent, after a
# warm-up. Prints microseconds per call.
STAT_LOOP = r"""
import os, sys, time
n = int(sys.argv[1])
for _ in range(50):
    os.stat("hello.txt")
t = time.perf_counter()
for _ in range(n):
    os.stat("hello.txt")
print(f"{(time.perf_counter() - t) / n * 1e6:.1f}")
"""


def case_cost(ctx):
    """Per-call cost of a stat through the board agent under qemu against the native agent, both
    measured in this run, alternating, median of 3 loops of 1000 each."""
    board = ctx.agent()
    native = ctx.native_agent()
    for a in (board, native):
        integ.make_tree(a)
    if ctx.native_only:
        return
    argv = [integ.SYS_PYTHON, "-c", STAT_LOOP, "1000"]
    samples = {"native": [], ctx.arch: []}
    for _ in range(3):
        for label, a in (("native", native), (ctx.arch, board)):
            r = ctx.traced(a, argv)
            integ.check(r.rc == 0, f"the stat loop failed through the {label} agent\n"
                        + r.describe())
            samples[label].append(float(r.out.strip()))
    n, b = statistics.median(samples["native"]), statistics.median(samples[ctx.arch])
    integ.log(f"COST stat per call: native agent {n:.1f} us, {ctx.arch} agent under "
              f"{ARCHES[ctx.arch][0]} {b:.1f} us ({b / n:.2f}x); samples {samples}")


def conformance(name):
    # errno_eacces and friends that need special arguments are not in CONFORMANCE.
    return integ.conformance_case(name)


def build_cases():
    cases = {}
    for name in CONFORMANCE:
        cases["conformance-" + name] = conformance(name)
    cases["edges"] = case_edges
    cases["python"] = integ.shell_case("python")
    cases["stat"] = integ.shell_case("stat")
    cases["ls"] = integ.shell_case("ls")
    cases["exec-hostname"] = integ.case_exec_hostname
    cases["py-subprocess"] = integ.case_py_subprocess
    cases["cost"] = case_cost
    return cases


class BoardCtx(integ.Ctx):
    """The integration runner's context with the board's agent as B: every agent a case starts
    runs under qemu-user unless the case asks for the native one."""

    def __init__(self, args):
        super().__init__(args)
        self.arch = args.arch
        self.qemu = shutil.which(ARCHES[args.arch][0])
        self.native_sbagent = os.path.abspath(args.sbagent)
        self.sbagent = os.path.abspath(args.board_agent)

    def agent(self, **kw):
        kw.setdefault("wrap", [self.qemu])
        return super().agent(**kw)

    def native_agent(self, **kw):
        # Its own socket and log: it may serve the same hostname as the board agent beside it.
        a = integ.Agent(self, binary=self.native_sbagent, **kw)
        a.sock = os.path.join(os.path.dirname(a.sock), "agent-native.sock")
        a.logpath = os.path.join(self.tmp, "agent-native.log")
        self.agents.append(a)
        return a.start()


def probe_board(args):
    """Raises integ.Skip when the board agent cannot run here, saying what to install or build."""
    qemu, loader, debarch, triple = ARCHES[args.arch]
    if shutil.which(qemu) is None:
        raise integ.Skip(f"{qemu} is not installed (apt-get install qemu-user)")
    if not os.path.exists(loader):
        raise integ.Skip(f"{loader} is missing: the {args.arch} agent needs the board's libc "
                         f"(dpkg --add-architecture {debarch}; apt-get install libc6:{debarch})")
    if not args.board_agent or not os.access(args.board_agent, os.X_OK):
        raise integ.Skip(f"no {args.arch} agent at {args.board_agent!r}: build it with "
                         f"`meson setup build-{args.arch} --cross-file cross/{triple}.ini && "
                         f"meson compile -C build-{args.arch} agent/sbagent` (docs/boards.md)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--case", help="the case to run")
    ap.add_argument("--arch", choices=sorted(ARCHES), help="the board agent's architecture")
    ap.add_argument("--sbrun", help="path of the native sbrun")
    ap.add_argument("--sbagent", help="path of the native sbagent (case edges and cost)")
    ap.add_argument("--board-agent", help="path of the cross-built sbagent for --arch")
    ap.add_argument("--conformance-dir", help="build directory of tests/conformance")
    ap.add_argument("--helpers-dir", help="build directory of tests/integration")
    ap.add_argument("--native-only", action="store_true",
                    help="run only the native half (checks the harness without sbrun)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    cases = build_cases()
    if args.list:
        print("\n".join(cases))
        return 0
    if not args.case or args.case not in cases or not args.arch:
        print(f"run.py: unknown or missing --case {args.case!r} or --arch; see --list",
              file=sys.stderr)
        return 2
    name = f"{args.arch}/{args.case}"
    integ.log(f"=== boards case {name}")
    try:
        probe_board(args)
        integ.probe_namespaces()
        if not args.native_only:
            integ.probe_ptrace()
        integ.need_binary(args.sbagent and os.path.abspath(args.sbagent), "sbagent")
    except integ.Skip as e:
        print(f"SKIP {name}: {e}", flush=True)
        return 77
    except integ.Failure as e:
        print(f"FAIL {name}: {e}", flush=True)
        return 1
    ctx = BoardCtx(args)
    try:
        cases[args.case](ctx)
    except integ.Skip as e:
        print(f"SKIP {name}: {e}", flush=True)
        return 77
    except integ.Failure as e:
        print(f"FAIL {name}: {e}", flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"FAIL {name}: error in the harness", flush=True)
        return 1
    finally:
        ctx.close()
    print(f"PASS {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
