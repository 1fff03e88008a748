// The seccomp-bpf filter, generated from the syscall table (DESIGN D2).
//
// LOCAL and PROCESS rows run in the kernel at full speed, REFUSED rows answer ENOSYS, and every
// other syscall — including numbers the table does not know — stops the tracee for the tracer
// (SECCOMP_RET_TRACE). A syscall from another ABI (i386 `int 0x80`, x32) kills the process:
// its numbers mean other calls, so no rule of ours could be right for it.
//
// The program is built in the parent; the child only installs it (no allocation after fork).

#pragma once

#include <kj/array.h>
#include <kj/string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>

namespace sb {

class SeccompFilter {
 public:
  // Fast rows (SyscallRow::localFast) run untrapped on fds below `fastLimit` (a multiple of
  // BLOCK: the control fd's block and above always trap).
  // `alsoTrap`: LOCAL syscalls to trap all the same (getrandom under --record and --replay).
  static SeccompFilter build(int fastLimit = 1024, kj::ArrayPtr<const int> alsoTrap = nullptr);

  // fds come in blocks of this many numbers for the guards below.
  static constexpr int BLOCK = 8;

  kj::ArrayPtr<const sock_filter> program() const { return insns; }
  int fastLimit() const { return fastLimit_; }

  // A filter sbrun stacks on a process once it has a remote fd in one of `blocks` (fd / BLOCK):
  // it traps the fast calls on those blocks' fds again, and allows everything else (TRACE
  // outranks the first filter's ALLOW). No blocks: it traps the fast calls on every fd (the
  // last guard a process gets, so stacks stay short).
  static kj::Array<sock_filter> blockGuard(kj::ArrayPtr<const int> blocks);
  // libseccomp's readable dump, for reviews and tests. Built again from the rules on each call:
  // start-up does not pay for it.
  kj::String pfc() const;

  // Installs the filter on the calling thread with NO_NEW_PRIVS. Async-signal-safe: for the
  // child between fork and exec. Returns 0 or -errno.
  int install() const;

 private:
  kj::Array<sock_filter> insns;
  int fastLimit_ = 0;
  kj::Array<int> alsoTrap_;
};

}  // namespace sb
