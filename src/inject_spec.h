// Fault injection rules as strace writes them (`-e inject=SET:error=EIO:when=3+`), plus
// splitbrain's `path=GLOB`. Pure parsing: the tracer applies the rules (tracer/injector.*).

#pragma once

#include <kj/string.h>
#include <kj/vector.h>
#include <stdint.h>

#include "syscall_set.h"

namespace sb {

// Which invocations of a syscall a rule hits, counted from 1: `first[..last][+[step]]`.
// "3": the 3rd only; "3+": 3rd and after; "2+3": 2, 5, 8 ...; "2..4": 2, 3, 4; "2..10+4":
// 2, 6, 10. splitbrain also takes "..M" for 1..M. No when=: every invocation.
struct WhenSpec {
  static constexpr uint32_t NO_LAST = UINT32_MAX;
  uint32_t first = 1;
  uint32_t last = NO_LAST;
  uint32_t step = 1;
  bool hits(uint32_t n) const { return n >= first && n <= last && (n - first) % step == 0; }
};

kj::Maybe<WhenSpec> parseWhen(kj::StringPtr text, kj::String& error);

// A duration as strace takes it: a decimal number with an optional unit s, ms, us or ns
// (microseconds without one). In microseconds.
kj::Maybe<uint64_t> parseDelay(kj::StringPtr text, kj::String& error);

struct InjectRule {
  kj::String text;              // as given, for messages
  SyscallSet set;
  int error = 0;                // error=: the errno the call fails with (not performed)
  bool hasRetval = false;       // retval=: the call "succeeds" with this value (not performed)
  int64_t retval = 0;
  int signal = 0;               // signal=: raised at the thread as the call enters
  uint64_t delayEnterUs = 0;    // delay_enter=: before the call is performed
  uint64_t delayExitUs = 0;     // delay_exit=: after the answer, before the program sees it
  WhenSpec when;
  kj::Vector<kj::String> pathGlobs;  // path=GLOB: only calls whose path (or fd's path) matches

  bool skipsCall() const { return error != 0 || hasRetval; }
};

// Parses the text after `inject=` (or `fault=`, whose error defaults to ENOSYS). On bad input
// returns null, and `error` says what is wrong and what is accepted.
kj::Maybe<InjectRule> parseInjectRule(kj::StringPtr text, kj::String& error,
                                      bool fault = false);

// An errno by name ("EIO") or number (1..4095); 0 when neither.
int parseErrno(kj::StringPtr text);
// A signal by name ("SIGUSR1", "USR1") or number (1..64); 0 when neither.
int parseSignal(kj::StringPtr text);

}  // namespace sb
