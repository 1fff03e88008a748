// --link-fault=SPEC: faults of the link to a target, on purpose and reproducibly, so that a test
// sees what it would see when B is slow, reboots or hangs (docs/failure-semantics.md):
//
//   delay=DURATION         every answer from the target arrives DURATION late
//   drop=N                 the connection is cut once the program's Nth remote call has been
//                          answered (a pulled cable): sbrun reports it and reconnects as usual
//   freeze=N:for=DURATION  once the Nth remote call has been answered, nothing arrives from
//                          the target for DURATION (a hung B): calls wait, the heartbeat may
//                          declare the link lost, and answers flow again afterwards
//
// Each may end with `:target=NAME` (default: every target). DURATION is a number with ms or s.
// AgentLink carries the faults out (agent_link.h); the tracer counts remote calls.

#pragma once

#include <kj/string.h>
#include <kj/time.h>
#include <stdint.h>

namespace sb {

struct LinkFault {
  enum class Kind : uint8_t { DELAY, DROP, FREEZE };
  Kind kind;
  uint64_t afterCalls = 0;           // DROP, FREEZE
  kj::Duration duration = 0 * kj::SECONDS;  // DELAY, FREEZE
  kj::String target;                 // "" = every target
  kj::String text;                   // as given, for messages
};

// Parses one SPEC; null with `error` set when it is not valid.
kj::Maybe<LinkFault> parseLinkFault(kj::StringPtr spec, kj::String& error);

}  // namespace sb
