// The x86-64 registers of a thread stopped at a syscall, named for what they mean there.
//
// Part of the tracee ABI module (tracee_abi.h): the one place that knows which register holds
// the syscall number, the arguments and the result, how long the `syscall` instruction is, and
// where below the stack a stopped thread's memory is free. Outside this header and the ptrace
// module (tracer/ptrace.h), no code names a register.

#pragma once

#include <initializer_list>
#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

#if !defined(__x86_64__)
#error "tracee_regs: only x86-64 tracees on an x86-64 host are supported for now"
#endif

namespace sb::x86_64 {

using Regs = user_regs_struct;

// The kernel's "restart this syscall" results (include/linux/errno.h, not in the uapi headers):
// set as a syscall's result at its exit stop, the signal code restarts the call or turns it
// into EINTR exactly as for the kernel's own interrupted calls.
constexpr int64_t ERESTARTSYS = 512;
constexpr int64_t ERESTARTNOHAND = 514;

// The syscall at a seccomp or syscall-entry stop (-1 once skipped).
inline int64_t syscallNr(const Regs& r) { return static_cast<int64_t>(r.orig_rax); }
inline void setSyscallNr(Regs& r, int64_t nr) { r.orig_rax = static_cast<uint64_t>(nr); }
// At an entry or seccomp stop: the kernel skips the call (and returns `result`, set too).
inline void skipSyscall(Regs& r) { r.orig_rax = static_cast<uint64_t>(-1); }

inline int64_t result(const Regs& r) { return static_cast<int64_t>(r.rax); }
inline void setResult(Regs& r, int64_t value) { r.rax = static_cast<uint64_t>(value); }

inline uint64_t arg(const Regs& r, int i) {
  switch (i) {
    case 0: return r.rdi;
    case 1: return r.rsi;
    case 2: return r.rdx;
    case 3: return r.r10;
    case 4: return r.r8;
    case 5: return r.r9;
  }
  return 0;
}
inline void setArg(Regs& r, int i, uint64_t value) {
  switch (i) {
    case 0: r.rdi = value; break;
    case 1: r.rsi = value; break;
    case 2: r.rdx = value; break;
    case 3: r.r10 = value; break;
    case 4: r.r8 = value; break;
    case 5: r.r9 = value; break;
  }
}

// `base` turned into syscall `nr` with these arguments (the rest as they were).
inline Regs syscallRegs(const Regs& base, int64_t nr, std::initializer_list<uint64_t> args) {
  Regs r = base;
  setSyscallNr(r, nr);
  int i = 0;
  for (uint64_t a : args) {
    setArg(r, i++, a);
  }
  return r;
}

// Whether two stops are the same syscall from the same instruction with the same arguments (a
// restarted or injected call recognised at its next stop).
inline bool sameSyscall(const Regs& a, const Regs& b) {
  return a.rip == b.rip && a.orig_rax == b.orig_rax && a.rdi == b.rdi && a.rsi == b.rsi &&
         a.rdx == b.rdx && a.r10 == b.r10 && a.r8 == b.r8 && a.r9 == b.r9;
}

// The length of the `syscall` instruction: a stop's instruction pointer is just past it.
constexpr uint64_t SYSCALL_INSN_SIZE = 2;
inline uint64_t pc(const Regs& r) { return r.rip; }
inline void setPc(Regs& r, uint64_t value) { r.rip = value; }
// Whether these bytes at the instruction pointer are a `syscall` instruction (0f 05).
inline bool isSyscallInsn(const unsigned char (&bytes)[SYSCALL_INSN_SIZE]) {
  return bytes[0] == 0x0f && bytes[1] == 0x05;
}
// Makes the thread run its `syscall` instruction again when resumed: restart a call, or inject
// another one (its number in rax, as the instruction reads it there).
inline void backOverSyscall(Regs& r) { r.rip -= SYSCALL_INSN_SIZE; }
inline void reissueSyscall(Regs& r, int64_t nr) {
  backOverSyscall(r);
  r.rax = static_cast<uint64_t>(nr);
}

// `r` (a call's registers) made to run again from the `syscall` instruction the thread stopped
// after in `at`.
inline void reissueFrom(Regs& r, const Regs& at) {
  r.rip = at.rip - SYSCALL_INSN_SIZE;
  r.rax = r.orig_rax;
}
// At a stop: whether it is the call `reissued` (registers made by reissueFrom/reissueSyscall).
inline bool isReissued(const Regs& stop, const Regs& reissued) {
  Regs expect = reissued;
  expect.rip += SYSCALL_INSN_SIZE;
  return sameSyscall(stop, expect);
}

// A 16-byte aligned address `bytes` below the red zone of a thread stopped in a syscall: free
// memory the kernel reads before anything else can run on that stack. As close to the stack
// pointer as the ABI allows (128-byte red zone), because some stacks (goroutines,
// sigaltstacks) are small.
constexpr uint64_t RED_ZONE = 128;
inline uint64_t scratchBelow(const Regs& r, uint64_t bytes) {
  return (r.rsp - RED_ZONE - bytes) & ~uint64_t(15);
}

}  // namespace sb::x86_64

namespace sb {
namespace abi = x86_64;  // The tracee ABI sbrun was built for.
}
