// The one owner of ptrace(2) (DESIGN D1): every request sbrun makes goes through here, so its
// error contract is written once.
//
// The contract (PITFALLS #6): a stopped tracee can vanish at any moment (SIGKILL, exit_group
// from another thread). ESRCH from a request means exactly that: the call reports false (or
// nothing) and the caller stops caring, because the exit shows up in waitpid. Any other error
// is a bug of ours and throws with the request's name.
//
// Also here: WaitStatus, what a waitpid status says, decoded once.

#pragma once

#include <kj/common.h>
#include <kj/string.h>
#include <signal.h>
#include <sys/types.h>

#include "tracee_regs.h"

namespace sb::ptrace {

using Regs = x86_64::Regs;

// Options for a launched program (EXITKILL: it never runs on without us, PITFALLS #2) and for
// a borrowed one (--pid: no EXITKILL, no seccomp events, since it has no filter).
extern const int LAUNCH_OPTIONS;
extern const int ATTACH_OPTIONS;

// One waitpid(__WALL) status.
class WaitStatus {
 public:
  enum class Kind {
    EXITED,        // exitCode()
    KILLED,        // by signal()
    SYSCALL,       // a syscall-entry or -exit stop (PTRACE_O_TRACESYSGOOD)
    SECCOMP,       // PTRACE_EVENT_SECCOMP: a trapped syscall
    NEW_CHILD,     // PTRACE_EVENT_FORK, _VFORK or _CLONE (isVfork())
    EXEC,          // PTRACE_EVENT_EXEC
    GROUP_STOP,    // PTRACE_EVENT_STOP with a stopping signal: SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU
    INTERRUPT,     // PTRACE_EVENT_STOP otherwise: PTRACE_INTERRUPT, a LISTEN's end, a new task
    OTHER_EVENT,   // another PTRACE_EVENT_* (EXIT ...)
    SIGNAL,        // signal-delivery-stop of signal()
  };
  explicit WaitStatus(int raw);
  Kind kind() const { return kind_; }
  int signal() const { return signal_; }
  int exitCode() const { return exitCode_; }
  bool isVfork() const { return vfork_; }
  // What a shell makes of it: the exit code, or 128 + the signal.
  int shellCode() const;

 private:
  Kind kind_;
  int signal_ = 0;
  int exitCode_ = 0;
  bool vfork_ = false;
};

// How a stopped thread goes on.
enum class Resume {
  CONT,     // to its next seccomp stop or event
  SYSCALL,  // to its next syscall-entry or -exit stop too
  LISTEN,   // stays in its group-stop, reporting its end
  DETACH,   // sbrun lets go of it
  STEP,     // one instruction, then a SIGTRAP stop (a debugger's single-step, gdb_server.h)
};
// False when the thread is gone (ESRCH).
bool resume(pid_t tid, Resume how, int sig = 0);

bool getRegs(pid_t tid, Regs& regs);
// Throws unless the thread is gone (then the write does not matter).
void setRegs(pid_t tid, const Regs& regs);

// The x87/SSE registers (FXSAVE layout), for a debugger (gdb_server.h).
bool getFpRegs(pid_t tid, user_fpregs_struct& regs);
void setFpRegs(pid_t tid, const user_fpregs_struct& regs);
// Debug register n (0-7) of the thread's `struct user` (PTRACE_PEEKUSER / POKEUSER at
// offsetof(struct user, u_debugreg)): hardware watchpoints. false when the thread is gone or the
// kernel refuses the value (an address it will not watch).
bool getDebugReg(pid_t tid, int n, uint64_t& value);
bool setDebugReg(pid_t tid, int n, uint64_t value);
// Memory of a stopped thread through /proc/TID/mem, which may write read-only mappings (the
// debugger's int3 in the program's text) as PTRACE_POKEDATA may: the bytes moved, or -errno.
int64_t readMemory(pid_t tid, uint64_t addr, kj::ArrayPtr<kj::byte> out);
int64_t writeMemory(pid_t tid, uint64_t addr, kj::ArrayPtr<const kj::byte> data);

// PTRACE_SEIZE: 0 or the errno.
int seize(pid_t tid, int options);
// Asks a running thread to stop (PTRACE_INTERRUPT); false when it is gone.
bool interrupt(pid_t tid);
// PTRACE_GETEVENTMSG (the new child of a clone event, the former tid of an exec).
kj::Maybe<unsigned long> eventMessage(pid_t tid);
bool signalInfo(pid_t tid, siginfo_t& info);
// At a signal-delivery-stop: the siginfo the signal is delivered with (PTRACE_SETSIGINFO).
bool setSignalInfo(pid_t tid, const siginfo_t& info);
// At a SYSCALL stop: whether it is the entry (else the exit).
bool atSyscallEntry(pid_t tid);

}  // namespace sb::ptrace
