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

namespace sb {

namespace {

// Whether the description `fd` holds a lock overlapping [start, end] (end -1: to EOF), from the
// "lock:" lines of /proc/self/fdinfo/FD, e.g. "lock:\t1: OFDLCK  ADVISORY  WRITE -1 fd:01:42 0 EOF".
bool holdsOverlap(int fd, int64_t start, int64_t end) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
  FILE* f = fopen(path, "re");
  if (f == nullptr) {
    return false;
  }
  KJ_DEFER(fclose(f));
  char line[512];
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "lock:", 5) != 0) {
      continue;
    }
    char kind[32], mode[32], type[32], dev[64], endText[32];
    long long pid, from;
    if (sscanf(line, "lock: %*d: %31s %31s %31s %lld %63s %lld %31s", kind, mode, type, &pid, dev,
               &from, endText) != 7) {
      continue;
    }
    int64_t to = strcmp(endText, "EOF") == 0 ? -1 : strtoll(endText, nullptr, 10);
    bool beforeEnd = end < 0 || from <= end;
    bool afterStart = to < 0 || to >= start;
    if (beforeEnd && afterStart) {
      return true;
    }
  }
  return false;
}

}  // namespace

int32_t SessionState::ownerOfConflict(int fd, int32_t requester, const struct flock& conflict) {
  struct stat st;
  if (fstat(fd, &st) < 0) {
    return -1;
  }
  int64_t start = conflict.l_start;
  int64_t end = conflict.l_len == 0 ? -1 : conflict.l_start + conflict.l_len - 1;
  for (auto& [key, lockFd] : posixLocks) {
    if (key.dev == st.st_dev && key.ino == st.st_ino && key.owner != requester &&
        holdsOverlap(lockFd->get(), start, end)) {
      return key.owner;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Locks
//
// PITFALLS #18: POSIX record locks (F_SETLK/F_SETLKW) belong to a *process*, and this agent is
// one process for all its sessions and all their tracee processes. Two tracee processes locking
// the same file through one agent therefore share one lock owner (neither blocks the other), and
// closing any agent fd on the file drops the locks. Mapping them to OFD locks that mirror the
// per-process rules is the tracer's decision to make later; the agent performs what it is asked.

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
  // POSIX commands run as OFD locks on the owner's own description (SessionState::lockFdFor).
  int32_t owner = params.getOwner();
  bool posix = cmd == F_GETLK || cmd == F_SETLK || cmd == F_SETLKW;
  kj::Own<const FdRef> lockRef = kj::atomicAddRef(*KJ_ASSERT_NONNULL(fd));
  if (posix) {
    // The kernel checks the lock type against the fd it was given, not the owner's description.
    if (cmd != F_GETLK) {
      int mode = fcntl(f, F_GETFL) & O_ACCMODE;
      if ((lk.l_type == F_RDLCK && mode == O_WRONLY) || (lk.l_type == F_WRLCK && mode == O_RDONLY)) {
        context.getResults().setResult(-EBADF);
        return kj::READY_NOW;
      }
    }
    int64_t error;
    KJ_IF_MAYBE(ref, session->lockFdFor(f, owner, error)) {
      lockRef = kj::mv(*ref);
    } else if (error < 0) {
      context.getResults().setResult(error);
      return kj::READY_NOW;
    }
    if (lk.l_whence == SEEK_CUR) {
      // The owner's description has its own position: anchor the range at the node's.
      off_t pos = lseek(f, 0, SEEK_CUR);
      if (pos < 0) {
        context.getResults().setResult(-int64_t(errno));
        return kj::READY_NOW;
      }
      lk.l_start += pos;
      lk.l_whence = SEEK_SET;
    }
    cmd = cmd == F_GETLK ? F_OFD_GETLK : cmd == F_SETLK ? F_OFD_SETLK : F_OFD_SETLKW;
    lk.l_pid = 0;
  }
  auto answer = [this, f, owner, posix](LockResults::Builder results, int64_t result,
                                        struct flock& got) {
    if (posix && result >= 0 && got.l_type != F_UNLCK && got.l_pid == -1) {
      got.l_pid = session->ownerOfConflict(f, owner, got);
    }
    results.setResult(result);
    flockFromHost(got, results.initLock());
  };
  if (cmd == F_SETLKW || cmd == F_OFD_SETLKW) {
    context.allowCancellation();
    // The worker holds its own reference: a release meanwhile cannot close the fd under it.
    return runTracked([cmd, lk, ref = kj::mv(lockRef)]() mutable {
             WorkResult w;
             w.result = sysResult(fcntl(ref->get(), int(cmd), &lk));
             w.lock = lk;
             return w;
           })
        .then([context, answer](WorkResult&& w) mutable {
          answer(context.getResults(), w.result, w.lock);
        });
  }
  int64_t result = sysResult(fcntl(lockRef->get(), int(cmd), &lk));
  answer(context.getResults(), result, lk);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::releaseLocks(ReleaseLocksContext context) {
  int f = fdOrError();
  if (f >= 0) {
    session->releaseLocks(f, context.getParams().getOwner());
  }
  context.getResults().setResult(f < 0 ? f : 0);
  return kj::READY_NOW;
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
