// Credentials: performing a call on the agent with a traced thread's identity (issue 16).
//
// A program that drops from root to `nobody` must meet B's permission checks as `nobody`: the
// tracer sends the thread's credentials (Session.defineCredentials, once per set) and marks the
// calls that need them (Node.asCaller). The agent thread that performs such a call — the event
// loop for inline calls, a worker for blocking ones — takes on the set for the call only, with
// raw syscalls that change the calling thread alone (Linux credentials are per thread; glibc's
// setfsuid/setgroups wrappers would change every thread of the agent, and every session with
// them):
//   - setgroups, setfsgid, setfsuid: B's kernel checks permissions and owns new files by the
//     file system ids, not by the effective ones;
//   - capset: the effective set becomes the thread's (never more than the agent's permitted set);
// and puts its own back afterwards. A thread's real ids matter only to access(2)
// (forAccess()) and to programs spawned on B (process.h), which get the whole set.
//
// Only an agent with CAP_SETUID and CAP_SETGID can do this (canAssumeCredentials); a client can
// only lower its rights this way: it already has the agent's.

#pragma once

#include <sys/types.h>

#include <cstdint>

#include <kj/array.h>
#include <kj/refcount.h>

#include "splitbrain.capnp.h"

namespace sb {

struct CallerCredentials final: public kj::AtomicRefcounted {
  uint32_t uid = 0, euid = 0, suid = 0, fsuid = 0;
  uint32_t gid = 0, egid = 0, sgid = 0, fsgid = 0;
  kj::Array<gid_t> groups;
  uint64_t capEffective = 0, capPermitted = 0, capInheritable = 0;

  // -EINVAL for more groups than the kernel allows (NGROUPS_MAX).
  static int64_t fromWire(proto::Credentials::Reader wire, kj::Own<const CallerCredentials>& out);
  // What access(2) checks with (its kernel overrides the caller's creds the same way): the real
  // ids as fs ids, and no capabilities unless the real uid is 0, which gets the permitted set.
  kj::Own<const CallerCredentials> forAccess() const;
};

// Whether this process may take on other credentials: CAP_SETUID and CAP_SETGID in its
// effective set (read once).
bool canAssumeCredentials();

// For its scope the calling thread performs syscalls with `creds` (null: no change); then with
// what it had before (an enclosing scope's set, or the agent's own). Throws if the kernel
// refuses a change, after putting the agent's own identity back: a call must never run with
// credentials other than the ones asked for.
class AssumedCredentials {
public:
  explicit AssumedCredentials(const CallerCredentials* creds);
  ~AssumedCredentials() noexcept(false);
  KJ_DISALLOW_COPY(AssumedCredentials);

private:
  const CallerCredentials* previous;
  bool active;
};

// A new thread starts with its creator's credentials, and the executor may start a worker while
// the event loop thread has a caller's set (a blocking call dispatched through asCaller): every
// worker calls this first, so it starts as the agent. No-op for an agent that cannot assume.
void adoptOwnCredentials();

// The set the calling thread performs calls with now (an AssumedCredentials scope), or null:
// for work that will run later or elsewhere (a worker, a continuation) and must run with it too.
kj::Maybe<kj::Own<const CallerCredentials>> currentCaller();
inline const CallerCredentials* ptrOf(const kj::Maybe<kj::Own<const CallerCredentials>>& c) {
  KJ_IF_MAYBE(p, c) {
    return p->get();
  }
  return nullptr;
}

// Wraps a continuation so that it runs with the credentials current when it was made (a call's
// continuation runs later, outside the scope its call was dispatched in).
template <typename Func>
auto keepCaller(Func&& func) {
  return [creds = currentCaller(), func = kj::fwd<Func>(func)](auto&&... args) mutable {
    AssumedCredentials as(ptrOf(creds));
    return func(kj::fwd<decltype(args)>(args)...);
  };
}

// In a spawned child before exec (async-signal-safe, raw syscalls): takes on the whole set —
// groups, real/effective/saved ids (the fs ids follow), capabilities. Returns 0 or an errno.
int becomeCaller(const CallerCredentials& creds);

}  // namespace sb
