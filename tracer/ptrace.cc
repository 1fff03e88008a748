#include "ptrace.h"

#include <errno.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/user.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include <kj/debug.h>

namespace sb::ptrace {

const int LAUNCH_OPTIONS = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACESECCOMP |
                           PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                           PTRACE_O_TRACEEXEC;
const int ATTACH_OPTIONS = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                           PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC;

namespace {

// The contract: true on success, false when the tracee is gone, throws otherwise.
bool ok(long rc, const char* request, pid_t tid) {
  if (rc >= 0) {
    return true;
  }
  if (errno == ESRCH) {
    return false;
  }
  KJ_FAIL_REQUIRE(kj::str("ptrace(", request, ") of thread ", tid, " failed: ", strerror(errno)));
}

bool stoppingSignal(int sig) {
  return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

}  // namespace

WaitStatus::WaitStatus(int raw) {
  if (WIFEXITED(raw)) {
    kind_ = Kind::EXITED;
    exitCode_ = WEXITSTATUS(raw);
    return;
  }
  if (WIFSIGNALED(raw)) {
    kind_ = Kind::KILLED;
    signal_ = WTERMSIG(raw);
    return;
  }
  int sig = WSTOPSIG(raw);
  int event = raw >> 16;
  signal_ = sig;
  if (sig == (SIGTRAP | 0x80)) {
    kind_ = Kind::SYSCALL;
  } else if (event == PTRACE_EVENT_STOP) {
    kind_ = stoppingSignal(sig) ? Kind::GROUP_STOP : Kind::INTERRUPT;
  } else if (sig == SIGTRAP && event != 0) {
    switch (event) {
      case PTRACE_EVENT_SECCOMP: kind_ = Kind::SECCOMP; break;
      case PTRACE_EVENT_VFORK: vfork_ = true; kind_ = Kind::NEW_CHILD; break;
      case PTRACE_EVENT_FORK:
      case PTRACE_EVENT_CLONE: kind_ = Kind::NEW_CHILD; break;
      case PTRACE_EVENT_EXEC: kind_ = Kind::EXEC; break;
      default: kind_ = Kind::OTHER_EVENT; break;
    }
  } else {
    kind_ = Kind::SIGNAL;
  }
}

int WaitStatus::shellCode() const {
  return kind_ == Kind::EXITED ? exitCode_ : 128 + signal_;
}

bool resume(pid_t tid, Resume how, int sig) {
  switch (how) {
    case Resume::CONT: return ok(::ptrace(PTRACE_CONT, tid, nullptr, sig), "CONT", tid);
    case Resume::SYSCALL: return ok(::ptrace(PTRACE_SYSCALL, tid, nullptr, sig), "SYSCALL", tid);
    case Resume::LISTEN: return ok(::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr), "LISTEN", tid);
    case Resume::DETACH: return ok(::ptrace(PTRACE_DETACH, tid, nullptr, sig), "DETACH", tid);
    case Resume::STEP: return ok(::ptrace(PTRACE_SINGLESTEP, tid, nullptr, sig), "SINGLESTEP", tid);
  }
  KJ_UNREACHABLE;
}

bool getRegs(pid_t tid, Regs& regs) {
  return ::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0;
}

void setRegs(pid_t tid, const Regs& regs) {
  ok(::ptrace(PTRACE_SETREGS, tid, nullptr, &regs), "SETREGS", tid);
}

bool getFpRegs(pid_t tid, user_fpregs_struct& regs) {
  return ::ptrace(PTRACE_GETFPREGS, tid, nullptr, &regs) == 0;
}

void setFpRegs(pid_t tid, const user_fpregs_struct& regs) {
  ok(::ptrace(PTRACE_SETFPREGS, tid, nullptr, &regs), "SETFPREGS", tid);
}

bool getDebugReg(pid_t tid, int n, uint64_t& value) {
  errno = 0;
  long v = ::ptrace(PTRACE_PEEKUSER, tid, offsetof(struct user, u_debugreg) + n * sizeof(long),
                    nullptr);
  if (errno != 0) {
    return false;
  }
  value = static_cast<uint64_t>(v);
  return true;
}

bool setDebugReg(pid_t tid, int n, uint64_t value) {
  return ::ptrace(PTRACE_POKEUSER, tid, offsetof(struct user, u_debugreg) + n * sizeof(long),
                  value) == 0;
}

namespace {

// /proc/TID/mem, opened per access: debugger accesses are rare, and a cached fd would outlive an
// exec (whose new mm it does not see).
int64_t memAccess(pid_t tid, uint64_t addr, kj::byte* buf, size_t size, bool write) {
  auto path = kj::str("/proc/", tid, "/mem");
  int fd = open(path.cStr(), (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    return -int64_t(errno);
  }
  KJ_DEFER(close(fd));
  size_t done = 0;
  while (done < size) {
    ssize_t n = write ? pwrite(fd, buf + done, size - done, static_cast<off_t>(addr + done))
                      : pread(fd, buf + done, size - done, static_cast<off_t>(addr + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return done > 0 ? int64_t(done) : n == 0 ? -EIO : -int64_t(errno);
    }
    done += static_cast<size_t>(n);
  }
  return int64_t(done);
}

}  // namespace

int64_t readMemory(pid_t tid, uint64_t addr, kj::ArrayPtr<kj::byte> out) {
  return memAccess(tid, addr, out.begin(), out.size(), false);
}

int64_t writeMemory(pid_t tid, uint64_t addr, kj::ArrayPtr<const kj::byte> data) {
  return memAccess(tid, addr, const_cast<kj::byte*>(data.begin()), data.size(), true);
}

int seize(pid_t tid, int options) {
  return ::ptrace(PTRACE_SEIZE, tid, nullptr, options) == 0 ? 0 : errno;
}

bool interrupt(pid_t tid) {
  return ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0;
}

kj::Maybe<unsigned long> eventMessage(pid_t tid) {
  unsigned long msg = 0;
  if (::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg) != 0) {
    return nullptr;
  }
  return msg;
}

bool signalInfo(pid_t tid, siginfo_t& info) {
  return ::ptrace(PTRACE_GETSIGINFO, tid, nullptr, &info) == 0;
}

bool setSignalInfo(pid_t tid, const siginfo_t& info) {
  return ::ptrace(PTRACE_SETSIGINFO, tid, nullptr, &info) == 0;
}

bool atSyscallEntry(pid_t tid) {
  struct __ptrace_syscall_info info;
  long n = ::ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof(info), &info);
  return n > 0 && info.op == PTRACE_SYSCALL_INFO_ENTRY;
}

}  // namespace sb::ptrace
