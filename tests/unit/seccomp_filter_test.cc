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

uint32_t eval(int nr, uint32_t arch = AUDIT_ARCH_X86_64, uint64_t a4 = 0) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[4] = a4;
  return sb::evaluateFilter(filter().program(), d);
}

uint32_t action(uint32_t ret) { return ret & SECCOMP_RET_ACTION_FULL; }

}  // namespace

TEST_SUITE("seccomp_filter") {
  TEST_CASE("local syscalls run at full speed") {
    for (int nr : {SYS_futex, SYS_mmap + 0 * 0, SYS_clock_gettime, SYS_brk, SYS_getpid,
                   SYS_exit_group, SYS_execve, SYS_clone}) {
      if (nr == SYS_mmap) {
        continue;  // Checked with its fd argument below.
      }
      CAPTURE(nr);
      CHECK(action(eval(nr)) == SECCOMP_RET_ALLOW);
    }
  }

  TEST_CASE("redirectable syscalls stop for the tracer") {
    for (int nr : {SYS_openat, SYS_read, SYS_write, SYS_close, SYS_newfstatat, SYS_statx,
                   SYS_uname, SYS_getdents64, SYS_ioctl, SYS_fcntl}) {
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
}
