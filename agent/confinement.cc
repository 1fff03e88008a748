#include "confinement.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

#include "host_wire.h"

namespace sb {

kj::String PathTarget::procPath() const { return kj::str("/proc/self/fd/", dirFd); }

int64_t openat2Retry(int dirFd, const char* path, const struct open_how& how) {
  // RESOLVE_IN_ROOT lookups that ended outside the root, one after the other (see below).
  int raced = 0;
  for (;;) {
    long r = syscall(SYS_openat2, dirFd, path, &how, sizeof(how));
    if (r >= 0) {
      return r;
    }
    int err = errno;
    // openat2(2): RESOLVE_IN_ROOT/BENEATH lookups fail with EAGAIN when a concurrent rename or
    // mount races with them; the documented answer is to retry. RESOLVE_CACHED's EAGAIN means
    // "not in the cache" and belongs to the caller.
    if (err == EAGAIN && !(how.resolve & RESOLVE_CACHED)) {
      continue;
    }
    // A RESOLVE_IN_ROOT lookup cannot climb out of its root, but a directory it walked through
    // can be moved out of the root by someone else while it does (no `..` involved, so no
    // EAGAIN): the kernel's last check then refuses the result with EXDEV. Looked up again, the
    // path gives what it names now: ENOENT while the directory is outside, the file once it is
    // back. (EXDEV under RESOLVE_BENEATH means "left the directory" and is the caller's; a magic
    // link under RESOLVE_IN_ROOT gives EXDEV every time, which the bound lets through.)
    if (err == EXDEV && (how.resolve & RESOLVE_IN_ROOT) && !(how.resolve & RESOLVE_BENEATH) &&
        ++raced < 64) {
      continue;
    }
    if (err == EINTR) {
      continue;
    }
    return -int64_t(err);
  }
}

kj::Own<Confinement> Confinement::unconfined() {
  int fd;
  KJ_SYSCALL(fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), "cannot open /");
  return kj::heap<Confinement>(kj::heapString("/"), kj::AutoCloseFd(fd), false);
}

kj::Own<Confinement> Confinement::confinedTo(kj::StringPtr dir) {
  char* real = realpath(dir.cStr(), nullptr);
  KJ_REQUIRE(real != nullptr, "--root: cannot resolve the directory; create it or fix the path",
             dir, strerror(errno));
  kj::String rootPath = kj::heapString(real);
  free(real);
  int fd = ::open(rootPath.cStr(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  KJ_REQUIRE(fd >= 0, "--root: cannot open the directory; it must be an existing directory",
             rootPath, strerror(errno));
  return kj::heap<Confinement>(kj::mv(rootPath), kj::AutoCloseFd(fd), true);
}

Confinement::Confinement(kj::String rootPath, kj::AutoCloseFd rootFd, bool confined)
    : rootPathStr(kj::mv(rootPath)), root(kj::mv(rootFd)), confined(confined) {}

int64_t Confinement::open(int dirFd, kj::StringPtr path, struct open_how how) const {
  if (confined) {
    return openConfined(dirFd, path, how);
  }
  if (how.resolve != 0) {
    return openat2Retry(dirFd, path.cStr(), how);
  }
  // Plain openat keeps working on kernels without openat2 and is as lenient as open(2) about
  // flags O_PATH ignores.
  for (;;) {
    int fd = ::openat(dirFd, path.cStr(), int(how.flags), mode_t(how.mode));
    if (fd >= 0) {
      return fd;
    }
    if (errno != EINTR) {
      return -int64_t(errno);
    }
  }
}

int64_t Confinement::openConfined(int dirFd, kj::StringPtr path, struct open_how how) const {
  // The caller's own scoping (openat2 RESOLVE_BENEATH / RESOLVE_IN_ROOT) is relative to the node,
  // which already lies inside the root, and both flags refuse magic links: the kernel confines it.
  if (how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)) {
    return openat2Retry(dirFd, path.cStr(), how);
  }
  struct open_how inRoot = how;
  inRoot.resolve |= RESOLVE_IN_ROOT;
  if (path.startsWith("/") || dirFd == root.get()) {
    return openat2Retry(root.get(), path.cStr(), inRoot);
  }
  // Most relative paths stay below their node: resolve them from the node, which also works for
  // a node whose directory was moved or deleted. EXDEV says the path (a `..`, an absolute symlink)
  // left the node: then resolve node path + path from the root, so `..` can climb up to the root.
  struct open_how beneath = how;
  beneath.resolve |= RESOLVE_BENEATH;
  int64_t r = openat2Retry(dirFd, path.cStr(), beneath);
  if (r != -EXDEV) {
    return r;
  }
  kj::String nodePath;
  int64_t p = pathOf(dirFd, nodePath);
  if (p < 0) {
    return p;
  }
  kj::String composed = kj::str(nodePath, "/", path);
  if (composed.size() >= PATH_MAX) {
    return -ENAMETOOLONG;
  }
  return openat2Retry(root.get(), composed.cStr(), inRoot);
}

int64_t Confinement::object(int dirFd, kj::StringPtr path, bool follow, bool emptyPath,
                            bool needFd, PathTarget& out) const {
  out = PathTarget();
  if (path.size() == 0) {
    if (!emptyPath) {
      return -ENOENT;
    }
    out.dirFd = dirFd;
    return 0;
  }
  if (!confined && !needFd) {
    out.dirFd = dirFd;
    out.name = kj::heapString(path);
    return 0;
  }
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
  int64_t fd = open(dirFd, path, how);
  if (fd < 0) {
    return fd;
  }
  out.owned = kj::AutoCloseFd(int(fd));
  out.dirFd = int(fd);
  return 0;
}

int64_t Confinement::parent(int dirFd, kj::StringPtr path, PathTarget& out, bool split) const {
  out = PathTarget();
  if (path.size() == 0) {
    return -ENOENT;
  }
  if (!confined && !split) {
    out.dirFd = dirFd;
    out.name = kj::heapString(path);
    return 0;
  }
  // The last component starts after the last slash that is followed by something other than
  // slashes; it keeps its trailing slashes.
  size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') {
    --end;
  }
  if (end == 0) {
    // Only slashes: the root itself. "." makes the kernel give its answers for an existing
    // directory (EEXIST for mkdir, EISDIR for unlink); rmdir says EINVAL where "/" says EBUSY.
    out.dirFd = root.get();
    out.name = kj::heapString(".");
    return 0;
  }
  size_t start = end;
  while (start > 0 && path[start - 1] != '/') {
    --start;
  }
  out.name = kj::heapString(path.slice(start));
  if (start == 0) {
    out.dirFd = dirFd;
    return 0;
  }
  kj::String dirPart = kj::heapString(path.slice(0, start));
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  int64_t fd = open(dirFd, dirPart, how);
  if (fd < 0) {
    return fd;
  }
  out.owned = kj::AutoCloseFd(int(fd));
  out.dirFd = int(fd);
  return 0;
}

namespace {

// readlink of /proc/self/fd/FD: 0 and the text, or -errno.
int64_t fdLinkText(int fd, kj::String& out) {
  char link[64];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  char buf[PATH_MAX + 1];
  ssize_t n = readlink(link, buf, sizeof(buf));
  if (n < 0) {
    return -int64_t(errno);
  }
  if (size_t(n) >= sizeof(buf)) {
    return -ENAMETOOLONG;
  }
  out = kj::heapString(buf, size_t(n));
  return 0;
}

constexpr kj::StringPtr DELETED = " (deleted)"_kj;

}  // namespace

int64_t Confinement::insideRoot(kj::StringPtr path, kj::String& out) const {
  if (!confined || rootPathStr == "/") {
    out = kj::heapString(path);
    return 0;
  }
  if (path == rootPathStr) {
    out = kj::heapString("/");
    return 0;
  }
  if (path.startsWith(rootPathStr) && path[rootPathStr.size()] == '/') {
    out = kj::heapString(path.slice(rootPathStr.size()));
    return 0;
  }
  // Outside the root (moved out by someone on the agent's machine): not reachable from inside.
  return -ENOENT;
}

int64_t Confinement::pathOf(int fd, kj::String& out) const {
  kj::String path;
  int64_t r = fdLinkText(fd, path);
  if (r < 0) {
    return r;
  }
  if (path.endsWith(DELETED) || !path.startsWith("/")) {
    // Deleted, or not a file system object at all (pipe:[...], anon_inode:...).
    return -ENOENT;
  }
  return insideRoot(path, out);
}

int64_t Confinement::linkTextOf(int fd, kj::String& out) const {
  kj::String text;
  int64_t r = fdLinkText(fd, text);
  if (r < 0) {
    return r;
  }
  if (!text.startsWith("/")) {
    out = kj::mv(text);
    return 0;
  }
  bool deleted = text.endsWith(DELETED);
  kj::String path = deleted ? kj::heapString(text.slice(0, text.size() - DELETED.size()))
                            : kj::mv(text);
  kj::String inside;
  r = insideRoot(path, inside);
  if (r < 0) {
    return r;
  }
  out = deleted ? kj::str(inside, DELETED) : kj::mv(inside);
  return 0;
}

}  // namespace sb
