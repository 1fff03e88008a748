// One trapped syscall from stop to answer: the handler runs (handlers.cc), its Outcome settles
// (now, or when a parked thread wakes: park.cc), and apply() carries it out: inject a result,
// let the kernel run it, rewrite it, or run a Sequence of syscalls in the tracee, each with its
// step at the syscall-exit stop.

#include "tracer.h"
#include "recorder.h"
#include "replayer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "call_paths.h"
#include "errno_names.h"
#include "handler_support.h"
#include "injector.h"
#include "ptrace.h"

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

uint64_t Call::arg(int i) const {
  KJ_ASSERT(i >= 0 && i < 6, "syscall argument index out of range", i);
  return abi::arg(regs, i);
}

// A trapped syscall: a seccomp stop (launch), or any syscall-entry stop (attach).
void Tracer::onTrap(Task& task) {
  if (task.stepRunning) {
    // The seccomp stop of a Sequence step already let through at its syscall-entry stop.
    resume(task);
    return;
  }
  user_regs_struct regs;
  if (!getRegs(task.tid, regs)) {
    return;  // Gone; its exit is on its way.
  }
  if (onInjectedSeccomp(task, regs) || onSequenceStep(task, regs) || onReplay(task, regs)) {
    return;
  }
  int nr = static_cast<int>(abi::syscallNr(regs));
  if (attachMode_) {
    // What the launch filter lets through never needs us; what it refuses, we refuse.
    const SyscallRow* row = findSyscall(nr);
    if (row != nullptr && (row->cls == SyscallClass::LOCAL || row->cls == SyscallClass::PROCESS)) {
      resume(task);
      return;
    }
    if (row != nullptr && row->cls == SyscallClass::REFUSED) {
      abi::skipSyscall(regs);
      setRegs(task.tid, regs);
      task.atExit = [](user_regs_struct& r) { abi::setResult(r, -ENOSYS); };
      resume(task);
      return;
    }
  }
  // The previous call of this thread is over: its continuations go before the call they use.
  task.pending = nullptr;
  task.parkTimer = nullptr;
  task.interruptWait = nullptr;
  task.call = kj::heap<Call>(Call{*this, task, regs, nr, findSyscall(nr)});
  auto& call = task.call;
  if (!observers.empty()) {
    observeEntry(*call);
  }
  kj::Promise<Outcome> outcome = nullptr;
  if (injector_.get() != nullptr && !sbrunsOwn(*call)) {
    // -e inject=: the one test the no-injection path pays.
    outcome = injector_->apply(*call, [this, &c = *call]() { return runHandler(c); });
  } else {
    outcome = runHandler(*call);
  }
  auto& c = *call;
  task.pending = outcome
                     .then([this, &task](Outcome o) { settle(task, kj::mv(o)); },
                           [this, &task, &c](kj::Exception&& e) {
                             int64_t err = c.target ? c.target->failure(e) : -EIO;
                             if (c.target == nullptr) {
                               fmt::print(stderr, "sbrun: internal error in {}: {}\n",
                                          syscallName(c.nr).cStr(), e.getDescription().cStr());
                             }
                             settle(task, Complete{err});
                           })
                     .eagerlyEvaluate([tid = task.tid](kj::Exception&& e) {
                       fmt::print(stderr, "sbrun: internal error: {}\n",
                                  e.getDescription().cStr());
                       // Never leave the thread stopped for good.
                       ptrace::resume(tid, ptrace::Resume::CONT);
                     });
  // A call that waits for a target that is away (reconnecting) waits like a slow FIFO read:
  // a signal must get through.
  if (c.interruptible || (c.target != nullptr && c.target->away())) {
    armPark(task);
  }
}

// The handler's answer for a trapped call (a failure of its own is an exception in the promise).
kj::Promise<Outcome> Tracer::runHandler(Call& call) {
  Handler handler = findHandler(call.nr);
  kj::Promise<Outcome> outcome = nullptr;
  if (handler == nullptr) {
    KJ_IF_MAYBE(pinned, pinnedRandom(call)) {
      outcome = kj::mv(*pinned);
    } else {
      // A trapped row with no handler is a bug the unit tests catch; never run it locally.
      noteOnce(kj::str("nohandler", call.nr),
               kj::str("internal: no handler for trapped syscall ", syscallName(call.nr),
                       ": answering ENOSYS"));
      outcome = Outcome(Complete{-ENOSYS});
    }
  } else if (auto stale = handler::staleFd(call); stale != nullptr) {
    outcome = Outcome(Complete{KJ_ASSERT_NONNULL(stale)});  // Its session is gone: EIO.
  } else {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { outcome = handler(call); })) {
      outcome = kj::mv(*e);
    }
  }
  return outcome;
}

// Calls that are sbrun's machinery, not the program's: the sb-stub protocol (numbers no kernel
// has) and the calls of a stub standing in for a program on a target (its pumping of stdio).
// Neither is traced, counted or injected.
bool Tracer::sbrunsOwn(const Call& call) {
  return call.row == nullptr || remoteChild(call.task.tgid) != nullptr;
}

// --trace/--stats: whether an observer wants this call (-e trace=, -P), and if so what its line
// needs from this stop: the arguments, the time, and -y's notes on its fds (a close ends them).
void Tracer::observeEntry(Call& call) {
  if (sbrunsOwn(call)) {
    return;
  }
  auto& t = options_.traceOptions;
  KJ_IF_MAYBE(set, t.set) {
    if (!set->has(call.nr)) {
      return;
    }
  }
  if (t.paths.size() > 0 && !touchesAny(call, t.paths)) {
    return;
  }
  auto obs = kj::heap<CallObservation>();
  obs->tid = call.task.tid;
  obs->nr = call.nr;
  for (int i = 0; i < 6; ++i) {
    obs->args[i] = abi::arg(call.regs, i);
  }
  obs->start = std::chrono::steady_clock::now();
  if (wantArgs) {
    obs->entry = readCallEntry(call.nr, obs->args, call.mem());
  }
  if (t.decodeFds > 0 && wantArgs) {
    uint8_t fds = fdArgMask(call.nr);
    obs->fdNotes = kj::heapArray<kj::String>(6);
    for (int i = 0; i < 6; ++i) {
      if (fds & (1u << i)) {
        obs->fdNotes[i] = fdNote(call, call.fdArg(i), t.decodeFds);
      }
    }
  }
  call.observation = kj::mv(obs);
}

kj::Maybe<kj::Promise<Outcome>> Tracer::pinnedRandom(Call& call) {
  // Trapped only under --record and --replay (randomTrap()): a syscall without a handler
  // otherwise.
  if (call.nr != SYS_getrandom || (recorder_.get() == nullptr && replayer_.get() == nullptr)) {
    return nullptr;
  }
  uint64_t buf = call.arg(0);
  uint64_t count = call.arg(1);
  Task& task = call.task;
  if (recorder_.get() != nullptr) {
    return kj::Promise<Outcome>(RunLocalThen{[this, &task, buf](int64_t ret) {
      auto bytes = kj::heapArray<kj::byte>(ret > 0 ? size_t(ret) : 0);
      if (ret > 0 && TraceeMemory(task.tid).read(buf, bytes) != ret) {
        bytes = nullptr;
      }
      recorder_->random(task.lineage, ret, bytes);
      return ret;
    }});
  }
  KJ_IF_MAYBE(answer, replayer_->random(task.lineage)) {
    auto bytes = answer->bytes.slice(0, kj::min(answer->bytes.size(), count));
    if (bytes.size() > 0 && call.mem().write(buf, bytes) < 0) {
      return kj::Promise<Outcome>(Complete{-EFAULT});
    }
    int64_t ret = answer->result >= 0 ? int64_t(bytes.size()) : answer->result;
    return kj::Promise<Outcome>(Complete{ret});
  }
  // More than the recording has: this thread's randomness is its own from here.
  verbose(kj::str("--replay: thread ", task.lineage, " asked getrandom more often than "
                  "recorded; it runs for real"));
  return kj::Promise<Outcome>(RunLocal{});
}

// An answer for the thread's trapped call: applied now, or at the exit stop of its parking.
void Tracer::settle(Task& task, Outcome outcome) {
  task.call->settled = true;
  if (task.call->target != nullptr) {
    task.call->target->callAnswered();  // --link-fault counts them
  }
  if (task.interrupting) {
    finishInterrupt(task, kj::mv(outcome));
    return;
  }
  if (task.parked) {
    task.parkedOutcome = kj::mv(outcome);
    // Wakes pause(2) without a signal the program could see; its exit stop applies the answer.
    ptrace::interrupt(task.tid);  // False: gone, its exit is on its way.
    return;
  }
  task.parkTimer = nullptr;
  if (task.call->wokenByOther(outcome)) {
    restartCall(task);
    return;
  }
  apply(*task.call, kj::mv(outcome));
}

void Tracer::apply(Call& call, Outcome outcome) {
  Task& task = call.task;
  // What an exit-stop continuation needs to report (the Call is gone by then): nothing when no
  // observer wants the call.
  kj::Own<CallObservation> observed = kj::mv(call.observation);
  bool watched = observed.get() != nullptr;
  auto reporter = [this, obs = kj::mv(observed), target = call.target,
                   cached = call.readAheadHit, why = kj::str(call.why)](int64_t result) {
    if (obs.get() != nullptr) {
      report(*obs, target, true, result, cached, why);
    }
  };
  KJ_SWITCH_ONEOF(outcome) {
    KJ_CASE_ONEOF(complete, Complete) {
      auto regs = call.regs;
      abi::skipSyscall(regs);               // Skip the syscall...
      abi::setResult(regs, complete.ret);  // ...and return this (PITFALLS: set both in one write).
      setRegs(task.tid, regs);
      raiseAt(task, complete.signal);
      // Before the thread runs on: the buffers the answer filled are still the answer's.
      reporter(complete.ret);
      if (attachMode_) {
        // At a syscall-entry stop the kernel sets the result after skipping: set it at the exit stop.
        task.atExit = [ret = complete.ret](user_regs_struct& r) { abi::setResult(r, ret); };
        resume(task);
      } else {
        resume(task);
      }
    }
    KJ_CASE_ONEOF(run, RunLocal) {
      KJ_IF_MAYBE(result, run.known) {
        reporter(*result);
        resume(task);
      } else if (watched) {
        // An observed call that runs here: its result (and the buffers it fills) at its exit.
        task.atExit = [reporter = kj::mv(reporter)](user_regs_struct& regs) mutable {
          reporter(abi::result(regs));
        };
        resume(task);
      } else {
        resume(task);
      }
    }
    KJ_CASE_ONEOF(then, RunLocalThen) {
      task.atExit = [after = kj::mv(then.after), reporter = kj::mv(reporter)](
                        user_regs_struct& regs) mutable {
        abi::setResult(regs, after(abi::result(regs)));
        reporter(abi::result(regs));
      };
      resume(task);
    }
    KJ_CASE_ONEOF(rewrite, Rewrite) {
      setRegs(task.tid, rewrite.regs);
      task.atExit = [orig = call.regs, after = kj::mv(rewrite.after),
                     reporter = kj::mv(reporter)](user_regs_struct& regs) mutable {
        int64_t ret = after(abi::result(regs));
        regs = orig;  // The program must find its registers as the syscall left them.
        abi::setResult(regs, ret);
        reporter(ret);
      };
      resume(task);
    }
    KJ_CASE_ONEOF(seq, Sequence) {
      runSequenceStep(task, call.regs, seq.regs, kj::mv(seq.next), kj::mv(reporter));
    }
  }
}

// A signal the kernel raises at the calling thread together with a syscall's answer (SIGPIPE):
// queued while the thread is stopped, so it is delivered as the call returns, as the kernel's.
void Tracer::raiseAt(Task& task, int sig) {
  if (sig == 0 || remoteChild(task.tgid) != nullptr) {
    // An sb-stub pumps its pipes itself and handles EPIPE (the remote reader is gone, its output
    // must still be pumped); a signal at a stub would also be forwarded to its remote program.
    return;
  }
  if (syscall(SYS_tgkill, task.tgid, task.tid, sig) != 0) {
    noteOnce(kj::str("raise", sig), kj::str("cannot raise signal ", sig, " in thread ", task.tid,
                                            ": ", strerror(errno)));
  }
}

// One step of a Sequence: the first at the trapped call's own stop, the next ones at their
// syscall-entry stops. It runs with `step`'s registers; at its exit stop the sequence either
// ends with the program's own registers and answer, or backs the instruction pointer onto the
// syscall instruction for the next step. Until that one has run, the thread is resumed with
// PTRACE_SYSCALL, so its entry stops even when the filter would let it through (an mmap of the
// local copy is a fast call), and onSequenceStep recognises it by its registers.
void Tracer::runSequenceStep(Task& task, const user_regs_struct& orig,
                             const user_regs_struct& step,
                             kj::Function<Sequence::Step(int64_t)> next,
                             kj::Function<void(int64_t)> reporter) {
  setRegs(task.tid, step);
  task.stepRunning = true;
  task.atExit = [&task, orig, next = kj::mv(next),
                 reporter = kj::mv(reporter)](user_regs_struct& regs) mutable {
    task.stepRunning = false;
    auto result = next(abi::result(regs));
    KJ_SWITCH_ONEOF(result) {
      KJ_CASE_ONEOF(done, Sequence::Done) {
        regs = orig;
        abi::setResult(regs, done.ret);
        reporter(done.ret);
      }
      KJ_CASE_ONEOF(more, Sequence::Next) {
        regs = more.regs;
        abi::reissueFrom(regs, orig);
        task.sequence = Task::SequenceState{regs, orig, kj::mv(next), kj::mv(reporter)};
      }
    }
  };
  resume(task);
}

// At a syscall-entry stop (or, in attach mode, the trap): whether it is the next step of the
// thread's Sequence (a signal handler's own calls may come first, and are the program's).
bool Tracer::onSequenceStep(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(state, task.sequence) {
    const auto& s = state->step;
    if (!abi::isReissued(regs, s)) {
      return false;
    }
    auto st = kj::mv(*state);
    task.sequence = nullptr;
    runSequenceStep(task, st.orig, regs, kj::mv(st.next), kj::mv(st.reporter));
    return true;
  }
  return false;
}

void Tracer::report(const CallObservation& obs, AgentLink* target, bool known, int64_t result,
                    bool cached, kj::StringPtr why) {
  auto elapsed = std::chrono::steady_clock::now() - obs.start;
  kj::String args, note;
  if (wantArgs) {
    args = formatCallArgs(obs.nr, obs.args, known ? result : -1, TraceeMemory(obs.tid),
                          traceStyle_, obs.fdNotes, obs.entry);
    if (known) {
      note = formatResultNote(obs.nr, obs.args, result, TraceeMemory(obs.tid));
    }
  }
  bool performed = !obs.notRun;
  CallRecord record{obs.tid, obs.nr, target && performed ? target->name() : kj::StringPtr("local"),
                    target != nullptr && performed, known, result,
                    // From the stop to the answer (a local call: to its exit stop).
                    static_cast<uint64_t>(
                        std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()),
                    args, cached && target != nullptr, why, obs.injected, obs.delayed,
                    performed, note};
  for (auto& o : observers) {
    o->onCall(record);
  }
}

void Tracer::onSyscallExit(Task& task) {
  KJ_IF_MAYBE(fn, task.atExit) {
    user_regs_struct regs;
    if (!getRegs(task.tid, regs)) {
      return;
    }
    auto callback = kj::mv(*fn);
    task.atExit = nullptr;
    callback(regs);
    // The call may just have made an fd remote (an open, dup2 onto stdout): its block must trap
    // before the program can use it.
    guardThenResume(task, regs);
    return;
  }
  resume(task);
}

kj::Maybe<user_regs_struct> Tracer::placeholderOpen(Call& call, bool cloexec) {
  // The path "/" goes just below the stack's red zone (abi::scratchBelow).
  uint64_t scratch = abi::scratchBelow(call.regs, 16);
  static const kj::byte ROOT[] = {'/', 0};
  if (call.writeScratch(scratch, ROOT) < 0) {
    noteOnce("scratch", "cannot write to the program's stack to create a placeholder fd");
    return nullptr;
  }
  return abi::syscallRegs(call.regs, SYS_openat,
                          {static_cast<uint64_t>(static_cast<int64_t>(AT_FDCWD)), scratch,
                           static_cast<uint64_t>(O_PATH | (cloexec ? O_CLOEXEC : 0)), 0});
}

Outcome Tracer::installPlaceholder(Call& call, kj::Own<RemoteFile> file, bool cloexec) {
  user_regs_struct regs;
  KJ_IF_MAYBE(r, placeholderOpen(call, cloexec)) {
    regs = *r;
  } else {
    return Complete{-ENOMEM};
  }
  Task& task = call.task;
  return Rewrite{regs, [&task, file = kj::mv(file)](int64_t fd) mutable {
                   if (fd >= 0) {
                     task.fds->bind(static_cast<int>(fd), kj::mv(file));
                   }
                   // On EMFILE the remote file is dropped, which closes it on the agent.
                   return fd;
                 }};
}

}  // namespace sb
