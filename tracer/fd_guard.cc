#include "fd_guard.h"

#include <algorithm>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include "errno_names.h"
#include "ptrace.h"
#include "tracer.h"

namespace sb {

FdGuards::Plan FdGuards::plan(pid_t tgid, pid_t tid, const std::set<int>& needed) {
  Plan out;
  Process& p = processes[tgid];
  if (p.allInstalled) {
    return out;
  }
  bool allPending = p.pending.count(ALL) > 0;
  if (!p.wantAll && needed.empty()) {
    return out;
  }
  if (allPending) {
    out.wait = true;  // The every-fd guard is on its way: it covers whatever this thread needs.
    return out;
  }
  kj::Vector<int> fresh;
  bool othersPending = false;
  if (!p.wantAll) {
    for (int block : needed) {
      if (p.installed.count(block) > 0) {
        continue;
      }
      if (p.pending.count(block) > 0) {
        othersPending = true;
      } else {
        fresh.add(block);
      }
    }
  }
  size_t blocks = p.installed.size() + p.pending.size() + fresh.size();
  if (p.wantAll || (fresh.size() > 0 && blocks > MAX_GUARDS)) {
    // A long stack of guards would slow every syscall: the last one traps every fast call.
    out.inject.add(ALL);
    p.pending[ALL] = tid;
    return out;
  }
  if (fresh.size() > 0) {
    for (int block : fresh) {
      p.pending[block] = tid;
    }
    out.inject = kj::mv(fresh);
    return out;  // Blocks others are installing: planned again when this injection is over.
  }
  out.wait = othersPending;
  return out;
}

kj::Vector<pid_t> FdGuards::release(Process& p) {
  kj::Vector<pid_t> again = kj::mv(p.waiters);
  p.waiters = kj::Vector<pid_t>();
  return again;
}

kj::Vector<pid_t> FdGuards::injected(pid_t tgid, pid_t tid) {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return {};
  }
  Process& p = it->second;
  for (auto e = p.pending.begin(); e != p.pending.end();) {
    if (e->second != tid) {
      ++e;
      continue;
    }
    if (e->first == ALL) {
      p.allInstalled = true;
    } else {
      p.installed.insert(e->first);
    }
    e = p.pending.erase(e);
  }
  return release(p);
}

void FdGuards::addWaiter(pid_t tgid, pid_t tid) {
  auto& waiters = processes[tgid].waiters;
  if (std::find(waiters.begin(), waiters.end(), tid) == waiters.end()) {
    waiters.add(tid);
  }
}

kj::Vector<pid_t> FdGuards::threadGone(pid_t tgid, pid_t tid) {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return {};
  }
  Process& p = it->second;
  bool freed = false;
  for (auto e = p.pending.begin(); e != p.pending.end();) {
    if (e->second == tid) {
      e = p.pending.erase(e);
      freed = true;
    } else {
      ++e;
    }
  }
  kj::Vector<pid_t> rest;
  for (pid_t w : p.waiters) {
    if (w != tid) {
      rest.add(w);
    }
  }
  p.waiters = kj::mv(rest);
  return freed ? release(p) : kj::Vector<pid_t>();
}

void FdGuards::inherit(pid_t parent, pid_t child, bool sharesFiles) {
  Process& from = processes[parent];
  Process& to = processes[child];
  to = Process();
  to.installed = from.installed;
  to.allInstalled = from.allInstalled;
  if (sharesFiles) {
    from.wantAll = true;
    to.wantAll = true;
  }
}

bool FdGuards::installed(pid_t tgid, int block) const {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return false;
  }
  return it->second.allInstalled || (block != ALL && it->second.installed.count(block) > 0);
}

// ---------------------------------------------------------------------------------------------
// The Tracer's side: planning at exit stops, injecting the guard's seccomp(2) into the tracee.

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

void Tracer::guardThenResume(Task& task, user_regs_struct& regs) {
  // Attach mode has no filter: every call stops anyway. A Sequence's steps run under
  // PTRACE_SYSCALL, and its last one plans.
  if (!attachMode_ && task.injecting == nullptr && task.sequence == nullptr) {
    std::set<int> needed;
    int limit = filter.fastLimit();
    task.fds->forEach([&](int fd, RemoteFile&) {
      if (fd < limit) {
        needed.insert(fd / SeccompFilter::BLOCK);
      }
    });
    auto plan = guards.plan(task.tgid, task.tid, needed);
    if (plan.inject.size() > 0) {
      injectGuard(task, regs, plan.inject);
    } else if (plan.wait) {
      // Another thread's guard for a block of ours is on its way: held here until it is in
      // effect (replanGuards).
      setRegs(task.tid, regs);
      guards.addWaiter(task.tgid, task.tid);
      return;
    }
  }
  setRegs(task.tid, regs);
  resume(task);
}

// Threads held for a guard that is now in effect (or whose injector is gone): each plans again,
// still in its exit stop with its answer in its registers.
void Tracer::replanGuards(kj::Vector<pid_t> tids) {
  for (pid_t tid : tids) {
    KJ_IF_MAYBE(task, findTask(tid)) {
      user_regs_struct regs;
      if (getRegs(tid, regs)) {
        guardThenResume(*task, regs);
      }
    }
  }
}

// Turns this syscall-exit stop into a seccomp(SET_MODE_FILTER, TSYNC, guard) call: the
// instruction pointer goes back to the syscall instruction, and the program's own registers
// (with its result) come back once the injected call is done (onInjectedSeccomp). Like a
// restarted syscall, a signal handler may run first; the filter bytes are written only at the
// injected call's own seccomp stop, so a handler's stack frame cannot spoil them.
void Tracer::injectGuard(Task& task, user_regs_struct& regs, kj::ArrayPtr<const int> blocks) {
  bool all = blocks.size() == 1 && blocks[0] == FdGuards::ALL;
  task.injectInsns = SeccompFilter::blockGuard(all ? nullptr : blocks);
  task.injecting = regs;
  size_t bytes = task.injectInsns.size() * sizeof(sock_filter);
  uint64_t insns = abi::scratchBelow(regs, bytes + 64);
  task.injectProg = insns - 32;
  // The `syscall` instruction that just returned runs again, as seccomp(2).
  abi::setArg(regs, 0, SECCOMP_SET_MODE_FILTER);
  abi::setArg(regs, 1, SECCOMP_FILTER_FLAG_TSYNC);
  abi::setArg(regs, 2, task.injectProg);
  abi::reissueSyscall(regs, SYS_seccomp);
}

// At a seccomp stop: whether it is the injected guard call (then it is handled here).
bool Tracer::onInjectedSeccomp(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(saved, task.injecting) {
    if (abi::syscallNr(regs) != SYS_seccomp || abi::pc(regs) != abi::pc(*saved) ||
        abi::arg(regs, 2) != task.injectProg) {
      return false;
    }
    auto program = kj::mv(task.injectInsns);
    uint64_t insns = task.injectProg + 32;
    struct sock_fprog fprog = {static_cast<unsigned short>(program.size()),
                               reinterpret_cast<sock_filter*>(insns)};
    TraceeMemory mem(task.tid);
    bool written = mem.write(insns, program.asBytes()) == 0 &&
                   mem.writeValue(task.injectProg, fprog) == 0;
    auto restore = *saved;
    task.injecting = nullptr;
    if (!written) {
      auto skip = regs;
      abi::skipSyscall(skip);
      abi::setResult(skip, -EFAULT);
      setRegs(task.tid, skip);
    }
    task.atExit = [this, &task, restore](user_regs_struct& r) {
      if (abi::result(r) != 0) {
        noteOnce("guard", kj::str("cannot guard the program's remote fds (seccomp: ",
                                  formatSysResult(abi::result(r)),
                                  "): its calls on them may reach the local placeholder (EBADF)"));
      }
      r = restore;
      // In effect now for every thread of the process (TSYNC), or failed for good: the threads
      // that waited for it go on.
      replanGuards(guards.injected(task.tgid, task.tid));
    };
    resume(task);
    return true;
  }
  return false;
}

}  // namespace sb
