// -e inject= on trapped calls; see injector.h.

#include "injector.h"

#include <fnmatch.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "call_paths.h"
#include "observer.h"
#include "task.h"

namespace sb {

namespace {

bool anyPathMatches(const kj::Vector<kj::String>& paths, kj::ArrayPtr<const kj::String> globs) {
  for (auto& path : paths) {
    for (auto& glob : globs) {
      if (fnmatch(glob.cStr(), path.cStr(), 0) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

kj::Maybe<const InjectRule&> Injector::ruleFor(Call& call) {
  bool pathsRead = false;
  kj::Vector<kj::String> touched;
  for (size_t i = 0; i < rules.size(); ++i) {
    auto& rule = rules[i];
    if (!rule.set.has(call.nr)) {
      continue;
    }
    if (paths.size() > 0 || rule.pathGlobs.size() > 0) {
      if (!pathsRead) {
        touched = callPaths(call);
        pathsRead = true;
      }
      // -P counts only calls touching one of its paths; path= only calls touching its glob.
      if (paths.size() > 0 && !anyPathMatches(touched, paths)) {
        continue;
      }
      if (rule.pathGlobs.size() > 0 && !anyPathMatches(touched, rule.pathGlobs)) {
        continue;
      }
    }
    uint32_t n = ++counts[{call.task.tid, i, call.nr}];
    if (rule.when.hits(n)) {
      return rule;
    }
  }
  return nullptr;
}

kj::Promise<Outcome> Injector::apply(Call& call, kj::Function<kj::Promise<Outcome>()> run) {
  const InjectRule* rule;
  KJ_IF_MAYBE(r, ruleFor(call)) {
    rule = r;
  } else {
    return run();
  }
  ++injected_;
  if (call.observation.get() != nullptr) {
    call.observation->injected = rule->skipsCall() || rule->signal != 0;
    call.observation->delayed = rule->delayEnterUs > 0 || rule->delayExitUs > 0;
    call.observation->notRun = rule->skipsCall();
  }
  if (rule->signal != 0) {
    // Queued while the thread is stopped: delivered as the call enters, as strace's.
    syscall(SYS_tgkill, call.task.tgid, call.task.tid, rule->signal);
  }
  auto perform = [rule, run = kj::mv(run)]() mutable -> kj::Promise<Outcome> {
    if (rule->error != 0) {
      return Outcome(Complete{-static_cast<int64_t>(rule->error)});  // not performed anywhere
    }
    if (rule->hasRetval) {
      return Outcome(Complete{rule->retval});
    }
    return run();
  };
  kj::Promise<Outcome> outcome =
      rule->delayEnterUs > 0
          ? timer.afterDelay(rule->delayEnterUs * kj::MICROSECONDS).then(kj::mv(perform))
          : perform();
  if (rule->delayExitUs > 0) {
    outcome = outcome.then([this, us = rule->delayExitUs](Outcome o) {
      return timer.afterDelay(us * kj::MICROSECONDS)
          .then([o = kj::mv(o)]() mutable { return kj::mv(o); });
    });
  }
  return outcome;
}

}  // namespace sb
