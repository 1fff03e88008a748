// strace's text for syscalls (tracer/trace_format.h), decoded from this process's own memory
// (TraceeMemory works on any pid, ours included), compared with what strace prints.

#include <doctest.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "call_paths.h"
#include "trace_format.h"

namespace {

uint64_t tfAddr(const void* p) { return reinterpret_cast<uint64_t>(p); }

kj::String tfArgs(int nr, std::initializer_list<uint64_t> list, int64_t result,
                   size_t limit = 32, kj::ArrayPtr<const kj::String> notes = nullptr) {
  uint64_t args[6] = {};
  size_t i = 0;
  for (auto a : list) {
    args[i++] = a;
  }
  sb::TraceStyle style;
  style.stringLimit = limit;
  return sb::formatCallArgs(nr, args, result, sb::TraceeMemory(getpid()), style, notes);
}

kj::String tfQuote(kj::StringPtr s, size_t limit = 32) {
  return sb::quoteBytes(s.asBytes(), limit);
}

}  // namespace

TEST_SUITE("trace_format") {
  TEST_CASE("strings are quoted and escaped as strace does") {
    CHECK(tfQuote("hi\n") == "\"hi\\n\"");
    CHECK(tfQuote("a\"b\\c\t") == "\"a\\\"b\\\\c\\t\"");
    const kj::byte elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 0, 0, '1'};
    // Octal in as few digits as stay unambiguous: three before a digit.
    CHECK(sb::quoteBytes(elf, 32) == "\"\\177ELF\\2\\1\\0\\0001\"");
    CHECK(tfQuote("abcdef", 4) == "\"abcd\"...");
    CHECK(tfQuote("abcd", 4) == "\"abcd\"");
    CHECK(sb::quoteBytes(kj::StringPtr("ab").asBytes(), 4, true) == "\"ab\"...");
  }

  TEST_CASE("open: flags by name in strace's order, the mode only when creating") {
    const char path[] = "/etc/hostname";
    CHECK(tfArgs(SYS_openat, {uint64_t(int64_t(AT_FDCWD)), tfAddr(path), O_RDONLY | O_CLOEXEC},
                 3) ==
          "AT_FDCWD, \"/etc/hostname\", O_RDONLY|O_CLOEXEC");
    CHECK(tfArgs(SYS_openat, {uint64_t(int64_t(AT_FDCWD)), tfAddr(path),
                               O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY}, 3) ==
          "AT_FDCWD, \"/etc/hostname\", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY");
    CHECK(tfArgs(SYS_openat, {5, tfAddr(path), O_WRONLY | O_CREAT | O_TRUNC, 0644}, 3) ==
          "5, \"/etc/hostname\", O_WRONLY|O_CREAT|O_TRUNC, 0644");
    CHECK(tfArgs(SYS_open, {tfAddr(path), O_RDWR | O_TMPFILE, 0600}, 3) ==
          "\"/etc/hostname\", O_RDWR|O_TMPFILE, 0600");
    // Paths are never cut by -s.
    CHECK(tfArgs(SYS_unlink, {tfAddr(path)}, 0, 4) == "\"/etc/hostname\"");
    CHECK(tfArgs(SYS_access, {tfAddr(path), R_OK | W_OK}, 0) == "\"/etc/hostname\", R_OK|W_OK");
    CHECK(tfArgs(SYS_access, {tfAddr(path), F_OK}, 0) == "\"/etc/hostname\", F_OK");
    CHECK(tfArgs(SYS_mkdir, {tfAddr(path), 0750}, 0) == "\"/etc/hostname\", 0750");
    CHECK(tfArgs(SYS_unlinkat, {3, tfAddr(path), AT_REMOVEDIR}, 0) ==
          "3, \"/etc/hostname\", AT_REMOVEDIR");
  }

  TEST_CASE("buffers: a read's as many bytes as it returned, cut at -s; a write's as asked") {
    const char data[] = "root:x:0:0:root:/root:/bin/bash\nmore";
    CHECK(tfArgs(SYS_read, {3, tfAddr(data), 4096}, 5) == "3, \"root:\", 4096");
    CHECK(tfArgs(SYS_read, {3, tfAddr(data), 4096}, 36) ==
          "3, \"root:x:0:0:root:/root:/bin/bash\\n\"..., 4096");
    CHECK(tfArgs(SYS_read, {3, tfAddr(data), 4096}, -EBADF).startsWith("3, 0x"));
    CHECK(tfArgs(SYS_write, {1, tfAddr(data), 4}, 4, 32) == "1, \"root\", 4");
    CHECK(tfArgs(SYS_pread64, {3, tfAddr(data), 10, 7}, 2, 32) == "3, \"ro\", 10, 7");
    kj::String notes[6] = {kj::str("/etc/passwd"), kj::str(), kj::str(), kj::str(), kj::str(),
                           kj::str()};
    CHECK(tfArgs(SYS_read, {3, tfAddr(data), 4096}, 0, 32, notes) == "3</etc/passwd>, \"\", 4096");
  }

  TEST_CASE("struct stat and statx at strace's depth, at exit") {
    struct stat st = {};
    st.st_mode = S_IFREG | 0644;
    st.st_size = 123;
    const char path[] = "/x";
    CHECK(tfArgs(SYS_newfstatat, {uint64_t(int64_t(AT_FDCWD)), tfAddr(path), tfAddr(&st), 0}, 0) ==
          "AT_FDCWD, \"/x\", {st_mode=S_IFREG|0644, st_size=123, ...}, 0");
    CHECK(tfArgs(SYS_fstat, {3, tfAddr(&st)}, -EBADF).startsWith("3, 0x"));
    st.st_mode = S_IFCHR | 0666;
    st.st_rdev = makedev(1, 3);
    CHECK(tfArgs(SYS_fstat, {3, tfAddr(&st)}, 0) ==
          "3, {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}");
    st.st_mode = S_IFDIR | S_ISVTX | 0777;
    CHECK(tfArgs(SYS_newfstatat, {3, tfAddr(""), tfAddr(&st), AT_EMPTY_PATH}, 0) ==
          "3, \"\", {st_mode=S_IFDIR|S_ISVTX|0777, st_size=123, ...}, AT_EMPTY_PATH");
    struct statx sx = {};
    sx.stx_mask = STATX_BASIC_STATS | 0x1000;
    sx.stx_mode = S_IFREG | 0644;
    sx.stx_size = 3;
    CHECK(tfArgs(SYS_statx, {uint64_t(int64_t(AT_FDCWD)), tfAddr(path),
                              AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                              STATX_MODE | STATX_NLINK | STATX_SIZE, tfAddr(&sx)}, 0) ==
          "AT_FDCWD, \"/x\", AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW|AT_NO_AUTOMOUNT, "
          "STATX_MODE|STATX_NLINK|STATX_SIZE, {stx_mask=STATX_BASIC_STATS|STATX_MNT_ID, "
          "stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=3, ...}");
  }

  TEST_CASE("sockaddrs, socket types, socket options") {
    sockaddr_in in = {};
    in.sin_family = AF_INET;
    in.sin_port = htons(80);
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    CHECK(tfArgs(SYS_connect, {3, tfAddr(&in), sizeof(in)}, 0) ==
          "3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"127.0.0.1\")}, 16");
    sockaddr_un un = {};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/run/x.sock");
    CHECK(tfArgs(SYS_connect, {3, tfAddr(&un), sizeof(un)}, -ENOENT) ==
          "3, {sa_family=AF_UNIX, sun_path=\"/run/x.sock\"}, 110");
    CHECK(tfArgs(SYS_socket, {AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP}, 3) ==
          "AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP");
    CHECK(tfArgs(SYS_socket, {AF_UNIX, SOCK_DGRAM, 0}, 3) == "AF_UNIX, SOCK_DGRAM, 0");
    int one = 1;
    CHECK(tfArgs(SYS_setsockopt, {3, IPPROTO_TCP, 1, tfAddr(&one), 4}, 0) ==
          "3, SOL_TCP, TCP_NODELAY, [1], 4");
    CHECK(tfArgs(SYS_sendto, {3, tfAddr("a"), 1, 0, 0, 0}, 1) == "3, \"a\", 1, 0, NULL, 0");
    // A socklen_t the call changed: strace's `[in => out]`, the value before from the entry.
    socklen_t len = sizeof(in);
    sb::CallEntry entry;
    entry.addrLen = 128;
    uint64_t args[6] = {3, tfAddr(&in), tfAddr(&len), 0, 0, 0};
    sb::TraceStyle style;
    CHECK(sb::formatCallArgs(SYS_getsockname, args, 0, sb::TraceeMemory(getpid()), style,
                             nullptr, entry) ==
          "3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"127.0.0.1\")}, "
          "[128 => 16]");
    entry.addrLen = 16;
    CHECK(sb::formatCallArgs(SYS_getsockname, args, 0, sb::TraceeMemory(getpid()), style,
                             nullptr, entry)
              .endsWith(", [16]"));
  }

  TEST_CASE("iovecs: input arrays whole, output arrays up to the result, each cut at -s") {
    char a[] = "abc", b[] = "de";
    struct iovec in[2] = {{a, 3}, {b, 2}};
    CHECK(tfArgs(SYS_writev, {4, tfAddr(in), 2}, 5) ==
          "4, [{iov_base=\"abc\", iov_len=3}, {iov_base=\"de\", iov_len=2}], 2");
    char out1[] = "ab", out2[] = "cdexxxxxxx";
    struct iovec rd[2] = {{out1, 2}, {out2, 10}};
    CHECK(tfArgs(SYS_readv, {3, tfAddr(rd), 2}, 12) ==
          "3, [{iov_base=\"ab\", iov_len=2}, {iov_base=\"cdexxxxxxx\", iov_len=10}], 2");
    // A short read: the second element shows the 3 bytes the call wrote there.
    CHECK(tfArgs(SYS_readv, {3, tfAddr(rd), 2}, 5) ==
          "3, [{iov_base=\"ab\", iov_len=2}, {iov_base=\"cde\", iov_len=10}], 2");
    CHECK(tfArgs(SYS_readv, {3, tfAddr(rd), 2}, 0) ==
          "3, [{iov_base=\"\", iov_len=2}, {iov_base=\"\", iov_len=10}], 2");
    CHECK(tfArgs(SYS_readv, {3, tfAddr(rd), 2}, -EBADF).startsWith("3, 0x"));
    // -s 4 cuts each element's bytes and the number of elements shown.
    char big[] = "xxxxxxxxxx";
    struct iovec many[6] = {{big, 10}, {big, 1}, {big, 1}, {big, 1}, {big, 1}, {big, 1}};
    CHECK(tfArgs(SYS_pwritev, {3, tfAddr(many), 6, 7}, 15, 4) ==
          "3, [{iov_base=\"xxxx\"..., iov_len=10}, {iov_base=\"x\", iov_len=1}, "
          "{iov_base=\"x\", iov_len=1}, {iov_base=\"x\", iov_len=1}, ...], 6, 7");
  }

  TEST_CASE("sendmsg and recvmsg: struct msghdr, its iovecs and control messages") {
    char a[] = "abc", b[] = "de";
    struct iovec iov[2] = {{a, 3}, {b, 2}};
    struct msghdr m = {};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    CHECK(tfArgs(SYS_sendmsg, {3, tfAddr(&m), 0}, 5) ==
          "3, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"abc\", iov_len=3}, "
          "{iov_base=\"de\", iov_len=2}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, 0");
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct cmsghdr* c = reinterpret_cast<struct cmsghdr*>(control);
    c->cmsg_len = CMSG_LEN(sizeof(int));
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    int fd = 7;
    memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    sockaddr_in in = {};
    in.sin_family = AF_INET;
    in.sin_port = htons(80);
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    m.msg_name = &in;
    m.msg_namelen = sizeof(in);
    // recvmsg at exit: the iovecs up to the result, msg_namelen as `in => out` when it changed.
    sb::CallEntry entry;
    entry.msgNameLen = 110;
    uint64_t args[6] = {4, tfAddr(&m), 0, 0, 0, 0};
    sb::TraceStyle style;
    CHECK(sb::formatCallArgs(SYS_recvmsg, args, 4, sb::TraceeMemory(getpid()), style, nullptr,
                             entry) ==
          "4, {msg_name={sa_family=AF_INET, sin_port=htons(80), "
          "sin_addr=inet_addr(\"127.0.0.1\")}, msg_namelen=110 => 16, "
          "msg_iov=[{iov_base=\"abc\", iov_len=3}, {iov_base=\"d\", iov_len=2}], msg_iovlen=2, "
          "msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, "
          "cmsg_data=[7]}], msg_controllen=24, msg_flags=0}, 0");
    CHECK(tfArgs(SYS_recvmsg, {4, tfAddr(&m), 0}, -EAGAIN).startsWith("4, 0x"));
  }

  TEST_CASE("sendmmsg and recvmmsg: mmsghdr arrays, msg_len for the messages the call moved") {
    // strace's own tests/mmsg.c lines, for two messages.
    auto mmsg = [](struct iovec* iov, size_t n, unsigned len) {
      struct mmsghdr m = {};
      m.msg_hdr.msg_iov = iov;
      m.msg_hdr.msg_iovlen = n;
      m.msg_len = len;
      return m;
    };
    char one[] = "one", two[] = "two", three[] = "three";
    struct iovec w0[2] = {{one, 3}, {two, 3}}, w1[1] = {{three, 5}};
    struct mmsghdr w[2] = {mmsg(w0, 2, 6), mmsg(w1, 1, 5)};
    kj::StringPtr hdr0 = "{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"one\", "
                         "iov_len=3}, {iov_base=\"two\", iov_len=3}], msg_iovlen=2, "
                         "msg_controllen=0, msg_flags=0}";
    kj::StringPtr hdr1 = "{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"three\", "
                         "iov_len=5}], msg_iovlen=1, msg_controllen=0, msg_flags=0}";
    CHECK(tfArgs(SYS_sendmmsg, {1, tfAddr(w), 2, MSG_DONTROUTE | MSG_NOSIGNAL}, 2) ==
          kj::str("1, [", hdr0, ", msg_len=6}, ", hdr1, ", msg_len=5}], 2, "
                  "MSG_DONTROUTE|MSG_NOSIGNAL"));
    // One sent: msg_len for it alone; failed: for none.
    CHECK(tfArgs(SYS_sendmmsg, {1, tfAddr(w), 2, 0}, 1) ==
          kj::str("1, [", hdr0, ", msg_len=6}, ", hdr1, "}], 2, 0"));
    CHECK(tfArgs(SYS_sendmmsg, {1, tfAddr(w), 2, 0}, -EPIPE) ==
          kj::str("1, [", hdr0, "}, ", hdr1, "}], 2, 0"));
    // -s 1: one element, then `...`.
    CHECK(tfArgs(SYS_sendmmsg, {1, tfAddr(w), 2, 0}, 2, 1).endsWith(", ...], 2, 0"));

    // recvmmsg at exit: the messages it filled, each iovec's data up to its msg_len.
    char r0[9] = "01234567", r1[5] = "89ab", r2[5] = "cde";
    struct iovec ri0[1] = {{r0, 8}}, ri1[2] = {{r1, 4}, {r2, 4}};
    struct mmsghdr r[2] = {mmsg(ri0, 1, 8), mmsg(ri1, 2, 7)};
    uint64_t args[6] = {0, tfAddr(r), 2, MSG_DONTWAIT, 0, 0};
    sb::TraceeMemory mem(getpid());
    sb::CallEntry entry = sb::readCallEntry(SYS_recvmmsg, args, mem);
    CHECK(entry.mmsgNameLens.size() == 2);
    sb::TraceStyle style;
    CHECK(sb::formatCallArgs(SYS_recvmmsg, args, 2, mem, style, nullptr, entry) ==
          "0, [{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"01234567\", "
          "iov_len=8}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=8}, "
          "{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"89ab\", iov_len=4}, "
          "{iov_base=\"cde\", iov_len=4}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, "
          "msg_len=7}], 2, MSG_DONTWAIT, NULL");
    // The timeout as it was at entry (the kernel rewrites it with what is left).
    struct timespec ts = {1, 500};
    args[4] = tfAddr(&ts);
    entry = sb::readCallEntry(SYS_recvmmsg, args, mem);
    ts = {0, 0};
    CHECK(sb::formatCallArgs(SYS_recvmmsg, args, -EAGAIN, mem, style, nullptr, entry) ==
          kj::str("0, 0x", kj::hex(tfAddr(r)), ", 2, MSG_DONTWAIT, {tv_sec=1, tv_nsec=500}"));
    CHECK(sb::formatCallResult(SYS_recvmmsg, 0) == "0 (Timeout)");
    ts = {0, 999};  // what the kernel left
    CHECK(sb::formatResultNote(SYS_recvmmsg, args, 2, mem) == " (left {tv_sec=0, tv_nsec=999})");
    CHECK(sb::formatResultNote(SYS_recvmmsg, args, -EAGAIN, mem) == "");
    args[4] = 0;
    CHECK(sb::formatResultNote(SYS_recvmmsg, args, 2, mem) == "");
  }

  TEST_CASE("splice, copy_file_range, sendfile: offsets by value, flags by name") {
    sb::TraceeMemory mem(getpid());
    sb::TraceStyle style;
    int64_t offIn = 4096, offOut = 7;
    uint64_t splice[6] = {3, tfAddr(&offIn), 5, 0, 65536, 1 | 4};
    sb::CallEntry entry = sb::readCallEntry(SYS_splice, splice, mem);
    offIn += 100;  // the kernel moved it: strace prints the offset the call was given
    CHECK(sb::formatCallArgs(SYS_splice, splice, 100, mem, style, nullptr, entry) ==
          "3, [4096], 5, NULL, 65536, SPLICE_F_MOVE|SPLICE_F_MORE");
    uint64_t copy[6] = {3, 0, 4, tfAddr(&offOut), 10, 0};
    entry = sb::readCallEntry(SYS_copy_file_range, copy, mem);
    CHECK(sb::formatCallArgs(SYS_copy_file_range, copy, 10, mem, style, nullptr, entry) ==
          "3, NULL, 4, [7], 10, 0");
    uint64_t tee[6] = {3, 4, 10, 2};
    CHECK(sb::formatCallArgs(SYS_tee, tee, 10, mem, style, nullptr, {}) ==
          "3, 4, 10, SPLICE_F_NONBLOCK");
    // sendfile: [before => after] when it sent something, as strace.
    int64_t off = 0;
    uint64_t sendfile[6] = {1, 3, tfAddr(&off), 100};
    entry = sb::readCallEntry(SYS_sendfile, sendfile, mem);
    off = 10;
    CHECK(sb::formatCallArgs(SYS_sendfile, sendfile, 10, mem, style, nullptr, entry) ==
          "1, 3, [0] => [10], 100");
    CHECK(sb::formatCallArgs(SYS_sendfile, sendfile, -EBADF, mem, style, nullptr, entry) ==
          "1, 3, [0], 100");
    sendfile[2] = 0;
    CHECK(sb::formatCallArgs(SYS_sendfile, sendfile, 10, mem, style, nullptr, {}) ==
          "1, 3, NULL, 100");
  }

  TEST_CASE("statfs at strace's depth") {
    struct statfs st = {};
    st.f_type = 0x01021994;
    st.f_bsize = 4096;
    st.f_blocks = 100;
    st.f_bfree = 50;
    st.f_bavail = 40;
    st.f_files = 10;
    st.f_ffree = 5;
    st.f_namelen = 255;
    st.f_frsize = 4096;
    st.f_flags = 0x20 | 0x2 | 0x1000;
    int fsid[2] = {0x15, 0};
    memcpy(&st.f_fsid, fsid, sizeof(fsid));
    const char path[] = "/tmp";
    CHECK(tfArgs(SYS_statfs, {tfAddr(path), tfAddr(&st)}, 0) ==
          "\"/tmp\", {f_type=TMPFS_MAGIC, f_bsize=4096, f_blocks=100, f_bfree=50, f_bavail=40, "
          "f_files=10, f_ffree=5, f_fsid={val=[0x15, 0]}, f_namelen=255, f_frsize=4096, "
          "f_flags=ST_VALID|ST_NOSUID|ST_RELATIME}");
    CHECK(tfArgs(SYS_fstatfs, {3, tfAddr(&st)}, -EBADF).startsWith("3, 0x"));
  }

  TEST_CASE("ioctl: requests by name, their arguments as strace decodes them") {
    int n = 5;
    CHECK(tfArgs(SYS_ioctl, {3, 0x541B, tfAddr(&n)}, 0) == "3, FIONREAD, [5]");
    CHECK(tfArgs(SYS_ioctl, {3, 0x541B, tfAddr(&n)}, -ENOTTY).startsWith("3, FIONREAD, 0x"));
    int one = 1;
    CHECK(tfArgs(SYS_ioctl, {3, 0x5421, tfAddr(&one)}, 0) == "3, FIONBIO, [1]");
    CHECK(tfArgs(SYS_ioctl, {3, 0x5451, 0}, 0) == "3, FIOCLEX");
    // Unknown requests as strace prints them (its lines for these three codes).
    CHECK(tfArgs(SYS_ioctl, {3, 0xc0045499, 0x1000}, -ENOTTY) ==
          "3, _IOC(_IOC_READ|_IOC_WRITE, 0x54, 0x99, 0x4), 0x1000");
    CHECK(tfArgs(SYS_ioctl, {3, 0xabcd, 0x1000}, -ENOTTY) ==
          "3, _IOC(_IOC_NONE, 0xab, 0xcd, 0), 0x1000");
    CHECK(tfArgs(SYS_ioctl, {3, 0x80087a01, 0x1000}, -ENOTTY) ==
          "3, _IOC(_IOC_READ, 0x7a, 0x1, 0x8), 0x1000");
    uint16_t ws[4] = {24, 80, 0, 0};
    CHECK(tfArgs(SYS_ioctl, {0, 0x5413, tfAddr(ws)}, 0) ==
          "0, TIOCGWINSZ, {ws_row=24, ws_col=80, ws_xpixel=0, ws_ypixel=0}");
    // struct termios as the kernel copies it: what a terminal in cooked mode shows.
    uint32_t t[9] = {ICRNL | IXON, OPOST | ONLCR, B38400 | CS8 | CREAD,
                     ISIG | ICANON | ECHO | ECHOE | ECHOK | IEXTEN | ECHOCTL | ECHOKE, 0};
    const char* cooked =
        "{c_iflag=ICRNL|IXON, c_oflag=NL0|CR0|TAB0|BS0|VT0|FF0|OPOST|ONLCR, "
        "c_cflag=B38400|CS8|CREAD, c_lflag=ISIG|ICANON|ECHO|ECHOE|ECHOK|IEXTEN|ECHOCTL|ECHOKE, "
        "...}";
    CHECK(tfArgs(SYS_ioctl, {0, 0x5401, tfAddr(t)}, 0) == kj::str("0, TCGETS, ", cooked));
    CHECK(tfArgs(SYS_ioctl, {0, 0x5402, tfAddr(t)}, 0) ==
          kj::str("0, SNDCTL_TMR_START or TCSETS, ", cooked));
    CHECK(tfArgs(SYS_ioctl, {3, 0x5401, tfAddr(t)}, -ENOTTY).startsWith("3, TCGETS, 0x"));
  }

  TEST_CASE("-yy: a local socket's endpoints from /proc/net by its inode") {
    char dir[] = "/tmp/tf_procnet_XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    auto put = [&](const char* name, const char* text) {
      FILE* f = fopen(kj::str(dir, "/", name).cStr(), "w");
      REQUIRE(f != nullptr);
      fputs(text, f);
      fclose(f);
    };
    put("tcp",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 "
        "       0 111 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000 "
        "       0 222 1 0000000000000000 20 4 30 10 -1\n");
    put("tcp6",
        "  sl  local_address                         remote_address                        st "
        "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 "
        "10 0\n");
    put("unix",
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 444 /run/x.sock\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 555\n");
    CHECK(sb::localSocketNote(dir, "TCP", 111) == "TCP:[127.0.0.1:8080]");
    CHECK(sb::localSocketNote(dir, "TCP", 222) == "TCP:[127.0.0.1:40000->127.0.0.1:8080]");
    CHECK(sb::localSocketNote(dir, "TCPv6", 333) == "TCPv6:[[::1]:80]");
    CHECK(sb::localSocketNote(dir, "UNIX-STREAM", 444) == "UNIX-STREAM:[444,\"/run/x.sock\"]");
    CHECK(sb::localSocketNote(dir, "UNIX-STREAM", 555) == "UNIX-STREAM:[555]");
    CHECK(sb::localSocketNote(dir, "TCP", 999) == "TCP:[999]");
    CHECK(sb::localSocketNote(dir, "UDP", 111) == "UDP:[111]");  // no udp table there
    for (const char* name : {"tcp", "tcp6", "unix"}) {
      unlink(kj::str(dir, "/", name).cStr());
    }
    rmdir(dir);
  }

  TEST_CASE("results: numbers, errno names with their text, addresses") {
    CHECK(sb::formatCallResult(SYS_openat, 3) == "3");
    CHECK(sb::formatCallResult(SYS_openat, -ENOENT) == "-1 ENOENT (No such file or directory)");
    CHECK(sb::formatCallResult(SYS_mmap, 0x7f0000001000) == "0x7f0000001000");
  }

  TEST_CASE("fd and path arguments for -y and -P") {
    CHECK(sb::fdArgMask(SYS_read) == 0b1);
    CHECK(sb::fdArgMask(SYS_renameat) == 0b101);
    CHECK(sb::pathArgMask(SYS_renameat) == 0b1010);
    CHECK(sb::pathArgMask(SYS_openat) == 0b10);
    CHECK(sb::fdArgMask(SYS_mmap) == 0b10000);
  }
}
