// Exec rules: where a program that a traced process execs runs (DESIGN D7, issue 15).
//
// An execve either keeps running here, traced (the kernel loads this machine's file), or starts
// the program on the target through the agent (sb-stub stands in for it here). The rule:
//   1. The user's --exec-here GLOB / --exec-there GLOB rules, first match wins.
//   2. An exec whose path lives here (path rules, the cwd's side) runs here.
//   3. The --spawn policy:
//        chain (default): the process sbrun launched or attached to keeps running here through
//                         its own exec chain (the same process, no fork in between: env
//                         shebangs, interpreter shims, `exec` wrappers), when this machine has
//                         the program at the same absolute path; any other exec runs there.
//        here:            every exec runs here when this machine has the program.
//        there:           every exec inside a remote scope runs there (sbrun before issue 15).
//
// This module is pure: the caller says whether the process heads the exec chain and whether
// this machine has the file; nothing here touches the file system or the tracee.
//
//   ExecRules rules;
//   rules.addUser(ExecSide::THERE, "make");
//   auto choice = decideExec(rules, SpawnPolicy::CHAIN, {true, true, "/usr/bin/python3", true});
//   // choice.side == ExecSide::HERE, choice.why == "the program's own exec chain"

#pragma once

#include <stdint.h>

#include <kj/common.h>
#include <kj/string.h>
#include <kj/vector.h>

namespace sb {

enum class ExecSide : uint8_t { HERE, THERE };

// --spawn: what an exec into a remote path does when no --exec-here/--exec-there rule matches.
enum class SpawnPolicy : uint8_t { CHAIN, HERE, THERE };

// "here", "there".
kj::StringPtr execSideName(ExecSide side);
// "chain", "here", "there".
kj::StringPtr spawnPolicyName(SpawnPolicy policy);
// The policy named `text`, or null.
kj::Maybe<SpawnPolicy> parseSpawnPolicy(kj::StringPtr text);

struct ExecRule {
  ExecSide side;
  // A glob (fnmatch(3), `*` also matches `/`): with a `/` it is matched against the program's
  // absolute path, without one against its file name alone ("python3*", "/opt/tools/*").
  kj::String glob;
};

class ExecRules {
 public:
  // A user rule; rules keep command-line order. The glob must not be empty (KJ_REQUIRE).
  void addUser(ExecSide side, kj::StringPtr glob);

  // The first rule whose glob matches `path` (absolute and normalized when it is known; a
  // relative path is matched by its file name only), or null.
  kj::Maybe<const ExecRule&> match(kj::StringPtr path) const;

  kj::ArrayPtr<const ExecRule> rules() const { return rulesInOrder.asPtr(); }

  // For --print-rules: one line per rule ("exec-there  make  (user)"), then the policy that
  // decides the rest. Ends with '\n'.
  kj::String describe(SpawnPolicy policy) const;

 private:
  kj::Vector<ExecRule> rulesInOrder;
};

// What decideExec looks at, for one execve.
struct ExecFacts {
  bool pathIsRemote;      // the path rules (or the cwd's side) put the program's path on a target
  bool chainHead;         // the exec'ing process is the one sbrun launched or attached to
  kj::StringPtr path;     // for rule matching: absolute when known
  bool existsHere;        // this machine has a file at that absolute path
};

struct ExecChoice {
  ExecSide side;
  kj::StringPtr why;  // for -v and --trace: the rule or the reason (static text)
  kj::Maybe<const ExecRule&> rule;
};

// Where the exec runs (see the header comment for the order).
ExecChoice decideExec(const ExecRules& rules, SpawnPolicy policy, const ExecFacts& facts);

}  // namespace sb
