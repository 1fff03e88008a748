#include "child_privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sb {

namespace {

// Newer than Debian 12's headers (Linux 6.1): Landlock ABI 6 scopes (Linux 6.12).
constexpr uint64_t LANDLOCK_SCOPE_ABSTRACT_UNIX = 1ULL << 0;
struct RulesetAttrV6 {
  uint64_t handledAccessFs;
  uint64_t handledAccessNet;
  uint64_t scoped;
};

constexpr int kKeptCapabilities[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID,
    CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE, CAP_SETFCAP,
};

}  // namespace

ChildPrivileges confinedChildPrivileges(bool allowDevices, const Log& log) {
  ChildPrivileges p;
  p.limitCapabilities = true;
  for (int cap: kKeptCapabilities) {
    p.keptCapabilities |= 1ULL << cap;
  }
  if (allowDevices) {
    p.keptCapabilities |= 1ULL << CAP_MKNOD;
  }
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, 1U /* VERSION */);
  if (abi >= 6) {
    RulesetAttrV6 attr = {0, 0, LANDLOCK_SCOPE_ABSTRACT_UNIX};
    int fd = int(syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0));
    if (fd >= 0) {
      p.scopeRuleset = fd;  // CLOEXEC by the kernel; kept for the agent's life
    } else {
      log.warn("Landlock scope: cannot create a ruleset ({}): programs spawned on B may use "
               "abstract unix sockets", strerror(errno));
    }
  } else {
    log.warn("Landlock ABI {} has no abstract-socket scope (Linux 6.12): programs spawned on B "
             "may use abstract unix sockets (the agent's own socket calls refuse them)",
             abi < 0 ? 0 : abi);
  }
  return p;
}

int applyChildPrivileges(const ChildPrivileges& p) {
  if (p.scopeRuleset >= 0 && syscall(SYS_landlock_restrict_self, p.scopeRuleset, 0U) < 0) {
    return errno;
  }
  if (!p.limitCapabilities) {
    return 0;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
    return errno;
  }
  for (int cap = 0; cap <= 63; ++cap) {
    if (p.keptCapabilities & (1ULL << cap)) {
      continue;
    }
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) {
        break;  // past the last capability this kernel knows
      }
      return errno;
    }
  }
  return 0;
}

}  // namespace sb
