// LeaseSignals: the signal a lease break on B raises in the program (issue 16).
//
// Natively, when another process breaks a lease, the kernel signals the owner of the lease's
// description: F_SETSIG's signal with si_code POLL_MSG, si_band and si_fd (the fd the lease
// was set through), or with no F_SETSIG a plain SIGIO (SI_KERNEL). The owner is what
// F_SETOWN/F_SETOWN_EX set, which F_SETLEASE itself sets to the calling process
// (fs/locks.c lease_setup). For a remote fd B's kernel signals the agent instead; the agent
// calls the lease's LeaseHolder (schema), and here that becomes the program's signal.
//
// F_SETSIG, F_SETOWN and their getters therefore act on a remote fd's description here, in
// FileSignals: B never needs them (the agent sets its own), and the program's pids mean
// nothing there. O_ASYNC readiness signals of remote fds are not raised (docs/user-guide.md).
//
// Another process may not queue a signal with a kernel si_code (rt_sigqueueinfo refuses a
// si_code >= 0 from anyone but the target itself), so the signal goes out as SI_QUEUE with a
// cookie in si_value, and at its signal-delivery-stop the tracer puts the kernel's siginfo in
// its place (PTRACE_SETSIGINFO). A program that takes the signal with sigwaitinfo or a
// signalfd, where no delivery stop happens, sees the SI_QUEUE form.
//
// Threading: the tracer's event-loop thread only (D1: it owns every ptrace call).

#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>

#include <map>

#include <kj/function.h>
#include <kj/refcount.h>

#include "splitbrain.capnp.h"

namespace sb {

// The fcntl signal state of one remote open file description, shared by its fds (dup, fork)
// like the kernel's f_owner.
struct FileSignals: public kj::Refcounted {
  int sig = 0;                  // F_SETSIG; 0: SIGIO without siginfo
  int ownerType = F_OWNER_TID;  // F_SETOWN_EX type (a fresh description's: TID, pid 0)
  pid_t owner = 0;              // 0: nobody is signalled
  int leaseFd = -1;             // the program's fd the lease was set through: si_fd
  bool open = true;             // cleared when the description's last fd goes
};

// One F_SETLEASE that takes a lease, by process `tgid` through fd `fd`. Once B grants it, that
// process is the description's owner and that fd the one si_fd names (fs/locks.c lease_setup).
// B's answer says so, or the lease's first break, should the agent's call to the holder be
// handled before the answer's continuation.
struct LeaseTaken: public kj::Refcounted {
  LeaseTaken(kj::Own<FileSignals> file, pid_t tgid, int fd)
      : file(kj::mv(file)), tgid(tgid), fd(fd) {}
  kj::Own<FileSignals> file;
  pid_t tgid;
  int fd;
  bool granted = false;
  // B granted it: the owner and si_fd become the taker's (once).
  void grant();
};

// fcntl commands on FileSignals: the kernel's checks and answers (fs/fcntl.c). Each returns
// the syscall's result or -errno. `exists(pid)` says whether a pid (or, negated, a process
// group) exists, for ESRCH.
int64_t setSignal(FileSignals& s, uint64_t arg);
int64_t setOwner(FileSignals& s, int64_t who, bool (*exists)(pid_t));
int64_t getOwner(const FileSignals& s);
int64_t setOwnerEx(FileSignals& s, int type, pid_t pid, bool (*exists)(pid_t));

class LeaseSignals {
 public:
  // `tgidOf(tid)`: the process of a traced thread, or 0 when it is not traced.
  explicit LeaseSignals(kj::Function<pid_t(pid_t)> tgidOf): tgidOf(kj::mv(tgidOf)) {}
  KJ_DISALLOW_COPY(LeaseSignals);

  // The holder for the lease `taken` asks for (Node.lease `holder`): a break raises the signal.
  proto::LeaseHolder::Client holderFor(kj::Own<LeaseTaken> taken);
  // What a break of a lease on `s` raises, where, as the kernel would (send_sigio_to_task).
  void raise(const FileSignals& s, uint32_t band);
  // At a signal-delivery-stop of `tid` for `sig`: the siginfo of a break this raised is put
  // in place of the queued one.
  void rewrite(pid_t tid, int sig);

  // The siginfo the kernel gives for a break of a lease on `s` (for tests).
  static siginfo_t kernelInfo(const FileSignals& s, uint32_t band);

 private:
  kj::Function<pid_t(pid_t)> tgidOf;
  // By cookie. A signal never met at a delivery stop (blocked and taken by sigwaitinfo) leaves
  // its entry: the oldest go past MAX_PENDING.
  std::map<int, siginfo_t> pending;
  int nextCookie = 0;
  static constexpr size_t MAX_PENDING = 256;
};

}  // namespace sb
