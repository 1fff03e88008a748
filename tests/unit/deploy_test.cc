#include "deploy.h"

#include <doctest.h>

#include <string>

namespace sb {
namespace {

std::string names(kj::StringPtr machine) {
  auto v = agentNamesFor(machine);
  std::string out;
  for (auto& n : v) {
    out += (out.empty() ? "" : " ") + std::string(n.cStr());
  }
  return out;
}

TEST_SUITE("deploy") {
  TEST_CASE("each machine B names gets the agent files that can serve it, best first") {
    CHECK(names("x86_64") == "sbagent-x86_64");
    CHECK(names("aarch64") == "sbagent-aarch64");
    CHECK(names("arm64") == "sbagent-aarch64");
    // A 32-bit ARMv7 userland (or one on an ARMv8 kernel) runs Debian's armhf.
    CHECK(names("armv7l") == "sbagent-armv7l sbagent-armhf");
    CHECK(names("armv8l") == "sbagent-armv8l sbagent-armhf");
    // ARMv6 cannot run armhf's ARMv7 code: only an agent built for it.
    CHECK(names("armv6l") == "sbagent-armv6l");
    CHECK(names("riscv64") == "sbagent-riscv64");
  }

  TEST_CASE("the remote command is the embedded script for sh, with the version as argument") {
    std::string cmd = deployCommand().cStr();
    CHECK(cmd.rfind("sh -c '", 0) == 0);
    std::string tail = std::string("' sbdeploy ") + deployVersion().cStr();
    REQUIRE(cmd.size() > tail.size());
    CHECK(cmd.compare(cmd.size() - tail.size(), tail.size(), tail) == 0);
    CHECK(cmd.find("exec \"$agent\" --stdio") != std::string::npos);
  }

  TEST_CASE("--agent-dir wins over the default places") {
    CHECK(std::string(findAgentDir("/some/dir").cStr()) == "/some/dir");
  }
}

}  // namespace
}  // namespace sb
