#include <doctest.h>
#include <errno.h>
#include <linux/audit.h>
#include <sys/syscall.h>

#include "bpf_eval.h"
#include "seccomp_filter.h"
#include "syscall_table.h"

namespace {

const sb::SeccompFilter& filter() {
  // As for a program whose control fd is 1023.
  static const auto f = sb::SeccompFilter::build(1016);
  return f;
}

// Evaluates the launch filter; fd-like arguments default to 3 (not stdio).
uint32_t eval(int nr, uint32_t arch = AUDIT_ARCH_X86_64, uint64_t a4 = 3, uint64_t a0 = 3) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[0] = a0;
  d.args[4] = a4;
  return sb::test::evaluateFilter(filter().program(), d);
}

uint32_t evalGuard(kj::ArrayPtr<const sock_filter> guard, int nr, uint64_t fd,
                   uint32_t arch = AUDIT_ARCH_X86_64) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[0] = fd;
  d.args[4] = fd;  // mmap's fd
  return sb::test::evaluateFilter(guard, d);
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
    for (int nr : {SYS_openat, SYS_newfstatat, SYS_statx, SYS_uname, SYS_execve, SYS_execveat,
                   0x5342 /* sb-stub's */}) {
      CAPTURE(nr);
      CHECK(action(eval(nr)) == SECCOMP_RET_TRACE);
    }
    // fd calls stop on fds the fast path does not cover (the control fd's block).
    for (int nr : {SYS_read, SYS_write, SYS_close, SYS_getdents64, SYS_ioctl, SYS_fcntl}) {
      CAPTURE(nr);
      CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, 1023)) == SECCOMP_RET_TRACE);
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
          // Fast calls on a local fd (3 is below the limit, and unguarded) run untrapped.
          CHECK(a == (row.localFast ? SECCOMP_RET_ALLOW : SECCOMP_RET_TRACE));
      }
    }
  }

  TEST_CASE("mmap of anonymous memory never stops, mmap of an fd is a fast call") {
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 0xffffffffffffffffull)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 0x00000000ffffffffull)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 3)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 1017)) == SECCOMP_RET_TRACE);
    const int block0[] = {0};
    auto guard = sb::SeccompFilter::blockGuard(block0);
    CHECK(action(evalGuard(guard, SYS_mmap, 3)) == SECCOMP_RET_TRACE);
    CHECK(action(evalGuard(guard, SYS_mmap, 0xffffffffull)) == SECCOMP_RET_ALLOW);
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

  TEST_CASE("fast calls run untrapped below the limit, and stop at or above it") {
    for (int nr : {SYS_read, SYS_write, SYS_writev, SYS_readv, SYS_close, SYS_fstat, SYS_ioctl,
                   SYS_fcntl, SYS_lseek, SYS_pread64, SYS_getdents64, SYS_fsync}) {
      CAPTURE(nr);
      for (uint64_t fd : {0, 1, 2, 3, 100, 1015}) {
        CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, fd)) == SECCOMP_RET_ALLOW);
      }
      // The control fd's block and above; negative fds (EBADF) and garbage in the upper half.
      for (uint64_t fd : {1016ull, 1023ull, 5000ull, 0xffffffffull}) {
        CHECK(action(eval(nr, AUDIT_ARCH_X86_64, 3, fd)) == SECCOMP_RET_TRACE);
      }
    }
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 5)) == SECCOMP_RET_ALLOW);
    CHECK(action(eval(SYS_mmap, AUDIT_ARCH_X86_64, 1020)) == SECCOMP_RET_TRACE);
    // Calls that can make an fd remote, or take a path, must always be seen.
    CHECK(action(eval(SYS_dup2, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_dup3, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_openat, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_close_range, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
    CHECK(action(eval(SYS_fchdir, AUDIT_ARCH_X86_64, 3, 1)) == SECCOMP_RET_TRACE);
  }

  TEST_CASE("a block guard traps exactly the fast calls on its blocks' fds") {
    const int blocks[] = {0, 2};
    auto guard = sb::SeccompFilter::blockGuard(blocks);
    for (auto& row : sb::syscallTable()) {
      CAPTURE(row.name);
      for (uint64_t fd : {0, 1, 7, 16, 23}) {
        CHECK(action(evalGuard(guard, row.nr, fd)) ==
              (row.localFast ? SECCOMP_RET_TRACE : SECCOMP_RET_ALLOW));
      }
      for (uint64_t fd : {8ull, 15ull, 24ull, 0xffffffffull}) {
        CHECK(action(evalGuard(guard, row.nr, fd)) == SECCOMP_RET_ALLOW);
      }
    }
    CHECK(action(evalGuard(guard, SYS_write, 1, AUDIT_ARCH_I386)) == SECCOMP_RET_KILL_PROCESS);
  }

  TEST_CASE("the last guard traps every fast call on every fd") {
    auto guard = sb::SeccompFilter::blockGuard(nullptr);
    for (auto& row : sb::syscallTable()) {
      CAPTURE(row.name);
      for (uint64_t fd : {0, 9, 500, 1023}) {
        CHECK(action(evalGuard(guard, row.nr, fd)) ==
              (row.localFast ? SECCOMP_RET_TRACE : SECCOMP_RET_ALLOW));
      }
    }
  }
}
