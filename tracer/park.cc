// Parking: a remote call that may wait indefinitely (a FIFO read, a lock wait) must not leave
// its thread deaf to signals in a ptrace stop. After PARK_AFTER the thread waits in pause(2)
// instead; a signal then interrupts the call as the kernel would (restart or EINTR), in two
// phases when the agent can interrupt it (Node.interrupt), and an answer that must run here
// after all is replayed when the restarted syscall traps again.

#include "tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "errno_names.h"
#include "proc_status.h"
#include "ptrace.h"

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

namespace {

// How long an interruptible remote call holds its thread in the seccomp stop before parking it
// (Tracer::park): longer than a fast answer takes, short enough that a signal is not noticed late.
constexpr auto PARK_AFTER = 2 * kj::MILLISECONDS;

// How long a two-phase interrupt (onParkedSignal) waits for the interrupted call's answer before
// it drops the call as an agent without Node.interrupt makes it do.
constexpr auto INTERRUPT_WAIT = 500 * kj::MILLISECONDS;

}  // namespace

// A remote call's answer that is -EINTR although sbrun interrupted nothing: another thread's
// signal interrupted every blocking call on the same node (Node.interrupt). The kernel never
// woke this call, so it must run again.
bool Call::wokenByOther(const Outcome& o) const {
  return target != nullptr && o.is<Complete>() && o.get<Complete>().ret == -EINTR &&
         progress == 0;
}

// Runs the trapped call again from its syscall instruction, so it traps anew and makes a new
// remote call. (Not with -ERESTARTNOINTR: the kernel acts on it only when a signal is pending.)
// At a seccomp stop the syscall is skipped; at a parked thread's stop the pause is over.
void Tracer::restartCall(Task& task) {
  Call& call = *task.call;
  auto regs = call.regs;
  bool atSeccompStop = !task.parked;
  task.parked = false;
  if (atSeccompStop) {
    abi::skipSyscall(regs);
  }
  abi::reissueSyscall(regs, abi::syscallNr(call.regs));
  setRegs(task.tid, regs);
  if (atSeccompStop && attachMode_) {
    // At a syscall-entry stop the kernel sets the result after skipping: set it at the exit stop.
    task.atExit = [nr = abi::syscallNr(call.regs)](user_regs_struct& r) { abi::setResult(r, nr); };
    resume(task);
    return;
  }
  if (atSeccompStop) {
    resume(task);
  }
}

// A thread held in a ptrace stop never sees its signals: a remote call that may wait forever (a
// FIFO read, a lock wait, a remote child's exit) would make it deaf to ^C and alarm(). So once
// such a call has taken PARK_AFTER, the thread waits in pause(2) instead, where a signal ends the
// wait as it would end the real call (onParkedSignal).
void Tracer::park(Task& task) {
  if (task.parked || task.pending == nullptr) {
    return;
  }
  auto regs = task.call->regs;
  if (task.call->parkMask != 0) {
    // Wait under the call's temporary signal mask, as ppoll/pselect6/epoll_pwait do.
    regs = abi::syscallRegs(regs, SYS_rt_sigsuspend, {task.call->parkMask, 8});
  } else {
    abi::setSyscallNr(regs, SYS_pause);
  }
  task.parked = true;  // Before resume(): a parked thread's pause must report its exit.
  setRegs(task.tid, regs);
  resume(task);
}

// A ptrace stop of a parked thread (PTRACE_SYSCALL is in effect for it): the entry of a
// restarted pause(2) goes on; at its exit the answer came (PTRACE_INTERRUPT), or something
// else woke it: a signal, whose delivery stop follows (onParkedSignal), or a stop. Without a
// signal the kernel restarts the pause, and the thread stays parked.
void Tracer::onParkedSyscallStop(Task& task) {
  if (ptrace::atSyscallEntry(task.tid)) {
    resume(task);
    return;
  }
  KJ_IF_MAYBE(outcome, task.parkedOutcome) {
    auto o = kj::mv(*outcome);
    task.parkedOutcome = nullptr;
    finishParked(task, kj::mv(o));
    resume(task);  // The interrupt stop follows; onStop resumes it.
    return;
  }
  resume(task);
}

// A signal is about to be delivered to a parked thread (its pause returned for it). As for a
// blocking call in the kernel: a signal the program ignores does not interrupt the call, nor
// does one a stub forwards to its remote process; an answer that came meanwhile completes the
// call before the signal is handled; anything else ends the call now, before the kernel's
// handle_signal reads the registers (restart or EINTR, as for its own calls).
void Tracer::onParkedSignal(Task& task, int sig) {
  if (forwardToRemote(task, sig)) {
    resume(task);
    return;
  }
  KJ_IF_MAYBE(outcome, task.parkedOutcome) {
    auto o = kj::mv(*outcome);
    task.parkedOutcome = nullptr;
    if (task.call->wokenByOther(o)) {
      interruptParked(task, sig);  // This signal interrupts it now.
      return;
    }
    finishParked(task, kj::mv(o));
    resume(task, sig);
    return;
  }
  // The kernel never lets a signal that does nothing interrupt a blocking call.
  if (ProcStatus::read(task.tid).ignores(sig)) {
    resume(task, sig);  // Discarded; the pause restarts, the remote call goes on.
    return;
  }
  KJ_IF_MAYBE(node, task.call->interruptNode) {
    AgentLink* target = task.call->target;
    if (target == nullptr || !target->away()) {
      // Two-phase: the agent interrupts the call, whose answer then says whether B's kernel had
      // already completed it (bytes received, a connection accepted: the call completes and the
      // signal is handled after it) or not (-EINTR: as below). The thread stays in this
      // delivery stop until then (settle -> finishInterrupt).
      task.interrupting = true;
      task.interruptSig = sig;
      auto failed = node->interruptRequest().send().ignoreResult().then(
          []() -> kj::Promise<void> { return kj::NEVER_DONE; },
          [](kj::Exception&&) -> kj::Promise<void> { return kj::READY_NOW; });
      task.interruptWait = failed.exclusiveJoin(timer().afterDelay(INTERRUPT_WAIT))
                               .then([this, &task]() { giveUpInterrupt(task); })
                               .eagerlyEvaluate(nullptr);
      return;
    }
  }
  // Cancel the remote call (the agent interrupts its worker) and let the kernel's restart logic
  // decide.
  task.pending = nullptr;
  interruptParked(task, sig);
}

// The two-phase interrupt got nothing (an old agent, a lost connection, no answer in time):
// drop the call as before, with the risk of losing an answer already on its way.
void Tracer::giveUpInterrupt(Task& task) {
  if (!task.interrupting) {
    return;
  }
  task.interrupting = false;
  task.pending = nullptr;
  interruptParked(task, task.interruptSig);
}

// The answer of a call the tracer interrupted (onParkedSignal), at the signal's delivery stop.
void Tracer::finishInterrupt(Task& task, Outcome outcome) {
  task.interrupting = false;
  task.interruptWait = nullptr;
  int sig = task.interruptSig;
  if (outcome.is<Complete>() && outcome.get<Complete>().ret == -EINTR) {
    interruptParked(task, sig);
    return;
  }
  // B's kernel completed the call first: it returns, and the signal is handled after it.
  finishParked(task, kj::mv(outcome));
  resume(task, sig);
}

// A parked call that `sig` interrupted (its remote call is over or dropped): let the kernel's
// restart logic decide: with an SA_RESTART handler or no handler the call starts again (and traps
// again); otherwise the program sees EINTR. A transfer that already moved bytes returns their
// count.
void Tracer::interruptParked(Task& task, int sig) {
  task.parked = false;
  task.parkTimer = nullptr;
  Call& call = *task.call;
  auto regs = call.regs;
  int64_t ret = call.progress > 0         ? call.progress
                : call.restartOnSignal ? -abi::ERESTARTSYS
                                       : -EINTR;
  KJ_IF_MAYBE(fn, call.onInterrupt) {
    ret = (*fn)(regs);
  }
  abi::setResult(regs, ret);
  setRegs(task.tid, regs);
  if (call.observation.get() != nullptr) {
    report(*call.observation, call.target, true, ret < -511 && ret > -4096 ? -EINTR : ret,
           false, call.why);
  }
  resume(task, sig);
}

// Puts the answer that came for a parked thread's call in its registers, in place of the pause.
void Tracer::finishParked(Task& task, Outcome o) {
  task.parked = false;
  Call& call = *task.call;
  auto regs = call.regs;
  if (call.wokenByOther(o)) {
    // Not woken by a signal: run the call again (at this exit or interrupt stop).
    task.parked = true;  // restartCall: not at a seccomp stop
    restartCall(task);
    return;
  }
  if (o.is<Complete>()) {
    abi::skipSyscall(regs);  // No restart: the call is over.
    abi::setResult(regs, o.get<Complete>().ret);
    setRegs(task.tid, regs);
    raiseAt(task, o.get<Complete>().signal);
    if (call.observation.get() != nullptr) {
      report(*call.observation, call.target, true, o.get<Complete>().ret,
             call.readAheadHit, call.why);
    }
  } else {
    // The syscall must run here after all: back to its instruction, to be applied when it
    // traps again (onReplay). A signal handler may run first, as for any restart.
    abi::reissueSyscall(regs, abi::syscallNr(call.regs));
    setRegs(task.tid, regs);
    task.replay = call.regs;
    task.replayOutcome = kj::mv(o);
  }
}

// At a seccomp stop: the restarted syscall of a parked call whose answer runs it here.
bool Tracer::onReplay(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(saved, task.replay) {
    if (!abi::sameSyscall(regs, *saved)) {
      return false;  // A signal handler's own call, before the restart.
    }
    task.replay = nullptr;
    auto outcome = kj::mv(KJ_ASSERT_NONNULL(task.replayOutcome));
    task.replayOutcome = nullptr;
    // A signal handler may have run on the stack since the handler wrote what the outcome's
    // registers point at below it: write it again (the stack pointer is the call's again).
    for (auto& [addr, bytes] : task.call->scratch) {
      if (task.call->mem().write(addr, bytes) < 0) {
        noteOnce("rescratch", "cannot write to the program's stack again after a signal "
                              "handler ran: a restarted call may fail (EFAULT, ENOENT)");
      }
    }
    apply(*task.call, kj::mv(outcome));
    return true;
  }
  return false;
}

// Once an interruptible call (or one waiting for a target that is away) has taken PARK_AFTER,
// its thread parks (park).
void Tracer::armPark(Task& task) {
  task.parkTimer = io.provider->getTimer()
                       .afterDelay(PARK_AFTER)
                       .then([this, &task]() { park(task); })
                       .eagerlyEvaluate(nullptr);
}

}  // namespace sb
