// -e inject= (strace's fault injection) on trapped calls, local and redirected alike: counts
// each rule's calls per thread and syscall, as strace counts per tracee, and on the calls its
// when= hits raises its signal, waits its delay_enter, answers its error or retval instead of
// performing the call (neither here nor on a target), and waits its delay_exit after the
// answer. The tracer asks only when there are rules (one null check: trapped_call.cc).

#pragma once

#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>
#include <kj/vector.h>
#include <map>
#include <tuple>

#include "call.h"
#include "inject_spec.h"

namespace sb {

class Injector {
 public:
  // `paths`: strace's -P, which also limits what injection counts.
  Injector(kj::ArrayPtr<InjectRule> rules, kj::ArrayPtr<const kj::String> paths,
           kj::Timer& timer)
      : rules(rules), paths(paths), timer(timer) {}

  // The call's outcome with the rules applied; `run` runs its handler. Marks the call's
  // observation (if any) INJECTED or DELAYED.
  kj::Promise<Outcome> apply(Call& call, kj::Function<kj::Promise<Outcome>()> run);

  // Injections made, for --stats.
  uint64_t injected() const { return injected_; }

 private:
  kj::ArrayPtr<InjectRule> rules;
  kj::ArrayPtr<const kj::String> paths;
  kj::Timer& timer;
  // (thread, rule, syscall) -> calls counted so far.
  std::map<std::tuple<pid_t, size_t, int>, uint32_t> counts;
  uint64_t injected_ = 0;

  kj::Maybe<const InjectRule&> ruleFor(Call& call);
};

}  // namespace sb
