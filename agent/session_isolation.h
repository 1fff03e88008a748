// How the agent keeps one session's programs together and apart from the rest of B (issue 17):
// the policy decided once at start, and the per-session SessionJail that spawn puts programs in.
//
//   cgroup         when the agent can make one (session_cgroup.h): pids.max from --max-procs
//                  over every process and thread of the session, memory.max, cgroup.kill.
//   pid namespace  for a root agent, under --root always, and otherwise whenever no cgroup.kill
//                  ends a session (session_pidns.h): programs see and signal only their own
//                  session, and killing the namespace's init ends every straggler.
//   privileges     for a root agent under --root, unless --spawn-privileged (child_privileges.h).
//
// An agent without root (no CAP_SYS_ADMIN) gets none of the namespace part: its programs run as
// its own uid, which is their confinement, and a session's end kills their process groups.

#pragma once

#include <kj/memory.h>

#include "child_privileges.h"
#include "log.h"
#include "session_cgroup.h"
#include "session_pidns.h"

namespace sb {

class Reaper;
struct Limits;

struct IsolationOptions {
  bool confined = false;           // --root
  bool allowDevices = false;       // --allow-devices
  bool spawnPrivileged = false;    // --spawn-privileged
  uint64_t maxMemory = 0;          // --max-memory, bytes (0: none)
};

class SessionJail;

class SessionIsolation final {
public:
  // Probes what this agent can do and logs once what sessions will get. Call before Landlock
  // and before any thread starts.
  SessionIsolation(const IsolationOptions& options, const Log& log);
  KJ_DISALLOW_COPY(SessionIsolation);

  // The directory Landlock must let the agent write (session cgroups), or "".
  kj::StringPtr cgroupPath() const { return cgroups->path(); }
  void useTimer(kj::Timer& timer) { cgroups->useTimer(timer); }

  const ChildPrivileges& childPrivileges() const { return privileges; }

  // A jail for a new session whose programs may number `maxProcs`. Never fails: what cannot be
  // made is logged and the session runs with what could.
  kj::Own<SessionJail> newJail(Reaper& reaper, size_t maxProcs);

private:
  IsolationOptions options;
  const Log& log;
  kj::Own<CgroupParent> cgroups;
  bool pidNamespaces = false;
  ChildPrivileges privileges;
};

class SessionJail final {
public:
  SessionJail(kj::Maybe<kj::Own<SessionCgroup>> cgroup,
              kj::Maybe<kj::Own<SessionPidNamespace>> pidns);
  // The end of the session: the namespace's init is killed (with every process inside), then
  // the cgroup is killed and removed.
  ~SessionJail() noexcept(false);
  KJ_DISALLOW_COPY(SessionJail);

  // cgroup.procs to join, or -1.
  int cgroupProcsFd() const;
  // The pid namespace to fork into (an init's pidfd), -1 for none, or -2 when the namespace is
  // gone (its init died): then no program may start.
  int pidNamespaceFd() const;

private:
  // Order matters: members go in reverse, the namespace first.
  kj::Maybe<kj::Own<SessionCgroup>> cgroup;
  kj::Maybe<kj::Own<SessionPidNamespace>> pidns;
};

}  // namespace sb
