// Confinement: the single gate every path argument of the agent passes through (DESIGN D8,
// PITFALLS #21). It turns "this path, relative to that node" into something a syscall can use:
//
//   open()    an open(2) of the path itself (openat2, RESOLVE_IN_ROOT when confined);
//   object()  an existing object a syscall acts on (stat, chmod, chown, utimens, xattrs, access,
//             readlink, truncate, statfs, a link source);
//   parent()  a directory fd plus the last component, for syscalls that create or remove a name
//             (mkdir, mknod, symlink, unlink, rmdir, rename, a link's new name).
//
// Without --root, paths go to the *at syscalls unchanged, with the node's fd as dirfd (the kernel
// ignores it for absolute paths), so magic links such as /proc/self/fd/N keep working.
//
// With --root DIR, nothing can resolve outside DIR: `..` stops at DIR, absolute paths and absolute
// symlinks resolve inside DIR, and magic links are refused (openat2 RESOLVE_IN_ROOT). Existing
// objects are reached through an O_PATH fd opened that way (with O_NOFOLLOW for the nofollow
// variants), which also mirrors the kernel's handling of trailing slashes, "." and ".."; names to
// create or remove are looked up as "confined parent fd + last component", and the kernel never
// follows a last component for those syscalls. A relative path from a node below the root may
// still climb with `..` up to the root: it is tried with RESOLVE_BENEATH from the node first, and
// when it leaves the node it is composed with the node's root-relative path and resolved from the
// root instead.
//
// Read-only mode is not handled here: the node checks it per operation.

#pragma once

#include <kj/io.h>
#include <kj/memory.h>
#include <kj/string.h>

#include <linux/openat2.h>

#include <cstdint>

namespace sb {

// Where a path landed: `dirFd` plus `name` for an *at call. An empty `name` means "dirFd itself"
// (use AT_EMPTY_PATH or the f* variant). `owned` keeps an fd opened on the way alive.
struct PathTarget {
  int dirFd = -1;
  kj::String name = kj::heapString("");
  kj::AutoCloseFd owned;

  bool isFd() const { return name.size() == 0; }
  // "/proc/self/fd/N" for dirFd, for syscalls without an AT_EMPTY_PATH form (chmod, xattrs,
  // truncate). The magic link is the agent's own fd, so it stays inside the confinement.
  kj::String procPath() const;
};

class Confinement {
public:
  // No confinement: the whole file system, root "/".
  static kj::Own<Confinement> unconfined();
  // Confined to DIR (must be an existing directory). Throws a clear error otherwise.
  static kj::Own<Confinement> confinedTo(kj::StringPtr dir);

  Confinement(kj::String rootPath, kj::AutoCloseFd rootFd, bool confined);

  bool isConfined() const { return confined; }
  // The root as an absolute, canonical path ("/" when unconfined).
  kj::StringPtr rootPath() const { return rootPathStr; }
  // An O_PATH|O_DIRECTORY fd on the root, owned by this object.
  int rootFd() const { return root.get(); }

  // Opens `path` relative to `dirFd` (absolute: against the root) with openat2 semantics.
  // Returns the new fd or -errno; EAGAIN from a RESOLVE_IN_ROOT race is retried, never returned
  // (unless the caller asked for RESOLVE_CACHED, where EAGAIN is the documented answer).
  int64_t open(int dirFd, kj::StringPtr path, struct open_how how) const;

  // Resolves an existing object. An empty path means `dirFd` itself when `emptyPath`, else
  // -ENOENT, as the kernel says. `follow` applies to the last component. With `needFd` (or when
  // confined) the result is always an fd target; otherwise it may be dirFd + the path unchanged,
  // and the caller adds AT_SYMLINK_NOFOLLOW when !follow.
  int64_t object(int dirFd, kj::StringPtr path, bool follow, bool emptyPath, bool needFd,
                 PathTarget& out) const;

  // Resolves the directory that holds the last component of `path`, for syscalls that create or
  // remove that name. The returned name keeps trailing slashes so the kernel applies its own
  // rules ("x/" must be a directory). An empty path is -ENOENT. Unconfined, the path is passed
  // through whole unless `split` asks for the parent to be looked up anyway.
  int64_t parent(int dirFd, kj::StringPtr path, PathTarget& out, bool split = false) const;

  // The path of `fd` as seen inside the root ("/" for the root itself), from /proc/self/fd.
  // -ENOENT when the file was deleted or lies outside the root.
  int64_t pathOf(int fd, kj::String& out) const;
  // What readlink of /proc/self/fd/FD says, the path inside the root as pathOf: with
  // " (deleted)" for a deleted file, and B's own text for what is no file system object
  // (socket:[...], anon_inode:[...]). -ENOENT for a file outside the root.
  int64_t linkTextOf(int fd, kj::String& out) const;

private:
  // `path` (absolute, on this machine) as seen inside the root; -ENOENT outside it.
  int64_t insideRoot(kj::StringPtr path, kj::String& out) const;

  kj::String rootPathStr;
  kj::AutoCloseFd root;
  bool confined;

  int64_t openConfined(int dirFd, kj::StringPtr path, struct open_how how) const;
};

// openat2(2) with the EAGAIN retry rule above. Exposed for the few callers that already hold a
// confined dirfd.
int64_t openat2Retry(int dirFd, const char* path, const struct open_how& how);

}  // namespace sb
