// NodeImpl, part 2: the methods that take a path (openAt, statAt, mkdirAt, renameAt, xattrs ...).
// Every path goes through Confinement (object() or parent()); read-only mode answers EROFS after
// the path resolved, so a missing file still says ENOENT first, as a read-only mount does.

#include "node.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

#include "host_wire.h"

namespace sb {

namespace {

// The kernel's own bounds (XATTR_SIZE_MAX, XATTR_LIST_MAX, XATTR_NAME_MAX).
constexpr size_t MAX_XATTR_VALUE = 65536;
constexpr size_t MAX_XATTR_LIST = 65536;
constexpr size_t MAX_XATTR_NAME = 255;

// A node's path argument, decoded; `result` < 0 when the path itself is bad.
struct PathArg {
  int64_t result;
  kj::String path;
};

PathArg decodePath(int fd, capnp::Data::Reader wire) {
  PathArg arg{fd < 0 ? fd : 0, kj::heapString("")};
  if (arg.result == 0) {
    arg.result = pathFromWire(wire, arg.path);
  }
  return arg;
}

int64_t xattrName(capnp::Data::Reader wire, kj::String& out) {
  if (wire.size() > MAX_XATTR_NAME) {
    return -ERANGE;
  }
  return pathFromWire(wire, out);
}

// True for the types a read-only mount refuses write access to (devices, FIFOs and sockets live
// on even on a read-only mount).
bool isFsObject(mode_t mode) {
  return S_ISREG(mode) || S_ISDIR(mode) || S_ISLNK(mode);
}

int64_t statTarget(const PathTarget& t, bool follow, struct stat& st) {
  if (t.isFd()) {
    return sysResult(fstatat(t.dirFd, "", &st, AT_EMPTY_PATH));
  }
  return sysResult(fstatat(t.dirFd, t.name.cStr(), &st, follow ? 0 : AT_SYMLINK_NOFOLLOW));
}

// glibc's wrappers, not raw syscall(SYS_utimensat): on a 32-bit host built with 64-bit time_t
// (armhf) SYS_utimensat takes 32-bit timespecs and would store a time after 2038 wrapped, while
// glibc's utimensat/futimens call utimensat_time64 (and fall back on kernels before 5.1).
int64_t utimensTarget(const PathTarget& t, const struct timespec times[2], bool follow) {
  if (!t.isFd()) {
    return sysResult(utimensat(t.dirFd, t.name.cStr(), times, follow ? 0 : AT_SYMLINK_NOFOLLOW));
  }
  // futimens semantics first (utimensat with a null path: an fd open for writing may set "now"
  // without owning the file); O_PATH fds refuse that with EBADF and take the AT_EMPTY_PATH form.
  int r = futimens(t.dirFd, times);
  if (r == 0 || errno != EBADF) {
    return sysResult(r);
  }
  return sysResult(utimensat(t.dirFd, "", times, AT_EMPTY_PATH));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// openAt
//
// A plain open(2) can block: a FIFO waits for its other end, a serial port for carrier. To keep
// the loop free without sending every open to a worker, the path is first resolved to an O_PATH
// fd (never blocks), its type decides, and the real open re-opens exactly that inode through
// /proc/self/fd/N: inline for files and directories, on a worker for FIFOs and devices. Re-opening
// through the agent's own magic link cannot be redirected by a concurrent rename or symlink swap.

kj::Promise<void> NodeImpl::openAt(OpenAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  struct open_how how;
  int64_t r = arg.result;
  if (r >= 0) {
    r = openHowToHost(params.getHow(), how);
  }
  if (r >= 0) {
    r = session->nodeRoom();  // --max-fds: EMFILE, where open(2) allocates its fd
  }
  if (r < 0) {
    context.getResults().setResult(r);
    return kj::READY_NOW;
  }

  auto finish = [this](OpenAtResults::Builder results, int64_t fdOrErrno) {
    results.setResult(fdOrErrno < 0 ? fdOrErrno : 0);
    if (fdOrErrno >= 0) {
      proto::FileType type;
      results.setNode(session->newNode(int(fdOrErrno), type));
      auto info = results.initInfo();
      info.setType(type);
      // Only regular files are read ahead: no fstat/fstatfs for the directories find opens.
      info.setReadAhead(type == proto::FileType::REGULAR &&
                        SessionState::readAheadSafe(int(fdOrErrno)));
    }
  };
  auto results = context.getResults();
  uint64_t flags = how.flags;
  uint64_t access = flags & (O_ACCMODE | O_PATH);
  bool tmpFile = (flags & O_TMPFILE) == O_TMPFILE;
  bool wantsWrite = access == O_WRONLY || access == O_RDWR || (flags & O_TRUNC) || tmpFile;
  const Confinement& conf = confinement();

  if (access == O_PATH) {
    if (params.getHow().getReopen()) {
      // An O_PATH open of /proc/self/fd/N on the client: a new O_PATH description of the node.
      if (arg.path.size() != 0) {
        finish(results, -EINVAL);
        return kj::READY_NOW;
      }
      kj::String proc = kj::str("/proc/self/fd/", f);
      finish(results, sysResult(::open(proc.cStr(), int(flags))));
      return kj::READY_NOW;
    }
    finish(results, conf.open(f, arg.path, how));
    return kj::READY_NOW;
  }
  if (readOnly() && wantsWrite) {
    finish(results, -EROFS);
    return kj::READY_NOW;
  }
  if (tmpFile) {
    finish(results, conf.open(f, arg.path, how));
    return kj::READY_NOW;
  }

  int64_t probe;
  if (params.getHow().getReopen()) {
    // Opening /proc/self/fd/N on the client: a new description of this very node. The probe is a
    // second reference to it (the agent holds no POSIX locks of its own that closing could drop:
    // traced processes' locks live on their own descriptions, see SessionState).
    if (arg.path.size() != 0 || f < 0) {
      finish(results, f < 0 ? f : -EINVAL);
      return kj::READY_NOW;
    }
    probe = sysResult(fcntl(f, F_DUPFD_CLOEXEC, 0));
    flags &= ~uint64_t(O_EXCL);  // The file exists; O_EXCL on a magic link is not an error.
  } else {
    // Resolve without opening. O_NOFOLLOW and O_DIRECTORY keep their meaning for the lookup.
    struct open_how probeHow;
    memset(&probeHow, 0, sizeof(probeHow));
    probeHow.flags = O_PATH | O_CLOEXEC | (flags & (O_NOFOLLOW | O_DIRECTORY));
    probeHow.resolve = how.resolve;
    probe = conf.open(f, arg.path, probeHow);
  }
  if (probe == -ENOENT && (flags & O_CREAT)) {
    // A new file is a regular file: create it inline, with the caller's exact flags.
    // TODO(security): a FIFO created by someone else between the probe and this open would
    // block the loop; only an actor on the agent's machine can race it.
    finish(results, readOnly() ? -EROFS : conf.open(f, arg.path, how));
    return kj::READY_NOW;
  }
  if (probe < 0) {
    finish(results, probe);
    return kj::READY_NOW;
  }
  kj::AutoCloseFd probeFd{int(probe)};
  if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
    finish(results, -EEXIST);
    return kj::READY_NOW;
  }
  struct stat st;
  if (fstat(probeFd, &st) < 0) {
    finish(results, -int64_t(errno));
    return kj::READY_NOW;
  }
  if (S_ISLNK(st.st_mode)) {
    // Only reachable with O_NOFOLLOW: open(2)'s answer for a symlink.
    finish(results, -ELOOP);
    return kj::READY_NOW;
  }
  // O_NOFOLLOW would now refuse the magic link itself; O_EXCL was answered above.
  int reopenFlags = int(flags & ~uint64_t(O_NOFOLLOW | O_EXCL));
  if (readOnly()) {
    reopenFlags &= ~O_CREAT;
  }
  mode_t mode = mode_t(how.mode);
  bool blocks = !(flags & O_NONBLOCK) &&
                (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
                 (S_ISCHR(st.st_mode) && major(st.st_rdev) != 1));
  if (!blocks) {
    kj::String proc = kj::str("/proc/self/fd/", probeFd.get());
    finish(results, sysResult(::open(proc.cStr(), reopenFlags, mode)));
    return kj::READY_NOW;
  }
  // Tracked on this node (runTracked): Node.interrupt ends the wait with EINTR (a signal for the
  // program), and the worker opens with the caller's credentials, as the inline open above does.
  context.allowCancellation();
  return runTracked([probeFd = kj::mv(probeFd), reopenFlags, mode]() {
           WorkResult w;
           char proc[64];
           snprintf(proc, sizeof(proc), "/proc/self/fd/%d", probeFd.get());
           int fd = ::open(proc, reopenFlags, mode);
           // Owned by the result from here on: if the call was cancelled meanwhile, dropping
           // the result closes the fd.
           w.result = fd < 0 ? -int64_t(errno) : 0;
           if (fd >= 0) {
             w.fd = kj::AutoCloseFd(fd);
           }
           return w;
         })
      .then([context, finish](WorkResult&& w) mutable {
        finish(context.getResults(), w.result < 0 ? w.result : w.fd.release());
      });
}

// ---------------------------------------------------------------------------------------------
// Inspecting objects

kj::Promise<void> NodeImpl::statAt(StatAtContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  int flags = statFlagsToHost(params.getFlags());
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !(flags & AT_SYMLINK_NOFOLLOW), flags & AT_EMPTY_PATH,
                             false, t);
  }
  if (r >= 0) {
    struct statx st;
    int syncBits = flags & (AT_STATX_FORCE_SYNC | AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT);
    r = t.isFd() ? sysResult(::statx(t.dirFd, "", AT_EMPTY_PATH | syncBits, params.getMask(), &st))
                 : sysResult(::statx(t.dirFd, t.name.cStr(), flags, params.getMask(), &st));
    if (r >= 0) {
      statxToWire(st, results.initStat());
    }
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::statfs(StatfsContext context) {
  auto results = context.getResults();
  int f = fdOrError();
  PathArg arg = decodePath(f, context.getParams().getPath());
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0) {
    // Empty path: fstatfs of the node itself (schema).
    r = confinement().object(f, arg.path, true, true, true, t);
  }
  if (r >= 0) {
    struct statfs st;
    r = sysResult(::fstatfs(t.dirFd, &st));
    if (r >= 0) {
      statfsToWire(st, results.initStatfs());
    }
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::accessAt(AccessAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  uint8_t mode = params.getMode();
  bool noFollow = params.getNoFollow();
  int flags = (params.getEaccess() ? AT_EACCESS : 0) | (noFollow ? AT_SYMLINK_NOFOLLOW : 0);
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0 && (mode & ~(R_OK | W_OK | X_OK))) {
    r = -EINVAL;
  }
  if (r >= 0) {
    r = confinement().object(f, arg.path, !noFollow, params.getEmptyPath(), false, t);
  }
  if (r >= 0) {
    // A program with credentials of its own (asCaller) is checked as its kernel would check it:
    // access(2) by its real ids, AT_EACCESS by the fs ids already assumed. faccessat with
    // AT_EACCESS then checks this thread's assumed set (glibc passes it to faccessat2) instead of
    // overriding it with the agent's real ids.
    kj::Maybe<kj::Own<const CallerCredentials>> real;
    KJ_IF_MAYBE(caller, currentCaller()) {
      if (!params.getEaccess()) {
        real = (*caller)->forAccess();
      }
      flags |= AT_EACCESS;
    }
    AssumedCredentials as(ptrOf(real));
    r = t.isFd() ? sysResult(faccessat(t.dirFd, "", mode, flags | AT_EMPTY_PATH))
                 : sysResult(faccessat(t.dirFd, t.name.cStr(), mode, flags));
  }
  if (r >= 0 && (mode & W_OK) && readOnly()) {
    // What a read-only mount says about write access to its files.
    struct stat st;
    if (statTarget(t, !noFollow, st) == 0 && isFsObject(st.st_mode)) {
      r = -EROFS;
    }
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::readlinkAt(ReadlinkAtContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  uint64_t size = params.getSize();
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0 && size == 0) {
    r = -EINVAL;  // readlink(2) with bufsiz 0
  }
  if (r >= 0) {
    // readlinkat(2) always accepts an empty path (the dirfd itself, an O_PATH symlink).
    r = confinement().object(f, arg.path, false, true, false, t);
  }
  if (r >= 0) {
    // No symlink target is longer than PATH_MAX; a larger buffer only costs memory.
    size_t n = size_t(kj::min(size, uint64_t(PATH_MAX)));
    auto orphan = capnp::Orphanage::getForMessageContaining(results).newOrphan<capnp::Data>(n);
    char* buf = reinterpret_cast<char*>(orphan.get().begin());
    r = sysResult(::readlinkat(t.dirFd, t.isFd() ? "" : t.name.cStr(), buf, n));
    if (r == -ENOENT && t.isFd() && arg.path.size() > 0) {
      // Confined lookups reach the object through an O_PATH fd; readlinkat of a non-symlink fd
      // says ENOENT where readlink of the path says EINVAL.
      struct stat st;
      if (fstat(t.dirFd, &st) == 0 && !S_ISLNK(st.st_mode)) {
        r = -EINVAL;
      }
    }
    if (r >= 0) {
      orphan.truncate(size_t(r));
      results.adoptTarget(kj::mv(orphan));
    }
  }
  results.setResult(r);
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// Creating and removing names

int64_t NodeImpl::nameTarget(int dirFd, kj::StringPtr path, NameUse use, PathTarget& t) const {
  if (dirFd < 0) {
    return dirFd;
  }
  int64_t r = confinement().parent(dirFd, path, t, readOnly());
  if (r < 0 || !readOnly()) {
    return r;
  }
  struct stat st;
  bool exists = fstatat(t.dirFd, t.name.cStr(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  int err = errno;
  if (!exists && err != ENOENT) {
    return -int64_t(err);
  }
  switch (use) {
    case NameUse::CREATE: return exists ? -EEXIST : -EROFS;
    case NameUse::REMOVE: return exists ? -EROFS : -ENOENT;
    case NameUse::REPLACE: return -EROFS;
  }
  return -EROFS;
}

kj::Promise<void> NodeImpl::mkdirAt(MkdirAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  PathTarget t;
  int64_t r = arg.result >= 0 ? nameTarget(f, arg.path, NameUse::CREATE, t) : arg.result;
  if (r >= 0) {
    r = sysResult(mkdirat(t.dirFd, t.name.cStr(), params.getMode()));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::mknodAt(MknodAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  PathTarget t;
  int64_t r = arg.result >= 0 ? nameTarget(f, arg.path, NameUse::CREATE, t) : arg.result;
  mode_t type = params.getMode() & S_IFMT;
  if (r >= 0 && (type == S_IFCHR || type == S_IFBLK) && confinement().isConfined() &&
      !session->agent.allowDevices) {
    // A device node inside the root opens the device itself, wherever the root is: /dev/kmsg,
    // the disk. Under --root a root agent would otherwise hand out the machine (issue 17).
    r = -EPERM;
  }
  if (r >= 0) {
    dev_t dev = makedev(params.getRdevMajor(), params.getRdevMinor());
    r = sysResult(mknodat(t.dirFd, t.name.cStr(), params.getMode(), dev));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::unlinkAt(UnlinkAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  PathTarget t;
  int64_t r = arg.result >= 0 ? nameTarget(f, arg.path, NameUse::REMOVE, t) : arg.result;
  if (r >= 0) {
    int flags = params.getRemoveDir() ? AT_REMOVEDIR : 0;
    r = sysResult(unlinkat(t.dirFd, t.name.cStr(), flags));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::symlinkAt(SymlinkAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  kj::String target;
  int64_t r = arg.result >= 0 ? pathFromWire(params.getTarget(), target) : arg.result;
  PathTarget t;
  if (r >= 0) {
    r = nameTarget(f, arg.path, NameUse::CREATE, t);
  }
  if (r >= 0) {
    // The target is stored as given; under --root it is resolved inside the root when followed.
    r = sysResult(symlinkat(target.cStr(), t.dirFd, t.name.cStr()));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

int64_t NodeImpl::renameIn(kj::StringPtr oldPath, int newDirFd, kj::StringPtr newPath,
                           unsigned flags) {
  int f = fdOrError();
  if (f < 0 || newDirFd < 0) {
    return f < 0 ? f : newDirFd;
  }
  PathTarget from;
  PathTarget to;
  int64_t r = nameTarget(f, oldPath, NameUse::REMOVE, from);
  if (r >= 0 || r == -EROFS) {
    int64_t r2 = nameTarget(newDirFd, newPath, NameUse::REPLACE, to);
    r = r2 < 0 && r2 != -EROFS ? r2 : r;
  }
  if (r >= 0) {
    r = sysResult(renameat2(from.dirFd, from.name.cStr(), to.dirFd, to.name.cStr(), flags));
  }
  return r;
}

kj::Promise<void> NodeImpl::renameAt(RenameAtContext context) {
  auto params = context.getParams();
  return sameSessionNode(params.getNewDir())
      .then(keepCaller([this, context](kj::Maybe<NodeImpl&> newDir) mutable {
        auto params = context.getParams();
        int f = fdOrError();
        PathArg oldArg = decodePath(f, params.getOldPath());
        PathArg newArg = decodePath(f, params.getNewPath());
        int64_t r = oldArg.result < 0 ? oldArg.result : newArg.result;
        unsigned flags = (params.getNoReplace() ? RENAME_NOREPLACE : 0) |
                         (params.getExchange() ? RENAME_EXCHANGE : 0) |
                         (params.getWhiteout() ? RENAME_WHITEOUT : 0);
        if (r >= 0) {
          KJ_IF_MAYBE(dir, newDir) {
            r = renameIn(oldArg.path, dir->fdOrError(), newArg.path, flags);
          } else {
            r = -EXDEV;  // A directory of another session is another file system here.
          }
        }
        context.getResults().setResult(r);
      }));
}

int64_t NodeImpl::linkIn(kj::StringPtr oldPath, bool follow, bool emptyPath, bool throughFd,
                         int newDirFd, kj::StringPtr newPath) {
  int f = fdOrError();
  if (f < 0 || newDirFd < 0) {
    return f < 0 ? f : newDirFd;
  }
  PathTarget to;
  int64_t r = nameTarget(newDirFd, newPath, NameUse::CREATE, to);
  if (r < 0) {
    return r;
  }
  if (throughFd) {
    // The program's magic link becomes ours, followed as the program asked.
    kj::String proc = kj::str("/proc/self/fd/", f);
    return sysResult(linkat(AT_FDCWD, proc.cStr(), to.dirFd, to.name.cStr(), AT_SYMLINK_FOLLOW));
  }
  if (oldPath.size() == 0 || !confinement().isConfined()) {
    // The kernel applies its own rules, including CAP_DAC_READ_SEARCH for AT_EMPTY_PATH.
    int flags = (follow ? AT_SYMLINK_FOLLOW : 0) | (emptyPath ? AT_EMPTY_PATH : 0);
    return sysResult(linkat(f, oldPath.cStr(), to.dirFd, to.name.cStr(), flags));
  }
  PathTarget from;
  r = confinement().object(f, oldPath, follow, false, true, from);
  if (r < 0) {
    return r;
  }
  // Linking the confined O_PATH fd through its magic link links exactly that inode (a symlink
  // itself when !follow), without CAP_DAC_READ_SEARCH: the documented O_TMPFILE idiom.
  kj::String proc = from.procPath();
  return sysResult(linkat(AT_FDCWD, proc.cStr(), to.dirFd, to.name.cStr(), AT_SYMLINK_FOLLOW));
}

kj::Promise<void> NodeImpl::linkAt(LinkAtContext context) {
  auto params = context.getParams();
  return sameSessionNode(params.getNewDir())
      .then(keepCaller([this, context](kj::Maybe<NodeImpl&> newDir) mutable {
        auto params = context.getParams();
        int f = fdOrError();
        PathArg oldArg = decodePath(f, params.getOldPath());
        PathArg newArg = decodePath(f, params.getNewPath());
        int64_t r = oldArg.result < 0 ? oldArg.result : newArg.result;
        if (r >= 0) {
          KJ_IF_MAYBE(dir, newDir) {
            r = linkIn(oldArg.path, params.getFollow(), params.getEmptyPath(),
                       params.getThroughFd(), dir->fdOrError(), newArg.path);
          } else {
            r = -EXDEV;
          }
        }
        context.getResults().setResult(r);
      }));
}

// ---------------------------------------------------------------------------------------------
// Changing attributes

kj::Promise<void> NodeImpl::chmodAt(ChmodAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  bool noFollow = params.getNoFollow();
  mode_t mode = params.getMode() & 07777;
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !noFollow, params.getEmptyPath(), false, t);
  }
  if (r >= 0 && readOnly()) {
    r = -EROFS;
  } else if (r >= 0 && !t.isFd()) {
    r = sysResult(fchmodat(t.dirFd, t.name.cStr(), mode, noFollow ? AT_SYMLINK_NOFOLLOW : 0));
  } else if (r >= 0) {
    // chmod has no AT_EMPTY_PATH form before fchmodat2 (Linux 6.6): go through the magic link.
    struct stat st;
    if (fstat(t.dirFd, &st) < 0) {
      r = -int64_t(errno);
    } else if (S_ISLNK(st.st_mode)) {
      r = -EOPNOTSUPP;  // Linux symlinks have no mode of their own (what lchmod says).
    } else {
      kj::String proc = t.procPath();
      r = sysResult(::chmod(proc.cStr(), mode));
    }
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::chownAt(ChownAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  bool noFollow = params.getNoFollow();
  // -1 (or anything out of the id range) leaves the id unchanged, as chown(2) reads it.
  uid_t uid = uid_t(params.getUid());
  gid_t gid = gid_t(params.getGid());
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !noFollow, params.getEmptyPath(), false, t);
  }
  if (r >= 0) {
    int flags = t.isFd() ? AT_EMPTY_PATH : (noFollow ? AT_SYMLINK_NOFOLLOW : 0);
    r = readOnly() ? -EROFS
                   : sysResult(fchownat(t.dirFd, t.isFd() ? "" : t.name.cStr(), uid, gid, flags));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::truncateAt(TruncateAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  int64_t length = params.getLength();
  int64_t r = arg.result;
  uint64_t limit = params.getFileSizeLimit();
  if (r >= 0 && arg.path.size() == 0) {
    // ftruncate(2): the node must be open for writing, the kernel checks; RLIMIT_FSIZE after
    // those checks (do_sys_ftruncate, then inode_newsize_ok).
    int access = fcntl(f, F_GETFL);
    bool writable = access >= 0 && !(access & O_PATH) && (access & O_ACCMODE) != O_RDONLY;
    r = !params.getEmptyPath() ? -ENOENT
        : readOnly()           ? -EROFS
        : writable             ? growthPastLimit(f, length, limit)
                               : 0;
    if (r == 0) {
      r = sysResult(::ftruncate(f, length));
    }
  } else if (r >= 0) {
    PathTarget t;
    r = confinement().object(f, arg.path, true, false, true, t);
    if (r >= 0) {
      kj::String proc = t.procPath();
      r = readOnly() ? -EROFS : 0;
      if (r == 0 && limit != UINT64_MAX && length >= 0 && uint64_t(length) > limit) {
        // RLIMIT_FSIZE comes after the permission checks: an open for writing makes them (with
        // the caller's credentials), and only a regular file, which it cannot block on, counts.
        struct stat st;
        if (stat(proc.cStr(), &st) == 0 && S_ISREG(st.st_mode) && length > st.st_size) {
          int w = ::open(proc.cStr(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
          r = w < 0 ? -int64_t(errno) : growthPastLimit(w, length, limit);
          if (w >= 0) {
            ::close(w);
          }
        }
      }
      if (r == 0) {
        r = sysResult(::truncate(proc.cStr(), length));
      }
    }
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::utimensAt(UtimensAtContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  bool noFollow = params.getNoFollow();
  struct timespec times[2];
  int64_t r = arg.result;
  if (r >= 0) r = timeSpecToHost(params.getAtime(), times[0]);
  if (r >= 0) r = timeSpecToHost(params.getMtime(), times[1]);
  PathTarget t;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !noFollow, params.getEmptyPath(), false, t);
  }
  if (r >= 0) {
    r = readOnly() ? -EROFS : utimensTarget(t, times, !noFollow);
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// Extended attributes. There are no *at forms before Linux 6.13, so the object is resolved to an
// O_PATH fd (with O_NOFOLLOW for the l* variants) and named through its magic link, which reaches
// the symlink itself for an O_PATH|O_NOFOLLOW fd.

kj::Promise<void> NodeImpl::getXattr(GetXattrContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  kj::String name;
  int64_t r = arg.result >= 0 ? xattrName(params.getName(), name) : arg.result;
  PathTarget t;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !params.getFlags().getNoFollow(), params.getEmptyPath(),
                             true, t);
  }
  if (r >= 0) {
    size_t n = size_t(kj::min(params.getSize(), uint64_t(MAX_XATTR_VALUE)));
    auto orphan = capnp::Orphanage::getForMessageContaining(results).newOrphan<capnp::Data>(n);
    kj::String proc = t.procPath();
    r = sysResult(::getxattr(proc.cStr(), name.cStr(), n ? orphan.get().begin() : nullptr, n));
    if (r >= 0 && n > 0) {
      orphan.truncate(size_t(r));
      results.adoptValue(kj::mv(orphan));
    }
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::setXattr(SetXattrContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  kj::String name;
  int64_t r = arg.result >= 0 ? xattrName(params.getName(), name) : arg.result;
  auto value = params.getValue();
  if (r >= 0 && value.size() > MAX_XATTR_VALUE) {
    r = -E2BIG;
  }
  PathTarget t;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !params.getFlags().getNoFollow(), params.getEmptyPath(),
                             true, t);
  }
  if (r >= 0) {
    kj::String proc = t.procPath();
    r = readOnly() ? -EROFS
                   : sysResult(::setxattr(proc.cStr(), name.cStr(), value.begin(), value.size(),
                                          xattrFlagsToHost(params.getFlags())));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::listXattr(ListXattrContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  PathTarget t;
  int64_t r = arg.result;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !params.getFlags().getNoFollow(), params.getEmptyPath(),
                             true, t);
  }
  if (r >= 0) {
    size_t n = size_t(kj::min(params.getSize(), uint64_t(MAX_XATTR_LIST)));
    auto orphan = capnp::Orphanage::getForMessageContaining(results).newOrphan<capnp::Data>(n);
    kj::String proc = t.procPath();
    r = sysResult(::listxattr(proc.cStr(),
                              n ? reinterpret_cast<char*>(orphan.get().begin()) : nullptr, n));
    if (r >= 0 && n > 0) {
      orphan.truncate(size_t(r));
      results.adoptNames(kj::mv(orphan));
    }
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::removeXattr(RemoveXattrContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  PathArg arg = decodePath(f, params.getPath());
  kj::String name;
  int64_t r = arg.result >= 0 ? xattrName(params.getName(), name) : arg.result;
  PathTarget t;
  if (r >= 0) {
    r = confinement().object(f, arg.path, !params.getFlags().getNoFollow(), params.getEmptyPath(),
                             true, t);
  }
  if (r >= 0) {
    kj::String proc = t.procPath();
    r = readOnly() ? -EROFS : sysResult(::removexattr(proc.cStr(), name.cStr()));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

}  // namespace sb
