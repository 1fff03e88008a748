#include <doctest.h>
#include <errno.h>
#include <linux/audit.h>
#include <sys/syscall.h>

#include "seccomp_filter.h"
#include "syscall_table.h"

namespace {

const sb::SeccompFilter& filter() {
  static const auto f = sb::SeccompFilter::build();
  return f;
}

// Evaluates the launch filter; fd-like arguments default to 3 (not stdio).
uint32_t eval(int nr, uint32_t arch = AUDIT_ARCH_X86_64, uint64_t a4 = 3, uint64_t a0 = 3) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[0] = a0;
  d.args[4] = a4;
  return sb::evaluateFilter(filter().program(), d);
}

uint32_t evalGuard(int nr, uint64_t a0, uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[0] = a0;
  return sb::evaluateFilter(filter().stdioGuard(), d);
}

uint32_t action(uint32_t ret) { return ret & SECCOMP_RET_ACTION_FULL; }

}  // namespace

TEST_SUITE("seccomp_filter") {
  TEST_CASE("local syscalls run at full speed") {
    for (int nr : {SYS_futex, SYS_mmap + 0 * 0, SYS_clock_gettime, SYS_brk, SYS_getpid,
                   SYS_exit_group, SYS_clone}) {
      if (nr == SYS_mmap) {
        continue;  // Checked with its fd argument below.
      }
      CAPTURE(nr);
      CHECK(action(eval(nr)) == SECCOMP_RET_ALLOW);
    }
  }

  TEST_CASE("redirectable syscalls stop for the tracer") {
    for (int nr : {SYS_openat, SYS_read, SYS_write, SYS_close, SYS_newfstatat, SYS_statx,
                   SYS_uname, SYS_getdents64, SYS_ioctl, SYS_fcntl, SYS_execve,
                   SYS_execveat, 0x5342 /* sb-stub's */}) {
      CAPTURE(nr);
      CHECK(action(eval(nr)) == SECCOMP_RET_TRACE);
    }
  }

  TEST_CASE("every row gets the action its class says") {
    for (auto& row : sb::syscallTable()) {
      CAPTURE(row.name);
      uint32_t a = action(eval(row.nr, AUDIT_ARCH_X86_64, 3));
      switch (row.cls) {
        case sb::SyscallClass::LOCAL:
        case sb::SyscallClass::PROCESS:
          CHECK(a == SECCOMP_RET_ALLOW);
          break;
        case sb::SyscallClass::REFUSED:
          CHECK(eval(row.nr) == (SECCOMP_RET_ERRNO | ENOSYS));
          break;
        default:
          CHECK(a == SECCOMP_RET_TRACE);
      }
    }
  }

  TEST_CASE("mmap of anonymous memory never stops, mmap of an fd does") {
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 0xffffffffffffffffull)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 0x00000000ffffffffull)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 3)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 0)) == SECCOMP_RET_TRACE);
  }

  TEST_CASE("numbers the table does not know are trapped, never allowed") {
    CHECK(action(eval(1000)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(335)) == SECCOMP_RET_TRACE);  // A hole in the x86-64 numbering.
  }

  TEST_CASE("i386 syscalls from an x86-64 process kill it") {
    // int 0x80 number 5 is open on i386 but fstat on x86-64: no rule of ours fits.
    CHECK(action(eval(5, AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS);
    CHECK(action(eval(SYS_getpid, AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS);
  }

  TEST_CASE("x32 syscall numbers never slip through as x86-64 ones") {
    constexpr int X32 = 0x40000000;
    for (int nr : {SYS_getpid, SYS_futex, SYS_openat, 5}) {
      CAPTURE(nr);
      CHECK(action(eval(X32 | nr)) != SECCOMP_RET_ALLOW);
      CHECK(action(eval(X32 | nr)) != SECCOMP_RET_TRACE);
    }
  }

  TEST_CASE("the readable dump names the rules") {
    auto pfc = filter().pfc();
    CHECK(pfc.size() > 100);
    CHECK(kj::StringPtr(pfc).findFirst('#') != nullptr);
  }

  TEST_CASE("stdio calls on fds 0-2 run untrapped, on other fds they stop") {
    for (int nr : {SYS_read, SYS_write, SYS_writev, SYS_readv, SYS_close, SYS_fstat, SYS_ioctl,
                   SYS_fcntl, SYS_lseek}) {
      CAPTURE(nr);
      for (uint64_t fd : {0, 1, 2}) {
        CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, fd)) == SECCOMP_RET_ALLOW);
      }
      CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, 3)) == SECCOMP_RET_TRACE);
      // Negative fds (EBADF) and garbage in the upper half are not stdio.
      CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, 0xffffffffull)) == SECCOMP_RET_TRACE);
    }
    // dup2/dup3 onto stdio must always be seen: they can make fds 0-2 remote.
    CHECK(action(eval(SYS_dup2, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_openat, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
  }

  TEST_CASE("the stdio guard traps exactly the fast stdio calls and keeps the arch check") {
    for (auto& row : sb::syscallTable()) {
      CAPTURE(row.name);
      uint32_t a = action(evalGuard(row.nr, 1));
      CHECK(a == (row.stdioFast ? SECCOMP_RET_TRACE : SECCOMP_RET_ALLOW));
    }
    CHECK(action(evalGuard(SYS_write, 1, AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS);
  }
}
