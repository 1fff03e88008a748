// Handlers for fd lifecycle and fd state: open/openat/openat2/creat (placeholders, DESIGN D4),
// close and close_range, the dup family, fcntl and flock, getdents64, and the working directory
// (chdir, fchdir, getcwd).

#include <errno.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <kj/debug.h>

#include "handler_support.h"
#include "proc_status.h"
#include "options.h"

namespace sb::handler {

namespace {

// ---------------------------------------------------------------------------------------------
// open family

// Whether the new description is a regular file opened to read, not O_DIRECT, that the agent
// says stores its content and was not empty (NodeInfo.readAhead); never a path under /proc, /sys
// or /dev whatever the agent says (their content is made per read). Such a file may have its big
// reads pipelined (chunked_read.h): the chunks are ordinary reads, nothing is kept.
bool storedFileToRead(uint64_t flags, const RemoteFile& file, proto::NodeInfo::Reader info) {
  if (!info.getReadAhead() || file.type != proto::FileType::REGULAR ||
      (flags & O_ACCMODE) == O_WRONLY || (flags & (O_PATH | O_DIRECT))) {
    return false;
  }
  for (kj::StringPtr prefix : {"/proc", "/sys", "/dev"}) {
    kj::StringPtr p = file.path;
    if (p.startsWith(prefix) && (p.size() == prefix.size() || p[prefix.size()] == '/')) {
      return false;
    }
  }
  return true;
}

// Whether the new description may be read ahead (fd_table.h ReadAhead): such a file, opened
// read-only, unless --no-read-ahead.
bool readAheadAllowed(Call& call, uint64_t flags, const RemoteFile& file,
                      proto::NodeInfo::Reader info) {
  return call.tracer.options().readAhead && (flags & O_ACCMODE) == O_RDONLY &&
         storedFileToRead(flags, file, info);
}

kj::Promise<Outcome> openRemote(Call& call, Remote where, uint64_t flags, uint32_t mode,
                                kj::Maybe<uint64_t> resolve) {
  auto dir = asCaller(call, *where.target, kj::mv(where.dir));
  auto req = dir.openAtRequest();
  req.setPath(bytes(where.path));
  auto how = req.initHow();
  uint32_t umask = (flags & (O_CREAT | __O_TMPFILE)) ? umaskOf(call.task.tid) : 0;
  abi::decodeOpenFlags(flags, mode & ~umask & 07777, how);
  KJ_IF_MAYBE(r, resolve) {
    if (!abi::decodeResolve(*r, how)) {
      return done(-EINVAL);
    }
  }
  how.setReopen(where.self);
  // Opening a FIFO waits for its other end, interruptibly. Safe to cancel and restart unless it
  // may create the file (a restarted O_EXCL create would fail with EEXIST). Two-phase on the
  // directory's node (Tracer::onParkedSignal): the agent interrupts the open only if it waits (a
  // FIFO, a device), so a signal never makes the open of a regular file fail with EINTR, however
  // long its answer takes to come.
  call.interruptible = !(flags & O_CREAT);
  if (call.interruptible) {
    call.interruptNode = dir;
  }
  bool cloexec = flags & O_CLOEXEC;
  bool writable = (flags & O_ACCMODE) != O_RDONLY && !(flags & O_PATH);
  auto target = where.target;
  if (flags & O_TRUNC) {
    target->noteContentChange();
  }
  auto path = kj::mv(where.path);
  return send(call, *target, req).then(
      [&call, target, cloexec, writable, flags, path = kj::mv(path)](auto reply) mutable
      -> kj::Promise<Outcome> {
        if (reply.getResult() < 0) {
          return Outcome(Complete{reply.getResult()});
        }
        auto type = reply.getInfo().getType();
        auto file = kj::refcounted<RemoteFile>(*target, reply.getNode(), type, kj::mv(path));
        file->writable = writable;
        file->pathOnly = flags & O_PATH;
        file->readAhead.allowed = readAheadAllowed(call, flags, *file, reply.getInfo());
        file->pipelineReads = storedFileToRead(flags, *file, reply.getInfo());
        bool device = type == proto::FileType::CHAR_DEVICE ||
                      type == proto::FileType::BLOCK_DEVICE;
        if (!device || call.tracer.options().traceOptions.decodeFds < 2) {
          return call.tracer.installPlaceholder(call, kj::mv(file), cloexec);
        }
        // -yy: the device's numbers on B, for the trace's fd notes (one more round trip).
        auto req = file->node.statAtRequest();
        req.initFlags().setEmptyPath(true);
        req.setMask(STATX_TYPE);
        auto stat = req.send();
        return stat.then([&call, file = kj::mv(file), cloexec](auto st) mutable -> Outcome {
          if (st.getResult() >= 0) {
            auto s = st.getStat();
            file->device = (S_ISCHR(s.getMode()) ? "char " : "block ") +
                           std::to_string(s.getRdevMajor()) + ":" +
                           std::to_string(s.getRdevMinor());
          }
          return call.tracer.installPlaceholder(call, kj::mv(file), cloexec);
        });
      });
}

kj::Promise<Outcome> openCommon(Call& call, int dirfd, uint64_t pathAddr, uint64_t flags,
                                uint32_t mode, kj::Maybe<uint64_t> resolve = nullptr) {
  auto where = resolvePath(call, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) { return openRemote(call, kj::mv(r), flags, mode, resolve); }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hOpen(Call& c) { return openCommon(c, AT_FDCWD, c.arg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hCreat(Call& c) {
  return openCommon(c, AT_FDCWD, c.arg(0), O_CREAT | O_WRONLY | O_TRUNC, c.arg(1));
}
kj::Promise<Outcome> hOpenat(Call& c) {
  return openCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}
kj::Promise<Outcome> hOpenat2(Call& c) {
  // struct open_how may grow; we know the 24-byte version and require unknown tail bytes zero.
  uint64_t size = c.arg(3);
  if (size < sizeof(open_how)) {
    return done(-EINVAL);
  }
  if (size > 4096) {
    return done(-E2BIG);
  }
  auto raw = kj::heapArray<kj::byte>(size);
  if (c.mem().read(c.arg(2), raw) < 0) {
    return done(-EFAULT);
  }
  for (size_t i = sizeof(open_how); i < size; ++i) {
    if (raw[i] != 0) {
      return done(-E2BIG);
    }
  }
  open_how how;
  memcpy(&how, raw.begin(), sizeof(how));
  // RESOLVE_IN_ROOT and RESOLVE_BENEATH: the kernel that holds the dirfd resolves all of it, so
  // /proc/version under a remote root is that root's (ENOENT), never A's or B's own.
  bool fromDir = how.resolve & (RESOLVE_IN_ROOT | RESOLVE_BENEATH);
  auto where = fromDir ? resolvePathFromDir(c, c.fdArg(0), c.arg(1))
                       : resolvePath(c, c.fdArg(0), c.arg(1));
  if (where.is<Remote>()) {
    if (!abi::validOpenat2(how.flags, how.mode)) {
      return done(-EINVAL);
    }
    return openRemote(c, kj::mv(where.get<Remote>()), how.flags, how.mode, how.resolve);
  }
  return where.is<Failed>() ? done(where.get<Failed>().err) : local();
}

// ---------------------------------------------------------------------------------------------
// close, dup family

// The local close of a remote fd; the remote close only when it was the last reference.
kj::Promise<Outcome> closeRest(Call& c, kj::Own<RemoteFile> file) {
  if (file->isShared()) {
    return local();  // Another fd or process still refers to it: only the number goes.
  }
  auto req = file->node.closeRequest();
  bool quiet = !file->writable && !file->control &&
               (file->type == proto::FileType::REGULAR ||
                file->type == proto::FileType::DIRECTORY || file->type == proto::FileType::SYMLINK);
  if (quiet) {
    // Closing what was only read can report nothing: answered at once (the issue's "closes need
    // not wait"), the close goes out behind it, before any later call on this connection. The
    // node is let go at once too (its Release follows the close), so the agent's --max-fds
    // count drops before the program's next open arrives (session-limits caught it held).
    c.target = &file->target;
    c.tracer.backgroundSend(req.send().ignoreResult().catch_(
        [](kj::Exception&& e) {
          if (!isConnectionLoss(e)) {
            kj::throwFatalException(kj::mv(e));  // reported by the background task set
          }
        }));
    return Outcome(RunLocal{int64_t(0)});
  }
  return send(c, file->target, req).then([file = kj::mv(file)](auto reply) -> Outcome {
    int64_t remote = reply.getResult();
    if (remote >= 0) {
      return RunLocal{remote};
    }
    // Close the placeholder, but report the remote error (NFS EIO) as close(2) would.
    return RunLocalThen{[remote](int64_t) { return remote; }};
  });
}

kj::Promise<Outcome> hClose(Call& c) {
  KJ_IF_MAYBE(file, c.task.fds->unbind(c.fdArg(0))) {
    auto& target = (*file)->target;
    kj::Promise<Outcome> closing = nullptr;
    if (c.tracer.holdsLocks(target, c.task.tgid)) {
      // POSIX: closing any fd of a file drops all the process's record locks on it, at once.
      auto release = (*file)->node.releaseLocksRequest();
      release.setOwner(c.task.tgid);
      closing = send(c, target, release).then([&c, file = kj::mv(*file)](auto) mutable {
        return closeRest(c, kj::mv(file));
      });
    } else {
      closing = closeRest(c, kj::mv(*file));
    }
    // Linux always frees the fd number, even when close reports an error: so do we. An fd whose
    // session is gone (stale after a reconnect, or lost with this very call) closes fine: its
    // description went with the session (docs/failure-semantics.md).
    return closing.catch_([&target](kj::Exception&& e) -> Outcome {
      int64_t err = isConnectionLoss(e) ? 0 : target.failure(e);
      return RunLocalThen{[err](int64_t) { return err; }};
    });
  }
  return local();
}

// dup, dup2, dup3, F_DUPFD*: the kernel duplicates the placeholder; we bind the new number at
// the exit stop (fd_table.h I1), to what the source referred to at the entry stop (I2). dup2 over
// a remote fd: the kernel replaced that placeholder in one step, so the number was never free.
kj::Promise<Outcome> dupCommon(Call& c, int oldfd, kj::Maybe<int> newfd) {
  auto& fds = c.task.fds;
  kj::Own<RemoteFile> source;
  KJ_IF_MAYBE(f, fds->find(oldfd)) { source = kj::addRef(*f); }
  bool newRemote = false;
  KJ_IF_MAYBE(n, newfd) { newRemote = *n != oldfd && fds->isRemote(*n); }
  if (source.get() == nullptr && !newRemote) {
    return local();
  }
  Task& task = c.task;
  auto dup = Outcome(RunLocalThen{[&task, oldfd, source = kj::mv(source)](int64_t ret) mutable {
    if (ret < 0 || ret == oldfd) {
      return ret;
    }
    task.fds->unbind(static_cast<int>(ret));
    if (source.get() != nullptr) {
      task.fds->bind(static_cast<int>(ret), kj::mv(source));
    }
    return ret;
  }});
  // dup2 over a remote fd closes it: the process's locks on that file go first, unless the call
  // is to fail (oldfd not open; dup3's flags are checked before it too).
  KJ_IF_MAYBE(n, newfd) {
    KJ_IF_MAYBE(closed, fds->find(*n)) {
      auto fails = [&]() {
        return (c.nr == SYS_dup3 && (c.arg(2) & ~uint64_t(O_CLOEXEC)) != 0) ||
               !fdOpenIn(task.tid, oldfd);
      };
      if (*n != oldfd && c.tracer.holdsLocks(closed->target, task.tgid) && !fails()) {
        RemoteFile* files[] = {closed};
        return c.tracer.releaseLocksOn(task.tgid, files)
            .attach(kj::addRef(*closed))
            .then([dup = kj::mv(dup)]() mutable { return kj::mv(dup); });
      }
    }
  }
  return dup;
}

kj::Promise<Outcome> hDup(Call& c) { return dupCommon(c, c.fdArg(0), nullptr); }
kj::Promise<Outcome> hDup2(Call& c) { return dupCommon(c, c.fdArg(0), c.fdArg(1)); }
kj::Promise<Outcome> hDup3(Call& c) { return dupCommon(c, c.fdArg(0), c.fdArg(1)); }

// The kernel frees the numbers while the call runs, and another thread's open may take one of
// them before the exit stop: only the bindings seen at the entry stop are released (I1).
kj::Promise<Outcome> hCloseRange(Call& c) {
  unsigned first = c.arg(0), last = c.arg(1);
  unsigned flags = c.arg(2);
  if (c.task.fds->size() == 0) {
    return local();
  }
  Task& task = c.task;
  auto closing = (flags & CLOSE_RANGE_CLOEXEC) ? kj::Vector<FdTable::Binding>()
                                               : task.fds->bindingsIn(first, last);
  auto range = Outcome(RunLocalThen{[&task, flags, closing = kj::mv(closing)](int64_t ret) {
    if (ret == 0) {
      if (flags & CLOSE_RANGE_UNSHARE) {
        task.fds = task.fds->copy();
      }
      for (auto b : closing) {
        task.fds->unbindIfSame(b);
      }
    }
    return ret;
  }});
  // The closes drop the process's locks on those files: on B first, unless the call is to fail
  // (EINVAL).
  bool fails = first > last || (flags & ~unsigned(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC));
  kj::Vector<kj::Own<RemoteFile>> locked;
  kj::Vector<RemoteFile*> files;
  if (!fails && !(flags & CLOSE_RANGE_CLOEXEC)) {
    task.fds->forEach([&](int fd, RemoteFile& f) {
      if (unsigned(fd) >= first && unsigned(fd) <= last &&
          c.tracer.holdsLocks(f.target, task.tgid)) {
        files.add(&f);
        locked.add(kj::addRef(f));
      }
    });
  }
  if (files.size() == 0) {
    return kj::mv(range);
  }
  return c.tracer.releaseLocksOn(task.tgid, files)
      .attach(kj::mv(locked))
      .then([range = kj::mv(range)]() mutable { return kj::mv(range); });
}

// ---------------------------------------------------------------------------------------------
// getdents64

kj::Promise<Outcome> hGetdents64(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    uint64_t buf = c.arg(1);
    // The kernel takes count as an unsigned int: upper register bits are not part of it.
    uint32_t count = kj::min(static_cast<uint32_t>(c.arg(2)), static_cast<uint32_t>(INT32_MAX));
    auto req = f->node.getdentsRequest();
    req.setMaxBytes(kj::min(count, 1u << 20));
    return send(c, f->target, req).then([&c, buf, count](auto reply) -> Outcome {
      if (reply.getResult() < 0) {
        return Complete{reply.getResult()};
      }
      auto entries = reply.getEntries();
      size_t need = 0;
      for (auto e : entries) {
        need += abi::direntSize(e.getName().size());
      }
      // Entries the agent consumed must all be delivered: more than fits is a protocol error.
      KJ_REQUIRE(need <= count, "agent answered getdents with more than the buffer holds");
      auto out = kj::heapArray<kj::byte>(need);
      size_t n = abi::encodeDirents(entries, out);
      return Complete{putBytes(c, buf, out.slice(0, n), n)};
    });
  }
  return local();
}

// ---------------------------------------------------------------------------------------------
// fcntl, flock

kj::Promise<Outcome> lockCommon(Call& c, RemoteFile& f, proto::LockCmd cmd, uint64_t addr) {
  struct flock fl;
  if (c.mem().readValue(addr, fl) < 0) {
    return done(-EFAULT);
  }
  auto req = f.node.lockRequest();
  req.setCmd(cmd);
  req.setOwner(c.task.tgid);
  if (!abi::decodeFlockChecked(fl, req.initLock())) {
    return done(-EINVAL);
  }
  bool isGet = cmd == proto::LockCmd::GET_LK || cmd == proto::LockCmd::OFD_GET_LK;
  // Any POSIX command makes the process a lock owner on the agent (its own dup of the
  // description there), which its closes and its exit must release.
  bool isPosix = cmd == proto::LockCmd::GET_LK || cmd == proto::LockCmd::SET_LK ||
                 cmd == proto::LockCmd::SET_LK_W;
  auto& target = f.target;
  return send(c, f.target, req).then([&c, &target, addr, isGet, isPosix, fl](auto reply) mutable
                                     -> Outcome {
    if (isPosix) {
      c.tracer.noteLockOwner(target, c.task.tgid);
    }
    if (reply.getResult() < 0 || !isGet) {
      return Complete{reply.getResult()};
    }
    if (reply.getLock().getType() == proto::LockType::UNLOCK) {
      // No conflict: the kernel changes only l_type, and the program may rely on the rest.
      fl.l_type = F_UNLCK;
      return Complete{putStruct(c, addr, fl, reply.getResult())};
    }
    return Complete{putStruct(c, addr, abi::encodeFlock(reply.getLock()), reply.getResult())};
  });
}

// F_GETLEASE, F_SETLEASE: B's answer (schema Node.lease: its kernel's checks, and a lease it
// grants is held on the agent, whose breaks come back to the holder this passes and raise the
// program's signal, lease_signals.h). An older agent: EINVAL for a lease it would grant, or for
// any call without the method.
kj::Promise<Outcome> leaseCommon(Call& c, RemoteFile& f, int fd, bool set, int arg) {
  bool known = arg == F_RDLCK || arg == F_WRLCK || arg == F_UNLCK;
  // The lease's owner is checked by the caller's fs uid (or CAP_LEASE).
  auto req = asCaller(c, f.target, f.node).leaseRequest();
  // An unknown type is EINVAL after the O_PATH check (EBADF), which F_GETLEASE makes too.
  req.setSet(set && known);
  req.setType(arg == F_RDLCK ? proto::LockType::READ
              : arg == F_WRLCK ? proto::LockType::WRITE
                               : proto::LockType::UNLOCK);
  kj::Maybe<kj::Own<LeaseTaken>> taken;
  if (set && (arg == F_RDLCK || arg == F_WRLCK)) {
    auto t = kj::refcounted<LeaseTaken>(kj::addRef(*f.signals), c.task.tgid, fd);
    req.setHolder(c.tracer.leaseSignals().holderFor(kj::addRef(*t)));
    taken = kj::mv(t);
  }
  bool badType = set && !known;
  return send(c, f.target, req)
      .then([set, badType, taken = kj::mv(taken)](auto reply) mutable -> Outcome {
        if (reply.getResult() < 0 || badType) {
          return Complete{reply.getResult() < 0 ? reply.getResult() : -EINVAL};
        }
        KJ_IF_MAYBE(t, taken) {
          (*t)->grant();  // F_SETLEASE makes the caller the owner (lease_setup)
        }
        if (set) {
          return Complete{reply.getResult()};
        }
        auto type = reply.getType();
        return Complete{int64_t(type == proto::LockType::READ    ? F_RDLCK
                                : type == proto::LockType::WRITE ? F_WRLCK
                                                                 : F_UNLCK)};
      })
      .catch_([](kj::Exception&& e) -> Outcome {
        if (e.getType() != kj::Exception::Type::UNIMPLEMENTED) {
          kj::throwFatalException(kj::mv(e));
        }
        return Complete{-EINVAL};
      });
}

// Whether `who` (a pid, or a process group negated) exists here, for F_SETOWN's ESRCH.
bool ownerExists(pid_t who) { return kill(who, 0) == 0 || errno != ESRCH; }

// F_SETSIG, F_GETSIG, F_SETOWN(_EX), F_GETOWN(_EX) on a remote fd: the description's state
// here (lease_signals.h), with the kernel's checks. An O_PATH fd takes none of them (EBADF).
kj::Promise<Outcome> signalCommon(Call& c, RemoteFile& f, int cmd) {
  if (f.pathOnly) {
    return done(-EBADF);
  }
  FileSignals& s = *f.signals;
  switch (cmd) {
    case F_SETSIG: return done(setSignal(s, c.arg(2)));
    case F_GETSIG: return done(s.sig);
    case F_SETOWN: return done(setOwner(s, static_cast<int64_t>(c.arg(2)), ownerExists));
    case F_GETOWN: return done(getOwner(s));
    case F_SETOWN_EX: {
      struct f_owner_ex owner;
      if (c.mem().readValue(c.arg(2), owner) < 0) {
        return done(-EFAULT);
      }
      return done(setOwnerEx(s, owner.type, owner.pid, ownerExists));
    }
    case F_GETOWN_EX: {
      struct f_owner_ex owner = {static_cast<enum __pid_type>(s.ownerType), s.owner};
      return done(putStruct(c, c.arg(2), owner, 0));
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hFcntl(Call& c) {
  int fd = c.fdArg(0);
  int cmd = c.arg(1);
  KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
    switch (cmd) {
      case F_DUPFD:
      case F_DUPFD_CLOEXEC:
        return dupCommon(c, fd, nullptr);
      case F_GETFD:
      case F_SETFD:
        return local();  // close-on-exec lives on the local placeholder.
      case F_GETFL: {
        auto req = f->node.getFlagsRequest();
        return send(c, f->target, req).then([](auto reply) -> Outcome {
          if (reply.getResult() < 0) {
            return Complete{reply.getResult()};
          }
          return Complete{static_cast<int64_t>(abi::encodeStatusFlags(reply.getFlags()))};
        });
      }
      case F_SETFL: {
        if (f->readAhead.fetching) {
          return settleReadAhead(c.tracer, *f).then([&c]() { return hFcntl(c); });
        }
        (void)settleReadAhead(c.tracer, *f);
        if (c.arg(2) & O_DIRECT) {
          // O_DIRECT reads have alignment rules of their own.
          f->readAhead.allowed = false;
          f->pipelineReads = false;
        }
        auto req = f->node.setFlagsRequest();
        abi::decodeStatusFlags(c.arg(2), req.initFlags());
        return resultOf(send(c, f->target, req));
      }
      case F_GETLK: return lockCommon(c, *f, proto::LockCmd::GET_LK, c.arg(2));
      case F_SETLK: return lockCommon(c, *f, proto::LockCmd::SET_LK, c.arg(2));
      case F_SETLKW:
        c.interruptible = true;  // A lock wait ends with a signal, as the kernel's does.
        c.interruptNode = f->node;  // two-phase: a lock already taken is not lost
        return lockCommon(c, *f, proto::LockCmd::SET_LK_W, c.arg(2));
      case F_OFD_GETLK: return lockCommon(c, *f, proto::LockCmd::OFD_GET_LK, c.arg(2));
      case F_OFD_SETLK: return lockCommon(c, *f, proto::LockCmd::OFD_SET_LK, c.arg(2));
      case F_OFD_SETLKW:
        c.interruptible = true;
        c.interruptNode = f->node;
        return lockCommon(c, *f, proto::LockCmd::OFD_SET_LK_W, c.arg(2));
      case F_GETLEASE: return leaseCommon(c, *f, fd, false, 0);
      case F_SETLEASE: return leaseCommon(c, *f, fd, true, static_cast<int>(c.arg(2)));
      case F_SETSIG:
      case F_GETSIG:
      case F_SETOWN:
      case F_GETOWN:
      case F_SETOWN_EX:
      case F_GETOWN_EX:
        return signalCommon(c, *f, cmd);
      default:
        c.tracer.noteOnce(kj::str("fcntl", cmd),
                          kj::str("fcntl command ", cmd, " is not supported on remote fds yet ('",
                                  f->path, "'): answering EINVAL"));
        return done(-EINVAL);
    }
  }
  return local();
}

kj::Promise<Outcome> hFlock(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    int op = c.arg(1);
    int kind = op & ~LOCK_NB;
    if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) {
      return done(-EINVAL);
    }
    auto req = f->node.flockRequest();
    req.setExclusive(kind == LOCK_EX);
    req.setUnlock(kind == LOCK_UN);
    req.setNonBlock(op & LOCK_NB);
    c.interruptible = !(op & LOCK_NB);
    if (c.interruptible) {
      c.interruptNode = f->node;  // two-phase: a lock already taken is not lost
    }
    return resultOf(send(c, f->target, req));
  }
  return local();
}

// ---------------------------------------------------------------------------------------------
// cwd

kj::Promise<Outcome> setCwd(Call& c, AgentLink& target, proto::Node::Client dir) {
  auto check = asCaller(c, target, dir).chdirCheckRequest();
  Task& task = c.task;
  c.target = &target;
  return check.send().then([&task, &target, dir](auto reply) mutable -> Outcome {
    if (reply.getResult() == 0) {
      rememberCwd(kj::addRef(*task.fs), target, kj::mv(dir));
      task.fs->side = &target;
    }
    return Complete{reply.getResult()};
  });
}

// A chdir that the kernel performs here moves the cwd to this side once it succeeds.
Outcome localChdir(Call& c) {
  Task& task = c.task;
  return RunLocalThen{[&task](int64_t ret) {
    if (ret == 0) {
      task.fs->side = nullptr;
    }
    return ret;
  }};
}

kj::Promise<Outcome> hChdir(Call& c) {
  auto where = resolvePath(c, AT_FDCWD, c.arg(0));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return localChdir(c); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      auto req = asCaller(c, *r.target, kj::mv(r.dir)).openAtRequest();
      // chdir("/proc/self/fd/N") of a remote directory fd: that directory itself.
      req.setPath(bytes(r.self ? kj::StringPtr(".") : r.path.asPtr()));
      auto how = req.initHow();
      how.setAccess(proto::AccessMode::PATH);
      how.setDirectory(true);
      auto target = r.target;
      return send(c, *target, req).then([&c, target](auto reply) -> kj::Promise<Outcome> {
        if (reply.getResult() < 0) {
          return done(reply.getResult());
        }
        return setCwd(c, *target, reply.getNode());
      });
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hFchdir(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    // The cwd needs its own open directory: the program may close the fd right after.
    auto req = f->node.openAtRequest();
    req.setPath(bytes("."));
    auto how = req.initHow();
    how.setAccess(proto::AccessMode::PATH);
    how.setDirectory(true);
    auto target = &f->target;
    return send(c, *target, req).then([&c, target](auto reply) -> kj::Promise<Outcome> {
      if (reply.getResult() < 0) {
        return done(reply.getResult());
      }
      return setCwd(c, *target, reply.getNode());
    });
  }
  return localChdir(c);
}

kj::Promise<Outcome> hGetcwd(Call& c) {
  if (c.task.fs->side == nullptr) {
    return local();
  }
  AgentLink& target = *c.task.fs->side;
  uint64_t buf = c.arg(0), size = c.arg(1);
  auto req = cwdNode(c.task, target).pathRequest();
  return send(c, target, req).then([&c, buf, size](auto reply) -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    auto path = reply.getPath();
    if (path.size() + 1 > size) {
      return Complete{-ERANGE};
    }
    auto out = kj::heapArray<kj::byte>(path.size() + 1);
    memcpy(out.begin(), path.begin(), path.size());
    out[path.size()] = 0;
    return Complete{putBytes(c, buf, out, out.size())};
  });
}

const HandlerEntry FD_HANDLERS[] = {
    {SYS_open, hOpen},
    {SYS_creat, hCreat},
    {SYS_openat, hOpenat},
    {SYS_openat2, hOpenat2},
    {SYS_close, hClose},
    {SYS_dup, hDup},
    {SYS_dup2, hDup2},
    {SYS_dup3, hDup3},
    {SYS_close_range, hCloseRange},
    {SYS_getdents64, hGetdents64},
    {SYS_fcntl, hFcntl},
    {SYS_flock, hFlock},
    {SYS_chdir, hChdir},
    {SYS_fchdir, hFchdir},
    {SYS_getcwd, hGetcwd},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> fdHandlers() { return FD_HANDLERS; }

}  // namespace sb::handler
