// Process, part 1: Child, Reaper, SessionProcesses and ProcessImpl. The spawn itself (fork and
// exec) is in spawn.cc.

#include "process.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <kj/debug.h>

#include "host_wire.h"
#include "session_isolation.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace sb {

// ---------------------------------------------------------------------------------------------
// Child

Child::Child(pid_t pid, kj::Own<FdRef> pidfd)
    : Child(pid, kj::mv(pidfd), kj::newPromiseAndFulfiller<void>()) {}

Child::Child(pid_t pid, kj::Own<FdRef> pidfd, kj::PromiseFulfillerPair<void> paf)
    : pid_(pid), pidfd_(kj::mv(pidfd)), reapedFulfiller(kj::mv(paf.fulfiller)),
      reaped(paf.promise.fork()) {}

kj::Maybe<FdRef&> Child::pidfd() {
  KJ_IF_MAYBE(fd, pidfd_) {
    return **fd;
  }
  return nullptr;
}

bool Child::tryReap() {
  if (exit != nullptr) {
    return true;
  }
  int fd = KJ_ASSERT_NONNULL(pidfd_)->get();
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  ExitInfo e;
  if (waitid(idtype_t(P_PIDFD), id_t(fd), &info, WEXITED | WNOHANG) < 0) {
    if (errno == EINTR) {
      return false;
    }
    // ECHILD: someone else reaped it, which nothing in the agent does (the Reaper resets SIGCHLD
    // so the kernel does not either). Its status is lost; waiters must not hang for it.
    KJ_LOG(ERROR, "cannot reap a spawned process", pid_, strerror(errno));
    e.value = 255;
  } else if (info.si_pid == 0) {
    return false;  // still running
  } else if (info.si_code == CLD_EXITED) {
    e.value = info.si_status & 0xff;
  } else {
    e.signaled = true;
    e.value = info.si_status;
    e.coreDumped = info.si_code == CLD_DUMPED;
  }
  exit = e;
  // The pidfd has served: pipe nodes that watch for this exit hold their own reference.
  pidfd_ = nullptr;
  reapedFulfiller->fulfill();
  return true;
}

int64_t Child::sendSignal(int sig) {
  KJ_IF_MAYBE(fd, pidfd_) {
    return sysResult(syscall(SYS_pidfd_send_signal, (*fd)->get(), sig, nullptr, 0));
  }
  return 0;
}

void Child::killWithGroup() {
  if (exit != nullptr) {
    return;
  }
  // Not reaped, so its pid (and with it the group id) cannot belong to anyone else yet. ESRCH
  // when it has not reached setpgid: the pidfd still reaches the process itself.
  ::kill(-pid_, SIGKILL);
  sendSignal(SIGKILL);
}

// ---------------------------------------------------------------------------------------------
// Reaper

Reaper::Reaper(Executor& executor): executor(executor) {
  // A SIGCHLD ignored by whoever started the agent would have the kernel reap the children
  // itself, and their exit statuses would be lost.
  signal(SIGCHLD, SIG_DFL);
}

Reaper::~Reaper() noexcept(false) {
  polling = nullptr;
  for (auto& child: children) {
    child->tryReap();
  }
}

void Reaper::watch(kj::Own<Child> child) {
  children.add(kj::mv(child));
  restart();
}

void Reaper::restart() {
  // Dropping the running poll cancels it (its worker is interrupted); the new one covers the
  // new set. Spawns are rare next to I/O, so the cost of a restart does not matter.
  polling = nullptr;
  if (children.empty()) {
    return;
  }
  polling = pollOnce().eagerlyEvaluate([](kj::Exception&& e) {
    // Watching stops until the next spawn restarts it; children stay zombies meanwhile.
    KJ_LOG(ERROR, "watching spawned processes failed", e);
  });
}

kj::Promise<void> Reaper::pollOnce() {
  auto fds = kj::heapArrayBuilder<kj::Own<FdRef>>(children.size());
  for (auto& child: children) {
    fds.add(kj::atomicAddRef(KJ_ASSERT_NONNULL(child->pidfd())));
  }
  return executor
      .run([fds = fds.finish()]() {
        // A pidfd becomes readable when its process exits (and stays so).
        std::vector<struct pollfd> set(fds.size());
        for (size_t i = 0; i < fds.size(); ++i) {
          set[i] = {fds[i]->get(), POLLIN, 0};
        }
        WorkResult w;
        w.result = sysResult(::poll(set.data(), set.size(), -1));
        return w;
      })
      .then([this](WorkResult&& w) -> kj::Promise<void> {
        KJ_REQUIRE(w.result >= 0 || w.result == -EINTR, "poll on pidfds failed", w.result);
        reapExited();
        if (children.empty()) {
          return kj::READY_NOW;
        }
        return pollOnce();
      });
}

void Reaper::reapExited() {
  kj::Vector<kj::Own<Child>> running;
  for (auto& child: children) {
    if (!child->tryReap()) {
      running.add(kj::mv(child));
    }
  }
  children = kj::mv(running);
}

// ---------------------------------------------------------------------------------------------
// SessionProcesses

SessionProcesses::~SessionProcesses() noexcept(false) {
  for (auto& child: children) {
    child->killWithGroup();
  }
}

SessionJail* SessionProcesses::jailFor(AgentContext& agent) {
  KJ_IF_MAYBE(j, jail) {
    return j->get();
  }
  KJ_IF_MAYBE(isolation, agent.isolation) {
    auto made = isolation->newJail(agent.reaper, agent.limits.maxProcs);
    SessionJail* result = made.get();
    jail = kj::mv(made);
    return result;
  }
  return nullptr;
}

void SessionProcesses::add(kj::Own<Child> child) {
  // Forget the reaped ones, so a long session does not accumulate them.
  kj::Vector<kj::Own<Child>> live;
  for (auto& c: children) {
    if (c->exitInfo() == nullptr) {
      live.add(kj::mv(c));
    }
  }
  live.add(kj::mv(child));
  children = kj::mv(live);
}

size_t SessionProcesses::running() const {
  size_t n = 0;
  for (auto& c: children) {
    n += c->exitInfo() == nullptr ? 1 : 0;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// ProcessImpl

namespace {

void fillStatus(const ExitInfo& e, proto::ExitStatus::Builder out) {
  if (e.signaled) {
    out.setSignaled(e.value);
  } else {
    out.setExited(uint8_t(e.value));
  }
  out.setCoreDumped(e.coreDumped);
}

}  // namespace

ProcessImpl::ProcessImpl(kj::Own<Child> child, kj::AutoCloseFd stdinReader)
    : child(kj::mv(child)), stdinReader(kj::mv(stdinReader)) {}

kj::Promise<void> ProcessImpl::wait(WaitContext context) {
  KJ_IF_MAYBE(e, child->exitInfo()) {
    auto results = context.getResults();
    results.setResult(0);
    fillStatus(*e, results.initStatus());
    return kj::READY_NOW;
  }
  // The Reaper does the waiting; a cancelled wait only drops its subscription.
  context.allowCancellation();
  return child->whenReaped().then([context, child = kj::addRef(*child)]() mutable {
    auto results = context.getResults();
    results.setResult(0);
    fillStatus(KJ_ASSERT_NONNULL(child->exitInfo()), results.initStatus());
  });
}

kj::Promise<void> ProcessImpl::kill(KillContext context) {
  int sig = context.getParams().getSignal();
  // The kernel's answer for a signal number out of range; 0 probes, as kill(2)'s does.
  int64_t r = sig < 0 || sig >= NSIG ? -EINVAL : child->sendSignal(sig);
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> ProcessImpl::pid(PidContext context) {
  context.getResults().setPid(child->pid());
  return kj::READY_NOW;
}

kj::Promise<void> ProcessImpl::stdinUnread(StdinUnreadContext context) {
  int64_t r = -ENOENT;
  if (stdinReader != nullptr) {
    int unread = 0;
    r = ioctl(stdinReader.get(), FIONREAD, &unread) < 0 ? -int64_t(errno) : unread;
    stdinReader = kj::AutoCloseFd();  // Asked once: writers may see EPIPE again.
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

}  // namespace sb
