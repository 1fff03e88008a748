// The x86-64 registers as gdb numbers them, and the target description (target.xml) that says
// so: the one place that knows gdb's register layout, next to tracee_regs.h (the syscall view of
// the same registers). Pure: it converts between the kernel's register sets (PTRACE_GETREGS and
// PTRACE_GETFPREGS) and gdb's little-endian register bytes; tracer/gdb_server.cc moves them.
//
// The description has the features gdb's amd64 GNU/Linux target requires or uses:
// org.gnu.gdb.i386.core (general, segment and x87 registers), .sse (xmm0-15, mxcsr), .linux
// (orig_rax, which gdb needs to restart syscalls after `call`), .segments (fs_base, gs_base, for
// thread-local storage). No AVX (ymm) halves: gdb then shows xmm only.

#pragma once

#include <kj/array.h>
#include <kj/string.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

#if !defined(__x86_64__)
#error "gdb_regs: only x86-64 tracees on an x86-64 host are supported for now"
#endif

namespace sb::x86_64 {

// What one thread's registers are made of, as ptrace reads them.
struct GdbRegs {
  user_regs_struct gp;
  user_fpregs_struct fp;
};

// target.xml, served through qXfer:features:read.
kj::StringPtr gdbTargetXml();
// How many registers the description has (numbered 0 .. count-1, in `g` packet order).
size_t gdbRegisterCount();
// Register n's size in bytes (0 when there is no register n).
size_t gdbRegisterSize(size_t n);
// Register n's value, little-endian, as `p` and `g` carry it; empty for an unknown n.
kj::Array<kj::byte> gdbReadRegister(const GdbRegs& regs, size_t n);
// Sets register n from `value` (exactly its size); false for an unknown n or a wrong size.
bool gdbWriteRegister(GdbRegs& regs, size_t n, kj::ArrayPtr<const kj::byte> value);
// The number of the instruction pointer (rip) and of the stack and frame pointers, which stop
// replies carry so that gdb need not ask for them.
constexpr size_t GDB_RBP = 6;
constexpr size_t GDB_RSP = 7;
constexpr size_t GDB_RIP = 16;

// Debug registers (DR7) for a watchpoint or hardware breakpoint in slot 0-3.
enum class DebugKind { EXECUTE, WRITE, READ_WRITE };
// DR7 with slot `slot` enabled (locally) for `kind` over `len` bytes (1, 2, 4 or 8); `len`
// must be 1 for EXECUTE.
uint64_t dr7With(uint64_t dr7, int slot, DebugKind kind, int len);
uint64_t dr7Without(uint64_t dr7, int slot);
// DR6: which slots triggered (bits 0-3).
inline int dr6Hits(uint64_t dr6) { return static_cast<int>(dr6 & 0xf); }
// The kernel's `int3` breakpoint instruction, and where a thread stopped by it points (just
// past it).
constexpr kj::byte INT3 = 0xcc;
constexpr uint64_t INT3_SIZE = 1;

}  // namespace sb::x86_64
