#include "identity.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <kj/debug.h>

namespace sb {

int64_t fillUname(proto::Uname::Builder out) {
  struct utsname u;
  if (uname(&u) < 0) {
    return -int64_t(errno);
  }
  out.setSysname(u.sysname);
  out.setNodename(u.nodename);
  out.setRelease(u.release);
  out.setVersion(u.version);
  out.setMachine(u.machine);
  out.setDomainname(u.domainname);
  return 0;
}

namespace {

void writeFile(const char* path, const std::string& text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  KJ_REQUIRE(fd >= 0, "--hostname: cannot open for the user namespace", path, strerror(errno));
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  KJ_REQUIRE(n == ssize_t(text.size()), "--hostname: cannot write the user namespace map", path,
             strerror(err));
}

// An unprivileged agent becomes root of a new user namespace mapped to itself, which grants the
// capabilities unshare(CLONE_NEWUTS | CLONE_NEWNS) and sethostname need there.
void enterUserNamespace() {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  KJ_REQUIRE(unshare(CLONE_NEWUSER) == 0,
             "--hostname: cannot create a user namespace; run as root, or enable unprivileged "
             "user namespaces (sysctl kernel.unprivileged_userns_clone=1)", strerror(errno));
  writeFile("/proc/self/setgroups", "deny");
  writeFile("/proc/self/uid_map", fmt::format("{} {} 1\n", uid, uid));
  writeFile("/proc/self/gid_map", fmt::format("{} {} 1\n", gid, gid));
}

}  // namespace

void enterHostnameNamespace(kj::StringPtr hostname) {
  KJ_REQUIRE(hostname.size() > 0 && hostname.size() <= 64,
             "--hostname: the name must be 1 to 64 characters", hostname);
  if (unshare(CLONE_NEWUTS | CLONE_NEWNS) < 0) {
    int err = errno;
    KJ_REQUIRE(err == EPERM && geteuid() != 0,
               "--hostname: unshare(CLONE_NEWUTS|CLONE_NEWNS) failed; the agent needs "
               "CAP_SYS_ADMIN or user namespaces", strerror(err));
    enterUserNamespace();
    KJ_REQUIRE(unshare(CLONE_NEWUTS | CLONE_NEWNS) == 0,
               "--hostname: unshare(CLONE_NEWUTS|CLONE_NEWNS) failed inside the user namespace",
               strerror(errno));
  }
  // Mount events must not propagate back to the host's namespace.
  KJ_REQUIRE(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
             "--hostname: cannot make / private in the new mount namespace", strerror(errno));
  KJ_REQUIRE(sethostname(hostname.cStr(), hostname.size()) == 0,
             "--hostname: sethostname failed", hostname, strerror(errno));
}

}  // namespace sb
