#include "deploy.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include <fstream>
#include <string>
#include <vector>

#include "fd_stream.h"

namespace sb {
namespace {

std::string names(kj::StringPtr machine) {
  auto v = agentNamesFor(machine);
  std::string out;
  for (auto& n : v) {
    out += std::string(out.empty() ? "" : " ") + n.cStr();
  }
  return out;
}

// Machine B played by a local shell: the dialogue of deployAgent against the real script
// (deployCommand, run by `/bin/sh -c` as a login shell runs an ssh command), with HOME and PATH
// of the test's choosing. The agent directory holds a stand-in "agent", a script that prints its
// arguments, so what runs after "ready" shows it is the one that was deployed.
struct Deployed {
  std::string error;                 // the exception's description, "" on success
  std::string agentSaid;             // what ran after "ready" printed
  std::vector<std::string> verbose;  // the -v lines
};

Deployed deployOnLocalB(const std::string& home, const std::string& path,
                        const std::string& agentDir, DeployMode mode,
                        const std::string& before = "") {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  int sv[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  // `before`: what a shell rc file on B would run first (printing on stdout, say).
  std::string command = before + deployCommand().cStr();
  std::string homeEnv = "HOME=" + home;
  std::string pathEnv = "PATH=" + path;
  pid_t pid = fork();
  KJ_ASSERT(pid >= 0);
  if (pid == 0) {
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    char* envp[] = {homeEnv.data(), pathEnv.data(), nullptr};
    execle("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr), envp);
    _exit(127);
  }
  close(sv[1]);
  Deployed out;
  {
    FdStream stream(io.unixEventPort, kj::AutoCloseFd(sv[0]));
    DeployOptions options;
    options.mode = mode;
    options.agentDir = kj::str(agentDir.c_str());
    DeployHooks hooks{[&](kj::StringPtr line) { out.verbose.push_back(line.cStr()); },
                      [](uint64_t) {}};
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      deployAgent(stream, "b", options, kj::mv(hooks)).wait(io.waitScope);
    })) {
      out.error = e->getDescription().cStr();
    } else {
      char buf[256];
      size_t n;
      while ((n = stream.tryRead(buf, 1, sizeof(buf)).wait(io.waitScope)) > 0) {
        out.agentSaid.append(buf, n);
      }
    }
  }
  int status;
  waitpid(pid, &status, 0);
  return out;
}

bool said(const Deployed& d, const std::string& text) {
  for (auto& line : d.verbose) {
    if (line.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sb-deploy-test-XXXXXX";
    KJ_ASSERT(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { (void)!system(("rm -rf '" + path + "'").c_str()); }
};

std::string machine() {
  struct utsname u;
  KJ_ASSERT(uname(&u) == 0);
  return u.machine;
}

TEST_SUITE("deploy") {
  TEST_CASE("against a local sh as B: uploads once, then reuses; the deployed file runs") {
    TempDir t;
    std::string agents = t.path + "/agents";
    KJ_ASSERT(mkdir(agents.c_str(), 0755) == 0);
    std::string agent = agents + "/" + agentNamesFor(machine().c_str())[0].cStr();
    std::ofstream(agent) << "#!/bin/sh\necho \"stand-in agent $*\"\n";
    KJ_ASSERT(chmod(agent.c_str(), 0755) == 0);
    std::string path = "/usr/bin:/bin";

    auto first = deployOnLocalB(t.path, path, agents, DeployMode::AUTO);
    CHECK(first.error == "");
    CHECK(first.agentSaid == "stand-in agent --stdio\n");
    CHECK(said(first, "uploading sbagent-"));
    std::string cached = t.path + "/.cache/splitbrain/" + deployVersion().cStr() + "/" +
                         agentNamesFor(machine().c_str())[0].cStr();
    struct stat st;
    REQUIRE(stat(cached.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);

    auto second = deployOnLocalB(t.path, path, agents, DeployMode::AUTO);
    CHECK(second.error == "");
    CHECK(second.agentSaid == "stand-in agent --stdio\n");
    CHECK(said(second, "no upload"));
    CHECK_FALSE(said(second, "uploading"));

    auto always = deployOnLocalB(t.path, path, agents, DeployMode::ALWAYS);
    CHECK(always.error == "");
    CHECK(said(always, "uploading sbagent-"));
  }

  TEST_CASE("what a shell rc file on B prints before the script answers is skipped") {
    TempDir t;
    std::string agents = t.path + "/agents";
    KJ_ASSERT(mkdir(agents.c_str(), 0755) == 0);
    std::string agent = agents + "/" + agentNamesFor(machine().c_str())[0].cStr();
    std::ofstream(agent) << "#!/bin/sh\necho \"stand-in agent $*\"\n";
    KJ_ASSERT(chmod(agent.c_str(), 0755) == 0);
    auto d = deployOnLocalB(t.path, "/usr/bin:/bin", agents, DeployMode::AUTO,
                            "echo Welcome to the board; echo; echo sbdeployed; ");
    CHECK(d.error == "");
    CHECK(d.agentSaid == "stand-in agent --stdio\n");
    CHECK(said(d, "skipped 33 bytes"));
  }

  TEST_CASE("a B without a checksum tool refuses to run anything, and says what to install") {
    TempDir t;
    std::string agents = t.path + "/agents";
    std::string bin = t.path + "/bin";
    KJ_ASSERT(mkdir(agents.c_str(), 0755) == 0 && mkdir(bin.c_str(), 0755) == 0);
    std::string agent = agents + "/" + agentNamesFor(machine().c_str())[0].cStr();
    std::ofstream(agent) << "#!/bin/sh\necho ran\n";
    // Every tool the script uses but sha256sum, shasum and openssl.
    for (const char* tool : {"sh", "uname", "mkdir", "chmod", "mv", "rm", "head"}) {
      std::string target = std::string("/bin/") + tool;
      KJ_ASSERT(symlink(target.c_str(), (bin + "/" + tool).c_str()) == 0);
    }
    auto d = deployOnLocalB(t.path, bin, agents, DeployMode::AUTO);
    CHECK(d.error.find("B has no sha256sum, shasum or openssl") != std::string::npos);
    CHECK(d.agentSaid == "");
  }

  TEST_CASE("a machine with no agent in the directory is an error that names both") {
    TempDir t;
    std::string agents = t.path + "/agents";
    KJ_ASSERT(mkdir(agents.c_str(), 0755) == 0);
    std::ofstream(agents + "/sbagent-sparc64") << "not this one";
    auto d = deployOnLocalB(t.path, "/usr/bin:/bin", agents, DeployMode::AUTO);
    std::string want = "B is " + machine() + "; no agent for it in " + agents +
                       " (it has sbagent-sparc64)";
    CHECK(d.error.find(want) != std::string::npos);
    CHECK(d.error.find("docs/boards.md") != std::string::npos);
    struct stat st;
    CHECK(stat((t.path + "/.cache/splitbrain").c_str(), &st) != 0);  // nothing uploaded
  }


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

  TEST_CASE("an agent directory that does not exist is an error that names it") {
    TempDir t;
    auto d = deployOnLocalB(t.path, "/usr/bin:/bin", t.path + "/nowhere", DeployMode::AUTO);
    CHECK(d.error.find("the agent directory " + t.path + "/nowhere (--agent-dir or SB_AGENT_DIR) "
                       "is not a directory") != std::string::npos);
  }

  TEST_CASE("--agent-dir wins over the default places") {
    CHECK(std::string(findAgentDir("/some/dir").cStr()) == "/some/dir");
  }
}

}  // namespace
}  // namespace sb
