// NodeImpl, part 3: record locks (fcntl F_SETLK/F_SETLKW/F_GETLK and their OFD forms, flock)
// as B's kernel sees them, with one lock owner per traced process (PITFALLS #18).

#include "node.h"

#include <sys/ioctl.h>

#include <poll.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <capnp/orphan.h>
#include <kj/debug.h>

#include "host_wire.h"
#include "lease_breaks.h"

namespace sb {

kj::Maybe<LockOwner&> SessionState::lockOwner(int32_t owner, int64_t& error) {
  error = 0;
  auto it = lockOwners.find(owner);
  if (it != lockOwners.end()) {
    return *it->second;
  }
  if (lockOwners.size() >= MAX_LOCK_OWNERS) {
    error = -ENOLCK;
    return nullptr;
  }
  auto made = kj::refcounted<LockOwner>(agent.executor.getTimer(), error);
  if (error < 0) {
    return nullptr;
  }
  LockOwner& result = *made;
  lockOwners.emplace(owner, kj::mv(made));
  return result;
}

void SessionState::releaseOwner(int32_t owner) {
  // Calls of the owner still in flight hold a reference: the owner ends with the last of them.
  lockOwners.erase(owner);
}

int32_t SessionState::ownerOfConflict(int fd, int32_t requester, const struct flock& conflict) {
  struct stat st;
  if (fstat(fd, &st) < 0) {
    return -1;
  }
  int64_t start = conflict.l_start;
  int64_t end = conflict.l_len == 0 ? -1 : conflict.l_start + conflict.l_len - 1;
  for (auto& [id, owner] : lockOwners) {
    if (id != requester && owner->holdsOverlap(st.st_dev, st.st_ino, start, end)) {
      return id;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Locks
//
// POSIX record locks (F_GETLK/F_SETLK/F_SETLKW) run on the traced process's LockOwner, on its
// own dup of this node's description (lock_owner.h), so B's kernel sees each process as the
// owner it is: conflicts, merging, EDEADLK and the access-mode and SEEK_CUR rules are its own.
// OFD locks belong to the description: they run on the node's fd.

kj::Promise<void> NodeImpl::lock(LockContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  int64_t cmd = lockCmdToHost(params.getCmd());
  struct flock lk;
  int64_t bad = f < 0 ? f : cmd < 0 ? cmd : flockToHost(params.getLock(), lk);
  if (bad < 0) {
    context.getResults().setResult(bad);
    return kj::READY_NOW;
  }
  int32_t ownerId = params.getOwner();
  bool posix = cmd == F_GETLK || cmd == F_SETLK || cmd == F_SETLKW;
  auto answer = [this, f, ownerId, posix](LockResults::Builder results, int64_t result,
                                          struct flock& got) {
    // A lock one of our owners holds carries the agent's pid (the thread that took it): name
    // the traced process instead, as its kernel on A would.
    if (posix && result >= 0 && got.l_type != F_UNLCK && got.l_pid == getpid()) {
      got.l_pid = session->ownerOfConflict(f, ownerId, got);
    }
    results.setResult(result);
    flockFromHost(got, results.initLock());
  };
  if (!posix) {
    if (cmd == F_OFD_SETLKW) {
      context.allowCancellation();
      return runBlocking([cmd, lk](int fd) mutable {
               WorkResult w;
               w.result = sysResult(fcntl(fd, int(cmd), &lk));
               w.lock = lk;
               return w;
             })
          .then([context, answer](WorkResult&& w) mutable {
            answer(context.getResults(), w.result, w.lock);
          });
    }
    int64_t result = sysResult(fcntl(f, int(cmd), &lk));
    answer(context.getResults(), result, lk);
    return kj::READY_NOW;
  }
  int64_t error;
  LockOwner* owner;
  KJ_IF_MAYBE(o, session->lockOwner(ownerId, error)) {
    owner = o;
  } else {
    context.getResults().setResult(error);
    return kj::READY_NOW;
  }
  const FdRef& node = *KJ_ASSERT_NONNULL(fd);
  owner->hold(node);
  if (cmd == F_SETLKW) {
    context.allowCancellation();
  }
  // The work borrows the owner and the node: the promise keeps the owner, whose destructor
  // waits for its workers, and the owner keeps the node's fd (hold()).
  return runTracked(
             [owner, &node, cmd, lk]() mutable {
               WorkResult w;
               int64_t own = owner->fdFor(node);
               w.result = own < 0 ? own : sysResult(fcntl(int(own), int(cmd), &lk));
               w.lock = lk;
               return w;
             },
             owner->executor())
      .then([context, answer](WorkResult&& w) mutable {
        answer(context.getResults(), w.result, w.lock);
      })
      .attach(kj::addRef(*owner));
}

kj::Promise<void> NodeImpl::releaseLocks(ReleaseLocksContext context) {
  int f = fdOrError();
  struct stat st;
  if (f < 0 || fstat(f, &st) < 0) {
    context.getResults().setResult(f < 0 ? f : -int64_t(errno));
    return kj::READY_NOW;
  }
  context.getResults().setResult(0);
  auto it = session->lockOwners.find(context.getParams().getOwner());
  if (it == session->lockOwners.end()) {
    return kj::READY_NOW;
  }
  LockOwner& owner = *it->second;
  // Closing the owner's dups drops its locks on the file; the answer waits for it, so that the
  // program's next call (another process's lock) finds them gone.
  return owner.executor()
      .run([&owner, dev = st.st_dev, ino = st.st_ino]() {
        owner.closeFile(dev, ino);
        return WorkResult();
      })
      .then([&owner](WorkResult&&) { owner.releaseClosed(); })
      .attach(kj::addRef(owner));
}

// Leases (schema: Node.lease). B's kernel makes every check; a lease it grants is held here on
// the node's description, and its break travels to the client through LeaseBreaks. Without a
// holder to tell (an older client) or a way to hear breaks, a granted lease is given back at
// once and refused with EINVAL: a break nobody answers would make every other opener on B wait
// lease-break-time (45 s) for nothing.
kj::Promise<void> NodeImpl::lease(LeaseContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  if (f < 0) {
    results.setResult(f);
    return kj::READY_NOW;
  }
  if (!params.getSet()) {
    // During a break B answers the type the lease is being broken to.
    int held = fcntl(f, F_GETLEASE);
    results.setResult(held < 0 ? -int64_t(errno) : 0);
    results.setType(held == F_RDLCK   ? proto::LockType::READ
                    : held == F_WRLCK ? proto::LockType::WRITE
                                      : proto::LockType::UNLOCK);
    return kj::READY_NOW;
  }
  int type = params.getType() == proto::LockType::READ    ? F_RDLCK
             : params.getType() == proto::LockType::WRITE ? F_WRLCK
                                                          : F_UNLCK;
  kj::Maybe<LeaseBreaks&> breaks = params.hasHolder() ? session->agent.leaseBreaks : nullptr;
  if (type != F_UNLCK) {
    KJ_IF_MAYBE(b, breaks) {
      // Before the lease exists, so that its first break already comes as the queued signal.
      int64_t prepared = b->prepare(f);
      if (prepared < 0) {
        results.setResult(prepared);
        return kj::READY_NOW;
      }
    }
  }
  int64_t result = sysResult(fcntl(f, F_SETLEASE, type));
  if (result >= 0 && type == F_UNLCK) {
    forgetLease();
  } else if (result >= 0) {
    KJ_IF_MAYBE(b, breaks) {
      result = b->hold(f, params.getHolder());
      leaseHeld = result >= 0;
    } else {
      result = -EINVAL;
    }
    if (result < 0) {
      // Nobody would hear its break: given back before anything else runs on this loop. An
      // open on B that met it meanwhile broke it with SIGIO to the agent, which ignores SIGIO
      // (executor.cc).
      fcntl(f, F_SETLEASE, F_UNLCK);
      forgetLease();
    }
  }
  results.setResult(result);
  return kj::READY_NOW;
}

void NodeImpl::forgetLease() {
  if (!leaseHeld) {
    return;
  }
  leaseHeld = false;
  KJ_IF_MAYBE(b, session->agent.leaseBreaks) {
    KJ_IF_MAYBE(f, fd) {
      b->drop((*f)->get());
    }
  }
}

kj::Promise<void> NodeImpl::flock(FlockContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  int op = params.getUnlock() ? LOCK_UN : params.getExclusive() ? LOCK_EX : LOCK_SH;
  if (params.getNonBlock()) {
    op |= LOCK_NB;
  }
  if (op == LOCK_SH || op == LOCK_EX) {
    context.allowCancellation();
    return runBlocking([op](int fd) {
      WorkResult w;
      w.result = sysResult(::flock(fd, op));
      return w;
    }).then([context](WorkResult&& w) mutable { context.getResults().setResult(w.result); });
  }
  context.getResults().setResult(sysResult(::flock(f, op)));
  return kj::READY_NOW;
}

}  // namespace sb
