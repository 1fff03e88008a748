#include "landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

namespace sb {

namespace {

// Rights newer than Debian 12's <linux/landlock.h> (ABI 2); the kernel tells which it knows.
constexpr uint64_t FS_TRUNCATE = 1ULL << 14;   // ABI 3
constexpr uint64_t FS_IOCTL_DEV = 1ULL << 15;  // ABI 5

// Every file-system right the kernel's ABI `abi` handles.
uint64_t handledRights(int abi) {
  uint64_t rights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                    LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                    LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                    LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                    LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (abi >= 2) {
    rights |= LANDLOCK_ACCESS_FS_REFER;
  }
  if (abi >= 3) {
    rights |= FS_TRUNCATE;
  }
  if (abi >= 5) {
    rights |= FS_IOCTL_DEV;
  }
  return rights;
}

// Allows `rights` (cut to what the ruleset handles) beneath `fd`. Returns 0 or errno.
int allow(int ruleset, int fd, uint64_t rights, uint64_t handled) {
  struct landlock_path_beneath_attr rule;
  memset(&rule, 0, sizeof(rule));
  rule.allowed_access = rights & handled;
  rule.parent_fd = fd;
  if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) {
    return errno;
  }
  return 0;
}

// As allow(), for a path opened here (O_PATH); a path that cannot be opened is skipped with a
// warning, since what it is for then fails on its own with a clear errno.
void allowPath(int ruleset, const char* path, uint64_t rights, uint64_t handled, const Log& log) {
  int fd = ::open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    log.warn("Landlock: cannot open {} to allow it ({}); leaving it out", path, strerror(errno));
    return;
  }
  kj::AutoCloseFd owner(fd);
  int error = allow(ruleset, fd, rights, handled);
  if (error != 0) {
    log.warn("Landlock: cannot allow {}: {}; leaving it out", path, strerror(error));
  }
}

}  // namespace

void setNoNewPrivs() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    failClearly(fmt::format("prctl(PR_SET_NO_NEW_PRIVS): {}", strerror(errno)));
  }
}

int restrictToRoot(const Confinement& confinement, kj::Maybe<kj::StringPtr> unixSocket,
                   const Log& log, kj::StringPtr cgroupDir) {
  if (!confinement.isConfined()) {
    return 0;
  }
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) {
    int error = errno;
    log.warn("Landlock is not available here ({}{}): --root {} is enforced by openat2 "
             "(RESOLVE_IN_ROOT) and chroot alone",
             strerror(error),
             error == EOPNOTSUPP ? ", disabled at boot: add landlock to the lsm= kernel parameter"
                                 : "",
             confinement.rootPath().cStr());
    return 0;
  }
  uint64_t handled = handledRights(int(abi));
  struct landlock_ruleset_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.handled_access_fs = handled;
  int ruleset = int(syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0));
  if (ruleset < 0) {
    log.warn("Landlock ABI {}: cannot create a ruleset ({}): --root is enforced by openat2 "
             "alone", abi, strerror(errno));
    return 0;
  }
  kj::AutoCloseFd rulesetOwner(ruleset);
  int error = allow(ruleset, confinement.rootFd(), handled, handled);
  if (error != 0) {
    log.warn("Landlock ABI {}: cannot allow the root {} ({}): --root is enforced by openat2 "
             "alone", abi, confinement.rootPath().cStr(), strerror(error));
    return 0;
  }
  // spawn gives /dev/null to a program's stdio that is neither a pipe nor a remote fd.
  allowPath(ruleset, "/dev/null",
            LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE, handled, log);
  if (cgroupDir.size() > 0) {
    // Session cgroups: mkdir, the control files, rmdir. Programs spawned under --root cannot
    // name this directory (they are chrooted, without CAP_SYS_CHROOT), so the rule is the
    // agent's alone in practice.
    allowPath(ruleset, cgroupDir.cStr(),
              LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                  LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                  LANDLOCK_ACCESS_FS_READ_DIR,
              handled, log);
  }
  KJ_IF_MAYBE(path, unixSocket) {
    // The listener removes its socket at exit. REMOVE_FILE is a right of directories, so it
    // covers that directory's other entries too: a small price, and only removal.
    kj::String dir = kj::heapString(*path);
    KJ_IF_MAYBE(slash, dir.asPtr().findLast('/')) {
      dir = *slash == 0 ? kj::heapString("/") : kj::heapString(dir.begin(), *slash);
    } else {
      dir = kj::heapString(".");
    }
    allowPath(ruleset, dir.cStr(), LANDLOCK_ACCESS_FS_REMOVE_FILE, handled, log);
  }
  if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
    log.warn("Landlock ABI {}: landlock_restrict_self: {}: --root is enforced by openat2 alone",
             abi, strerror(errno));
    return 0;
  }
  log.info("Landlock ABI {}: file access restricted to {}", abi, confinement.rootPath().cStr());
  return int(abi);
}

}  // namespace sb
