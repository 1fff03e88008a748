// Handlers for calls that name a path: the stat family and statfs, access, readlink, mkdir,
// mknod, unlink and rmdir, rename and link (EXDEV across machines), symlink, chmod, chown,
// truncate, the utime family and the xattrs (path and fd variants share one shape each).

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <linux/xattr.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include <kj/debug.h>

#include "handler_support.h"

namespace sb::handler {

namespace {

// ---------------------------------------------------------------------------------------------
// stat family

enum class StatOut { STAT, STATX };

kj::Promise<Outcome> statRemote(Call& c, proto::Node::Client node, AgentLink& target,
                                kj::StringPtr path, int atFlags, uint32_t mask, StatOut out,
                                uint64_t bufAddr) {
  auto req = node.statAtRequest();
  req.setPath(bytes(path));
  auto flags = req.initFlags();
  flags.setEmptyPath(atFlags & AT_EMPTY_PATH);
  flags.setNoFollow(atFlags & AT_SYMLINK_NOFOLLOW);
  flags.setNoAutomount(atFlags & AT_NO_AUTOMOUNT);
  flags.setForceSync((atFlags & AT_STATX_SYNC_TYPE) == AT_STATX_FORCE_SYNC);
  flags.setDontSync((atFlags & AT_STATX_SYNC_TYPE) == AT_STATX_DONT_SYNC);
  req.setMask(mask);
  return send(c, target, req).then([&c, out, bufAddr](auto r) -> Outcome {
    if (r.getResult() < 0) {
      return Complete{r.getResult()};
    }
    if (out == StatOut::STAT) {
      return Complete{putStruct(c, bufAddr, abi::toStat(r.getStat()))};
    }
    return Complete{putStruct(c, bufAddr, abi::toStatx(r.getStat()))};
  });
}

constexpr uint32_t BASIC = STATX_BASIC_STATS;

kj::Promise<Outcome> statPath(Call& c, int dirfd, uint64_t pathAddr, int atFlags,
                              uint64_t bufAddr) {
  if (atFlags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)) {
    return local();  // The kernel's EINVAL.
  }
  auto where = resolvePath(c, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      auto node = asCaller(c, *r.target, kj::mv(r.dir));
      return statRemote(c, kj::mv(node), *r.target, r.path, atFlags | (r.self ? AT_EMPTY_PATH : 0),
                        BASIC, StatOut::STAT, bufAddr);
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hStat(Call& c) { return statPath(c, AT_FDCWD, c.arg(0), 0, c.arg(1)); }
kj::Promise<Outcome> hLstat(Call& c) {
  return statPath(c, AT_FDCWD, c.arg(0), AT_SYMLINK_NOFOLLOW, c.arg(1));
}
kj::Promise<Outcome> hNewfstatat(Call& c) {
  int dirfd = c.fdArg(0);
  int flags = c.arg(3);
  // fstatat(fd, NULL or "", AT_EMPTY_PATH) on a remote fd is fstat.
  if ((flags & AT_EMPTY_PATH) && c.arg(1) == 0) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      return statRemote(c, f->node, f->target, "", flags, BASIC, StatOut::STAT, c.arg(2));
    }
    return local();
  }
  return statPath(c, dirfd, c.arg(1), flags, c.arg(2));
}
kj::Promise<Outcome> hFstat(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    return statRemote(c, f->node, f->target, "", AT_EMPTY_PATH, BASIC, StatOut::STAT, c.arg(1));
  }
  return local();
}
kj::Promise<Outcome> hStatx(Call& c) {
  int dirfd = c.fdArg(0);
  int flags = c.arg(2);
  uint32_t mask = c.arg(3);
  if ((mask & STATX__RESERVED) ||
      (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) ||
      (flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE) {
    return done(-EINVAL);
  }
  if ((flags & AT_EMPTY_PATH) && c.arg(1) == 0) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      return statRemote(c, f->node, f->target, "", flags, mask, StatOut::STATX, c.arg(4));
    }
    return local();
  }
  auto where = resolvePath(c, dirfd, c.arg(1));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      auto node = asCaller(c, *r.target, kj::mv(r.dir));
      int at = flags | (r.self ? AT_EMPTY_PATH : 0);
      return statRemote(c, kj::mv(node), *r.target, r.path, at, mask,
                        StatOut::STATX, c.arg(4));
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> statfsRemote(Call& c, proto::Node::Client node, AgentLink& target,
                                  kj::StringPtr path, uint64_t buf) {
  auto req = node.statfsRequest();
  req.setPath(bytes(path));
  return send(c, target, req).then([&c, buf](auto r) -> Outcome {
    if (r.getResult() < 0) {
      return Complete{r.getResult()};
    }
    return Complete{putStruct(c, buf, abi::toStatfs(r.getStatfs()))};
  });
}
kj::Promise<Outcome> hStatfs(Call& c) {
  auto where = resolvePath(c, AT_FDCWD, c.arg(0));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      if (r.path.size() == 0 && !r.self) {
        return done(-ENOENT);
      }
      return statfsRemote(c, asCaller(c, *r.target, kj::mv(r.dir)), *r.target, r.path, c.arg(1));
    }
  }
  KJ_UNREACHABLE;
}
kj::Promise<Outcome> hFstatfs(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) { return statfsRemote(c, f->node, f->target, "", c.arg(1)); }
  return local();
}

kj::Promise<Outcome> accessCommon(Call& c, int dirfd, uint64_t path, int64_t mode, int flags) {
  if (mode & ~(int64_t)(R_OK | W_OK | X_OK)) {
    return done(-EINVAL);
  }
  if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.accessAtRequest();
    req.setPath(bytes(r.path));
    req.setMode(mode);
    req.setEaccess(flags & AT_EACCESS);
    req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
    req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hAccess(Call& c) { return accessCommon(c, AT_FDCWD, c.arg(0), c.arg(1), 0); }
kj::Promise<Outcome> hFaccessat(Call& c) {
  return accessCommon(c, c.fdArg(0), c.arg(1), c.arg(2), 0);
}
kj::Promise<Outcome> hFaccessat2(Call& c) {
  return accessCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}

kj::Promise<Outcome> readlinkCommon(Call& c, int dirfd, uint64_t path, uint64_t buf,
                                    int64_t size) {
  if (size <= 0) {
    return done(-EINVAL);
  }
  return onPath(c, dirfd, path, [&](Remote& r) -> kj::Promise<Outcome> {
    if (r.self) {
      // readlink of /proc/self/fd/N: the file's path on the target, as the magic link says
      // (with " (deleted)", or "socket:[...]").
      auto req = r.dir.pathRequest();
      req.setAsLink(true);
      return req.send().then([&c, buf, size](auto reply) -> Outcome {
        if (reply.getResult() < 0) {
          return Complete{reply.getResult()};
        }
        auto path = reply.getPath();
        size_t n = kj::min(path.size(), static_cast<size_t>(size));
        return Complete{putBytes(c, buf, path.slice(0, n), n)};
      });
    }
    auto req = r.dir.readlinkAtRequest();
    req.setPath(bytes(r.path));
    req.setSize(size);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      int64_t n = reply.getResult();
      if (n < 0) {
        return Complete{n};
      }
      auto target = reply.getTarget();
      KJ_REQUIRE(target.size() <= size, "agent answered readlink with more than the buffer");
      return Complete{putBytes(c, buf, target, target.size())};
    });
  });
}
kj::Promise<Outcome> hReadlink(Call& c) {
  return readlinkCommon(c, AT_FDCWD, c.arg(0), c.arg(1), static_cast<int>(c.arg(2)));
}
kj::Promise<Outcome> hReadlinkat(Call& c) {
  return readlinkCommon(c, c.fdArg(0), c.arg(1), c.arg(2), static_cast<int>(c.arg(3)));
}

kj::Promise<Outcome> mkdirCommon(Call& c, int dirfd, uint64_t path, uint32_t mode) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.mkdirAtRequest();
    req.setPath(bytes(r.path));
    req.setMode(mode & ~umaskOf(c.task.tid) & 07777);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hMkdir(Call& c) { return mkdirCommon(c, AT_FDCWD, c.arg(0), c.arg(1)); }
kj::Promise<Outcome> hMkdirat(Call& c) { return mkdirCommon(c, c.fdArg(0), c.arg(1), c.arg(2)); }

kj::Promise<Outcome> mknodCommon(Call& c, int dirfd, uint64_t path, uint32_t mode, uint64_t dev) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.mknodAtRequest();
    req.setPath(bytes(r.path));
    uint32_t type = mode & S_IFMT;
    req.setMode(type | (mode & ~umaskOf(c.task.tid) & 07777));
    // x86-64 dev_t as the kernel decodes it (new_decode_dev of the 32-bit value).
    uint32_t d = dev;
    req.setRdevMajor((d & 0xfff00) >> 8);
    req.setRdevMinor((d & 0xff) | ((d >> 12) & 0xfff00));
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hMknod(Call& c) { return mknodCommon(c, AT_FDCWD, c.arg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hMknodat(Call& c) {
  return mknodCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}

kj::Promise<Outcome> unlinkCommon(Call& c, int dirfd, uint64_t path, bool removeDir) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.unlinkAtRequest();
    req.setPath(bytes(r.path));
    req.setRemoveDir(removeDir);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hUnlink(Call& c) { return unlinkCommon(c, AT_FDCWD, c.arg(0), false); }
kj::Promise<Outcome> hRmdir(Call& c) { return unlinkCommon(c, AT_FDCWD, c.arg(0), true); }
kj::Promise<Outcome> hUnlinkat(Call& c) {
  int flags = c.arg(2);
  if (flags & ~AT_REMOVEDIR) {
    return done(-EINVAL);
  }
  return unlinkCommon(c, c.fdArg(0), c.arg(1), flags & AT_REMOVEDIR);
}

// What the kernel says of `dirfd` for the path at `pathAddr` before it compares mounts: EBADF
// when it is not open, ENOTDIR when it is not a directory; 0 otherwise (AT_FDCWD, an absolute or
// empty path, a directory).
int64_t dirfdError(Call& c, int dirfd, uint64_t pathAddr) {
  kj::String path;
  if (dirfd == AT_FDCWD || c.mem().readPath(pathAddr, path) < 0 || path.size() == 0 ||
      path.startsWith("/")) {
    return 0;
  }
  KJ_IF_MAYBE(f, c.task.fds->find(dirfd)) {
    return f->type == proto::FileType::DIRECTORY ? 0 : -ENOTDIR;
  }
  struct stat st;
  auto fdPath = kj::str("/proc/", c.task.tid, "/fd/", dirfd);
  if (stat(fdPath.cStr(), &st) < 0) {
    return -EBADF;
  }
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

// Two-path calls: both sides must live on the same target, else EXDEV as across filesystems
// (after the errors of each side's dirfd, which the kernel finds first).
template <typename Func>
kj::Promise<Outcome> onTwoPaths(Call& c, int olddir, uint64_t oldPath, int newdir,
                                uint64_t newPath, Func&& func) {
  auto a = resolvePath(c, olddir, oldPath);
  if (a.is<Failed>()) {
    return done(a.get<Failed>().err);
  }
  auto b = resolvePath(c, newdir, newPath);
  if (b.is<Failed>()) {
    return done(b.get<Failed>().err);
  }
  if (a.is<Local>() && b.is<Local>()) {
    return local();
  }
  if (a.is<Local>() || b.is<Local>() || a.get<Remote>().target != b.get<Remote>().target) {
    int64_t e = dirfdError(c, olddir, oldPath);
    if (e == 0) {
      e = dirfdError(c, newdir, newPath);
    }
    return done(e < 0 ? e : -EXDEV);
  }
  c.target = a.get<Remote>().target;
  // The new side stays a plain node: the agent recognises it as one of the session's.
  auto& from = a.get<Remote>();
  from.dir = asCaller(c, *from.target, kj::mv(from.dir));
  return func(from, b.get<Remote>());
}

kj::Promise<Outcome> renameCommon(Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                                  unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
    return done(-EINVAL);
  }
  return onTwoPaths(c, olddir, oldp, newdir, newp, [&](Remote& a, Remote& b) {
    auto req = a.dir.renameAtRequest();
    req.setOldPath(bytes(a.path));
    req.setNewDir(b.dir);
    req.setNewPath(bytes(b.path));
    req.setNoReplace(flags & RENAME_NOREPLACE);
    req.setExchange(flags & RENAME_EXCHANGE);
    req.setWhiteout(flags & RENAME_WHITEOUT);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hRename(Call& c) {
  return renameCommon(c, AT_FDCWD, c.arg(0), AT_FDCWD, c.arg(1), 0);
}
kj::Promise<Outcome> hRenameat(Call& c) {
  return renameCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), 0);
}
kj::Promise<Outcome> hRenameat2(Call& c) {
  return renameCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4));
}

kj::Promise<Outcome> linkCommon(Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                                int flags) {
  if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onTwoPaths(c, olddir, oldp, newdir, newp, [&](Remote& a, Remote& b) {
    if (a.self && !(flags & AT_SYMLINK_FOLLOW)) {
      // The magic link itself, a symlink of /proc: a link across file systems.
      return done(-EXDEV);
    }
    auto req = a.dir.linkAtRequest();
    // /proc/self/fd/N followed: the file of fd N itself (the O_TMPFILE idiom).
    req.setThroughFd(a.self && (flags & AT_SYMLINK_FOLLOW));
    req.setOldPath(bytes(a.path));
    req.setNewDir(b.dir);
    req.setNewPath(bytes(b.path));
    req.setFollow(flags & AT_SYMLINK_FOLLOW);
    req.setEmptyPath(flags & AT_EMPTY_PATH);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hLink(Call& c) { return linkCommon(c, AT_FDCWD, c.arg(0), AT_FDCWD, c.arg(1), 0); }
kj::Promise<Outcome> hLinkat(Call& c) {
  return linkCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4));
}

kj::Promise<Outcome> symlinkCommon(Call& c, uint64_t targetAddr, int dirfd, uint64_t path) {
  kj::String target;
  int64_t r = c.mem().readPath(targetAddr, target);
  if (r < 0) {
    return done(r);
  }
  return onPath(c, dirfd, path, [&](Remote& where) {
    auto req = where.dir.symlinkAtRequest();
    req.setTarget(bytes(target));
    req.setPath(bytes(where.path));
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hSymlink(Call& c) { return symlinkCommon(c, c.arg(0), AT_FDCWD, c.arg(1)); }
kj::Promise<Outcome> hSymlinkat(Call& c) { return symlinkCommon(c, c.arg(0), c.fdArg(1), c.arg(2)); }

// chmod family; fd-only variants go through the fd's node with emptyPath.
kj::Promise<Outcome> chmodRemote(Call& c, Remote& r, uint32_t mode, int flags) {
  auto req = r.dir.chmodAtRequest();
  req.setPath(bytes(r.path));
  req.setMode(mode & 07777);
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  c.target = r.target;
  return resultOf(req.send());
}
kj::Promise<Outcome> hChmod(Call& c) {
  uint32_t mode = c.arg(1);
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) { return chmodRemote(c, r, mode, 0); });
}
kj::Promise<Outcome> hFchmodat(Call& c) {
  uint32_t mode = c.arg(2);
  return onPath(c, c.fdArg(0), c.arg(1), [&](Remote& r) { return chmodRemote(c, r, mode, 0); });
}
kj::Promise<Outcome> hFchmodat2(Call& c) {
  uint32_t mode = c.arg(2);
  int flags = c.arg(3);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, c.fdArg(0), c.arg(1), [&](Remote& r) { return chmodRemote(c, r, mode, flags); });
}
kj::Promise<Outcome> hFchmod(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (f->pathOnly) {
      return done(-EBADF);  // the kernel's answer for an O_PATH fd
    }
    Remote r{&f->target, asCaller(c, f->target, f->node), kj::str("")};
    return chmodRemote(c, r, c.arg(1), AT_EMPTY_PATH);
  }
  return local();
}

kj::Promise<Outcome> chownRemote(Call& c, Remote& r, uint64_t uid, uint64_t gid, int flags) {
  auto req = r.dir.chownAtRequest();
  req.setPath(bytes(r.path));
  // The kernel takes 32-bit ids; (uid_t)-1 means "unchanged".
  req.setUid(static_cast<uint32_t>(uid) == UINT32_MAX ? -1 : static_cast<int64_t>(uid & 0xffffffff));
  req.setGid(static_cast<uint32_t>(gid) == UINT32_MAX ? -1 : static_cast<int64_t>(gid & 0xffffffff));
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  c.target = r.target;
  return resultOf(req.send());
}
kj::Promise<Outcome> hChown(Call& c) {
  return onPath(c, AT_FDCWD, c.arg(0),
                [&](Remote& r) { return chownRemote(c, r, c.arg(1), c.arg(2), 0); });
}
kj::Promise<Outcome> hLchown(Call& c) {
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) {
    return chownRemote(c, r, c.arg(1), c.arg(2), AT_SYMLINK_NOFOLLOW);
  });
}
kj::Promise<Outcome> hFchownat(Call& c) {
  int flags = c.arg(4);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, c.fdArg(0), c.arg(1),
                [&](Remote& r) { return chownRemote(c, r, c.arg(2), c.arg(3), flags); });
}
kj::Promise<Outcome> hFchown(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (f->pathOnly) {
      return done(-EBADF);  // the kernel's answer for an O_PATH fd
    }
    Remote r{&f->target, asCaller(c, f->target, f->node), kj::str("")};
    return chownRemote(c, r, c.arg(1), c.arg(2), AT_EMPTY_PATH);
  }
  return local();
}

kj::Promise<Outcome> hTruncate(Call& c) {
  int64_t length = c.arg(1);
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) {
    r.target->noteContentChange();
    auto req = r.dir.truncateAtRequest();
    req.setPath(bytes(r.path));
    req.setLength(length);
    req.setEmptyPath(r.self);
    uint64_t limit = fileSizeLimitOf(c.task.tgid);
    req.setFileSizeLimit(limit);
    return withSizeSignal(req.send(), length, limit);
  });
}

// ---------------------------------------------------------------------------------------------
// utime family: every variant becomes utimensAt with two TimeSpecs.

struct Times {
  struct timespec t[2];
  bool given;  // false: both "now" (a NULL times pointer)
};

kj::Promise<Outcome> utimensRemote(Call& c, Remote& r, const Times& times, bool timeval,
                                   int flags) {
  auto req = r.dir.utimensAtRequest();
  req.setPath(bytes(r.path));
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  auto set = [&](const struct timespec& ts, proto::TimeSpec::Builder b) {
    if (!times.given) {
      b.setNow();
      return true;
    }
    if (timeval) {
      struct timeval tv = {ts.tv_sec, ts.tv_nsec};
      return abi::decodeTimeval(tv, b);
    }
    return abi::decodeTimespec(ts, b);
  };
  if (!set(times.t[0], req.initAtime()) || !set(times.t[1], req.initMtime())) {
    return done(-EINVAL);
  }
  c.target = r.target;
  return resultOf(req.send());
}

kj::Promise<Outcome> hUtimensat(Call& c) {
  int flags = c.arg(3);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  Times times{};
  times.given = c.arg(2) != 0;
  if (times.given && c.mem().read(c.arg(2), kj::arrayPtr(times.t, 2).asBytes()) < 0) {
    return done(-EFAULT);
  }
  if (c.arg(1) == 0) {
    // utimensat(fd, NULL, ...) is futimens(fd), which takes no flags.
    int fd = c.fdArg(0);
    if (fd == AT_FDCWD) {
      return local();
    }
    if (flags != 0 && c.task.fds->isRemote(fd)) {
      return done(-EINVAL);
    }
    KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
      Remote r{&f->target, asCaller(c, f->target, f->node), kj::str("")};
      return utimensRemote(c, r, times, false, AT_EMPTY_PATH);
    }
    return local();
  }
  return onPath(c, c.fdArg(0), c.arg(1),
                [&](Remote& r) { return utimensRemote(c, r, times, false, flags); });
}

kj::Promise<Outcome> timevalCommon(Call& c, int dirfd, uint64_t path, uint64_t tvAddr) {
  Times times{};
  times.given = tvAddr != 0;
  if (times.given) {
    struct timeval tv[2];
    if (c.mem().read(tvAddr, kj::arrayPtr(tv, 2).asBytes()) < 0) {
      return done(-EFAULT);
    }
    for (int i = 0; i < 2; ++i) {
      times.t[i].tv_sec = tv[i].tv_sec;
      times.t[i].tv_nsec = tv[i].tv_usec;  // decodeTimeval reads it back as usec.
    }
  }
  if (path == 0 && dirfd != AT_FDCWD) {
    // futimesat(fd, NULL, tv) acts on the fd itself.
    KJ_IF_MAYBE(f, c.task.fds->find(dirfd)) {
      Remote r{&f->target, asCaller(c, f->target, f->node), kj::str(""), true};
      return utimensRemote(c, r, times, true, 0);
    }
    return local();
  }
  return onPath(c, dirfd, path, [&](Remote& r) { return utimensRemote(c, r, times, true, 0); });
}
kj::Promise<Outcome> hUtimes(Call& c) { return timevalCommon(c, AT_FDCWD, c.arg(0), c.arg(1)); }
kj::Promise<Outcome> hFutimesat(Call& c) { return timevalCommon(c, c.fdArg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hUtime(Call& c) {
  Times times{};
  times.given = c.arg(1) != 0;
  if (times.given) {
    struct utimbuf ub;
    if (c.mem().readValue(c.arg(1), ub) < 0) {
      return done(-EFAULT);
    }
    times.t[0] = {ub.actime, 0};
    times.t[1] = {ub.modtime, 0};
  }
  return onPath(c, AT_FDCWD, c.arg(0),
                [&](Remote& r) { return utimensRemote(c, r, times, false, 0); });
}

// ---------------------------------------------------------------------------------------------
// xattrs: path (follow / nofollow) and fd variants share one shape each.

enum class XattrVia { PATH, LPATH, FD };

// Resolves the xattr call's object; fd variants use the node itself.
template <typename Func>
kj::Promise<Outcome> onXattrObject(Call& c, XattrVia via, Func&& func) {
  if (via == XattrVia::FD) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      if (f->pathOnly) {
        return done(-EBADF);  // the kernel's answer for an O_PATH fd
      }
      Remote r{&f->target, asCaller(c, f->target, f->node), kj::str("")};
      c.target = r.target;
      return func(r, true);
    }
    return local();
  }
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) { return func(r, r.self); });
}

int64_t readXattrName(Call& c, uint64_t addr, kj::String& name) {
  int64_t r = c.mem().readString(addr, 255, name);
  if (r == -ENAMETOOLONG) {
    return -ERANGE;
  }
  if (r == 0 && name.size() == 0) {
    return -ERANGE;
  }
  return r;
}

// The answer to getxattr/listxattr: an error, the size needed (size 0 asks only that), or n
// bytes into the tracee's buffer of `size`, never past it.
int64_t xattrAnswer(Call& c, uint64_t buf, uint64_t size, int64_t n, capnp::Data::Reader data) {
  if (n < 0 || size == 0) {
    return n;
  }
  KJ_REQUIRE(data.size() == static_cast<uint64_t>(n) && data.size() <= size,
             "agent answered an xattr call with a bad size");
  return putBytes(c, buf, data, n);
}

kj::Promise<Outcome> setxattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  uint64_t size = c.arg(3);
  int flags = c.arg(4);
  if (size > XATTR_SIZE_MAX) {
    return done(-E2BIG);
  }
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
    return done(-EINVAL);
  }
  auto value = kj::heapArray<kj::byte>(size);
  if (size > 0 && c.mem().read(c.arg(2), value) < 0) {
    return done(-EFAULT);
  }
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.setXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.setValue(value);
    auto f = req.initFlags();
    f.setNoFollow(via == XattrVia::LPATH);
    f.setCreate(flags & XATTR_CREATE);
    f.setReplace(flags & XATTR_REPLACE);
    req.setEmptyPath(emptyPath);
    return resultOf(req.send());
  });
}

kj::Promise<Outcome> getxattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  uint64_t buf = c.arg(2), size = kj::min(c.arg(3), (uint64_t)XATTR_SIZE_MAX);
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.getXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.setSize(size);
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      return Complete{xattrAnswer(c, buf, size, reply.getResult(), reply.getValue())};
    });
  });
}

kj::Promise<Outcome> listxattrCommon(Call& c, XattrVia via) {
  uint64_t buf = c.arg(1), size = kj::min(c.arg(2), (uint64_t)XATTR_LIST_MAX);
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.listXattrRequest();
    req.setPath(bytes(o.path));
    req.setSize(size);
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      return Complete{xattrAnswer(c, buf, size, reply.getResult(), reply.getNames())};
    });
  });
}

kj::Promise<Outcome> removexattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.removeXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return resultOf(req.send());
  });
}

kj::Promise<Outcome> hSetxattr(Call& c) { return setxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLsetxattr(Call& c) { return setxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFsetxattr(Call& c) { return setxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hGetxattr(Call& c) { return getxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLgetxattr(Call& c) { return getxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFgetxattr(Call& c) { return getxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hListxattr(Call& c) { return listxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLlistxattr(Call& c) { return listxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFlistxattr(Call& c) { return listxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hRemovexattr(Call& c) { return removexattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLremovexattr(Call& c) { return removexattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFremovexattr(Call& c) { return removexattrCommon(c, XattrVia::FD); }

const HandlerEntry PATH_HANDLERS[] = {
    {SYS_stat, hStat},
    {SYS_lstat, hLstat},
    {SYS_newfstatat, hNewfstatat},
    {SYS_fstat, hFstat},
    {SYS_statx, hStatx},
    {SYS_statfs, hStatfs},
    {SYS_fstatfs, hFstatfs},
    {SYS_access, hAccess},
    {SYS_faccessat, hFaccessat},
    {SYS_faccessat2, hFaccessat2},
    {SYS_readlink, hReadlink},
    {SYS_readlinkat, hReadlinkat},
    {SYS_mkdir, hMkdir},
    {SYS_mkdirat, hMkdirat},
    {SYS_mknod, hMknod},
    {SYS_mknodat, hMknodat},
    {SYS_unlink, hUnlink},
    {SYS_rmdir, hRmdir},
    {SYS_unlinkat, hUnlinkat},
    {SYS_rename, hRename},
    {SYS_renameat, hRenameat},
    {SYS_renameat2, hRenameat2},
    {SYS_link, hLink},
    {SYS_linkat, hLinkat},
    {SYS_symlink, hSymlink},
    {SYS_symlinkat, hSymlinkat},
    {SYS_chmod, hChmod},
    {SYS_fchmodat, hFchmodat},
    {452 /* fchmodat2 */, hFchmodat2},
    {SYS_fchmod, hFchmod},
    {SYS_chown, hChown},
    {SYS_lchown, hLchown},
    {SYS_fchownat, hFchownat},
    {SYS_fchown, hFchown},
    {SYS_truncate, hTruncate},
    {SYS_utimensat, hUtimensat},
    {SYS_utimes, hUtimes},
    {SYS_futimesat, hFutimesat},
    {SYS_utime, hUtime},
    {SYS_setxattr, hSetxattr},
    {SYS_lsetxattr, hLsetxattr},
    {SYS_fsetxattr, hFsetxattr},
    {SYS_getxattr, hGetxattr},
    {SYS_lgetxattr, hLgetxattr},
    {SYS_fgetxattr, hFgetxattr},
    {SYS_listxattr, hListxattr},
    {SYS_llistxattr, hLlistxattr},
    {SYS_flistxattr, hFlistxattr},
    {SYS_removexattr, hRemovexattr},
    {SYS_lremovexattr, hLremovexattr},
    {SYS_fremovexattr, hFremovexattr},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> pathHandlers() { return PATH_HANDLERS; }

}  // namespace sb::handler
