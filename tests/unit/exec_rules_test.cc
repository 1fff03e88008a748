#include "exec_rules.h"

#include <doctest.h>

#include <string>

namespace sb {
namespace {

std::string sideOf(const ExecRules& rules, SpawnPolicy policy, ExecFacts facts) {
  return std::string(execSideName(decideExec(rules, policy, facts).side).cStr());
}

TEST_SUITE("exec_rules") {
  TEST_CASE("a glob without a slash matches the file name, with one the whole path") {
    ExecRules rules;
    rules.addUser(ExecSide::THERE, "python3*");
    rules.addUser(ExecSide::HERE, "/opt/*/bin/tool");
    KJ_IF_MAYBE(r, rules.match("/usr/bin/python3.11")) {
      CHECK(r->side == ExecSide::THERE);
    } else {
      FAIL("python3* did not match /usr/bin/python3.11");
    }
    CHECK(rules.match("/usr/bin/python3-config") != nullptr);
    CHECK(rules.match("/usr/bin/ipython3") == nullptr);
    KJ_IF_MAYBE(r, rules.match("/opt/a/b/bin/tool")) {
      CHECK(r->side == ExecSide::HERE);  // `*` crosses slashes
    } else {
      FAIL("/opt/*/bin/tool did not match");
    }
    CHECK(rules.match("/usr/opt/a/bin/tool") == nullptr);
    CHECK(rules.match("./python3") != nullptr);  // a relative path: its file name
  }

  TEST_CASE("the first matching rule wins") {
    ExecRules rules;
    rules.addUser(ExecSide::HERE, "make");
    rules.addUser(ExecSide::THERE, "*");
    auto choice = decideExec(rules, SpawnPolicy::CHAIN, {true, false, "/usr/bin/make", true});
    CHECK(choice.side == ExecSide::HERE);
    CHECK(choice.rule != nullptr);
    CHECK(sideOf(rules, SpawnPolicy::CHAIN, {false, true, "/bin/ls", true}) == "there");
  }

  TEST_CASE("a rule decides even for a path that is here, and outside the chain") {
    ExecRules rules;
    rules.addUser(ExecSide::THERE, "uname");
    CHECK(sideOf(rules, SpawnPolicy::HERE, {false, true, "/usr/bin/uname", true}) == "there");
    rules.addUser(ExecSide::HERE, "ls");
    CHECK(sideOf(rules, SpawnPolicy::THERE, {true, false, "/bin/ls", false}) == "here");
  }

  TEST_CASE("without a rule a path that is here runs here under every policy") {
    ExecRules none;
    for (auto p : {SpawnPolicy::CHAIN, SpawnPolicy::HERE, SpawnPolicy::THERE}) {
      CHECK(sideOf(none, p, {false, false, "/bin/ls", true}) == "here");
    }
  }

  TEST_CASE("--spawn=chain: the exec chain head stays here when the file is here") {
    ExecRules none;
    struct Case {
      bool chainHead;
      bool existsHere;
      const char* side;
    };
    const Case cases[] = {
        {true, true, "here"},
        {true, false, "there"},   // only the target has it: the kernel cannot load it here
        {false, true, "there"},   // a child (fork, vfork, posix_spawn) in a remote scope
        {false, false, "there"},
    };
    for (auto& c : cases) {
      CAPTURE(c.chainHead);
      CAPTURE(c.existsHere);
      CHECK(sideOf(none, SpawnPolicy::CHAIN, {true, c.chainHead, "/usr/bin/python3",
                                              c.existsHere}) == c.side);
    }
  }

  TEST_CASE("--spawn=here keeps children here too; --spawn=there sends the chain there") {
    ExecRules none;
    CHECK(sideOf(none, SpawnPolicy::HERE, {true, false, "/bin/ls", true}) == "here");
    CHECK(sideOf(none, SpawnPolicy::HERE, {true, false, "/bin/ls", false}) == "there");
    CHECK(sideOf(none, SpawnPolicy::THERE, {true, true, "/bin/ls", true}) == "there");
  }

  TEST_CASE("policy names round-trip and unknown names are refused") {
    for (auto p : {SpawnPolicy::CHAIN, SpawnPolicy::HERE, SpawnPolicy::THERE}) {
      KJ_IF_MAYBE(back, parseSpawnPolicy(spawnPolicyName(p))) {
        CHECK(*back == p);
      } else {
        FAIL("a policy name did not parse back");
      }
    }
    CHECK(parseSpawnPolicy("remote") == nullptr);
  }

  TEST_CASE("describe lists the rules in order, then the policy") {
    ExecRules rules;
    rules.addUser(ExecSide::THERE, "make");
    rules.addUser(ExecSide::HERE, "/opt/py/bin/*");
    std::string text = rules.describe(SpawnPolicy::THERE).cStr();
    CHECK(text.find("exec-there make           (user)\n") == 0);
    CHECK(text.find("exec-here  /opt/py/bin/*  (user)\n") != std::string::npos);
    CHECK(text.find("--spawn=there") != std::string::npos);
  }
}

}  // namespace
}  // namespace sb
