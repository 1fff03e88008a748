// How a run ends, beyond the program's own exit: signals sent to sbrun, targets lost during the
// run (--on-disconnect), and the exit status that tells CI about both.

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <fmt/core.h>

#include "tracer.h"
#include "recorder.h"
#include "replayer.h"

namespace sb {

namespace {

// Signals sbrun passes on to the program in launch mode.
constexpr int FORWARDED_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP};

}  // namespace

void captureForwardedSignals() {
  for (int sig : FORWARDED_SIGNALS) {
    kj::UnixEventPort::captureSignal(sig);
  }
}

kj::Promise<void> Tracer::forwardSignal(int sig) {
  return io.unixEventPort.onSignal(sig).then([this, sig](siginfo_t info) -> kj::Promise<void> {
    // The terminal (SI_KERNEL: ^C, hangup) signals the whole foreground process group, the
    // program included: passing it on would deliver it twice. kill(1), a CI runner's timeout
    // or a supervisor name sbrun alone.
    if (leader <= 0) {
      // Still connecting: nothing to pass it on to, so sbrun ends as the signal asks.
      fmt::print(stderr, "sbrun: {} before the program started\n", strsignal(sig));
      _exit(128 + sig);
    }
    if (info.si_code != SI_KERNEL) {
      bool leaderAlive = leaderStatus == nullptr && tasks.count(leader) > 0;
      if (leaderAlive) {
        kill(leader, sig);
      } else {
        // The leader is gone but processes it started are still traced: they get it.
        std::set<pid_t> processes;
        for (auto& [tid, task] : tasks) {
          processes.insert(task->tgid);
        }
        for (pid_t p : processes) {
          kill(p, sig);
        }
      }
    }
    return forwardSignal(sig);
  });
}

void Tracer::watchSignals() {
  if (!attachMode_) {
    kj::Promise<void> all = kj::NEVER_DONE;
    for (int sig : FORWARDED_SIGNALS) {
      all = all.exclusiveJoin(forwardSignal(sig));
    }
    signalWatch = all.eagerlyEvaluate([](kj::Exception&& e) {
      fmt::print(stderr, "sbrun: passing a signal on to the program: {}\n",
                 e.getDescription().cStr());
    });
  }
}

void Tracer::watchTargets() {
  if (options_.reconnect.mode == OnDisconnect::EXIT) {
    for (auto& t : targets_) {
      t->onEvent([this](AgentLink&, kj::StringPtr what) {
        if (what == "disconnected") {
          endForLostTarget();
        }
      });
    }
  }
}

void Tracer::endForLostTarget() {
  if (endedForLostTarget_) {
    return;
  }
  endedForLostTarget_ = true;
  killProgram();
}

namespace {

// A call in flight, as the trace shows it (its output buffers not yet written).
kj::String callArgsText(const Call& call) {
  uint64_t args[6];
  for (int i = 0; i < 6; ++i) {
    args[i] = call.arg(i);
  }
  return formatCallArgs(call.nr, args, -1, call.mem(), TraceStyle{}, nullptr);
}

}  // namespace

void Tracer::endForDivergence(kj::StringPtr report) {
  replayDiverged_ = true;
  kj::String inFlight;
  for (auto& [tid, task] : tasks) {
    if (task->call.get() != nullptr && task->call->target != nullptr && !task->call->settled) {
      auto& call = *task->call;
      inFlight = kj::str(inFlight, "\n  thread ", tid, " was in ", syscallName(call.nr), "(",
                         callArgsText(call), ") on target '",
                         call.target->name(), "'");
    }
  }
  fmt::print(stderr, "sbrun: --replay {}: the program diverged from the recording: {}{}\n"
                     "sbrun: {}; sbrun exits {}\n",
             KJ_ASSERT_NONNULL(options_.replayFile).cStr(), report.cStr(), inFlight.cStr(),
             runEnded_ ? "the program has ended" : "ending the program", EXIT_SBRUN_ERROR);
  if (!runEnded_) {
    killProgram();
  }
}

void Tracer::killProgram() {
  // Programs they run on B end with their stubs (SIGHUP there).
  std::set<pid_t> processes;
  for (auto& [tid, task] : tasks) {
    processes.insert(task->tgid);
  }
  for (pid_t p : processes) {
    kill(p, SIGKILL);
  }
}

int Tracer::exitStatus() {
  if (endedForLostTarget_) {
    return EXIT_TARGET_LOST;
  }
  // A recording that is incomplete, or a replay that did not follow it, is sbrun's failure.
  bool recordingOk = recorder_.get() == nullptr || recorder_->finish();
  bool replayOk = replayer_.get() == nullptr || replayer_->finish();
  if (replayDiverged_ || !replayOk) {
    return EXIT_SBRUN_ERROR;
  }
  if (!recordingOk) {
    fmt::print(stderr, "sbrun: --record: the recording is incomplete; exiting {}\n",
               EXIT_SBRUN_ERROR);
    return EXIT_SBRUN_ERROR;
  }
  if (detaching_ && leaderStatus == nullptr) {
    return 0;  // Let go of a process that runs on.
  }
  KJ_IF_MAYBE(status, leaderStatus) {
    int code = status->shellCode();
    if (code == 0 && options_.reconnect.mode == OnDisconnect::FAIL) {
      for (auto& t : targets_) {
        if (t->outages() > 0) {
          fmt::print(stderr,
                     "sbrun: the program exited 0, but target '{}' was lost {} time(s) during "
                     "the run; exiting {} (use --on-disconnect=wait when outages are expected)\n",
                     t->name().cStr(), t->outages(), EXIT_TARGET_LOST);
          return EXIT_TARGET_LOST;
        }
      }
    }
    return code;
  }
  return EXIT_SBRUN_ERROR;
}

}  // namespace sb
