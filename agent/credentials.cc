#include "credentials.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <mutex>

#include <kj/debug.h>

namespace sb {

namespace {

// 32-bit ids: the plain numbers carry 16-bit ids on the old 32-bit ABIs (i386, armhf), where
// the *32 calls are the real ones; aarch64 and x86-64 have only the plain ones.
#ifdef SYS_setgroups32
constexpr long NR_SETGROUPS = SYS_setgroups32;
constexpr long NR_SETFSUID = SYS_setfsuid32;
constexpr long NR_SETFSGID = SYS_setfsgid32;
constexpr long NR_SETRESUID = SYS_setresuid32;
constexpr long NR_SETRESGID = SYS_setresgid32;
#else
constexpr long NR_SETGROUPS = SYS_setgroups;
constexpr long NR_SETFSUID = SYS_setfsuid;
constexpr long NR_SETFSGID = SYS_setfsgid;
constexpr long NR_SETRESUID = SYS_setresuid;
constexpr long NR_SETRESGID = SYS_setresgid;
#endif

// The capability sets of the calling thread (raw capget/capset: per thread).
struct CapSets {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};

int getCaps(CapSets& out) {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) {
    return errno;
  }
  out.effective = data[0].effective | (uint64_t(data[1].effective) << 32);
  out.permitted = data[0].permitted | (uint64_t(data[1].permitted) << 32);
  out.inheritable = data[0].inheritable | (uint64_t(data[1].inheritable) << 32);
  return 0;
}

int setCaps(const CapSets& caps) {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = uint32_t(caps.effective);
  data[1].effective = uint32_t(caps.effective >> 32);
  data[0].permitted = uint32_t(caps.permitted);
  data[1].permitted = uint32_t(caps.permitted >> 32);
  data[0].inheritable = uint32_t(caps.inheritable);
  data[1].inheritable = uint32_t(caps.inheritable >> 32);
  return syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

// What the agent's threads are when they assume nothing: read once, before any change.
struct OwnIdentity {
  uid_t fsuid;
  gid_t fsgid;
  gid_t groups[NGROUPS_MAX];
  int groupCount;
  CapSets caps;
  bool canAssume;
};

const OwnIdentity& own() {
  static OwnIdentity identity;
  static std::once_flag once;
  std::call_once(once, []() {
    identity.fsuid = geteuid();
    identity.fsgid = getegid();
    identity.groupCount = getgroups(NGROUPS_MAX, identity.groups);
    if (identity.groupCount < 0) {
      identity.groupCount = 0;
    }
    bool known = getCaps(identity.caps) == 0;
    uint64_t needed = (uint64_t(1) << CAP_SETUID) | (uint64_t(1) << CAP_SETGID);
    identity.canAssume = known && (identity.caps.effective & needed) == needed;
  });
  return identity;
}

// setfsuid/setfsgid answer the previous id whatever happens; asking again with an id no one
// has (-1 changes nothing) tells whether the change took.
bool setFsUid(uid_t id) {
  syscall(NR_SETFSUID, id);
  return uid_t(syscall(NR_SETFSUID, uid_t(-1))) == id;
}
bool setFsGid(gid_t id) {
  syscall(NR_SETFSGID, id);
  return gid_t(syscall(NR_SETFSGID, gid_t(-1))) == id;
}

// Back to the agent's own identity. The capabilities come first: setgroups and setfsuid need
// CAP_SETGID and CAP_SETUID, which an assumed set may lack.
int restoreOwn() {
  const OwnIdentity& o = own();
  int error = setCaps(o.caps);
  if (error == 0 && syscall(NR_SETGROUPS, o.groupCount, o.groups) != 0) error = errno;
  if (error == 0 && !setFsGid(o.fsgid)) error = EPERM;
  if (error == 0 && !setFsUid(o.fsuid)) error = EPERM;
  return error;
}

// From the agent's own identity to `c`. setfsuid from 0 to another id clears the file system
// capabilities from the effective set (capabilities(7)); the capset that follows sets exactly
// the thread's, bounded by what the agent is permitted.
int assume(const CallerCredentials& c) {
  const OwnIdentity& o = own();
  int error = 0;
  if (syscall(NR_SETGROUPS, c.groups.size(), c.groups.begin()) != 0) error = errno;
  if (error == 0 && !setFsGid(c.fsgid)) error = EPERM;
  if (error == 0 && !setFsUid(c.fsuid)) error = EPERM;
  if (error == 0) {
    CapSets caps = o.caps;
    caps.effective = c.capEffective & o.caps.permitted;
    error = setCaps(caps);
  }
  return error;
}

thread_local const CallerCredentials* current = nullptr;

}  // namespace

int64_t CallerCredentials::fromWire(proto::Credentials::Reader wire,
                                    kj::Own<const CallerCredentials>& out) {
  auto groups = wire.getGroups();
  if (groups.size() > NGROUPS_MAX) {
    return -EINVAL;
  }
  auto c = kj::atomicRefcounted<CallerCredentials>();
  c->uid = wire.getUid();
  c->euid = wire.getEuid();
  c->suid = wire.getSuid();
  c->fsuid = wire.getFsuid();
  c->gid = wire.getGid();
  c->egid = wire.getEgid();
  c->sgid = wire.getSgid();
  c->fsgid = wire.getFsgid();
  c->groups = kj::heapArray<gid_t>(groups.size());
  for (unsigned i = 0; i < groups.size(); ++i) {
    c->groups[i] = groups[i];
  }
  c->capEffective = wire.getCapEffective();
  c->capPermitted = wire.getCapPermitted();
  c->capInheritable = wire.getCapInheritable();
  out = kj::mv(c);
  return 0;
}

kj::Own<const CallerCredentials> CallerCredentials::forAccess() const {
  auto c = kj::atomicRefcounted<CallerCredentials>();
  c->uid = c->euid = c->suid = c->fsuid = uid;
  c->gid = c->egid = c->sgid = c->fsgid = gid;
  c->groups = kj::heapArray<gid_t>(groups.asPtr());
  // fs/open.c access_override_creds (without SECBIT_NO_SETUID_FIXUP, which the tracer does not
  // track): root by its real uid is checked with its permitted set, anyone else with none.
  c->capEffective = uid == 0 ? capPermitted : 0;
  c->capPermitted = capPermitted;
  c->capInheritable = capInheritable;
  return c;
}

bool canAssumeCredentials() { return own().canAssume; }

void adoptOwnCredentials() {
  if (!canAssumeCredentials()) {
    return;  // then no thread of the agent ever changed its credentials
  }
  int error = restoreOwn();
  if (error != 0) {
    KJ_LOG(FATAL, "a new agent thread cannot take the agent's credentials", strerror(error));
    abort();
  }
  current = nullptr;
}

AssumedCredentials::AssumedCredentials(const CallerCredentials* creds)
    : previous(current), active(creds != nullptr) {
  if (!active) {
    return;
  }
  KJ_REQUIRE(canAssumeCredentials(), "this agent cannot assume credentials");
  int error = previous != nullptr ? restoreOwn() : 0;
  if (error == 0) {
    error = assume(*creds);
  }
  if (error != 0) {
    int again = restoreOwn();
    current = nullptr;
    if (again != 0) {
      // The thread's identity is now unknown: no call may run on it any more.
      KJ_LOG(FATAL, "cannot restore the agent's credentials on a thread", strerror(again));
      abort();
    }
    KJ_FAIL_REQUIRE("cannot assume the caller's credentials", strerror(error));
  }
  current = creds;
}

AssumedCredentials::~AssumedCredentials() noexcept(false) {
  if (!active) {
    return;
  }
  int error = restoreOwn();
  if (error == 0 && previous != nullptr) {
    error = assume(*previous);
  }
  if (error != 0) {
    KJ_LOG(FATAL, "cannot restore credentials on a thread", strerror(error));
    abort();
  }
  current = previous;
}

kj::Maybe<kj::Own<const CallerCredentials>> currentCaller() {
  if (current == nullptr) {
    return nullptr;
  }
  return kj::atomicAddRef(*current);
}

int becomeCaller(const CallerCredentials& c) {
  if (syscall(NR_SETGROUPS, c.groups.size(), c.groups.begin()) != 0) return errno;
  if (syscall(NR_SETRESGID, c.gid, c.egid, c.sgid) != 0) return errno;
  if (syscall(NR_SETRESUID, c.uid, c.euid, c.suid) != 0) return errno;
  // setresuid away from root has cleared what a non-root program must not keep; a root one
  // keeps its sets until this lowers them to the program's. Raising is refused (EPERM).
  CapSets caps;
  caps.effective = c.capEffective;
  caps.permitted = c.capPermitted;
  caps.inheritable = c.capInheritable;
  CapSets now;
  int error = getCaps(now);
  if (error != 0) return error;
  caps.permitted &= now.permitted;
  caps.effective &= caps.permitted;
  caps.inheritable &= now.inheritable | now.permitted;
  return setCaps(caps);
}

}  // namespace sb
