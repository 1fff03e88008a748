// Process: programs the agent runs for a session (Session.spawn, DESIGN D7) and the Process
// capability that stands for each of them.
//
//   spawn()            resolves the request's nodes, forks and execs (spawn.cc). It answers once
//                      the exec has succeeded or failed, so the tracer gets exactly the errno
//                      execve(2) would have given (ENOENT, EACCES, ENOEXEC, E2BIG ...).
//   Child              one spawned process: its pid, its pidfd, and how it ended once reaped.
//   Reaper             agent-wide: watches every child's pidfd from the moment it is spawned and
//                      reaps it as soon as it exits, whoever still holds its Process capability
//                      (nobody, maybe). So the agent never keeps zombies, and a Process.wait is
//                      only a subscription to that one reap.
//   SessionProcesses   what one session spawned: its end (the SessionImpl going away) kills every
//                      process not yet reaped, with its process group, and the Reaper reaps them.
//   ProcessImpl        the proto::Process server: wait, kill, pid.
//
// Reaping happens only on the event loop, with waitid(P_PIDFD, WNOHANG) after the pidfd said the
// process has exited; the blocking part (poll on every pidfd at once) runs as one job on the
// Executor, so any number of live children costs one worker thread, not one each.
//
// Needs Linux >= 5.11 (pidfd_open, waitid(P_PIDFD), close_range(CLOSE_RANGE_CLOEXEC)).

#pragma once

#include <sys/types.h>

#include <kj/async.h>
#include <kj/refcount.h>
#include <kj/vector.h>

#include "executor.h"
#include "node.h"
#include "session_isolation.h"
#include "splitbrain.capnp.h"

namespace sb {

// How a process ended, decoded once from waitid's siginfo.
struct ExitInfo {
  bool signaled = false;  // killed by a signal rather than exited
  int value = 0;          // the exit code, or the signal (Linux numbering)
  bool coreDumped = false;
};

class Child final: public kj::Refcounted {
public:
  Child(pid_t pid, kj::Own<FdRef> pidfd);
  KJ_DISALLOW_COPY(Child);

  pid_t pid() const { return pid_; }
  // Its pidfd until it is reaped; null after.
  kj::Maybe<FdRef&> pidfd();
  // How it ended; null until reaped.
  kj::Maybe<const ExitInfo&> exitInfo() const { return exit; }

  // Reaps it if it has exited (waitid WNOHANG, never blocks). True once it is reaped: the status
  // is kept, the pidfd closed, and whenReaped() resolves.
  bool tryReap();
  kj::Promise<void> whenReaped() { return reaped.addBranch(); }

  // pidfd_send_signal(sig); 0 once reaped, as the schema says.
  int64_t sendSignal(int sig);
  // SIGKILL to its process group and to itself, unless it is already reaped. Only then: a reaped
  // leader's pgid may be recycled for someone else's group.
  void killWithGroup();

private:
  pid_t pid_;
  kj::Maybe<kj::Own<FdRef>> pidfd_;
  kj::Maybe<ExitInfo> exit;
  kj::Own<kj::PromiseFulfiller<void>> reapedFulfiller;
  kj::ForkedPromise<void> reaped;

  Child(pid_t pid, kj::Own<FdRef> pidfd, kj::PromiseFulfillerPair<void> paf);
};

class Reaper final {
public:
  explicit Reaper(Executor& executor);
  // Reaps whatever has already exited; killed children still dying stay zombies of a process
  // that is about to exit anyway.
  ~Reaper() noexcept(false);
  KJ_DISALLOW_COPY(Reaper);

  // Reaps `child` as soon as it exits. Must be called on the event loop thread.
  void watch(kj::Own<Child> child);

  // For tests: children spawned and not yet reaped.
  size_t watchedCount() const { return children.size(); }

private:
  Executor& executor;
  kj::Vector<kj::Own<Child>> children;
  // The job polling every watched pidfd; replaced (which cancels it) when the set changes.
  kj::Promise<void> polling = nullptr;

  void restart();
  kj::Promise<void> pollOnce();
  void reapExited();
};

class SessionProcesses final {
public:
  SessionProcesses() = default;
  // The session's end: every process not yet reaped is killed with its group.
  ~SessionProcesses() noexcept(false);
  KJ_DISALLOW_COPY(SessionProcesses);

  void add(kj::Own<Child> child);
  // Processes not yet reaped (Limits::maxProcs).
  size_t running() const;

  // The session's cgroup and pid namespace (session_isolation.h), made at its first spawn; null
  // when the agent has no isolation.
  SessionJail* jailFor(AgentContext& agent);

private:
  kj::Vector<kj::Own<Child>> children;
  kj::Maybe<kj::Own<SessionJail>> jail;  // destroyed after the children were killed
};

class ProcessImpl final: public proto::Process::Server {
public:
  ProcessImpl(kj::Own<Child> child, kj::AutoCloseFd stdinReader);

  kj::Promise<void> wait(WaitContext context) override;
  kj::Promise<void> kill(KillContext context) override;
  kj::Promise<void> pid(PidContext context) override;
  kj::Promise<void> stdinUnread(StdinUnreadContext context) override;

private:
  kj::Own<Child> child;
  kj::AutoCloseFd stdinReader;  // SpawnRequest.keepStdinReader
};

using SpawnContext =
    capnp::CallContext<proto::Session::SpawnParams, proto::Session::SpawnResults>;

// Session.spawn for the session whose nodes are `session`'s and whose processes are `processes`.
// Never throws for an errno: a bad request, a foreign or closed node (EBADF), a failed fork or
// exec all come back as `result`.
kj::Promise<void> spawn(SessionState& session, SessionProcesses& processes,
                        SpawnContext context);

}  // namespace sb
