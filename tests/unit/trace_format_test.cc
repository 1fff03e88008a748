// strace's text for syscalls (tracer/trace_format.h), decoded from this process's own memory
// (TraceeMemory works on any pid, ours included), compared with what strace prints.

#include <doctest.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

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
