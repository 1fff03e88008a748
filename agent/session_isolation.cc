#include "session_isolation.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "process.h"

namespace sb {

namespace {

// Whether this process may make namespaces: CAP_SYS_ADMIN in its effective set.
bool hasSysAdmin() {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) < 0) {
    return false;
  }
  return (data[CAP_SYS_ADMIN / 32].effective & (1U << (CAP_SYS_ADMIN % 32))) != 0;
}

}  // namespace

SessionIsolation::SessionIsolation(const IsolationOptions& options, const Log& log)
    : options(options), log(log), cgroups(CgroupParent::probe(options.maxMemory, log)) {
  bool root = hasSysAdmin();
  if (root) {
    pidNamespaces = options.confined || !cgroups->canKill();
    if (pidNamespaces) {
      PidNamespaceEntry::openOwn();
    }
    if (!cgroups->canKill()) {
      // How sessions are isolated here, not a fault (the fallback holds): with -v, so that every
      // sbrun run of a `local` target does not print it on the program's stderr.
      log.info("no cgroup.kill here: each session's programs run in a pid namespace of their "
               "own, and the session's end kills its init and so every process in it");
    }
  } else {
    log.info("not root: sessions' programs run as uid {} without pid namespaces; a session's "
             "end kills their process groups{}", getuid(),
             cgroups->canKill() ? " and their cgroup" : "");
  }
  if (root && options.confined && !options.spawnPrivileged) {
    privileges = confinedChildPrivileges(options.allowDevices, log);
  }
}

kj::Own<SessionJail> SessionIsolation::newJail(Reaper& reaper, size_t maxProcs) {
  kj::Maybe<kj::Own<SessionCgroup>> cgroup =
      cgroups->create(maxProcs + (pidNamespaces ? 1 : 0), options.maxMemory);
  kj::Maybe<kj::Own<SessionPidNamespace>> pidns;
  if (pidNamespaces) {
    int procs = -1;
    KJ_IF_MAYBE(c, cgroup) {
      procs = (*c)->procsFd();
    }
    pidns = SessionPidNamespace::start(reaper, procs);
    if (pidns == nullptr) {
      log.warn("cannot make a pid namespace for a session ({}): its programs run in the "
               "agent's", strerror(errno));
    }
  }
  return kj::heap<SessionJail>(kj::mv(cgroup), kj::mv(pidns));
}

SessionJail::SessionJail(kj::Maybe<kj::Own<SessionCgroup>> cgroup,
                         kj::Maybe<kj::Own<SessionPidNamespace>> pidns)
    : cgroup(kj::mv(cgroup)), pidns(kj::mv(pidns)) {}

SessionJail::~SessionJail() noexcept(false) {}

int SessionJail::cgroupProcsFd() const {
  KJ_IF_MAYBE(c, cgroup) {
    return (*c)->procsFd();
  }
  return -1;
}

int SessionJail::pidNamespaceFd() const {
  KJ_IF_MAYBE(ns, pidns) {
    int fd = (*ns)->nsFd();
    return fd < 0 ? -2 : fd;
  }
  return -1;
}

}  // namespace sb
