// FdGuards: which blocks of fast-call fd numbers trap in each traced process (the seccomp guard
// filters stacked on it, SeccompFilter::blockGuard), and who may run while one is on its way.
//
// The launch filter lets fast calls (read, write, fstat ... on an fd) run untrapped. Once a
// process holds a remote fd, a guard for that fd's block of numbers must be in effect before any
// thread can use the fd, or the call reaches the O_PATH placeholder and fails with EBADF
// (DESIGN D4). A guard is stacked with seccomp(TSYNC) from one thread, at the syscall-exit stop
// of the call that made the fd; it takes effect only when that injected call has run.
//
// The rule (issue 21): a thread returns to its program only when every block it needs is
// INSTALLED. A block another thread is still installing (PENDING) makes it WAIT, held in its
// exit stop until that injection ends; a block no one is installing it injects itself. Marking
// a block covered when its injection merely started let a second thread run on an unguarded
// block: its write on the fd its own open had just returned failed with EBADF.
//
// Pure bookkeeping: no ptrace here (the Tracer injects and resumes), so unit tests can play
// any interleaving.

#pragma once

#include <kj/vector.h>
#include <map>
#include <set>
#include <sys/types.h>
#include <unordered_map>

namespace sb {

class FdGuards {
 public:
  // The most guards stacked on one process before the last one, which traps every fast call:
  // each guard runs on every syscall.
  static constexpr size_t MAX_GUARDS = 6;
  // The "block" that stands for every fast call on every fd.
  static constexpr int ALL = -1;

  // What a thread at an exit stop must do before it returns to its program.
  struct Plan {
    // Inject a guard for these blocks now (ALL alone: the guard for every fd). Empty: none.
    kj::Vector<int> inject;
    // Wait for another thread's injection (only when `inject` is empty).
    bool wait = false;
  };

  // `needed`: the blocks of the thread's remote fds below the fast limit, ascending. Records the
  // blocks of `inject` as PENDING with `tid` as their injector.
  Plan plan(pid_t tgid, pid_t tid, const std::set<int>& needed);
  // The thread's injection is over (its seccomp call returned; `ok` unless it failed). A failed
  // guard counts as installed all the same: it is reported once, never retried in a loop.
  // Returns the threads that waited for it: each must plan again.
  kj::Vector<pid_t> injected(pid_t tgid, pid_t tid);
  // Holds `tid` until the blocks it waits for are settled.
  void addWaiter(pid_t tgid, pid_t tid);
  // A thread ended: its injection, if any, will never finish (its blocks are free for another
  // thread to inject), and it waits for nothing. Returns the threads to plan again.
  kj::Vector<pid_t> threadGone(pid_t tgid, pid_t tid);
  // fork/clone of a new process: it inherits the filters in effect, never one still on its way.
  // `sharesFiles` (CLONE_FILES without CLONE_THREAD): a remote fd may appear in its table
  // through the other process, whose guards it does not get: both trap every fast call.
  void inherit(pid_t parent, pid_t child, bool sharesFiles);
  void processGone(pid_t tgid) { processes.erase(tgid); }

  // For tests and -v: whether `block` (or ALL) is in effect for the process.
  bool installed(pid_t tgid, int block) const;

 private:
  struct Process {
    std::set<int> installed;
    bool allInstalled = false;
    // Blocks being installed, by the injecting thread (ALL for the every-fd guard).
    std::map<int, pid_t> pending;
    bool wantAll = false;
    kj::Vector<pid_t> waiters;
  };
  std::unordered_map<pid_t, Process> processes;

  static kj::Vector<pid_t> release(Process& p);
};

}  // namespace sb
