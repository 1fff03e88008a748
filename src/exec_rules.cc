#include "exec_rules.h"

#include <fnmatch.h>

#include <fmt/format.h>
#include <kj/debug.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>

namespace sb {

namespace {

std::string_view execView(kj::StringPtr s) { return std::string_view(s.begin(), s.size()); }

// What a glob is matched against: the whole path when the glob names directories, else the
// file name (the last component).
kj::StringPtr subjectFor(kj::StringPtr glob, kj::StringPtr path) {
  if (glob.findFirst('/') != nullptr) {
    return path;
  }
  KJ_IF_MAYBE(slash, path.findLast('/')) {
    return path.slice(*slash + 1);
  }
  return path;
}

}  // namespace

kj::StringPtr execSideName(ExecSide side) {
  switch (side) {
    case ExecSide::HERE:
      return "here";
    case ExecSide::THERE:
      return "there";
  }
  KJ_UNREACHABLE;
}

kj::StringPtr spawnPolicyName(SpawnPolicy policy) {
  switch (policy) {
    case SpawnPolicy::CHAIN:
      return "chain";
    case SpawnPolicy::HERE:
      return "here";
    case SpawnPolicy::THERE:
      return "there";
  }
  KJ_UNREACHABLE;
}

kj::Maybe<SpawnPolicy> parseSpawnPolicy(kj::StringPtr text) {
  for (auto p : {SpawnPolicy::CHAIN, SpawnPolicy::HERE, SpawnPolicy::THERE}) {
    if (text == spawnPolicyName(p)) {
      return p;
    }
  }
  return nullptr;
}

void ExecRules::addUser(ExecSide side, kj::StringPtr glob) {
  KJ_REQUIRE(glob.size() > 0, "an exec rule needs a program name or path glob, e.g. "
                              "--exec-there make");
  rulesInOrder.add(ExecRule{side, kj::str(glob)});
}

kj::Maybe<const ExecRule&> ExecRules::match(kj::StringPtr path) const {
  for (auto& rule : rulesInOrder) {
    if (fnmatch(rule.glob.cStr(), subjectFor(rule.glob, path).cStr(), 0) == 0) {
      return rule;
    }
  }
  return nullptr;
}

kj::String ExecRules::describe(SpawnPolicy policy) const {
  size_t width = 0;
  for (auto& rule : rulesInOrder) {
    width = std::max(width, rule.glob.size());
  }
  std::string out;
  for (auto& rule : rulesInOrder) {
    fmt::format_to(std::back_inserter(out), "exec-{:<5} {:<{}}  (user)\n",
                   execView(execSideName(rule.side)), execView(rule.glob), width);
  }
  switch (policy) {
    case SpawnPolicy::CHAIN:
      out += "other execs (--spawn=chain): a program exec'd inside a remote scope runs there, "
             "except the exec chain of the program sbrun started or attached to (the same "
             "process, no fork in between), which stays here when this machine has the "
             "program\n";
      break;
    case SpawnPolicy::HERE:
      out += "other execs (--spawn=here): every exec stays here when this machine has the "
             "program, else runs there\n";
      break;
    case SpawnPolicy::THERE:
      out += "other execs (--spawn=there): a program exec'd inside a remote scope runs there, "
             "the program's own exec chain too\n";
      break;
  }
  return kj::heapString(out.data(), out.size());
}

ExecChoice decideExec(const ExecRules& rules, SpawnPolicy policy, const ExecFacts& facts) {
  KJ_IF_MAYBE(rule, rules.match(facts.path)) {
    return ExecChoice{rule->side, rule->side == ExecSide::HERE ? "rule: exec-here"
                                                               : "rule: exec-there",
                      *rule};
  }
  if (!facts.pathIsRemote) {
    return ExecChoice{ExecSide::HERE, "the program's path is here", nullptr};
  }
  // The kernel can only load a file of this machine: a program only the target has runs there.
  switch (policy) {
    case SpawnPolicy::THERE:
      return ExecChoice{ExecSide::THERE, "--spawn=there", nullptr};
    case SpawnPolicy::HERE:
      return facts.existsHere
                 ? ExecChoice{ExecSide::HERE, "--spawn=here", nullptr}
                 : ExecChoice{ExecSide::THERE, "--spawn=here, but this machine has no such file",
                              nullptr};
    case SpawnPolicy::CHAIN:
      if (!facts.chainHead) {
        return ExecChoice{ExecSide::THERE, "a child process in a remote scope", nullptr};
      }
      return facts.existsHere
                 ? ExecChoice{ExecSide::HERE, "the program's own exec chain", nullptr}
                 : ExecChoice{ExecSide::THERE,
                              "the program's own exec chain, but this machine has no such file",
                              nullptr};
  }
  KJ_UNREACHABLE;
}

}  // namespace sb
