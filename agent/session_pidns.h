// A pid namespace per session (issue 17), for a root agent. Its init is a small process the
// agent forks into a new pid namespace; the session's programs are then forked by the agent as
// usual (they stay the agent's children, so waitid and their exit status work as before) but
// into that namespace (setns(init's pidfd, CLONE_NEWPID) around the fork).
//
// Why: a program inside sees only its own session's processes. kill(2), pidfd_open and /proc
// lookups by pid reach nothing of B's or of another session's (ESRCH). And when the session
// ends, killing the init makes the kernel kill every process left in the namespace, however it
// detached (setsid, daemon(3)): the fallback for cgroup.kill, and a second net with it.
//
// The init adopts orphans and reaps them (that is an init's job, or they would stay zombies),
// and ignores every signal from inside its namespace, as any init does.

#pragma once

#include <sys/types.h>

#include <kj/async.h>
#include <kj/refcount.h>

#include "node.h"

namespace sb {

class Child;
class Reaper;

class SessionPidNamespace final {
public:
  // Starts the init (joining the cgroup behind `cgroupProcsFd` first, when >= 0). Returns null
  // with errno set when the kernel refuses (no CAP_SYS_ADMIN, nesting too deep).
  static kj::Maybe<kj::Own<SessionPidNamespace>> start(Reaper& reaper, int cgroupProcsFd);
  SessionPidNamespace(kj::Own<Child> init, kj::Own<FdRef> pidfd);
  // Kills the init, and with it the namespace.
  ~SessionPidNamespace() noexcept(false);
  KJ_DISALLOW_COPY(SessionPidNamespace);

  // The init's pidfd: setns(fd, CLONE_NEWPID) makes the calling thread's next children members.
  int nsFd() const;
  pid_t initPid() const;

private:
  kj::Own<Child> init;
  kj::Own<FdRef> pidfd;  // the init's, for setns; valid while the init is not reaped
};

// This thread's children go into the namespace of `nsFd` while the guard lives, and back into
// the agent's own after. Use on the event-loop thread around the fork only.
class PidNamespaceEntry final {
public:
  // Errors (errno) come back through ok().
  explicit PidNamespaceEntry(int nsFd);
  ~PidNamespaceEntry();
  KJ_DISALLOW_COPY(PidNamespaceEntry);
  int error() const { return error_; }

  // The agent's own pid namespace, opened once before Landlock hides /proc (main calls it).
  static void openOwn();

private:
  bool entered = false;
  int error_ = 0;
};

}  // namespace sb
