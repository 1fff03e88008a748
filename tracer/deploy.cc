#include "deploy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <kj/debug.h>
#include <kj/io.h>
#include <openssl/evp.h>

#include "deploy_script.h"  // DEPLOY_SCRIPT: tracer/deploy.sh, embedded by tracer/meson.build

namespace sb {

namespace {

constexpr bool noSingleQuote(const char* s) {
  for (; *s != 0; ++s) {
    if (*s == '\'') {
      return false;
    }
  }
  return true;
}
// Both travel inside single quotes to B's shell (deployCommand), which has no escape there.
static_assert(noSingleQuote(DEPLOY_SCRIPT), "tracer/deploy.sh must not contain a single quote");
static_assert(noSingleQuote(SB_VERSION), "the project version must not contain a single quote");

// A line from B is short; a shell rc file that prints on stdout before the script starts is
// skipped, up to this much, rather than failing the connection.
constexpr size_t MAX_LINE = 4096;
constexpr size_t MAX_NOISE = 64 * 1024;

kj::String hexSha256(kj::ArrayPtr<const kj::byte> data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  KJ_REQUIRE(EVP_Digest(data.begin(), data.size(), md, &len, EVP_sha256(), nullptr) == 1,
             "OpenSSL could not compute a SHA-256");
  static const char HEX[] = "0123456789abcdef";
  kj::Vector<char> out(len * 2 + 1);
  for (unsigned int i = 0; i < len; ++i) {
    out.add(HEX[md[i] >> 4]);
    out.add(HEX[md[i] & 15]);
  }
  out.add('\0');
  return kj::String(out.releaseAsArray());
}

kj::Array<kj::byte> readWholeFile(kj::StringPtr path) {
  int fd = open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    KJ_FAIL_REQUIRE(kj::str("cannot read the agent ", path, ": ", strerror(errno)));
  }
  kj::AutoCloseFd owned(fd);
  struct stat st;
  KJ_SYSCALL(fstat(fd, &st), path);
  KJ_REQUIRE(S_ISREG(st.st_mode), kj::str("the agent ", path, " is not a regular file"));
  auto data = kj::heapArray<kj::byte>(st.st_size);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd, data.begin() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      KJ_FAIL_REQUIRE(kj::str("cannot read the agent ", path, ": ",
                              n == 0 ? "it shrank while being read" : strerror(errno)));
    }
    done += n;
  }
  return data;
}

bool isFile(kj::StringPtr path) {
  struct stat st;
  return stat(path.cStr(), &st) == 0 && S_ISREG(st.st_mode);
}

// The sbagent-* files in dir, sorted, for messages. A symlink to a cross build not made yet
// (the build tree's agents/) is not one.
kj::String agentsIn(kj::StringPtr dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.cStr())) {
    while (struct dirent* e = readdir(d)) {
      if (kj::StringPtr(e->d_name).startsWith("sbagent-") &&
          isFile(kj::str(dir, "/", e->d_name))) {
        names.push_back(e->d_name);
      }
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    return kj::str("it has none");
  }
  kj::Vector<kj::String> parts;
  for (auto& n : names) {
    parts.add(kj::str(n.c_str()));
  }
  return kj::str("it has ", kj::strArray(parts, ", "));
}

bool isDir(kj::StringPtr path) {
  struct stat st;
  return stat(path.cStr(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The words of a line, split on single spaces; the last one takes the rest of the line.
kj::Vector<kj::String> splitWords(kj::StringPtr line, size_t most) {
  kj::Vector<kj::String> words;
  size_t start = 0;
  while (words.size() + 1 < most) {
    KJ_IF_MAYBE(space, line.slice(start).findFirst(' ')) {
      words.add(kj::heapString(line.slice(start, start + *space)));
      start += *space + 1;
    } else {
      break;
    }
  }
  words.add(kj::heapString(line.slice(start)));
  return words;
}

// One run of the dialogue of tracer/deploy.sh (its header describes it).
class Dialogue {
 public:
  Dialogue(kj::AsyncIoStream& stream, kj::StringPtr target, const DeployOptions& options,
           DeployHooks hooks)
      : stream_(stream), target_(kj::str(target)), mode_(options.mode),
        agentDir_(findAgentDir(options.agentDir)), hooks_(kj::mv(hooks)) {}

  kj::Promise<void> run() {
    return greeting().then([this]() { return cachedList(); }).then([this]() {
      return decide();
    }).then([this]() { return ready(); });
  }

 private:
  kj::AsyncIoStream& stream_;
  kj::String target_;
  DeployMode mode_;
  kj::String agentDir_;
  DeployHooks hooks_;
  kj::Vector<char> line_;
  kj::byte byte_ = 0;
  size_t noise_ = 0;
  kj::String machine_;
  kj::String remoteDir_;
  // B's cached agents: name, sha256.
  kj::Vector<std::pair<kj::String, kj::String>> cached_;
  kj::Array<kj::byte> agent_;
  kj::String request_;

  void say(kj::StringPtr message) { hooks_.verbose(kj::str("target '", target_, "': ", message)); }

  // One line from B, without its newline. The end of the stream is DISCONNECTED, like a peer
  // that went away, so the caller says how ssh ended (could not log in, ...).
  kj::Promise<kj::String> readLine() {
    return stream_.tryRead(&byte_, 1, 1).then([this](size_t n) -> kj::Promise<kj::String> {
      if (n == 0) {
        return KJ_EXCEPTION(DISCONNECTED, "Peer disconnected during the zero-deploy dialogue");
      }
      if (byte_ == '\n') {
        line_.add('\0');
        auto text = kj::String(line_.releaseAsArray());
        line_ = kj::Vector<char>();
        return kj::mv(text);
      }
      if (line_.size() >= MAX_LINE) {
        return KJ_EXCEPTION(FAILED, kj::str(
            "a line of more than ", MAX_LINE, " bytes from B before the agent started: does a "
            "shell rc file on B print on stdout for non-interactive ssh commands?"));
      }
      line_.add(static_cast<char>(byte_));
      return readLine();
    });
  }

  // "sbdeploy 1 MACHINE DIR", after whatever a shell rc file printed first.
  kj::Promise<void> greeting() {
    return readLine().then([this](kj::String line) -> kj::Promise<void> {
      if (line.startsWith("error ")) {
        return KJ_EXCEPTION(FAILED, kj::str("B says: ", line.slice(6)));
      }
      if (!line.startsWith("sbdeploy ")) {
        noise_ += line.size() + 1;
        if (noise_ > MAX_NOISE) {
          return KJ_EXCEPTION(FAILED, kj::str(
              "B printed more than ", MAX_NOISE, " bytes before the zero-deploy script "
              "answered: does a shell rc file on B print on stdout for non-interactive ssh "
              "commands? Last line: ", line));
        }
        return greeting();
      }
      auto words = splitWords(line, 4);
      if (words.size() != 4 || words[1] != "1") {
        return KJ_EXCEPTION(FAILED, kj::str("B's zero-deploy script speaks another dialogue (",
                                            line, "): a bug, sbrun and its script disagree"));
      }
      machine_ = kj::mv(words[2]);
      remoteDir_ = kj::mv(words[3]);
      if (noise_ > 0) {
        say(kj::str("skipped ", noise_, " bytes that B printed before the script's answer (a "
                    "shell rc file?)"));
      }
      return kj::READY_NOW;
    });
  }

  // "have NAME SHA256" lines, then "end".
  kj::Promise<void> cachedList() {
    return readLine().then([this](kj::String line) -> kj::Promise<void> {
      if (line == "end") {
        return kj::READY_NOW;
      }
      if (line.startsWith("error ")) {
        return KJ_EXCEPTION(FAILED, kj::str("B says: ", line.slice(6)));
      }
      auto words = splitWords(line, 3);
      if (words.size() != 3 || words[0] != "have") {
        return KJ_EXCEPTION(FAILED, kj::str("unexpected line from B's zero-deploy script: ",
                                            line));
      }
      cached_.add(kj::mv(words[1]), kj::mv(words[2]));
      return cachedList();
    });
  }

  kj::Promise<void> decide() {
    if (agentDir_.size() == 0) {
      return KJ_EXCEPTION(FAILED, kj::str(
          "B is ", machine_, ", and this sbrun has no agents to deploy (none installed in "
          "lib/splitbrain/agents beside it): give --agent-dir DIR (or SB_AGENT_DIR) holding "
          "sbagent-ARCH files, or install sbagent on B and use --deploy=never (docs/boards.md)"));
    }
    if (!isDir(agentDir_)) {
      return KJ_EXCEPTION(FAILED, kj::str("the agent directory ", agentDir_, " (--agent-dir or "
                                          "SB_AGENT_DIR) is not a directory"));
    }
    kj::String name;
    for (auto& candidate : agentNamesFor(machine_)) {
      if (isFile(kj::str(agentDir_, "/", candidate))) {
        name = kj::mv(candidate);
        break;
      }
    }
    if (name.size() == 0) {
      return KJ_EXCEPTION(FAILED, kj::str(
          "B is ", machine_, "; no agent for it in ", agentDir_, " (", agentsIn(agentDir_),
          "): build one with a cross file (docs/boards.md, \"Cross building the agent\") and "
          "put it there as ", agentNamesFor(machine_)[0],
          ", or install sbagent on B and use --deploy=never"));
    }
    auto path = kj::str(agentDir_, "/", name);
    agent_ = readWholeFile(path);
    auto sum = hexSha256(agent_);
    say(kj::str("B is ", machine_, ": agent ", path));

    kj::StringPtr why;
    if (mode_ == DeployMode::ALWAYS) {
      why = "--deploy=always";
    } else {
      why = "not there yet";
      for (auto& c : cached_) {
        if (c.first == name) {
          why = c.second == sum ? "" : "its copy there differs";
        }
      }
    }
    if (why.size() == 0) {
      say(kj::str("reusing ", name, " cached on B in ", remoteDir_, " (same sha256 ",
                  sum.slice(0, 12), "...): no upload"));
      request_ = kj::str("run ", name, "\n");
      return stream_.write(request_.begin(), request_.size());
    }
    say(kj::str("uploading ", name, " (", agent_.size(), " bytes, sha256 ", sum.slice(0, 12),
                "...) to ", remoteDir_, " on B: ", why));
    hooks_.uploading(agent_.size());
    request_ = kj::str("upload ", name, " ", agent_.size(), " ", sum, "\n");
    return stream_.write(request_.begin(), request_.size()).then([this]() {
      return stream_.write(agent_.begin(), agent_.size());
    });
  }

  // "ready": B exec'd the agent; "error MESSAGE": it did not.
  kj::Promise<void> ready() {
    return readLine().then([this](kj::String line) -> kj::Promise<void> {
      if (line == "ready") {
        agent_ = nullptr;
        return kj::READY_NOW;
      }
      if (line.startsWith("error ")) {
        return KJ_EXCEPTION(FAILED, kj::str("B says: ", line.slice(6)));
      }
      return KJ_EXCEPTION(FAILED, kj::str("unexpected line from B's zero-deploy script: ", line));
    });
  }
};

}  // namespace

kj::StringPtr deployVersion() { return SB_VERSION; }

kj::Vector<kj::String> agentNamesFor(kj::StringPtr machine) {
  kj::Vector<kj::String> names;
  if (machine == "arm64") {
    names.add(kj::str("sbagent-aarch64"));
  } else if (machine == "armv7l" || machine == "armv8l") {
    names.add(kj::str("sbagent-", machine));
    names.add(kj::str("sbagent-armhf"));
  } else {
    names.add(kj::str("sbagent-", machine));
  }
  return names;
}

kj::String findAgentDir(kj::StringPtr given) {
  if (given.size() > 0) {
    return kj::str(given);
  }
  if (const char* env = getenv("SB_AGENT_DIR")) {
    if (*env != 0) {
      return kj::str(env);
    }
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    return kj::str();
  }
  self[n] = 0;
  kj::StringPtr exe(self);
  KJ_IF_MAYBE(slash, exe.findLast('/')) {
    auto bin = kj::heapString(exe.slice(0, *slash));
    for (kj::StringPtr rel : {"../lib/splitbrain/agents", "agents"}) {
      auto candidate = kj::str(bin, "/", rel);
      if (isDir(candidate)) {
        return candidate;
      }
    }
  }
  return kj::str();
}

kj::String deployCommand() {
  return kj::str("sh -c '", DEPLOY_SCRIPT, "' sbdeploy ", SB_VERSION);
}

kj::Promise<void> deployAgent(kj::AsyncIoStream& stream, kj::StringPtr targetName,
                              const DeployOptions& options, DeployHooks hooks) {
  auto dialogue = kj::heap<Dialogue>(stream, targetName, options, kj::mv(hooks));
  auto promise = dialogue->run();
  return promise.attach(kj::mv(dialogue));
}

}  // namespace sb
