"""Integration cases for strace-style tracing and fault injection (issue 19): the trace of real
programs under sbrun against `strace -f` of the same programs run natively on B, the filters
(-e trace=, -P), -o against --trace, and -e inject= (the Nth call fails with the asked errno,
when=2+3, retval=, signal=, delay_enter= seen by -T, path=, a local trapped call, bad specs).
run.py registers them (register()); they use run.py's helpers through the module `h`."""

import os
import re
import shutil

h = None   # run.py, set by register()


def need_strace():
    if shutil.which("strace") is None:
        raise h.Failure("strace is not installed "
                        "(scripts/test installs it: apt-get install strace)")


def normalise(line):
    """A trace line without what differs between two runs: sbrun's `[pid N] ` and `<where>`
    suffix, strace's column padding, -T times, addresses."""
    line = re.sub(r"^(\[pid \d+\] |\d+ +)", "", line)
    line = re.sub(r" <(target\d|local|not run)[^>]*>( \(.*\))?$", "", line)
    line = re.sub(r" <\d+\.\d+>$", "", line)
    line = re.sub(r"\)\s+= ", ") = ", line)
    line = re.sub(r"0x[0-9a-f]{6,}", "ADDR", line)
    return line


def trace_lines(text):
    return [normalise(l) for l in text.splitlines()
            if re.match(r"^(\[pid \d+\] |\d+ +)?[a-z_0-9]+\(", l)]


def strace_on_b(agent, calls, argv, cwd=None, flags=()):
    """`strace -f FLAGS -e trace=CALLS` of argv natively on B: its result and trace lines."""
    out = os.path.join(h.B_ROOT, "strace.out")
    script = (f"cd {cwd or h.WORK} && strace -f -qq {' '.join(flags)} -o {out} -e trace={calls} "
              + " ".join(h.shlex.quote(a) for a in argv) + f"; rc=$?; cat {out} >&2; exit $rc")
    r = agent.sh(script)
    h.log(r.describe())
    return r, trace_lines(r.err)


def sbrun_trace(ctx, agent, calls, argv, extra=()):
    trace = os.path.join(ctx.tmp, "trace.txt")
    t = ctx.traced(agent, argv, extra=["-e", f"trace={calls}", "-o", trace] + list(extra))
    with open(trace) as f:
        text = f.read()
    h.log(t.describe() + "--- sbrun trace ---\n" + text)
    return t, text, trace_lines(text)


def window(lines, needle):
    """The lines from the first that names `needle` (an open returning fd N) to the close of N."""
    for i, l in enumerate(lines):
        m = re.match(r"openat\(.*" + re.escape(needle) + r".*\) = (\d+)$", l)
        if m:
            fd = m.group(1)
            for j in range(i + 1, len(lines)):
                if lines[j] == f"close({fd}) = 0":
                    return lines[i:j + 1]
            return lines[i:]
    return []


def compare(native, ours, what):
    h.log(f"--- {what}: strace natively on B ---\n" + "\n".join(native) +
          f"\n--- {what}: sbrun ---\n" + "\n".join(ours))
    h.check(native, f"{what}: strace on B shows none of the compared calls: the case is wrong")
    h.check(native == ours, f"{what}: sbrun's lines differ from strace's\n" +
            h.diff(native, ours, "strace on B", "sbrun"))


def case_trace_like_strace(ctx):
    """cat FILE, ls -l DIR and python3 -c '...' traced by sbrun read as strace's lines for the
    same calls, the programs run natively on B: same names, decoded arguments (strings, flags,
    struct stat, statx), results, errno names."""
    need_strace()
    agent = ctx.agent()
    h.make_tree(agent)
    if ctx.native_only:
        return
    path = h.WORK + "/hello.txt"
    calls = "openat,read,close,newfstatat,fstat,fadvise64,lseek"
    r, native = strace_on_b(agent, calls, ["cat", path])
    t, _, ours = sbrun_trace(ctx, agent, calls, ["cat", path])
    h.check(t.rc == 0 and t.out == "hello from board-b\n", "cat under sbrun failed")
    compare(window(native, path), window(ours, path), "cat")
    # A missing file: the errno name and its text.
    miss = h.WORK + "/missing.txt"
    r, native = strace_on_b(agent, "openat", ["cat", miss])
    t, _, ours = sbrun_trace(ctx, agent, "openat", ["cat", miss])
    compare([l for l in native if miss in l], [l for l in ours if miss in l], "cat missing")
    h.check(any("= -1 ENOENT (No such file or directory)" in l for l in ours), "no ENOENT line")

    calls = "openat,getdents64,statx,newfstatat,lstat,readlink,close"
    r, native = strace_on_b(agent, calls, ["ls", "-l", h.WORK + "/sub"])
    t, _, ours = sbrun_trace(ctx, agent, calls, ["ls", "-l", h.WORK + "/sub"])
    h.check(t.rc == 0, "ls -l under sbrun failed")
    compare(window(native, h.WORK + "/sub"), window(ours, h.WORK + "/sub"), "ls -l")

    prog = (f"import os\nos.stat('{path}')\nos.lstat('{h.WORK}/link')\n"
            f"open('{path}').read()\nos.access('{path}', os.R_OK|os.W_OK)\n"
            f"os.mkdir('{h.WORK}/d', 0o750)\nos.rmdir('{h.WORK}/d')\n"
            f"os.readlink('{h.WORK}/link')\n"
            f"open('{h.WORK}/new.txt', 'w').write('x' * 40)\nos.unlink('{h.WORK}/new.txt')\n")
    calls = "%file,read,write,close"
    r, native = strace_on_b(agent, calls, [h.SYS_PYTHON, "-c", prog])
    t, _, ours = sbrun_trace(ctx, agent, calls, [h.SYS_PYTHON, "-c", prog])
    h.check(t.rc == 0, "python3 under sbrun failed")
    compare([l for l in native if h.WORK in l], [l for l in ours if h.WORK in l], "python3")


def case_trace_socket_like_strace(ctx):
    """A TCP client's socket calls to a server only B's network has, as strace shows them
    natively on B: socket, connect with its sockaddr_in, send and recv with their bytes."""
    need_strace()
    client, agent, port = h.echo_server_on_b(ctx)
    if ctx.native_only:
        return
    calls = "socket,connect,setsockopt,sendto,recvfrom"
    argv = [client, h.B_ADDR, port, "3"]
    r, native = strace_on_b(agent, calls, argv)
    t, _, ours = sbrun_trace(ctx, agent, calls, argv)
    h.check(t.rc == 0, "the client under sbrun failed")

    def from_socket(lines):
        for i, l in enumerate(lines):
            if l.startswith("socket(AF_INET"):
                return lines[i:]
        return []
    compare(from_socket(native), from_socket(ours), "echo_client")
    h.check(any("sin_addr=inet_addr(\"" + h.B_ADDR + "\")" in l for l in ours),
            "connect's sockaddr_in is not decoded")


def yy_normalise(line):
    """-yy lines of two runs: sbrun's target marker on remote fds goes (`3<target1:TCP:[` reads
    `3<TCP:[`), and the client's own port, which B picks anew each run, reads PORT."""
    line = re.sub(r"<target\d+:", "<", line)
    return re.sub(r"(<(?:TCP|UDP)v?6?:\[[0-9.:\[\]a-f]*?):\d+(->|\])", r"\1:PORT\2", line)


def case_trace_yy_like_strace(ctx):
    """-yy on a TCP client's socket to a server only B's network has: its endpoints as B sees
    them, `3<TCP:[10.77.0.1:PORT->10.77.0.1:N]>`, as strace -yy shows them natively on B (the
    lines after the connect; sbrun marks the fd as the target's); a UDP socket's port after its
    first sendto; /dev/null's device numbers, here and on B."""
    need_strace()
    client, agent, port = h.echo_server_on_b(ctx)
    if ctx.native_only:
        return
    calls = "connect,sendto,recvfrom"
    argv = [client, h.B_ADDR, port, "2"]
    _, lines = strace_on_b(agent, calls, argv, flags=["-yy"])
    native = [yy_normalise(l) for l in lines]
    t, text, ours = sbrun_trace(ctx, agent, calls, argv, extra=["-yy"])
    ours = [yy_normalise(l) for l in ours]
    h.check(t.rc == 0, "the client under sbrun failed")

    def after_connect(lines):
        for i, l in enumerate(lines):
            if l.startswith("connect("):
                return lines[i + 1:]
        return []
    compare(after_connect(native), after_connect(ours), "echo_client -yy")
    h.check(re.search(r"<target1:TCP:\[" + re.escape(h.B_ADDR) + r":\d+->" +
                      re.escape(h.B_ADDR) + ":" + port + r"\]>", text),
            "-yy must show the remote socket's endpoints and keep the target marker")
    # A listener and both ends of a connection it accepted, all on B: bind and accept learn
    # their endpoints (every port is B's pick: all read PORT).
    prog = ("import socket\ns = socket.socket()\n"
            f"s.bind(('{h.B_ADDR}', 0))\ns.listen()\n"
            "c = socket.socket()\nc.connect(s.getsockname())\na, _ = s.accept()\n"
            "c.send(b'hi')\na.recv(10)\na.send(b'yo')\nc.recv(10)\n")
    argv = [h.SYS_PYTHON, "-c", prog]
    calls = "listen,getsockname,sendto,recvfrom"
    _, lines = strace_on_b(agent, calls, argv, flags=["-yy"])

    def all_ports(line):
        line = re.sub(r"<target\d+:", "<", line)
        line = re.sub(r"htons\(\d+\)", "htons(PORT)", line)
        return re.sub(r"<(TCP|UDP):\[[^\]]*\]>",
                      lambda m: re.sub(r":\d+", ":PORT", m.group(0)), line)
    native = [all_ports(l) for l in lines]
    t, text, ours = sbrun_trace(ctx, agent, calls, argv, extra=["-yy"])
    h.check(t.rc == 0, "python3 under sbrun failed")
    compare(native, [all_ports(l) for l in ours], "listener and accepted -yy")
    # A datagram socket gets its port from its first send: the next send's note shows it.
    prog = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.sendto(b'a', ('{h.B_ADDR}', 9))\ns.sendto(b'b', ('{h.B_ADDR}', 9))\n")
    argv = [h.SYS_PYTHON, "-c", prog]
    _, lines = strace_on_b(agent, "sendto", argv, flags=["-yy"])
    native = [yy_normalise(l) for l in lines][1:]
    t, text, ours = sbrun_trace(ctx, agent, "sendto", argv, extra=["-yy"])
    h.check(t.rc == 0, "python3 under sbrun failed")
    compare(native, [yy_normalise(l) for l in ours][1:], "udp -yy")
    # A local device, trapped because its fd shares a block of 8 with a remote one: strace's
    # `4</dev/null<char 1:3>>`.
    prog = (f"import os\nf = open('{h.WORK}/hello.txt')\n"
            f"n = os.open('/dev/null', os.O_RDONLY)\nos.fstat(n)\n")
    argv = [h.SYS_PYTHON, "-c", prog]
    _, lines = strace_on_b(agent, "newfstatat,fstat", argv, flags=["-yy"])
    native = [l for l in lines if "/dev/null<char" in l]
    t, text, ours = sbrun_trace(ctx, agent, "newfstatat,fstat", argv, extra=["-yy"])
    h.check(t.rc == 0, "python3 under sbrun failed")
    compare(native, [l for l in ours if "/dev/null<char" in l], "/dev/null -yy")
    # The same device opened on B (--remote /dev/null): its numbers as B's stat gives them,
    # after the target's marker.
    prog = "import os\nn = os.open('/dev/null', os.O_RDONLY)\nos.fstat(n)\n"
    argv = [h.SYS_PYTHON, "-c", prog]
    _, lines = strace_on_b(agent, "newfstatat,fstat", argv, flags=["-yy"])
    null = r"newfstatat\([3-9]</dev/null<"
    native = [l for l in lines if re.match(null, l)]
    t, text, ours = sbrun_trace(ctx, agent, "newfstatat,fstat", argv,
                                extra=["-yy", "--remote", "/dev/null"])
    h.check(t.rc == 0, "python3 under sbrun failed")
    h.check("<target1:/dev/null<char 1:3>>" in text, "a remote device's -yy note")
    ours = [yy_normalise(l) for l in ours]
    compare(native, [l for l in ours if re.match(null, l)], "remote /dev/null -yy")


def case_trace_decode_like_strace(ctx):
    """iovecs (writev, readv up to what it returned, pwritev2/preadv2), ioctl requests by name
    with their arguments (FIONREAD [N], FIONBIO [1], TCGETS failing), statfs/fstatfs structs, on
    a file on B; sendmsg/recvmsg's struct msghdr and sendmmsg/recvmmsg's mmsghdr arrays on
    socketpairs on B; splice, tee, copy_file_range and sendfile offsets and flags; as strace
    shows the same programs natively on B."""
    need_strace()
    agent = ctx.agent()
    h.make_tree(agent)
    if ctx.native_only:
        return
    path = h.WORK + "/iov.txt"
    prog = (f"import os, fcntl, termios, array, struct\n"
            f"fd = os.open('{path}', os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)\n"
            f"os.writev(fd, [b'abc', b'de', b'x' * 40])\n"
            f"os.lseek(fd, 0, 0)\n"
            f"a = bytearray(2); b = bytearray(10); c = bytearray(100)\n"
            f"os.readv(fd, [a, b, c])\n"
            f"os.pwritev(fd, [b'hello', b'world'], 0)\n"
            f"x = bytearray(3); y = bytearray(30)\n"
            f"os.preadv(fd, [x, y], 0)\n"
            f"os.lseek(fd, 40, 0)\n"
            f"n = array.array('i', [0])\n"
            f"fcntl.ioctl(fd, termios.FIONREAD, n)\n"
            f"fcntl.ioctl(fd, termios.FIONBIO, struct.pack('i', 1))\n"
            f"try:\n    fcntl.ioctl(fd, termios.TCGETS, bytes(60))\nexcept OSError:\n    pass\n"
            f"os.statvfs('{h.WORK}')\nos.fstatvfs(fd)\n"
            f"os.unlink('{path}')\n")
    calls = "readv,writev,preadv2,pwritev2,ioctl,statfs,fstatfs"

    def norm(lines):
        # Free blocks and inodes may change between the two runs.
        return [re.sub(r"(f_bfree|f_bavail|f_ffree)=\d+", r"\1=N", l) for l in lines
                if re.match(r"(readv|writev|preadv2|pwritev2|statfs|fstatfs)\(", l)
                or re.match(r"ioctl\(\d+, (FIONREAD|FIONBIO|TCGETS)", l)]
    r, native = strace_on_b(agent, calls, [h.SYS_PYTHON, "-c", prog])
    t, _, ours = sbrun_trace(ctx, agent, calls, [h.SYS_PYTHON, "-c", prog])
    h.check(t.rc == 0, "python3 under sbrun failed")
    native = norm(native)
    native = native[next((i for i, l in enumerate(native) if l.startswith("writev(")), 0):]
    ours = norm(ours)
    ours = ours[next((i for i, l in enumerate(ours) if l.startswith("writev(")), 0):]
    compare(native, ours, "iovecs, ioctl, statfs")
    h.check(any('readv(' in l and '{iov_base="ab", iov_len=2}' in l for l in ours),
            "readv's iovecs are not decoded")
    h.check(any(re.match(r"ioctl\(\d+, FIONREAD, \[\d+\]\) = 0", l) for l in ours),
            "FIONREAD is not decoded")
    # sendmsg and recvmsg on a unix socketpair (made on B): struct msghdr with its iovecs, the
    # received bytes up to the result, msg_namelen as `110 => 0`.
    prog = ("import socket\na, b = socket.socketpair()\n"
            "a.sendmsg([b'abc', b'de'])\nb.recvmsg(100)\n"
            "a.sendmsg([b'x' * 40])\nb.recvmsg(3)\n")
    r, native = strace_on_b(agent, "sendmsg,recvmsg", [h.SYS_PYTHON, "-c", prog])
    t, _, ours = sbrun_trace(ctx, agent, "sendmsg,recvmsg", [h.SYS_PYTHON, "-c", prog])
    h.check(t.rc == 0, "python3 under sbrun failed")
    compare(native, ours, "sendmsg, recvmsg")
    # What Python cannot call: sendmmsg and recvmmsg on a datagram socketpair on B (struct
    # mmsghdr arrays, msg_len, recvmmsg's timeout as given), splice of a file on B into a local
    # pipe, tee, copy_file_range and sendfile between files on B (offsets by value).
    helper = os.path.abspath(os.path.join(ctx.helpers_dir or "", "mmsg_splice"))
    h.need_binary(helper, "helper mmsg_splice (--helpers-dir)")
    calls = "sendmmsg,recvmmsg,splice,tee,copy_file_range,sendfile"
    r, native = strace_on_b(agent, calls, [helper, h.WORK])
    h.check(r.rc == 0, "mmsg_splice failed natively on B")
    t, _, ours = sbrun_trace(ctx, agent, calls, [helper, h.WORK])
    h.check(t.rc == 0, "mmsg_splice under sbrun failed")

    def left(lines):  # recvmmsg's time left differs from run to run
        return [re.sub(r"\(left \{tv_sec=\d+, tv_nsec=\d+\}\)", "(left {...})", l) for l in lines]
    compare(left(native), left(ours), "sendmmsg, recvmmsg, splice, tee, copy_file_range, sendfile")
    h.check(any("(left {" in l for l in ours), "recvmmsg's time left is not shown")


def case_trace_stats_to_output(ctx):
    """-c -o FILE writes the table to FILE (as strace -c -o does), nothing to stderr, no trace."""
    agent = ctx.agent()
    h.make_tree(agent)
    if ctx.native_only:
        return
    out = os.path.join(ctx.tmp, "table.txt")
    t = ctx.traced(agent, ["cat", h.WORK + "/hello.txt"], extra=["-c", "-o", out])
    h.log(t.describe())
    h.check(t.rc == 0 and t.out == "hello from board-b\n", "cat under sbrun -c -o failed")
    h.check(os.path.exists(out), "-c -o FILE: FILE was not written")
    text = open(out).read()
    h.log("--- FILE ---\n" + text)
    h.check("% time" in text and re.search(r"\bopenat +target1", text),
            "-c -o FILE: the table is not in FILE")
    h.check("% time" not in t.err and "openat(" not in t.err,
            "-c -o FILE: the table (or a trace) went to stderr")
    h.check("openat(" not in text, "-c -o FILE: FILE must hold the table, not a trace")


def case_trace_filters(ctx):
    """-e trace=%file, !close, /^open and -P choose the calls; -o FILE writes the trace there and
    nothing to stderr; --trace alone writes to stderr; the old --trace=FILE still works; a bad
    set is refused with the element and a hint."""
    agent = ctx.agent()
    h.make_tree(agent)
    if ctx.native_only:
        return
    path = h.WORK + "/hello.txt"
    argv = ["cat", path, h.WORK + "/sub/a.txt"]

    def names(lines):
        return {re.match(r"([a-z_0-9]+)\(", l).group(1) for l in lines}
    t, text, lines = sbrun_trace(ctx, agent, "%file", argv)
    h.check(t.rc == 0 and t.err == "", "-o: nothing may go to stderr")
    h.check(names(lines) <= {"openat", "newfstatat", "access", "execve", "readlink", "statx"},
            f"%file traced {names(lines)}")
    h.check("openat" in names(lines), "%file must show openat")
    t, text, lines = sbrun_trace(ctx, agent, "!close", argv)
    h.check("close" not in names(lines) and "read" in names(lines), f"!close traced {names(lines)}")
    t, text, lines = sbrun_trace(ctx, agent, "/^open", argv)
    h.check(names(lines) == {"openat"}, f"/^open traced {names(lines)}")
    t, text, lines = sbrun_trace(ctx, agent, "all", argv, extra=["-P", path])
    h.check(lines and all("hello.txt" in l or re.match(r"(read|close|newfstatat|fadvise64)\(3", l)
                          for l in lines), "-P must leave only the calls on hello.txt")
    h.check(not any("a.txt" in l for l in lines), "-P showed a call on another file")
    # --trace alone: stderr. --trace=FILE (sbrun 0.1) is still a file.
    t = ctx.traced(agent, argv, extra=["--trace"])
    h.check(re.search(r'openat\(AT_FDCWD, "' + re.escape(path) + r'", O_RDONLY\) = 3 <target1 ',
                      t.err), "--trace must write the trace to stderr")
    old = os.path.join(ctx.tmp, "old.trace")
    t = ctx.traced(agent, argv, extra=["--trace=" + old])
    h.check(t.err == "" and "hello.txt" in open(old).read(), "--trace=FILE must still write FILE")
    # -c: the table per syscall and where it ran, -S name sorts it by name.
    t = ctx.traced(agent, argv, extra=["-c", "-S", "name"])
    h.log(t.describe())
    rows = [l.split() for l in t.err.splitlines() if re.match(r"^ *\d+\.\d+ ", l)]
    named = [(r[-2], r[-1]) for r in rows if r[-1] in ("target1", "local")]
    h.check(("openat", "target1") in named and ("read", "target1") in named,
            f"-c: no target1 rows for openat and read in {named}")
    h.check([n for n, _ in named] == sorted(n for n, _ in named), "-S name: not sorted by name")
    # A program that runs on B: its start is one line; sb-stub's protocol and pumping, sbrun's
    # own calls, never show.
    t = ctx.traced(agent, ["sh", "-c", "uname -n"], extra=["--trace", "-e", "trace=all"])
    h.log(t.describe())
    h.check(t.rc == 0 and t.out == h.B_HOSTNAME + "\n", "uname -n must run on B")
    h.check(re.search(r'started on target1: \["uname", "-n"\] = pid \d+', t.err),
            "no line for the start of uname on B")
    h.check("syscall_" not in t.err, "sbrun's own calls (syscall_N) must not be traced")
    for bad, want in ((["--trace=openat,nosuch"], "unknown syscall 'nosuch'"),
                      (["-e", "trace=%files"], "unknown syscall class '%files'"),
                      (["-e", "verbose=all"], "sbrun takes -e trace=SET")):
        t = h.run([ctx.sbrun] + bad + ["--", "true"], timeout=30)
        h.log(t.describe())
        h.check(t.rc == 125 and want in t.err and "Try 'sbrun --help'" in t.err,
                f"{bad}: expected exit 125 and '{want}'")


def injected(text):
    return [l for l in text.splitlines() if "(INJECTED)" in l]


def case_inject(ctx):
    """-e inject=: the Nth openat of a file on B fails with the asked errno (not performed: the
    agent never sees it) and cat's message says so; when=2+3 hits exactly calls 2, 5, 8;
    retval=; signal=; delay_enter= shows in -T; path=GLOB; -P with inject; a local trapped call;
    --stats counts the injections; bad specs exit 125 with a clear message."""
    agent = ctx.agent()
    h.make_tree(agent)
    if ctx.native_only:
        return
    path = h.WORK + "/hello.txt"
    # The 2nd open of files under WORK fails with EACCES: cat prints the first, then the error.
    t, text, lines = sbrun_trace(
        ctx, agent, "openat", ["cat", path, path, path],
        extra=["-e", f"inject=openat:error=EACCES:when=2:path={h.WORK}/*"])
    h.check(t.rc == 1 and t.out == "hello from board-b\n" * 2, "cat's output")
    h.check(f"cat: {path}: Permission denied" in t.err, "cat must report Permission denied")
    h.check(len(injected(text)) == 1 and "= -1 EACCES (Permission denied) (INJECTED) <not run>"
            in injected(text)[0], "one injected EACCES line")
    # when=2+3: calls 2, 5, 8 of ten stats of B's file, as python sees them.
    prog = ("import os\nfor i in range(10):\n    try:\n        os.stat(%r); print(i + 1, 'ok')\n"
            "    except OSError as e:\n        print(i + 1, e.strerror)\n" % path)
    t, text, lines = sbrun_trace(ctx, agent, "newfstatat", [h.SYS_PYTHON, "-c", prog],
                                 extra=["-P", path, "-e", "inject=newfstatat:error=EIO:when=2+3"])
    failed = [l.split()[0] for l in t.out.splitlines() if "Input/output error" in l]
    h.check(failed == ["2", "5", "8"], f"when=2+3 failed calls {failed}, expected 2 5 8")
    h.check(len(injected(text)) == 3, "three INJECTED lines")
    # retval=: the call is not performed and "succeeds".
    t, text, lines = sbrun_trace(ctx, agent, "unlink", [h.SYS_PYTHON, "-c",
                                 f"import os; os.unlink('{h.WORK}/sub/a.txt'); print('gone')"],
                                 extra=["-e", "inject=unlink:retval=0"])
    h.check(t.rc == 0 and t.out == "gone\n", "unlink with retval=0 must succeed")
    h.check(agent.sh(f"test -e {h.WORK}/sub/a.txt").rc == 0,
            "an injected retval must not perform the call on B")
    # signal=: delivered as the call enters (sh's own open: a cat it started would run on B,
    # where nothing is traced).
    t = ctx.traced(agent, ["sh", "-c", f"trap 'echo got USR1' USR1; read x < {path}; echo $x"],
                   extra=["-e", f"inject=openat:signal=SIGUSR1:path={path}"])
    h.log(t.describe())
    h.check(t.rc == 0 and t.out == "got USR1\nhello from board-b\n", "signal= must reach sh")
    # delay_enter= shows in -T, and the call still runs (DELAYED).
    t, text, lines = sbrun_trace(ctx, agent, "close", ["cat", path],
                                 extra=["-T", "-e", "inject=close:delay_enter=150ms:when=1"])
    delayed = [l for l in text.splitlines() if "(DELAYED)" in l]
    h.check(len(delayed) == 1, "one DELAYED line")
    secs = float(re.search(r"<(\d+\.\d+)>", delayed[0]).group(1))
    h.check(secs >= 0.15, f"-T shows {secs} s for a call delayed 150 ms")
    # A local trapped call: an open of a file here, under --local.
    here = os.path.join(ctx.tmp, "here.txt")
    with open(here, "w") as f:
        f.write("local\n")
    t = ctx.traced(agent, ["cat", here], extra=["--local", ctx.tmp, "-e",
                                                f"inject=openat:error=ENOSPC:path={here}"])
    h.log(t.describe())
    h.check(t.rc == 1 and "No space left on device" in t.err, "a local open must fail too")
    # --stats counts the injections.
    stats = os.path.join(ctx.tmp, "stats.json")
    t = ctx.traced(agent, ["cat", path, path], extra=[
        "--stats=" + stats, "--stats-format=json", "-e", f"inject=openat:error=EIO:path={path}"])
    data = h.json.load(open(stats))
    h.log(h.json.dumps(data, indent=1))
    h.check(data["injected"] == 2, "--stats: 2 injected")
    for bad, want in ((["-e", "inject=openat"], "injects nothing"),
                      (["-e", "inject=openat:error=EIO:when=0"], "bad when=0"),
                      (["-e", "inject=opnat:error=EIO"], "unknown syscall 'opnat'"),
                      (["-e", "inject=getpid:error=EIO"], "never stops these syscalls"),
                      (["--inject=openat:error=EBOGUS"], "not an errno name")):
        t = h.run([ctx.sbrun] + bad + ["--", "true"], timeout=30)
        h.log(t.describe())
        h.check(t.rc == 125 and want in t.err and "Try 'sbrun --help'" in t.err,
                f"{bad}: expected exit 125 and '{want}'")


def register(cases, harness):
    global h
    h = harness
    cases["trace-like-strace"] = (case_trace_like_strace, True)
    cases["trace-socket-like-strace"] = (case_trace_socket_like_strace, True)
    cases["trace-filters"] = (case_trace_filters, True)
    cases["trace-yy-like-strace"] = (case_trace_yy_like_strace, True)
    cases["trace-decode-like-strace"] = (case_trace_decode_like_strace, True)
    cases["trace-stats-to-output"] = (case_trace_stats_to_output, True)
    cases["inject"] = (case_inject, True)
