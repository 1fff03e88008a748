#include "session_pidns.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <kj/debug.h>

#include "process.h"

namespace sb {

namespace {

int ownNamespace = -1;  // the agent's pid namespace (PidNamespaceEntry::openOwn)

void wake(int) {}  // SIGCHLD only has to end sigsuspend

// The session's init: from here on only raw syscalls (the agent may have had other threads,
// holding locks, when it forked).
[[noreturn]] void runInit(int cgroupProcs, int agentPidfd) {
  if (cgroupProcs >= 0 && ::write(cgroupProcs, "0", 1) != 1) {
    _exit(1);
  }
  // Dies with the agent's event-loop thread; and if the agent is already gone, at once.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) _exit(1);
  struct pollfd p = {agentPidfd, POLLIN, 0};
  if (poll(&p, 1, 0) != 0) _exit(1);
  // Nothing of the agent's stays open here: not its sockets, not its sessions' files.
  syscall(SYS_close_range, 0U, ~0U, 0U);
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    sigaction(sig, &sa, nullptr);
  }
  sa.sa_handler = wake;
  sigaction(SIGCHLD, &sa, nullptr);
  sigset_t chld, none;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &chld, nullptr);
  for (;;) {
    // Reap every orphan that has exited, then sleep until the next SIGCHLD (blocked between the
    // two, so none is missed).
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    sigsuspend(&none);
  }
}

}  // namespace

kj::Maybe<kj::Own<SessionPidNamespace>> SessionPidNamespace::start(Reaper& reaper,
                                                                   int cgroupProcsFd) {
  int agentPidfd = int(syscall(SYS_pidfd_open, getpid(), 0));
  if (agentPidfd < 0) {
    return nullptr;
  }
  kj::AutoCloseFd agentPidfdOwner(agentPidfd);
  // A plain fork into a new pid namespace (glibc's fork() takes no flags). Every signal stays
  // blocked until the child has reset the handlers, so none of the agent's runs in it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    runInit(cgroupProcsFd, agentPidfd);
  }
  int error = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = error;
    return nullptr;
  }
  int pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  if (pidfd < 0) {
    error = errno;
    ::kill(pid_t(pid), SIGKILL);
    while (waitpid(pid_t(pid), nullptr, 0) < 0 && errno == EINTR) {
    }
    errno = error;
    return nullptr;
  }
  auto ref = kj::atomicRefcounted<FdRef>(pidfd);
  auto child = kj::refcounted<Child>(pid_t(pid), kj::atomicAddRef(*ref));
  reaper.watch(kj::addRef(*child));
  return kj::heap<SessionPidNamespace>(kj::mv(child), kj::mv(ref));
}

SessionPidNamespace::SessionPidNamespace(kj::Own<Child> init, kj::Own<FdRef> pidfd)
    : init(kj::mv(init)), pidfd(kj::mv(pidfd)) {}

SessionPidNamespace::~SessionPidNamespace() noexcept(false) {
  // SIGKILL to the init: the kernel then kills every other process of the namespace, and the
  // Reaper reaps the init (and the agent's own children among them).
  init->sendSignal(SIGKILL);
}

int SessionPidNamespace::nsFd() const {
  // Once the init is reaped its pid may be anyone's: no new member can be made.
  return init->exitInfo() == nullptr ? pidfd->get() : -1;
}

pid_t SessionPidNamespace::initPid() const { return init->pid(); }

void PidNamespaceEntry::openOwn() {
  if (ownNamespace < 0) {
    ownNamespace = ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  }
}

PidNamespaceEntry::PidNamespaceEntry(int nsFd) {
  if (nsFd < 0) {
    error_ = ESRCH;
  } else if (ownNamespace < 0) {
    error_ = ENOSYS;  // openOwn() was not called, or /proc was not there
  } else if (setns(nsFd, CLONE_NEWPID) < 0) {
    error_ = errno;
  } else {
    entered = true;
  }
}

PidNamespaceEntry::~PidNamespaceEntry() {
  if (entered && setns(ownNamespace, CLONE_NEWPID) < 0) {
    // The next fork would land in a session's namespace: that must never happen silently.
    KJ_LOG(FATAL, "cannot return to the agent's own pid namespace", strerror(errno));
    abort();
  }
}

}  // namespace sb
