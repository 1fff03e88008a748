#include <doctest.h>
#include <seccomp.h>
#include <stdlib.h>

#include "syscall_table.h"
#include "tracer.h"

TEST_SUITE("syscall_table") {
  TEST_CASE("every x86-64 syscall libseccomp knows has a row with its name") {
    int known = 0;
    for (int nr = 0; nr < 1024; ++nr) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
      if (name == nullptr) {
        continue;
      }
      ++known;
      auto row = sb::findSyscall(nr);
      CAPTURE(name);
      REQUIRE(row != nullptr);
      CHECK(kj::StringPtr(row->name) == kj::StringPtr(name));
      free(name);
    }
    CHECK(known > 300);
  }

  TEST_CASE("rows are sorted by number and unique") {
    int last = -1;
    for (auto& row : sb::syscallTable()) {
      CHECK(row.nr > last);
      last = row.nr;
    }
  }

  TEST_CASE("every trapped row has a handler") {
    for (auto& row : sb::syscallTable()) {
      CAPTURE(row.name);
      switch (row.cls) {
        case sb::SyscallClass::PATH:
        case sb::SyscallClass::FD:
        case sb::SyscallClass::IDENTITY:
        case sb::SyscallClass::TRACKED:
        case sb::SyscallClass::SCOPE:
        case sb::SyscallClass::UNHANDLED:
          CHECK((sb::findHandler(row.nr) != nullptr));
          break;
        default:
          break;
      }
    }
  }

  TEST_CASE("unhandled rows name an argument that can be remote and an errno") {
    for (auto& row : sb::syscallTable()) {
      if (row.cls != sb::SyscallClass::UNHANDLED) {
        continue;
      }
      CAPTURE(row.name);
      CHECK((row.fdArg >= 0 || row.pathArg >= 0 || row.nr == 216 /* remap_file_pages */));
      CHECK(row.remoteErrno > 0);
    }
  }

  TEST_CASE("the issue's redirected syscalls are all trapped with handlers") {
    const char* names[] = {
        "open", "openat", "openat2", "creat", "close", "close_range", "read", "write", "pread64",
        "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
        "fstat", "stat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
        "faccessat", "faccessat2", "getdents64", "readlink", "readlinkat", "mkdir", "mkdirat",
        "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
        "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown",
        "fchownat", "truncate", "ftruncate", "fallocate", "fsync", "fdatasync", "utimensat",
        "utimes", "utime", "futimesat", "mknod", "mknodat", "setxattr", "lsetxattr",
        "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr",
        "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "dup", "dup2", "dup3",
        "fcntl", "flock", "chdir", "fchdir", "getcwd", "sendfile", "copy_file_range", "uname",
        "poll", "ppoll", "select", "pselect6", "epoll_ctl", "epoll_wait", "epoll_pwait",
        "epoll_pwait2",
        "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto",
        "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockopt",
        "setsockopt", "getsockname", "getpeername"};
    for (auto name : names) {
      CAPTURE(name);
      int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name);
      REQUIRE(nr >= 0);
      auto row = sb::findSyscall(nr);
      REQUIRE(row != nullptr);
      CHECK(row->cls != sb::SyscallClass::LOCAL);
      CHECK(row->cls != sb::SyscallClass::UNHANDLED);
      CHECK((sb::findHandler(nr) != nullptr));
    }
  }

  TEST_CASE("kernel IO bypasses are refused") {
    for (auto name : {"io_uring_setup", "io_setup", "io_submit"}) {
      auto row = sb::findSyscall(seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name));
      REQUIRE(row != nullptr);
      CHECK(row->cls == sb::SyscallClass::REFUSED);
    }
  }

  TEST_CASE("unknown numbers have no row and a readable name") {
    CHECK(sb::findSyscall(-1) == nullptr);
    CHECK(sb::findSyscall(100000) == nullptr);
    CHECK(sb::syscallName(100000) == "syscall_100000");
    CHECK(sb::syscallName(0) == "read");
  }
}
