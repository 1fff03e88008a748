// LockOwner: one traced process as the holder of POSIX record locks on B (issue 16).
//
// B's kernel keys a POSIX lock (F_SETLK/F_SETLKW/F_GETLK, not the OFD kind) by the fd table of
// the thread that takes it (fl_owner = current->files). By that key it merges one process's
// locks, drops them all when the process closes any fd of the file, and detects deadlocks: a
// F_SETLKW that would wait for an owner that already waits, through a chain, for the caller
// fails with EDEADLK (fs/locks.c posix_locks_deadlock). Only for these locks: OFD locks belong
// to a description, which never waits, so the kernel skips them. One agent serving many
// traced processes therefore needs one fd table per traced process, or B's kernel cannot tell
// the processes apart and a lock cycle between them hangs forever.
//
// So each traced process that takes a POSIX lock on a remote file gets, on the agent:
//   - a home thread that leaves the agent's fd table (close_range(3, ~0U, CLOSE_RANGE_UNSHARE):
//     a table of its own holding only fds 0-2, so a log line still reaches stderr) and keeps
//     it alive;
//   - an Executor whose workers the home thread starts (a new thread shares its creator's
//     table): every lock call of the process runs there, a F_SETLKW blocked on one worker while
//     another serves the process's other threads, interruptible like any worker call;
//   - in that table, a dup of each description the process locked through (pidfd_getfd on the
//     agent's own pid: the same open file description, so the kernel checks the access mode and
//     measures SEEK_CUR from the program's own fd, as it would locally).
// Closing those dups (closeFile: the process closed an fd of the file) drops the process's
// locks on the file; ending the owner (the process exited, the session ended) ends the threads,
// and with the last of them the table and every lock in it.
//
// Why not helper processes: a fork of the multithreaded agent per traced process, fds passed
// over sockets and a protocol between them, for what a thread with its own table gives.
//
// Threading: every method is called on the event loop thread. The dups are made, used and
// closed only on the owner's workers (a number in the owner's table means something else, or
// nothing, in the agent's). The nodes' fds they were dup'ed from stay open while the owner
// holds them (`held`), so a worker's pidfd_getfd never meets a reused number.

#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <kj/async.h>
#include <kj/function.h>
#include <kj/refcount.h>

#include "executor.h"

namespace sb {

class FdRef;

class LockOwner final: public kj::Refcounted, private ThreadStarter {
public:
  // Starts the home thread and waits until it has its own table; -errno in `error` (and the
  // owner unusable) when the kernel refused.
  LockOwner(kj::Timer& timer, int64_t& error);
  // Ends the workers (a blocked wait is interrupted) and the home thread: the table goes with
  // them, and B's kernel drops the process's locks.
  ~LockOwner() noexcept(false);
  KJ_DISALLOW_COPY(LockOwner);

  // The executor to run `work` on: its workers share the owner's table.
  Executor& executor() { return *workers; }

  // On a worker: the owner's fd for `node`'s description (made on first use; -errno if the
  // kernel refuses). `node` must be in `held` (hold()).
  int64_t fdFor(const FdRef& node);
  // Loop thread, before a call's work is queued: keeps `node`'s fd open while the owner may
  // have (or make) a dup of it.
  void hold(const FdRef& node);

  // On a worker: closes the owner's dups of the file (dev, ino), which drops its POSIX locks
  // on it, as close(2) of any fd of the file does.
  void closeFile(dev_t dev, ino_t ino);
  // Loop thread: lets go of the nodes whose dups closeFile closed.
  void releaseClosed();

  // Loop thread: whether the owner holds a lock on the file (dev, ino) overlapping
  // [start, end] (end -1: to EOF), from the "lock:" lines of its table's fdinfo: F_GETLK names
  // the holder by its traced process.
  bool holdsOverlap(dev_t dev, ino_t ino, int64_t start, int64_t end);

private:
  struct Dup {
    dev_t dev;
    ino_t ino;
    int fd;
  };

  std::thread home;
  pid_t homeTid = 0;
  int pidfd = -1;  // the agent's own pid, in the owner's table

  std::mutex mutex;  // guards what follows, between the loop, the home thread and workers
  std::condition_variable wake;
  bool ready = false;
  bool stopping = false;
  std::function<void()> toStart;  // a worker the home thread is to start (empty: none)
  kj::Maybe<std::thread> started;
  std::map<const FdRef*, Dup> dups;
  std::vector<const FdRef*> closed;  // by closeFile, for releaseClosed

  // Loop thread only.
  std::map<const FdRef*, kj::Own<const FdRef>> held;
  kj::Own<Executor> workers;

  void homeMain(int64_t& error);
  std::thread start(std::function<void()> body) override;
};

}  // namespace sb
