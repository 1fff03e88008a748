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
  static SeccompFilter build();

  kj::ArrayPtr<const sock_filter> program() const { return insns; }
  // The second filter sbrun stacks on a process when one of its fds 0-2 becomes remote: it
  // traps the calls the first one lets through on those fds (SyscallRow::stdioFast).
  kj::ArrayPtr<const sock_filter> stdioGuard() const { return guardInsns; }
  // libseccomp's readable dump, for reviews and -v.
  kj::String pfc() const { return kj::str(pfcText); }

  // Installs the filter on the calling thread with NO_NEW_PRIVS. Async-signal-safe: for the
  // child between fork and exec. Returns 0 or -errno.
  int install() const;

 private:
  kj::Array<sock_filter> insns;
  kj::Array<sock_filter> guardInsns;
  kj::String pfcText;
};

// Runs a classic BPF seccomp program over `data` in user space and returns its SECCOMP_RET_*
// value. Only for tests; supports the instructions libseccomp emits.
uint32_t evaluateFilter(kj::ArrayPtr<const sock_filter> program, const seccomp_data& data);

}  // namespace sb
