// A cgroup per session (issue 17): every process a session's programs make, however they detach
// (setsid, double fork, daemon(3)), stays in it, so the session's limits count all of them and
// its end reaches all of them.
//
//   cgroup v2   when the agent's own cgroup can get the pids controller for children (a
//               delegated subtree, or a cgroup the agent may write as root): the session's
//               cgroup gets pids.max (--max-procs, plus one for the session's pid-namespace init
//               when there is one), memory.max (--max-memory, when the memory controller is
//               there), and at the session's end cgroup.kill (Linux 5.14) kills every member.
//   cgroup v1   pids hierarchy, when v2 has no pids controller (hybrid hosts, such as this
//               project's CI VM): pids.max as above; the killing is the session's pid
//               namespace's (session_pidns.h), since v1 has no cgroup.kill.
//   neither     the session is held together by its pid namespace alone (a root agent) or by
//               process groups (an unprivileged agent), and --max-procs counts only the
//               programs the agent starts itself. The agent says so once, at start.
//
// Every directory is opened at start, before Landlock (landlock.h) confines the agent: the
// agent then reaches the cgroup file system only through these fds and the Landlock rule that
// allows it.
//
// Processes join by writing "0" to cgroup.procs (SessionCgroup::procsFd) between fork and exec:
// a plain write(2), safe in a vfork child.

#pragma once

#include <sys/types.h>

#include <set>
#include <string>

#include <kj/async.h>
#include <kj/io.h>
#include <kj/string.h>
#include <kj/timer.h>

#include "log.h"

namespace sb {

class SessionCgroup;

class CgroupParent final: private kj::TaskSet::ErrorHandler {
public:
  enum class Kind { NONE, V2, V1_PIDS };

  // Finds where session cgroups can go, says once on `log` what it found (and what that means
  // for --max-procs and --max-memory), and opens it. `maxMemory` 0: no memory limit asked.
  static kj::Own<CgroupParent> probe(uint64_t maxMemory, const Log& log);
  CgroupParent(Kind kind, kj::String path, kj::AutoCloseFd dir, bool memory, const Log& log);
  ~CgroupParent() noexcept(false);
  KJ_DISALLOW_COPY(CgroupParent);

  Kind kind() const { return kind_; }
  // The directory session cgroups are made in ("" for NONE): Landlock must allow it.
  kj::StringPtr path() const { return path_; }
  // Whether cgroup.kill ends a session (v2).
  bool canKill() const { return kind_ == Kind::V2; }

  // A new cgroup for one session with pids.max = `maxTasks` and memory.max = `maxMemory` (0: no
  // limit). Null, with a warning, when it cannot be made (the session then runs without one).
  kj::Maybe<kj::Own<SessionCgroup>> create(uint64_t maxTasks, uint64_t maxMemory);

  // Removing a cgroup waits for its last member to be gone; killed processes take a moment to
  // exit and be reaped. Call once the event loop runs: removals are retried on `timer` until
  // then (for up to 10 s, then left with a warning).
  void useTimer(kj::Timer& timer);
  void retire(kj::String name);

private:
  Kind kind_;
  kj::String path_;
  kj::AutoCloseFd dir;
  bool memory;
  const Log& log;
  uint64_t next = 0;
  kj::Maybe<kj::Timer&> timer;
  std::set<std::string> retiring;  // names whose removal is still being retried
  kj::TaskSet removals;

  // Removes the session cgroups a killed agent left behind (sb-session-PID-N of a PID that is
  // gone): its sessions' processes died with its pid namespaces, the directories stayed.
  void removeStale();
  // 0 once `name` is gone (or was never there), else errno.
  int tryRemove(const std::string& name);

  kj::Promise<void> removeLater(kj::String name, int attemptsLeft);
  void taskFailed(kj::Exception&& exception) override;
};

class SessionCgroup final {
public:
  SessionCgroup(CgroupParent& parent, kj::String name, kj::AutoCloseFd dir,
                kj::AutoCloseFd procs);
  // Kills every member (v2: cgroup.kill) and has the parent remove the directory.
  ~SessionCgroup() noexcept(false);
  KJ_DISALLOW_COPY(SessionCgroup);

  // Write "0" here to join (cgroup.procs, O_WRONLY | O_CLOEXEC).
  int procsFd() const { return procs.get(); }
  kj::StringPtr name() const { return name_; }
  // Members now (cgroup.procs lines), for logs and tests; -1 when unreadable.
  long members() const;

private:
  CgroupParent& parent;
  kj::String name_;
  kj::AutoCloseFd dir;
  kj::AutoCloseFd procs;
};

}  // namespace sb
