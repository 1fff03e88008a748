// The syscall table: every x86-64 system call with the class that decides its fate.
//
// One row per syscall number. The seccomp filter is generated from the `cls` column, the tracer
// dispatches on it, and a unit test asserts that every syscall libseccomp knows has a row, so a
// new kernel syscall can never silently run locally. The argument columns say where the fd and
// path arguments sit, so unhandled syscalls can still tell whether they touch something remote.
//
// This file holds x86-64 numbers only; another tracee ABI gets a table of its own.

#pragma once

#include <kj/common.h>
#include <kj/string.h>
#include <stdint.h>

namespace sb {

enum class SyscallClass : uint8_t {
  // Never leaves the machine (memory, time, signals, scheduling, ids): the filter allows it.
  LOCAL,
  // Process lifecycle (fork, clone, exec, exit, wait): runs locally; ptrace events follow it.
  PROCESS,
  // Takes a path: path rules and the thread's scope decide; trapped, handled.
  PATH,
  // Acts on a file descriptor: remote when the fd is; trapped, handled.
  FD,
  // Host identity (uname): answered by the active target; trapped, handled.
  IDENTITY,
  // Kernel IO interfaces the filter cannot see into (io_uring, Linux AIO): the filter answers
  // ENOSYS so programs fall back to plain syscalls, whose IO we do see.
  REFUSED,
  // Runs locally, but the tracer must see its result to keep its model of the process true
  // (unshare(CLONE_FILES) gives the thread its own fd table): trapped, handled.
  TRACKED,
  // Creates an object on the thread's active target in a remote scope (socket, socketpair); runs
  // locally in the local scope: trapped, handled.
  SCOPE,
  // Takes an fd or a path but has no remote implementation yet: trapped; when its argument is
  // remote it fails with `remoteErrno` and a one-time explanation, otherwise it runs locally.
  UNHANDLED,
};

struct SyscallRow {
  int nr;
  const char* name;
  SyscallClass cls;
  // Argument index of the fd the call acts on, or -1.
  int8_t fdArg = -1;
  // Argument index of a path, and of the dirfd it is relative to (-1: AT_FDCWD).
  int8_t pathArg = -1;
  int8_t dirfdArg = -1;
  // What an UNHANDLED call answers when its argument is remote.
  int16_t remoteErrno = 0;
  // The filter traps this call only when `fdArg` is a real fd (>= 0 as a signed int), e.g.
  // mmap of anonymous memory (fd -1) never stops.
  bool trapOnlyRealFd = false;
  // The call runs untrapped while its fd is local: reads, writes, seeks, maps... of local files,
  // pipes and the terminal cost nothing. Every fd number starts untrapped (below the control
  // fd's block of 8); once a process has a remote fd in a block of 8 numbers, sbrun stacks a
  // filter on it that traps these calls on that block again (SeccompFilter::blockGuard). Only
  // calls whose one fd argument says all sbrun needs to know may be fast: never one that can
  // make an fd remote or stop it being so (dup2 onto it, open), nor one with a path.
  bool localFast = false;
};

// Every row, in syscall-number order.
kj::ArrayPtr<const SyscallRow> syscallTable();

// The row for `nr`, or null when the number is not a known x86-64 syscall.
const SyscallRow* findSyscall(int nr);

// The number of the syscall named `name` (libseccomp's spelling), or -1.
int findSyscallByName(kj::StringPtr name);

// The syscall's name, or "syscall_<nr>".
kj::String syscallName(int nr);

// Highest syscall number in the table plus one.
int syscallTableLimit();

}  // namespace sb
