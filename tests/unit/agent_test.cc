// Tests of sbagent's servers (Agent, Session, Node) driven in process over a kj two-way pipe with
// the real two-party RPC, against real syscalls in a temporary directory (no kernel mocks).

#include <doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include "confinement.h"
#include "executor.h"
#include "host_wire.h"
#include "lease_breaks.h"
#include "listener.h"
#include "log.h"
#include "node.h"
#include "preamble.h"
#include "process.h"
#include "session.h"

namespace sb {
namespace {

using proto::Node;

// ---------------------------------------------------------------------------------------------
// Fixtures

int removeEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

// A temporary directory, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sbagent-test-XXXXXX";
    KJ_ASSERT(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

void writeFile(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  KJ_ASSERT(fd >= 0, path, strerror(errno));
  KJ_ASSERT(::write(fd, content.data(), content.size()) == ssize_t(content.size()));
  ::close(fd);
}

std::string readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("<") + strerror(errno) + ">";
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  return std::string(buf, n > 0 ? size_t(n) : 0);
}

// Open fds of this process, not counting sockets: kj's in-process two-way pipe is a socketpair
// that goes away with the connection itself.
size_t countOpenFds() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (auto* e = readdir(d)) {
    char target[256] = {};
    if (readlink((std::string("/proc/self/fd/") + e->d_name).c_str(), target,
                 sizeof(target) - 1) < 0) {
      continue;  // "." and ".."
    }
    if (strncmp(target, "socket:", 7) != 0) ++n;
  }
  closedir(d);
  return n;
}

kj::ArrayPtr<const kj::byte> bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string str(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}

struct AgentConfig {
  std::string root;  // empty: unconfined
  bool readOnly = false;
  std::string token;
  Limits limits = {};

  static AgentConfig confinedTo(std::string root) {
    AgentConfig c;
    c.root = kj::mv(root);
    return c;
  }
  static AgentConfig readOnlyAgent() {
    AgentConfig c;
    c.readOnly = true;
    return c;
  }
  static AgentConfig withToken(std::string token) {
    AgentConfig c;
    c.token = kj::mv(token);
    return c;
  }
};

// One agent and one client connected over an in-memory pipe.
struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::WaitScope& ws = io.waitScope;
  kj::Own<Confinement> confinement;
  Executor executor{io.provider->getTimer()};
  Reaper reaper{executor};
  AgentContext agentContext;
  Log log;
  AgentOptions options;
  Listener listener;
  kj::Own<kj::AsyncIoStream> clientEnd;
  kj::Promise<void> serverDone = nullptr;
  kj::Own<capnp::TwoPartyVatNetwork> clientNetwork;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> clientRpc;
  kj::Maybe<proto::Agent::Client> agentCap;

  explicit Fixture(const AgentConfig& config = {})
      : confinement(config.root.empty() ? Confinement::unconfined()
                                        : Confinement::confinedTo(config.root.c_str())),
        agentContext{*confinement, executor, reaper, config.readOnly, config.limits},
        options{config.token.empty() ? kj::Maybe<kj::String>(nullptr)
                                     : kj::Maybe<kj::String>(kj::heapString(config.token)),
                log},
        listener(io, agentContext, options) {
    auto pipe = io.provider->newTwoWayPipe();
    serverDone = listener.serve(kj::mv(pipe.ends[0]), kj::str("test"));
    clientEnd = kj::mv(pipe.ends[1]);
    clientNetwork = kj::heap<capnp::TwoPartyVatNetwork>(
        *clientEnd, capnp::rpc::twoparty::Side::CLIENT, agentReaderOptions());
    clientRpc = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
        capnp::makeRpcClient(*clientNetwork));
    capnp::MallocMessageBuilder vatId;
    vatId.getRoot<capnp::rpc::twoparty::VatId>().setSide(capnp::rpc::twoparty::Side::SERVER);
    agentCap = clientRpc->bootstrap(vatId.getRoot<capnp::rpc::twoparty::VatId>())
                   .castAs<proto::Agent>();
  }

  proto::Agent::Client& agent() { return KJ_ASSERT_NONNULL(agentCap); }

  capnp::Response<proto::Agent::HandshakeResults> handshake(
      uint32_t version = proto::PROTOCOL_VERSION, const std::string& token = "") {
    auto req = agent().handshakeRequest();
    auto hello = req.initHello();
    hello.setProtocolVersion(version);
    hello.setClientArch("x86_64");
    hello.setClientName("agent_test");
    hello.setToken(bytes(token));
    return req.send().wait(ws);
  }

  proto::Session::Client session(const std::string& token = "") {
    return handshake(proto::PROTOCOL_VERSION, token).getSession();
  }

  Node::Client root(proto::Session::Client& s) {
    return s.rootRequest().send().wait(ws).getDir();
  }

  // Drops the client's side of the connection and waits until the agent has seen it go.
  void disconnect() {
    agentCap = nullptr;
    clientRpc = nullptr;
    clientNetwork = nullptr;
    clientEnd = nullptr;
    serverDone.wait(ws);
  }

  template <typename Pred>
  bool waitUntil(Pred pred) {
    for (int i = 0; i < 2000; ++i) {
      if (pred()) return true;
      io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(ws);
    }
    return pred();
  }
};

// ---------------------------------------------------------------------------------------------
// Small call helpers

struct How {
  proto::AccessMode access = proto::AccessMode::READ_ONLY;
  bool create = false, exclusive = false, truncate = false, directory = false, noFollow = false,
       nonBlock = false, append = false;
  uint32_t mode = 0644;
};

struct Opened {
  int64_t result;
  Node::Client node;
  proto::FileType type;
};

Opened openAt(Fixture& f, Node::Client dir, const std::string& path, How how = {}) {
  auto req = dir.openAtRequest();
  req.setPath(bytes(path));
  auto h = req.initHow();
  h.setAccess(how.access);
  h.setCreate(how.create);
  h.setExclusive(how.exclusive);
  h.setTruncate(how.truncate);
  h.setDirectory(how.directory);
  h.setNoFollow(how.noFollow);
  h.setNonBlock(how.nonBlock);
  h.setAppend(how.append);
  h.setMode(how.mode);
  auto resp = req.send().wait(f.ws);
  return {resp.getResult(), resp.getNode(), resp.getInfo().getType()};
}

// The directory at `path` as a node (the working directory of most cases below).
Node::Client openDir(Fixture& f, Node::Client dir, const std::string& path) {
  How how;
  how.directory = true;
  return openAt(f, dir, path, how).node;
}

How rw(bool create = true) {
  How h;
  h.access = proto::AccessMode::READ_WRITE;
  h.create = create;
  return h;
}

int64_t write(Fixture& f, Node::Client node, const std::string& data) {
  auto req = node.writeRequest();
  req.setData(bytes(data));
  return req.send().wait(f.ws).getResult();
}

struct ReadResult {
  int64_t result;
  std::string data;
};

ReadResult pread(Fixture& f, Node::Client node, uint64_t count, int64_t offset) {
  auto req = node.preadRequest();
  req.setCount(count);
  req.setOffset(offset);
  auto resp = req.send().wait(f.ws);
  return {resp.getResult(), str(resp.getData())};
}

ReadResult read(Fixture& f, Node::Client node, uint64_t count) {
  auto req = node.readRequest();
  req.setCount(count);
  auto resp = req.send().wait(f.ws);
  return {resp.getResult(), str(resp.getData())};
}

struct Stat {
  int64_t result;
  uint32_t mode = 0;
  uint64_t size = 0;
  uint32_t nlink = 0, uid = 0, gid = 0;
  int64_t mtime = 0, atime = 0;
  uint64_t ino = 0;
};

Stat statAt(Fixture& f, Node::Client dir, const std::string& path, bool noFollow = false,
            bool emptyPath = false) {
  auto req = dir.statAtRequest();
  req.setPath(bytes(path));
  req.initFlags().setNoFollow(noFollow);
  req.getFlags().setEmptyPath(emptyPath);
  req.setMask(0x7ff);  // STATX_BASIC_STATS
  auto resp = req.send().wait(f.ws);
  auto st = resp.getStat();
  return {resp.getResult(), st.getMode(), st.getSize(), st.getNlink(), st.getUid(), st.getGid(),
          st.getMtime().getSec(), st.getAtime().getSec(), st.getIno()};
}

int64_t mkdirAt(Fixture& f, Node::Client dir, const std::string& path, uint32_t mode = 0755) {
  auto req = dir.mkdirAtRequest();
  req.setPath(bytes(path));
  req.setMode(mode);
  return req.send().wait(f.ws).getResult();
}

int64_t unlinkAt(Fixture& f, Node::Client dir, const std::string& path, bool removeDir = false) {
  auto req = dir.unlinkAtRequest();
  req.setPath(bytes(path));
  req.setRemoveDir(removeDir);
  return req.send().wait(f.ws).getResult();
}

int64_t symlinkAt(Fixture& f, Node::Client dir, const std::string& target,
                  const std::string& path) {
  auto req = dir.symlinkAtRequest();
  req.setTarget(bytes(target));
  req.setPath(bytes(path));
  return req.send().wait(f.ws).getResult();
}

ReadResult readlinkAt(Fixture& f, Node::Client dir, const std::string& path, uint64_t size) {
  auto req = dir.readlinkAtRequest();
  req.setPath(bytes(path));
  req.setSize(size);
  auto resp = req.send().wait(f.ws);
  return {resp.getResult(), str(resp.getTarget())};
}

int64_t renameAt(Fixture& f, Node::Client dir, const std::string& from, Node::Client newDir,
                 const std::string& to, bool noReplace = false) {
  auto req = dir.renameAtRequest();
  req.setOldPath(bytes(from));
  req.setNewDir(kj::mv(newDir));
  req.setNewPath(bytes(to));
  req.setNoReplace(noReplace);
  return req.send().wait(f.ws).getResult();
}

int64_t linkAt(Fixture& f, Node::Client dir, const std::string& from, Node::Client newDir,
               const std::string& to, bool follow = false) {
  auto req = dir.linkAtRequest();
  req.setOldPath(bytes(from));
  req.setNewDir(kj::mv(newDir));
  req.setNewPath(bytes(to));
  req.setFollow(follow);
  return req.send().wait(f.ws).getResult();
}

int64_t chmodAt(Fixture& f, Node::Client dir, const std::string& path, uint32_t mode,
                bool noFollow = false, bool emptyPath = false) {
  auto req = dir.chmodAtRequest();
  req.setPath(bytes(path));
  req.setMode(mode);
  req.setNoFollow(noFollow);
  req.setEmptyPath(emptyPath);
  return req.send().wait(f.ws).getResult();
}

int64_t truncateAt(Fixture& f, Node::Client dir, const std::string& path, int64_t length,
                   bool emptyPath = false) {
  auto req = dir.truncateAtRequest();
  req.setPath(bytes(path));
  req.setLength(length);
  req.setEmptyPath(emptyPath);
  return req.send().wait(f.ws).getResult();
}

ReadResult nodePath(Fixture& f, Node::Client node) {
  auto resp = node.pathRequest().send().wait(f.ws);
  return {resp.getResult(), str(resp.getPath())};
}

// The errno the host kernel gives for `call`, for differential checks.
int64_t native(int r) { return r < 0 ? -int64_t(errno) : r; }

// ---------------------------------------------------------------------------------------------
// Spawn helpers

struct ChildFdSpec {
  enum Kind { NODE, TO_CHILD, FROM_CHILD, DEV_NULL, SAME_AS };
  int fd;
  Kind kind;
  Node::Client* node = nullptr;  // NODE; the caller keeps it
  int sameAs = -1;               // SAME_AS
};

struct SpawnSpec {
  std::string path;
  std::vector<std::string> argv;
  std::vector<std::string> envp = {"PATH=/usr/bin:/bin"};
  Node::Client* dir = nullptr;  // the caller keeps them
  Node::Client* cwd = nullptr;
  bool emptyPath = false;
  bool noFollow = false;
  uint32_t umask = 022;
  std::vector<ChildFdSpec> fds = {{1, ChildFdSpec::FROM_CHILD}};
};

// `sh -c SCRIPT`, its stdout a pipe the test reads.
SpawnSpec sh(const std::string& script) {
  SpawnSpec spec;
  spec.path = "/bin/sh";
  spec.argv = {"sh", "-c", script};
  return spec;
}

struct Spawned {
  int64_t result;
  kj::Maybe<proto::Process::Client> process;
  std::map<int, Node::Client> stdio;

  proto::Process::Client& proc() { return KJ_ASSERT_NONNULL(process); }
  Node::Client& out() { return stdio.at(1); }
};

Spawned spawn(Fixture& f, proto::Session::Client& session, const SpawnSpec& spec) {
  auto req = session.spawnRequest();
  auto r = req.initRequest();
  if (spec.dir != nullptr) r.setDir(*spec.dir);
  if (spec.cwd != nullptr) r.setCwd(*spec.cwd);
  r.setPath(bytes(spec.path));
  r.setEmptyPath(spec.emptyPath);
  r.setNoFollow(spec.noFollow);
  r.setUmask(spec.umask);
  auto argv = r.initArgv(spec.argv.size());
  for (size_t i = 0; i < spec.argv.size(); ++i) argv.set(i, bytes(spec.argv[i]));
  auto envp = r.initEnvp(spec.envp.size());
  for (size_t i = 0; i < spec.envp.size(); ++i) envp.set(i, bytes(spec.envp[i]));
  auto fds = r.initFds(spec.fds.size());
  for (size_t i = 0; i < spec.fds.size(); ++i) {
    auto& fd = spec.fds[i];
    fds[i].setFd(fd.fd);
    switch (fd.kind) {
      case ChildFdSpec::NODE: fds[i].setNode(*fd.node); break;
      case ChildFdSpec::TO_CHILD: fds[i].setPipeToChild(); break;
      case ChildFdSpec::FROM_CHILD: fds[i].setPipeFromChild(); break;
      case ChildFdSpec::DEV_NULL: fds[i].setDevNull(); break;
      case ChildFdSpec::SAME_AS: fds[i].setSameAs(fd.sameAs); break;
    }
  }
  auto resp = req.send().wait(f.ws);
  Spawned out{resp.getResult(), nullptr, {}};
  if (out.result == 0) {
    out.process = resp.getProcess();
    for (auto pipe: resp.getStdio()) {
      out.stdio.emplace(pipe.getFd(), pipe.getNode());
    }
  }
  return out;
}

// Reads until EOF (or an error, returned as "<-errno>").
std::string readAll(Fixture& f, Node::Client node) {
  std::string all;
  for (;;) {
    auto r = read(f, node, 4096);
    if (r.result < 0) return all + "<" + std::to_string(r.result) + ">";
    if (r.result == 0) return all;
    all += r.data;
  }
}

struct Exit {
  int64_t result;
  bool signaled;
  int value;
  bool coreDumped;
};

Exit wait(Fixture& f, proto::Process::Client& process) {
  auto resp = process.waitRequest().send().wait(f.ws);
  auto status = resp.getStatus();
  bool signaled = status.isSignaled();
  return {resp.getResult(), signaled, signaled ? status.getSignaled() : status.getExited(),
          status.getCoreDumped()};
}

int64_t kill(Fixture& f, proto::Process::Client& process, int sig) {
  auto req = process.killRequest();
  req.setSignal(sig);
  return req.send().wait(f.ws).getResult();
}

pid_t pidOf(Fixture& f, proto::Process::Client& process) {
  return process.pidRequest().send().wait(f.ws).getPid();
}

// Gone for good: not running and not a zombie either (kill(2) succeeds on a zombie).
bool reaped(pid_t pid) { return ::kill(pid, 0) < 0 && errno == ESRCH; }

// Dead, for a process that is not ours to reap: gone, or a zombie its new parent has not reaped.
bool dead(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return reaped(pid) || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
}

bool hasCapability(int cap) {
  std::string status = readFile("/proc/self/status");
  auto at = status.find("CapEff:");
  if (at == std::string::npos) return false;
  return (std::stoull(status.substr(at + 7), nullptr, 16) >> cap) & 1;
}

void copyFile(const std::string& from, const std::string& to, mode_t mode) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  KJ_ASSERT(in >= 0, from, strerror(errno));
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  KJ_ASSERT(out >= 0, to, strerror(errno));
  char buf[65536];
  ssize_t n;
  while ((n = ::read(in, buf, sizeof(buf))) > 0) {
    KJ_ASSERT(::write(out, buf, size_t(n)) == n);
  }
  ::close(in);
  ::close(out);
}

// ---------------------------------------------------------------------------------------------

TEST_SUITE("agent") {

TEST_CASE("a handshake with the agent's protocol version gets a welcome describing this machine") {
  Fixture f;
  auto resp = f.handshake();
  auto welcome = resp.getWelcome();
  struct utsname u;
  REQUIRE(uname(&u) == 0);
  CHECK(welcome.getProtocolVersion() == proto::PROTOCOL_VERSION);
  CHECK(std::string(welcome.getArch().cStr()) == u.machine);
  CHECK(std::string(welcome.getKernel().cStr()) == u.release);
  CHECK(std::string(welcome.getUname().getNodename().cStr()) == u.nodename);
  CHECK(std::string(welcome.getUname().getDomainname().cStr()) == u.domainname);
  CHECK(str(welcome.getRoot()) == "/");
  CHECK(!welcome.getReadOnly());
  CHECK(welcome.getAgentPid() == getpid());
  CHECK(welcome.getUid() == geteuid());
  CHECK(welcome.getGid() == getegid());

  auto session = resp.getSession();
  auto un = session.unameRequest().send().wait(f.ws);
  CHECK(un.getResult() == 0);
  CHECK(std::string(un.getUname().getSysname().cStr()) == u.sysname);
}

TEST_CASE("a handshake with another protocol version is refused naming both versions") {
  Fixture f;
  auto failure = kj::runCatchingExceptions([&]() { f.handshake(proto::PROTOCOL_VERSION + 41); });
  KJ_IF_MAYBE(e, failure) {
    std::string description = e->getDescription().cStr();
    CHECK(description.find("upgrade sbrun or sbagent so they match") != std::string::npos);
    CHECK(description.find(std::to_string(proto::PROTOCOL_VERSION + 41)) != std::string::npos);
    CHECK(description.find("version " + std::to_string(proto::PROTOCOL_VERSION)) !=
          std::string::npos);
  } else {
    FAIL("the handshake was accepted");
  }
}

TEST_CASE("with a token the handshake requires exactly that token") {
  Fixture f(AgentConfig::withToken("s3cret"));
  for (std::string wrong: {"", "s3cre", "s3cret\n", "S3cret"}) {
    auto failure = kj::runCatchingExceptions([&]() { f.handshake(proto::PROTOCOL_VERSION, wrong); });
    KJ_IF_MAYBE(e, failure) {
      CHECK(std::string(e->getDescription().cStr()).find("bad token") != std::string::npos);
    } else {
      FAIL("a wrong token was accepted: " << wrong);
    }
  }
  auto session = f.session("s3cret");
  CHECK(f.root(session).infoRequest().send().wait(f.ws).getInfo().getType() ==
        proto::FileType::DIRECTORY);
  CHECK(tokensEqual(bytes("abc"), bytes("abc")));
  CHECK(!tokensEqual(bytes("abc"), bytes("abd")));
  CHECK(!tokensEqual(bytes("abc"), bytes("abcd")));
}

TEST_CASE("openAt says which files a client may read ahead") {
  TempDir tmp;
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto readAhead = [&](const std::string& path) {
    auto req = root.openAtRequest();
    req.setPath(bytes(path));
    req.initHow().setAccess(proto::AccessMode::READ_ONLY);
    auto resp = req.send().wait(f.ws);
    REQUIRE(resp.getResult() == 0);
    return resp.getInfo().getReadAhead();
  };
  auto made = openAt(f, root, tmp / "full", rw());
  REQUIRE(made.result == 0);
  CHECK(write(f, made.node, "some content") == 12);
  REQUIRE(openAt(f, root, tmp / "empty", rw()).result == 0);
  CHECK(readAhead(tmp / "full"));
  CHECK_FALSE(readAhead(tmp / "empty"));  // Perhaps a generated file: never read ahead.
  CHECK_FALSE(readAhead(tmp.path));       // A directory.
  CHECK_FALSE(readAhead("/proc/self/status"));
  CHECK_FALSE(readAhead("/proc/version"));
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0) {
    CHECK_FALSE(readAhead("/sys/kernel/mm/transparent_hugepage/enabled"));  // size 4096
  }
}

TEST_CASE("a created file can be written, read back, sought and stat'ed") {
  TempDir tmp;
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto opened = openAt(f, root, tmp / "a.txt", rw());
  REQUIRE(opened.result == 0);
  CHECK(opened.type == proto::FileType::REGULAR);
  auto& file = opened.node;
  CHECK(write(f, file, "hello world") == 11);
  CHECK(readFile(tmp / "a.txt") == "hello world");

  auto r = pread(f, file, 5, 6);
  CHECK(r.result == 5);
  CHECK(r.data == "world");
  // A count far beyond the file (and beyond the 64 MiB cap) is a short read, not an error.
  r = pread(f, file, uint64_t(1) << 62, 0);
  CHECK(r.result == 11);
  CHECK(r.data == "hello world");

  auto seek = file.seekRequest();
  seek.setOffset(-5);
  seek.setWhence(proto::Whence::END);
  CHECK(seek.send().wait(f.ws).getResult() == 6);
  r = read(f, file, 100);
  CHECK(r.data == "world");
  CHECK(read(f, file, 100).result == 0);  // EOF

  // pread with offset -1 reads at the file position (preadv2).
  seek = file.seekRequest();
  seek.setOffset(0);
  seek.setWhence(proto::Whence::SET);
  seek.send().wait(f.ws);
  r = pread(f, file, 5, -1);
  CHECK(r.data == "hello");
  CHECK(read(f, file, 1).data == " ");

  auto pw = file.pwriteRequest();
  pw.setData(bytes("W"));
  pw.setOffset(6);
  CHECK(pw.send().wait(f.ws).getResult() == 1);
  CHECK(readFile(tmp / "a.txt") == "hello World");

  auto st = statAt(f, root, tmp / "a.txt");
  CHECK(st.result == 0);
  CHECK(st.size == 11);
  CHECK(S_ISREG(st.mode));
  struct stat nst;
  REQUIRE(stat((tmp / "a.txt").c_str(), &nst) == 0);
  CHECK(st.ino == nst.st_ino);
  CHECK((st.mode & 07777) == (nst.st_mode & 07777));
  // The node itself through emptyPath; empty path without it is ENOENT, as the kernel says.
  CHECK(statAt(f, file, "", false, true).size == 11);
  CHECK(statAt(f, file, "", false, false).result == -ENOENT);

  auto flags = file.getFlagsRequest().send().wait(f.ws);
  CHECK(flags.getResult() == 0);
  CHECK(flags.getFlags().getAccess() == proto::AccessMode::READ_WRITE);
  CHECK(!flags.getFlags().getAppend());
  auto set = file.setFlagsRequest();
  set.initFlags().setAppend(true);
  CHECK(set.send().wait(f.ws).getResult() == 0);
  CHECK(file.getFlagsRequest().send().wait(f.ws).getFlags().getAppend());

  CHECK(file.closeRequest().send().wait(f.ws).getResult() == 0);
  // A closed node answers EBADF to everything, including a second close.
  CHECK(file.closeRequest().send().wait(f.ws).getResult() == -EBADF);
  CHECK(read(f, file, 1).result == -EBADF);
}

TEST_CASE("getdents delivers every entry once, in kernel-sized chunks") {
  TempDir tmp;
  std::set<std::string> expected = {".", ".."};
  for (int i = 0; i < 60; ++i) {
    std::string name = "file-with-a-longish-name-" + std::to_string(i);
    writeFile(tmp / name, "");
    expected.insert(name);
  }
  mkdir((tmp / "subdir").c_str(), 0755);
  expected.insert("subdir");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  How dirHow;
  dirHow.directory = true;
  auto dir = openAt(f, root, tmp.path, dirHow);
  REQUIRE(dir.result == 0);
  CHECK(dir.type == proto::FileType::DIRECTORY);

  std::set<std::string> seen;
  bool sawDirType = false;
  for (;;) {
    auto req = dir.node.getdentsRequest();
    req.setMaxBytes(256);
    auto resp = req.send().wait(f.ws);
    REQUIRE(resp.getResult() >= 0);
    if (resp.getResult() == 0) break;
    CHECK(resp.getResult() <= 256);
    size_t recordBytes = 0;
    for (auto entry: resp.getEntries()) {
      std::string name = str(entry.getName());
      CHECK(seen.insert(name).second);
      if (name == "subdir") sawDirType = entry.getType() == DT_DIR;
      // linux_dirent64 record size: 19 header bytes + name + NUL, 8-aligned.
      recordBytes += (19 + name.size() + 1 + 7) & ~size_t(7);
    }
    CHECK(recordBytes == size_t(resp.getResult()));
  }
  CHECK(seen == expected);
  CHECK(sawDirType);

  // Too small for one record: the kernel's EINVAL, and nothing consumed.
  auto seek = dir.node.seekRequest();
  seek.setOffset(0);
  seek.setWhence(proto::Whence::SET);
  seek.send().wait(f.ws);
  auto small = dir.node.getdentsRequest();
  small.setMaxBytes(8);
  CHECK(small.send().wait(f.ws).getResult() == -EINVAL);
  // getdents on a regular file: ENOTDIR from the kernel.
  auto file = openAt(f, root, tmp / "file-with-a-longish-name-1");
  auto bad = file.node.getdentsRequest();
  bad.setMaxBytes(4096);
  CHECK(bad.send().wait(f.ws).getResult() == -ENOTDIR);
}

TEST_CASE("mkdir, rename, link, symlink, readlink, unlink and rmdir act on the file system") {
  TempDir tmp;
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openDir(f, root, tmp.path);

  CHECK(mkdirAt(f, dir, "d", 0700) == 0);
  struct stat st;
  REQUIRE(stat((tmp / "d").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK(mkdirAt(f, dir, "d") == -EEXIST);

  writeFile(tmp / "f", "data");
  CHECK(renameAt(f, dir, "f", dir, "d/g") == 0);
  CHECK(readFile(tmp / "d/g") == "data");
  writeFile(tmp / "other", "x");
  CHECK(renameAt(f, dir, "other", dir, "d/g", true) == -EEXIST);  // noReplace

  CHECK(linkAt(f, dir, "d/g", dir, "hard") == 0);
  REQUIRE(stat((tmp / "hard").c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);

  CHECK(symlinkAt(f, dir, "d/g", "sym") == 0);
  auto link = readlinkAt(f, dir, "sym", 100);
  CHECK(link.result == 3);
  CHECK(link.data == "d/g");
  // A short buffer gets a truncated target, as readlink(2) does.
  link = readlinkAt(f, dir, "sym", 2);
  CHECK(link.result == 2);
  CHECK(link.data == "d/");
  CHECK(readlinkAt(f, dir, "d/g", 100).result == -EINVAL);  // not a symlink
  CHECK(readlinkAt(f, dir, "sym", 0).result == -EINVAL);
  // A symlink is followed by stat and not by the noFollow variant.
  CHECK(S_ISREG(statAt(f, dir, "sym").mode));
  CHECK(S_ISLNK(statAt(f, dir, "sym", true).mode));
  // linkAt with follow links the target, without it the symlink itself.
  CHECK(linkAt(f, dir, "sym", dir, "sym-hard", false) == 0);
  CHECK(S_ISLNK(statAt(f, dir, "sym-hard", true).mode));
  CHECK(linkAt(f, dir, "sym", dir, "sym-followed", true) == 0);
  CHECK(S_ISREG(statAt(f, dir, "sym-followed", true).mode));

  auto mk = dir.mknodAtRequest();
  mk.setPath(bytes("fifo"));
  mk.setMode(S_IFIFO | 0600);
  CHECK(mk.send().wait(f.ws).getResult() == 0);
  CHECK(S_ISFIFO(statAt(f, dir, "fifo").mode));

  CHECK(unlinkAt(f, dir, "d") == -EISDIR);
  CHECK(unlinkAt(f, dir, "d", true) == -ENOTEMPTY);
  CHECK(unlinkAt(f, dir, "d/g") == 0);
  CHECK(unlinkAt(f, dir, "d", true) == 0);
  CHECK(access((tmp / "d").c_str(), F_OK) < 0);
  CHECK(unlinkAt(f, dir, "hard") == 0);
  CHECK(unlinkAt(f, dir, "hard") == -ENOENT);
}

// A 32-bit board (armhf) once stored a time after 2038 wrapped (a raw SYS_utimensat with 32-bit
// times) and could not open a file newer than 2038 (EOVERFLOW from a 32-bit fstatat). These run
// under qemu-arm in the armhf cross build (meson test -C build-armhf --suite unit).
TEST_CASE("times past 2038 and before 1970, and sizes past 4 GiB, cross intact") {
  TempDir tmp;
  writeFile(tmp / "f", "x");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openDir(f, root, tmp.path);

  auto ut = dir.utimensAtRequest();
  ut.setPath(bytes("f"));
  auto mt = ut.initMtime().initTime();
  mt.setSec(2208988800);  // 2040-01-01
  mt.setNsec(5);
  ut.initAtime().initTime().setSec(-1009843200);  // 1938-01-01
  REQUIRE(ut.send().wait(f.ws).getResult() == 0);
  struct stat st;
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK(int64_t(st.st_mtime) == 2208988800);
  CHECK(st.st_mtim.tv_nsec == 5);
  CHECK(int64_t(st.st_atime) == -1009843200);
  // Opening it again through the agent must not fail with EOVERFLOW.
  auto file = openAt(f, dir, "f");
  CHECK(file.result == 0);

  // A sparse file past 4 GiB: its size and its last byte.
  CHECK(truncateAt(f, dir, "f", (int64_t(5) << 30) + 1) == 0);
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK(int64_t(st.st_size) == (int64_t(5) << 30) + 1);
  auto big = openAt(f, dir, "f");
  REQUIRE(big.result == 0);
  auto r = pread(f, big.node, 10, int64_t(5) << 30);
  CHECK(r.result == 1);
}

TEST_CASE("statfs reports the file system magic unsigned on every host") {
  // f_type is a signed 32-bit word on 32-bit hosts: btrfs's magic must not turn negative.
  struct statfs st;
  memset(&st, 0, sizeof(st));
  st.f_type = decltype(st.f_type)(0x9123683EU);
  st.f_blocks = uint64_t(5) << 32;
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<proto::Statfs>();
  statfsToWire(st, out);
  CHECK(out.getType() == 0x9123683E);
  CHECK(out.getBlocks() == uint64_t(5) << 32);
}

TEST_CASE("chmod, chown, utimens and truncate change what stat reports") {
  TempDir tmp;
  writeFile(tmp / "f", "0123456789");
  REQUIRE(symlink("f", (tmp / "link").c_str()) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openDir(f, root, tmp.path);

  CHECK(chmodAt(f, dir, "f", 0600) == 0);
  struct stat st;
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(chmodAt(f, dir, "link", 0640) == 0);  // follows
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(chmodAt(f, dir, "link", 0600, true) == -EOPNOTSUPP);  // lchmod
  auto file = openAt(f, dir, "f").node;
  CHECK(chmodAt(f, file, "", 0604, false, true) == 0);
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0604);
  CHECK(chmodAt(f, dir, "missing", 0600) == -ENOENT);

  auto chown = dir.chownAtRequest();
  chown.setPath(bytes("f"));
  chown.setUid(-1);
  chown.setGid(getegid());
  CHECK(chown.send().wait(f.ws).getResult() == 0);

  auto ut = dir.utimensAtRequest();
  ut.setPath(bytes("f"));
  auto at = ut.initAtime().initTime();
  at.setSec(1000000000);
  ut.initMtime().initTime().setSec(1234567890);
  CHECK(ut.send().wait(f.ws).getResult() == 0);
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK(st.st_mtime == 1234567890);
  CHECK(st.st_atime == 1000000000);
  // Omit keeps a time, now sets it; through the node itself (emptyPath).
  auto ut2 = file.utimensAtRequest();
  ut2.setEmptyPath(true);
  ut2.initAtime().setOmit();
  ut2.initMtime().setNow();
  CHECK(ut2.send().wait(f.ws).getResult() == 0);
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK(st.st_atime == 1000000000);
  CHECK(st.st_mtime > 1234567890);
  // The symlink's own times with noFollow.
  auto ut3 = dir.utimensAtRequest();
  ut3.setPath(bytes("link"));
  ut3.setNoFollow(true);
  ut3.initAtime().initTime().setSec(42);
  ut3.initMtime().initTime().setSec(43);
  CHECK(ut3.send().wait(f.ws).getResult() == 0);
  REQUIRE(lstat((tmp / "link").c_str(), &st) == 0);
  CHECK(st.st_mtime == 43);

  CHECK(truncateAt(f, dir, "link", 4) == 0);
  CHECK(readFile(tmp / "f") == "0123");
  auto writable = openAt(f, dir, "f", rw(false)).node;
  CHECK(truncateAt(f, writable, "", 2, true) == 0);
  CHECK(readFile(tmp / "f") == "01");
  CHECK(truncateAt(f, file, "", 1, true) == -EINVAL);  // ftruncate of a read-only fd
  CHECK(truncateAt(f, dir, ".", 0) == -EISDIR);

  auto fa = writable.fallocateRequest();
  fa.setMode(0);
  fa.setOffset(0);
  fa.setLength(8192);
  CHECK(fa.send().wait(f.ws).getResult() == 0);
  REQUIRE(stat((tmp / "f").c_str(), &st) == 0);
  CHECK(st.st_size == 8192);
}

TEST_CASE("extended attributes round-trip, and size 0 asks for the size") {
  TempDir tmp;
  writeFile(tmp / "f", "");
  if (setxattr((tmp / "f").c_str(), "user.probe", "1", 1, 0) < 0) {
    MESSAGE("the temp file system has no user xattrs; skipped");
    return;
  }
  removexattr((tmp / "f").c_str(), "user.probe");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openAt(f, root, tmp.path).node;

  auto set = dir.setXattrRequest();
  set.setPath(bytes("f"));
  set.setName(bytes("user.colour"));
  set.setValue(bytes("blue"));
  CHECK(set.send().wait(f.ws).getResult() == 0);
  char value[16] = {};
  CHECK(getxattr((tmp / "f").c_str(), "user.colour", value, sizeof(value)) == 4);
  CHECK(std::string(value) == "blue");

  auto set2 = dir.setXattrRequest();
  set2.setPath(bytes("f"));
  set2.setName(bytes("user.colour"));
  set2.setValue(bytes("red"));
  set2.initFlags().setCreate(true);
  CHECK(set2.send().wait(f.ws).getResult() == -EEXIST);

  auto get = dir.getXattrRequest();
  get.setPath(bytes("f"));
  get.setName(bytes("user.colour"));
  get.setSize(0);
  auto sized = get.send().wait(f.ws);
  CHECK(sized.getResult() == 4);
  CHECK(sized.getValue().size() == 0);
  auto get2 = dir.getXattrRequest();
  get2.setPath(bytes("f"));
  get2.setName(bytes("user.colour"));
  get2.setSize(100);
  auto got = get2.send().wait(f.ws);
  CHECK(got.getResult() == 4);
  CHECK(str(got.getValue()) == "blue");
  auto get3 = dir.getXattrRequest();
  get3.setPath(bytes("f"));
  get3.setName(bytes("user.colour"));
  get3.setSize(2);
  CHECK(get3.send().wait(f.ws).getResult() == -ERANGE);

  auto list = dir.listXattrRequest();
  list.setPath(bytes("f"));
  list.setSize(1000);
  auto names = list.send().wait(f.ws);
  CHECK(str(names.getNames()).find(std::string("user.colour\0", 12)) != std::string::npos);

  // The kernel's bounds: a name longer than 255 bytes, a value over 64 KiB.
  auto longName = dir.getXattrRequest();
  longName.setPath(bytes("f"));
  longName.setName(bytes("user." + std::string(300, 'n')));
  longName.setSize(10);
  CHECK(longName.send().wait(f.ws).getResult() == -ERANGE);
  auto bigValue = dir.setXattrRequest();
  bigValue.setPath(bytes("f"));
  bigValue.setName(bytes("user.big"));
  bigValue.setValue(bytes(std::string(70000, 'v')));
  CHECK(bigValue.send().wait(f.ws).getResult() == -E2BIG);
  auto missing = dir.getXattrRequest();
  missing.setPath(bytes("f"));
  missing.setName(bytes("user.missing"));
  missing.setSize(10);
  CHECK(missing.send().wait(f.ws).getResult() == -ENODATA);

  auto file = openAt(f, dir, "f").node;
  auto remove = file.removeXattrRequest();
  remove.setEmptyPath(true);
  remove.setName(bytes("user.colour"));
  CHECK(remove.send().wait(f.ws).getResult() == 0);
  CHECK(getxattr((tmp / "f").c_str(), "user.colour", value, sizeof(value)) < 0);
  CHECK(errno == ENODATA);
}

// A POSIX lock request of traced process `owner` on byte `at` of `node`.
capnp::Request<proto::Node::LockParams, proto::Node::LockResults> posixLock(
    proto::Node::Client& node, int32_t owner, proto::LockCmd cmd, proto::LockType type, int at) {
  auto req = node.lockRequest();
  req.setCmd(cmd);
  req.setOwner(owner);
  auto l = req.initLock();
  l.setType(type);
  l.setWhence(proto::Whence::SET);
  l.setStart(at);
  l.setLen(1);
  return req;
}

// The waits for POSIX locks on `path` that the kernel lists in /proc/locks ("->" lines).
int lockWaiters(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  char want[64];
  snprintf(want, sizeof(want), ":%lu ", static_cast<unsigned long>(st.st_ino));
  FILE* f = fopen("/proc/locks", "re");
  REQUIRE(f != nullptr);
  char line[256];
  int n = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    n += strstr(line, "->") != nullptr && strstr(line, want) != nullptr;
  }
  fclose(f);
  return n;
}

TEST_CASE("POSIX locks: each traced process is its own owner on B, and B's kernel finds deadlocks") {
  TempDir tmp;
  writeFile(tmp / "f", "0123456789");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto node = openAt(f, root, tmp / "f", rw(false)).node;
  using C = proto::LockCmd;
  using T = proto::LockType;
  // Owners 101 and 102 (two traced processes) through one description: they still conflict.
  CHECK(posixLock(node, 101, C::SET_LK, T::WRITE, 0).send().wait(f.ws).getResult() == 0);
  CHECK(posixLock(node, 102, C::SET_LK, T::WRITE, 1).send().wait(f.ws).getResult() == 0);
  CHECK(posixLock(node, 102, C::SET_LK, T::WRITE, 0).send().wait(f.ws).getResult() == -EAGAIN);
  // F_GETLK names the holder by its traced process.
  auto held = posixLock(node, 103, C::GET_LK, T::WRITE, 0).send().wait(f.ws);
  CHECK(held.getResult() == 0);
  CHECK(held.getLock().getPid() == 101);
  // 101 waits for 102's byte; 102 then waiting for 101's would close a cycle: EDEADLK.
  auto waiting = posixLock(node, 101, C::SET_LK_W, T::WRITE, 1).send();
  for (int i = 0; i < 2000 && lockWaiters(tmp / "f") == 0; ++i) {
    f.ws.poll();
    usleep(1000);
  }
  REQUIRE(lockWaiters(tmp / "f") == 1);
  CHECK(posixLock(node, 102, C::SET_LK_W, T::WRITE, 0).send().wait(f.ws).getResult() ==
        -EDEADLK);
  // 102 exits: its locks go, and 101's wait ends with the lock.
  auto gone = session.releaseOwnerRequest();
  gone.setOwner(102);
  gone.send().wait(f.ws);
  CHECK(waiting.wait(f.ws).getResult() == 0);
  // 101 closes an fd of the file: all its locks on it go.
  auto release = node.releaseLocksRequest();
  release.setOwner(101);
  CHECK(release.send().wait(f.ws).getResult() == 0);
  CHECK(posixLock(node, 103, C::SET_LK, T::WRITE, 0).send().wait(f.ws).getResult() == 0);
  CHECK(posixLock(node, 103, C::SET_LK, T::WRITE, 1).send().wait(f.ws).getResult() == 0);
}

// The client's side of a lease: counts the breaks the agent passes on.
class CountingHolder final: public proto::LeaseHolder::Server {
 public:
  explicit CountingHolder(int& breaks, uint32_t& band): breaks(breaks), band(band) {}
  kj::Promise<void> broken(BrokenContext context) override {
    ++breaks;
    band = context.getParams().getBand();
    return kj::READY_NOW;
  }

 private:
  int& breaks;
  uint32_t& band;
};

proto::Node::LeaseResults::Reader setLease(Fixture& f, Node::Client node, proto::LockType type,
                                           kj::Maybe<proto::LeaseHolder::Client> holder,
                                           kj::Vector<capnp::Response<
                                               proto::Node::LeaseResults>>& keep) {
  auto req = node.leaseRequest();
  req.setSet(true);
  req.setType(type);
  KJ_IF_MAYBE(h, holder) {
    req.setHolder(*h);
  }
  keep.add(req.send().wait(f.ws));
  return keep.back();
}

TEST_CASE("a lease B grants is held by the agent, and B's break reaches the lease's holder") {
  LeaseBreaks::block();  // this thread is the event loop's
  TempDir tmp;
  writeFile(tmp / "f", "0123456789");
  Fixture f;
  LeaseBreaks breaks(f.io.unixEventPort, f.log);
  f.agentContext.leaseBreaks = breaks;
  auto session = f.session();
  auto root = f.root(session);
  auto node = openAt(f, root, tmp / "f").node;
  kj::Vector<capnp::Response<proto::Node::LeaseResults>> keep;
  using T = proto::LockType;
  // Without a holder (an older client): B's grant is given back, EINVAL.
  CHECK(setLease(f, node, T::WRITE, nullptr, keep).getResult() == -EINVAL);
  int n = 0;
  uint32_t band = 0;
  proto::LeaseHolder::Client holder = kj::heap<CountingHolder>(n, band);
  REQUIRE(setLease(f, node, T::WRITE, holder, keep).getResult() == 0);
  CHECK(breaks.held() == 1);
  auto get = node.leaseRequest();
  get.setSet(false);
  CHECK(get.send().wait(f.ws).getType() == T::WRITE);
  // An opener on B (here: a reader that would rather not wait) breaks it.
  errno = 0;
  CHECK(open((tmp / "f").c_str(), O_RDONLY | O_NONBLOCK) == -1);
  CHECK(errno == EWOULDBLOCK);
  REQUIRE(f.waitUntil([&]() { return n > 0; }));
  CHECK(n == 1);
  CHECK((band & POLLMSG) != 0);
  // During the break B reports the type it breaks to; the holder's answer ends it.
  auto during = node.leaseRequest();
  during.setSet(false);
  CHECK(during.send().wait(f.ws).getType() == T::READ);
  CHECK(setLease(f, node, T::UNLOCK, nullptr, keep).getResult() == 0);
  CHECK(breaks.held() == 0);
  int opened = open((tmp / "f").c_str(), O_RDONLY | O_NONBLOCK);
  CHECK(opened >= 0);
  close(opened);
  // A lease still held goes with the node's close.
  REQUIRE(setLease(f, node, T::READ, holder, keep).getResult() == 0);
  CHECK(breaks.held() == 1);
  CHECK(node.closeRequest().send().wait(f.ws).getResult() == 0);
  CHECK(breaks.held() == 0);
  opened = open((tmp / "f").c_str(), O_WRONLY | O_NONBLOCK);
  CHECK(opened >= 0);
  close(opened);
  CHECK(n == 1);
}

TEST_CASE("a lease B granted goes with the session: a lost connection lets B's openers in") {
  LeaseBreaks::block();
  TempDir tmp;
  writeFile(tmp / "f", "0123456789");
  Fixture f;
  LeaseBreaks breaks(f.io.unixEventPort, f.log);
  f.agentContext.leaseBreaks = breaks;
  {
    auto session = f.session();
    auto root = f.root(session);
    auto node = openAt(f, root, tmp / "f").node;
    kj::Vector<capnp::Response<proto::Node::LeaseResults>> keep;
    int n = 0;
    uint32_t band = 0;
    proto::LeaseHolder::Client holder = kj::heap<CountingHolder>(n, band);
    REQUIRE(setLease(f, node, proto::LockType::WRITE, holder, keep).getResult() == 0);
    CHECK(breaks.held() == 1);
  }
  f.disconnect();
  CHECK(breaks.held() == 0);
  int opened = open((tmp / "f").c_str(), O_WRONLY | O_NONBLOCK);
  CHECK(opened >= 0);
  close(opened);
}

TEST_CASE("fcntl and flock locks conflict between open file descriptions as the kernel says") {
  TempDir tmp;
  writeFile(tmp / "f", "0123456789");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto a = openAt(f, root, tmp / "f", rw(false)).node;
  auto b = openAt(f, root, tmp / "f", rw(false)).node;

  auto lock = a.lockRequest();
  lock.setCmd(proto::LockCmd::OFD_SET_LK);
  auto l = lock.initLock();
  l.setType(proto::LockType::WRITE);
  l.setWhence(proto::Whence::SET);
  l.setStart(0);
  l.setLen(5);
  CHECK(lock.send().wait(f.ws).getResult() == 0);

  auto query = b.lockRequest();
  query.setCmd(proto::LockCmd::OFD_GET_LK);
  auto q = query.initLock();
  q.setType(proto::LockType::WRITE);
  q.setWhence(proto::Whence::SET);
  q.setLen(0);
  auto answer = query.send().wait(f.ws);
  CHECK(answer.getResult() == 0);
  CHECK(answer.getLock().getType() == proto::LockType::WRITE);
  CHECK(answer.getLock().getLen() == 5);
  CHECK(answer.getLock().getPid() == -1);  // OFD lock holder

  auto conflict = b.lockRequest();
  conflict.setCmd(proto::LockCmd::OFD_SET_LK);
  auto c = conflict.initLock();
  c.setType(proto::LockType::READ);
  c.setWhence(proto::Whence::SET);
  c.setStart(2);
  c.setLen(1);
  CHECK(conflict.send().wait(f.ws).getResult() == -EAGAIN);

  // Lock ranges are relative to set/cur/end only.
  auto badWhence = b.lockRequest();
  badWhence.setCmd(proto::LockCmd::OFD_GET_LK);
  badWhence.initLock().setWhence(proto::Whence::DATA);
  CHECK(badWhence.send().wait(f.ws).getResult() == -EINVAL);

  // A bad enum value from a newer peer is EINVAL, not a crash.
  auto bad = b.lockRequest();
  bad.setCmd(static_cast<proto::LockCmd>(99));
  CHECK(bad.send().wait(f.ws).getResult() == -EINVAL);

  auto flockA = a.flockRequest();
  flockA.setExclusive(true);
  CHECK(flockA.send().wait(f.ws).getResult() == 0);  // runs on a worker: may block
  auto flockB = b.flockRequest();
  flockB.setExclusive(true);
  flockB.setNonBlock(true);
  CHECK(flockB.send().wait(f.ws).getResult() == -EWOULDBLOCK);
  auto unlockA = a.flockRequest();
  unlockA.setUnlock(true);
  CHECK(unlockA.send().wait(f.ws).getResult() == 0);
  auto flockB2 = b.flockRequest();
  flockB2.setExclusive(true);
  flockB2.setNonBlock(true);
  CHECK(flockB2.send().wait(f.ws).getResult() == 0);

  auto sync = a.fsyncRequest();
  sync.setDataOnly(true);
  CHECK(sync.send().wait(f.ws).getResult() == 0);
}

TEST_CASE("copyTo copies between nodes of one session and answers EXDEV for another session's") {
  TempDir tmp;
  writeFile(tmp / "src", "copy me please");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto src = openAt(f, root, tmp / "src").node;
  auto dst = openAt(f, root, tmp / "dst", rw()).node;

  auto copy = src.copyToRequest();
  copy.setDst(dst);
  copy.setCount(4);
  copy.setSrcOffset(5);
  copy.setDstOffset(0);
  copy.setKind(proto::CopyKind::COPY_FILE_RANGE);
  auto resp = copy.send().wait(f.ws);
  CHECK(resp.getResult() == 4);
  CHECK(resp.getSrcOffset() == 9);
  CHECK(resp.getDstOffset() == 4);
  CHECK(readFile(tmp / "dst") == "me p");

  auto send = src.copyToRequest();
  send.setDst(dst);
  send.setCount(100);
  send.setSrcOffset(-1);
  send.setDstOffset(-1);
  send.setKind(proto::CopyKind::SENDFILE);
  auto sent = send.send().wait(f.ws);
  CHECK(sent.getResult() == 14);
  CHECK(sent.getSrcOffset() == -1);
  CHECK(readFile(tmp / "dst") == "copy me please");

  auto other = f.session();
  auto otherRoot = f.root(other);
  auto foreign = openAt(f, otherRoot, tmp / "dst", rw(false)).node;
  auto cross = src.copyToRequest();
  cross.setDst(foreign);
  cross.setCount(4);
  cross.setSrcOffset(0);
  cross.setDstOffset(0);
  cross.setKind(proto::CopyKind::COPY_FILE_RANGE);
  CHECK(cross.send().wait(f.ws).getResult() == -EXDEV);
  CHECK(renameAt(f, root, tmp / "src", otherRoot, tmp / "moved") == -EXDEV);
  CHECK(linkAt(f, root, tmp / "src", otherRoot, tmp / "linked") == -EXDEV);
  CHECK(access((tmp / "src").c_str(), F_OK) == 0);
}

TEST_CASE("path() follows a node through renames and says ENOENT once it is deleted") {
  TempDir tmp;
  mkdir((tmp / "d").c_str(), 0755);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  CHECK(nodePath(f, root).data == "/");
  auto dir = openAt(f, root, tmp / "d").node;
  CHECK(nodePath(f, dir).data == tmp / "d");
  CHECK(nodePath(f, dir).result == int64_t((tmp / "d").size()));
  REQUIRE(rename((tmp / "d").c_str(), (tmp / "e").c_str()) == 0);
  CHECK(nodePath(f, dir).data == tmp / "e");
  CHECK(dir.chdirCheckRequest().send().wait(f.ws).getResult() == 0);
  REQUIRE(rmdir((tmp / "e").c_str()) == 0);
  CHECK(nodePath(f, dir).result == -ENOENT);

  writeFile(tmp / "file", "");
  auto file = openAt(f, root, tmp / "file").node;
  CHECK(file.chdirCheckRequest().send().wait(f.ws).getResult() == -ENOTDIR);

  auto opened = session.openPathRequest();
  opened.setPath(bytes(tmp.path.substr(1)));  // relative: against the root
  auto resp = opened.send().wait(f.ws);
  CHECK(resp.getResult() == 0);
  auto viaPath = resp.getDir();
  CHECK(nodePath(f, viaPath).data == tmp.path);
  auto notDir = session.openPathRequest();
  notDir.setPath(bytes(tmp / "file"));
  CHECK(notDir.send().wait(f.ws).getResult() == -ENOTDIR);
}

TEST_CASE("bad requests get the kernel's errnos: ENOENT EEXIST EISDIR ENOTDIR EBADF ELOOP ENAMETOOLONG") {
  TempDir tmp;
  writeFile(tmp / "f", "x");
  mkdir((tmp / "d").c_str(), 0755);
  REQUIRE(symlink("loop2", (tmp / "loop1").c_str()) == 0);
  REQUIRE(symlink("loop1", (tmp / "loop2").c_str()) == 0);
  REQUIRE(symlink("f", (tmp / "sym").c_str()) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openAt(f, root, tmp.path).node;

  CHECK(openAt(f, dir, "missing").result == -ENOENT);
  How excl = rw();
  excl.exclusive = true;
  CHECK(openAt(f, dir, "f", excl).result == -EEXIST);
  CHECK(openAt(f, dir, "sym", excl).result == -EEXIST);
  CHECK(openAt(f, dir, "d", rw(false)).result == -EISDIR);
  CHECK(openAt(f, dir, "f/x").result == -ENOTDIR);
  How asDir;
  asDir.directory = true;
  CHECK(openAt(f, dir, "f", asDir).result == -ENOTDIR);
  CHECK(openAt(f, dir, "loop1").result == -ELOOP);
  How noFollow;
  noFollow.noFollow = true;
  CHECK(openAt(f, dir, "sym", noFollow).result == -ELOOP);
  How pathOnly;
  pathOnly.access = proto::AccessMode::PATH;
  pathOnly.noFollow = true;
  auto symNode = openAt(f, dir, "sym", pathOnly);
  CHECK(symNode.result == 0);
  CHECK(symNode.type == proto::FileType::SYMLINK);
  CHECK(readlinkAt(f, symNode.node, "", 10).data == "f");

  std::string longName(300, 'n');
  CHECK(openAt(f, dir, longName).result == -ENAMETOOLONG);
  std::string longPath;
  while (longPath.size() < 5000) longPath += "d/";
  CHECK(openAt(f, dir, longPath).result == -ENAMETOOLONG);
  CHECK(mkdirAt(f, dir, longPath) == -ENAMETOOLONG);
  CHECK(openAt(f, dir, std::string("a\0b", 3)).result == -EINVAL);

  // Misuse of a node: writing a read-only fd, reading an O_PATH fd.
  auto ro = openAt(f, dir, "f").node;
  CHECK(write(f, ro, "y") == -EBADF);
  auto pathNode = openAt(f, dir, "f", pathOnly).node;
  CHECK(read(f, pathNode, 1).result == -EBADF);
  auto dirRead = openAt(f, dir, "d").node;
  CHECK(read(f, dirRead, 1).result == -EISDIR);
  auto seek = ro.seekRequest();
  seek.setOffset(0);
  seek.setWhence(static_cast<proto::Whence>(42));
  CHECK(seek.send().wait(f.ws).getResult() == -EINVAL);
  How badAccess;
  badAccess.access = static_cast<proto::AccessMode>(9);
  CHECK(openAt(f, dir, "f", badAccess).result == -EINVAL);
  CHECK(mkdirAt(f, dir, "") == -ENOENT);
  auto acc = dir.accessAtRequest();
  acc.setPath(bytes("f"));
  acc.setMode(0x40);
  CHECK(acc.send().wait(f.ws).getResult() == -EINVAL);
  auto acc2 = dir.accessAtRequest();
  acc2.setPath(bytes("f"));
  acc2.setMode(R_OK);
  CHECK(acc2.send().wait(f.ws).getResult() == 0);
}

TEST_CASE("without --root, absolute paths and /proc magic links work as on the host") {
  TempDir tmp;
  writeFile(tmp / "f", "magic");
  int fd = ::open((tmp / "f").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto sub = openAt(f, root, tmp.path).node;
  // Absolute from any node; the magic link of this very process's fd.
  auto opened = openAt(f, sub, "/proc/self/fd/" + std::to_string(fd));
  REQUIRE(opened.result == 0);
  CHECK(read(f, opened.node, 10).data == "magic");
  auto statfs = sub.statfsRequest();
  auto fs = statfs.send().wait(f.ws);
  CHECK(fs.getResult() == 0);
  CHECK(fs.getStatfs().getBsize() > 0);
  ::close(fd);
}

TEST_CASE("--root: `..` stops at the root and absolute paths resolve inside it") {
  TempDir tmp;
  mkdir((tmp / "root").c_str(), 0755);
  mkdir((tmp / "root/sub").c_str(), 0755);
  mkdir((tmp / "root/sub/deeper").c_str(), 0755);
  writeFile(tmp / "root/inner.txt", "inside");
  writeFile(tmp / "secret", "outside");
  Fixture f(AgentConfig::confinedTo(tmp / "root"));
  auto resp = f.handshake();
  CHECK(str(resp.getWelcome().getRoot()) == tmp / "root");
  auto session = resp.getSession();
  auto root = f.root(session);
  CHECK(nodePath(f, root).data == "/");

  CHECK(read(f, openAt(f, root, "../../../inner.txt").node, 100).data == "inside");
  CHECK(openAt(f, root, "../secret").result == -ENOENT);
  CHECK(read(f, openAt(f, root, "/inner.txt").node, 100).data == "inside");
  CHECK(openAt(f, root, tmp / "secret").result == -ENOENT);

  // From a subdirectory node, `..` climbs up to the root, and no further.
  auto deeper = openAt(f, root, "sub/deeper").node;
  CHECK(nodePath(f, deeper).data == "/sub/deeper");
  CHECK(read(f, openAt(f, deeper, "../../inner.txt").node, 100).data == "inside");
  CHECK(read(f, openAt(f, deeper, "../../../../inner.txt").node, 100).data == "inside");
  CHECK(openAt(f, deeper, "../../../secret").result == -ENOENT);
  CHECK(mkdirAt(f, deeper, "../../made") == 0);
  CHECK(access((tmp / "root/made").c_str(), F_OK) == 0);
  CHECK(mkdirAt(f, deeper, "../../../../made2") == 0);
  CHECK(access((tmp / "root/made2").c_str(), F_OK) == 0);
  CHECK(access((tmp / "made2").c_str(), F_OK) < 0);
  CHECK(statAt(f, deeper, "../../inner.txt").size == 6);
  CHECK(renameAt(f, deeper, "../../made", deeper, "../moved") == 0);
  CHECK(access((tmp / "root/sub/moved").c_str(), F_OK) == 0);
  CHECK(unlinkAt(f, deeper, "../../../secret") == -ENOENT);
  CHECK(readFile(tmp / "secret") == "outside");

  auto op = session.openPathRequest();
  op.setPath(bytes("/sub"));
  CHECK(op.send().wait(f.ws).getResult() == 0);
  auto esc = session.openPathRequest();
  esc.setPath(bytes(tmp.path));
  CHECK(esc.send().wait(f.ws).getResult() == -ENOENT);
}

TEST_CASE("--root: absolute symlinks and symlinks to /proc/self/root stay inside the root") {
  TempDir tmp;
  mkdir((tmp / "root").c_str(), 0755);
  mkdir((tmp / "root/sub").c_str(), 0755);
  writeFile(tmp / "root/inner.txt", "inside");
  writeFile(tmp / "secret", "outside");
  REQUIRE(symlink("/inner.txt", (tmp / "root/abs").c_str()) == 0);
  REQUIRE(symlink((tmp / "secret").c_str(), (tmp / "root/hostabs").c_str()) == 0);
  REQUIRE(symlink("/proc/self/root", (tmp / "root/escape").c_str()) == 0);
  REQUIRE(symlink("../../../../../..", (tmp / "root/sub/up").c_str()) == 0);
  REQUIRE(symlink(tmp.path.c_str(), (tmp / "root/hostdir").c_str()) == 0);
  Fixture f(AgentConfig::confinedTo(tmp / "root"));
  auto session = f.session();
  auto root = f.root(session);
  auto sub = openAt(f, root, "sub").node;

  CHECK(read(f, openAt(f, root, "abs").node, 100).data == "inside");
  CHECK(read(f, openAt(f, sub, "../abs").node, 100).data == "inside");
  CHECK(openAt(f, root, "hostabs").result == -ENOENT);
  CHECK(openAt(f, root, "escape" + tmp / "secret").result < 0);
  CHECK(openAt(f, root, "escape/etc/hostname").result < 0);
  CHECK(read(f, openAt(f, sub, "up/inner.txt").node, 100).data == "inside");
  CHECK(openAt(f, sub, "up/secret").result == -ENOENT);

  // Non-open path calls go through the same gate.
  CHECK(statAt(f, root, "hostabs").result == -ENOENT);
  CHECK(statAt(f, root, "hostabs", true).result == 0);  // the symlink itself is inside
  CHECK(chmodAt(f, root, "hostabs", 0600) == -ENOENT);
  CHECK(chmodAt(f, root, "hostdir/secret", 0600) == -ENOENT);
  CHECK(truncateAt(f, root, "hostabs", 0) == -ENOENT);
  CHECK(mkdirAt(f, root, "hostdir/newdir") == -ENOENT);
  CHECK(symlinkAt(f, root, "x", "hostdir/newlink") == -ENOENT);
  CHECK(unlinkAt(f, root, "hostdir/secret") == -ENOENT);
  CHECK(renameAt(f, root, "hostdir/secret", root, "stolen") == -ENOENT);
  CHECK(linkAt(f, root, "hostabs", root, "stolen", true) == -ENOENT);
  CHECK(readFile(tmp / "secret") == "outside");
  struct stat st;
  REQUIRE(stat((tmp / "secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(access((tmp / "newdir").c_str(), F_OK) < 0);
  auto acc = root.accessAtRequest();
  acc.setPath(bytes("hostabs"));
  acc.setMode(F_OK);
  CHECK(acc.send().wait(f.ws).getResult() == -ENOENT);
  auto ut = root.utimensAtRequest();
  ut.setPath(bytes("hostabs"));
  ut.initAtime().setNow();
  ut.initMtime().setNow();
  CHECK(ut.send().wait(f.ws).getResult() == -ENOENT);
  // A symlink the agent creates with an absolute target is also resolved inside the root.
  CHECK(symlinkAt(f, root, tmp / "secret", "mine") == 0);
  CHECK(openAt(f, root, "mine").result == -ENOENT);
}

TEST_CASE("--root: magic links are refused inside the root") {
  // With /proc as the root, "self/root" is a magic link to the real /: it must not resolve.
  Fixture f(AgentConfig::confinedTo("/proc"));
  auto session = f.session();
  auto root = f.root(session);
  int64_t r = openAt(f, root, "self/root/etc/hostname").result;
  CHECK(r < 0);
  CHECK((r == -EXDEV || r == -ELOOP));
  CHECK(statAt(f, root, "self/root/etc").result < 0);
  CHECK(statAt(f, root, "self/status").result == 0);  // plain files in the root still work
}

TEST_CASE("--root: trailing slashes and dot components get the same errnos as the kernel") {
  TempDir tmp;
  mkdir((tmp / "root").c_str(), 0755);
  Fixture f(AgentConfig::confinedTo(tmp / "root"));
  auto session = f.session();
  auto root = f.root(session);
  // Each call runs in the confined agent and natively in a twin directory.
  std::string twin = tmp / "twin";
  mkdir(twin.c_str(), 0755);
  for (const std::string& base: {tmp / "root", twin}) {
    mkdir((base + "/dir").c_str(), 0755);
    mkdir((base + "/full").c_str(), 0755);
    writeFile(base + "/full/x", "");
    writeFile(base + "/file", "");
    REQUIRE(symlink("dir", (base + "/dirlink").c_str()) == 0);
  }
  int dfd = ::open(twin.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dfd >= 0);
  struct Case {
    std::string what;
    std::function<int64_t()> agent;
    std::function<int64_t()> host;
  };
  auto rmdirCase = [&](std::string p) {
    return Case{"rmdir " + p, [&f, &root, p]() { return unlinkAt(f, root, p, true); },
                [dfd, p]() { return native(unlinkat(dfd, p.c_str(), AT_REMOVEDIR)); }};
  };
  auto unlinkCase = [&](std::string p) {
    return Case{"unlink " + p, [&f, &root, p]() { return unlinkAt(f, root, p, false); },
                [dfd, p]() { return native(unlinkat(dfd, p.c_str(), 0)); }};
  };
  auto mkdirCase = [&](std::string p) {
    return Case{"mkdir " + p, [&f, &root, p]() { return mkdirAt(f, root, p); },
                [dfd, p]() { return native(mkdirat(dfd, p.c_str(), 0755)); }};
  };
  auto symlinkCase = [&](std::string p) {
    return Case{"symlink " + p, [&f, &root, p]() { return symlinkAt(f, root, "t", p); },
                [dfd, p]() { return native(symlinkat("t", dfd, p.c_str())); }};
  };
  auto statCase = [&](std::string p, bool noFollow) {
    return Case{"stat " + p, [&f, &root, p, noFollow]() {
                  return statAt(f, root, p, noFollow).result; },
                [dfd, p, noFollow]() {
                  struct stat st;
                  return native(fstatat(dfd, p.c_str(), &st, noFollow ? AT_SYMLINK_NOFOLLOW : 0));
                }};
  };
  std::vector<Case> cases = {
      rmdirCase("dir/."), rmdirCase("dir/.."), rmdirCase("."), rmdirCase("file/"),
      rmdirCase("dirlink/"), rmdirCase("full"), unlinkCase("dir/"), unlinkCase("file/"),
      unlinkCase("."), unlinkCase("dir"), unlinkCase("missing/"), mkdirCase("new/"),
      mkdirCase("dir/."), mkdirCase("dir/.."), mkdirCase("file/"), mkdirCase("missing/x"),
      symlinkCase("s/"), symlinkCase("file/"), symlinkCase("."), statCase("file/", false),
      statCase("dirlink/", true), statCase("dir/..", false), statCase("dirlink", true),
      statCase("file/.", false), statCase("missing", true)};
  for (auto& c: cases) {
    int64_t a = c.agent();
    int64_t h = c.host();
    INFO(c.what);
    CHECK(a == h);
  }
  ::close(dfd);
}

TEST_CASE("read-only mode answers EROFS to every modifying operation") {
  TempDir tmp;
  writeFile(tmp / "f", "keep");
  mkdir((tmp / "d").c_str(), 0755);
  Fixture f(AgentConfig::readOnlyAgent());
  auto resp = f.handshake();
  CHECK(resp.getWelcome().getReadOnly());
  auto session = resp.getSession();
  auto root = f.root(session);
  auto dir = openAt(f, root, tmp.path).node;

  auto ro = openAt(f, dir, "f");
  REQUIRE(ro.result == 0);
  CHECK(read(f, ro.node, 10).data == "keep");
  CHECK(write(f, ro.node, "x") == -EROFS);
  auto pw = ro.node.pwriteRequest();
  pw.setData(bytes("x"));
  pw.setOffset(0);
  CHECK(pw.send().wait(f.ws).getResult() == -EROFS);
  How create = rw();
  create.access = proto::AccessMode::READ_ONLY;
  CHECK(openAt(f, dir, "f", create).result == 0);  // O_CREAT of an existing file: fine
  CHECK(openAt(f, dir, "new", create).result == -EROFS);
  CHECK(openAt(f, dir, "f", rw(false)).result == -EROFS);
  How wo;
  wo.access = proto::AccessMode::WRITE_ONLY;
  CHECK(openAt(f, dir, "f", wo).result == -EROFS);
  How trunc;
  trunc.truncate = true;
  CHECK(openAt(f, dir, "f", trunc).result == -EROFS);
  CHECK(mkdirAt(f, dir, "nd") == -EROFS);
  CHECK(unlinkAt(f, dir, "f") == -EROFS);
  CHECK(unlinkAt(f, dir, "d", true) == -EROFS);
  CHECK(renameAt(f, dir, "f", dir, "g") == -EROFS);
  CHECK(linkAt(f, dir, "f", dir, "g") == -EROFS);
  CHECK(symlinkAt(f, dir, "f", "g") == -EROFS);
  CHECK(chmodAt(f, dir, "f", 0600) == -EROFS);
  CHECK(truncateAt(f, dir, "f", 0) == -EROFS);
  auto mk = dir.mknodAtRequest();
  mk.setPath(bytes("fifo"));
  mk.setMode(S_IFIFO | 0600);
  CHECK(mk.send().wait(f.ws).getResult() == -EROFS);
  auto chown = dir.chownAtRequest();
  chown.setPath(bytes("f"));
  chown.setUid(-1);
  chown.setGid(-1);
  CHECK(chown.send().wait(f.ws).getResult() == -EROFS);
  auto ut = dir.utimensAtRequest();
  ut.setPath(bytes("f"));
  ut.initAtime().setNow();
  ut.initMtime().setNow();
  CHECK(ut.send().wait(f.ws).getResult() == -EROFS);
  auto sx = dir.setXattrRequest();
  sx.setPath(bytes("f"));
  sx.setName(bytes("user.x"));
  sx.setValue(bytes("1"));
  CHECK(sx.send().wait(f.ws).getResult() == -EROFS);
  auto rx = dir.removeXattrRequest();
  rx.setPath(bytes("f"));
  rx.setName(bytes("user.x"));
  CHECK(rx.send().wait(f.ws).getResult() == -EROFS);
  auto fa = ro.node.fallocateRequest();
  fa.setLength(10);
  CHECK(fa.send().wait(f.ws).getResult() == -EROFS);
  auto acc = dir.accessAtRequest();
  acc.setPath(bytes("f"));
  acc.setMode(W_OK);
  CHECK(acc.send().wait(f.ws).getResult() == -EROFS);
  // Errors of lookup come first, as on a read-only mount.
  CHECK(unlinkAt(f, dir, "missing/x") == -ENOENT);
  CHECK(readFile(tmp / "f") == "keep");
  CHECK(access((tmp / "d").c_str(), F_OK) == 0);
}

TEST_CASE("a blocking FIFO read leaves the connection responsive and can be cancelled") {
  TempDir tmp;
  REQUIRE(mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  // O_RDWR never waits for a peer on Linux; the open itself still goes through a worker.
  auto fifo = openAt(f, root, tmp / "fifo", rw(false));
  REQUIRE(fifo.result == 0);
  CHECK(fifo.type == proto::FileType::FIFO);
  {
    auto req = fifo.node.readRequest();
    req.setCount(16);
    auto pending = req.send();
    // Other calls on the same connection complete while the read waits on its worker.
    CHECK(statAt(f, root, tmp.path).result == 0);
    CHECK(nodePath(f, root).data == "/");
    CHECK(!pending.poll(f.ws));
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    // Dropping `pending` cancels the RPC, which interrupts the worker.
  }
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 0; }));

  // A read that waits gets the data written later through another call.
  auto req = fifo.node.readRequest();
  req.setCount(16);
  auto pending = req.send();
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
  CHECK(write(f, fifo.node, "ping") == 4);
  auto resp = pending.wait(f.ws);
  CHECK(resp.getResult() == 4);
  CHECK(str(resp.getData()) == "ping");

  // Non-blocking mode is honoured inline: EAGAIN, no worker.
  auto set = fifo.node.setFlagsRequest();
  set.initFlags().setNonBlock(true);
  CHECK(set.send().wait(f.ws).getResult() == 0);
  CHECK(read(f, fifo.node, 4).result == -EAGAIN);
}

TEST_CASE("Node.interrupt ends a blocking FIFO read with EINTR, or lets it return what it got") {
  TempDir tmp;
  REQUIRE(mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto fifo = openAt(f, root, tmp / "fifo", rw(false));
  REQUIRE(fifo.result == 0);

  // Nothing in flight: nothing to do.
  fifo.node.interruptRequest().send().wait(f.ws);

  // A read waiting for data: interrupted, it answers -EINTR (its RPC is not cancelled).
  {
    auto req = fifo.node.readRequest();
    req.setCount(16);
    auto pending = req.send();
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    fifo.node.interruptRequest().send().wait(f.ws);
    auto resp = pending.wait(f.ws);
    CHECK(resp.getResult() == -EINTR);
  }
  CHECK(f.executor.busyWorkers() == 0);

  // The data written before the interrupt is the read's answer: nothing is lost.
  {
    auto req = fifo.node.readRequest();
    req.setCount(16);
    auto pending = req.send();
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    CHECK(write(f, fifo.node, "ping") == 4);
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 0; }));
    fifo.node.interruptRequest().send().wait(f.ws);
    auto resp = pending.wait(f.ws);
    CHECK(resp.getResult() == 4);
    CHECK(str(resp.getData()) == "ping");
  }

  // The node goes on serving reads afterwards.
  auto req = fifo.node.readRequest();
  req.setCount(16);
  auto pending = req.send();
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
  CHECK(write(f, fifo.node, "pong") == 4);
  auto resp = pending.wait(f.ws);
  CHECK(resp.getResult() == 4);
  CHECK(str(resp.getData()) == "pong");
}

TEST_CASE("Executor: an interrupted job keeps its promise; a queued one runs, and a wait in it ends") {
  auto io = kj::setupAsyncIo();
  Executor executor(io.provider->getTimer(), 1);
  int p[2];
  REQUIRE(pipe(p) == 0);
  kj::AutoCloseFd rd(p[0]), wr(p[1]);
  int fd = rd.get();
  auto blockingRead = [fd]() {
    WorkResult w;
    char c;
    ssize_t n = ::read(fd, &c, 1);
    w.result = n < 0 ? -int64_t(errno) : n;
    return w;
  };
  std::atomic<bool> secondRan{false};
  kj::Own<Executor::JobHandle> first, second, third;
  auto a = executor.run(blockingRead, first);
  auto b = executor.run(
      [&secondRan]() {
        secondRan = true;
        WorkResult w;
        w.result = 7;
        return w;
      },
      second);
  auto c = executor.run(blockingRead, third);
  // One worker: the second and third jobs wait in the queue behind the blocked read.
  for (int i = 0; i < 1000 && executor.busyWorkers() == 0; ++i) usleep(1000);
  REQUIRE(executor.busyWorkers() == 1);
  second->interrupt();
  third->interrupt();
  first->interrupt();
  CHECK(a.wait(io.waitScope).result == -EINTR);
  // A signal before a syscall starts ends it only if it waits (as the kernel's): the job that
  // does not wait runs and answers; the read that waits, once it runs, is interrupted.
  CHECK(b.wait(io.waitScope).result == 7);
  CHECK(secondRan);
  CHECK(c.wait(io.waitScope).result == -EINTR);
  // Interrupting a finished job does nothing; the executor goes on.
  first->interrupt();
  REQUIRE(::write(wr.get(), "x", 1) == 1);
  CHECK(executor.run(blockingRead).wait(io.waitScope).result == 1);
}

TEST_CASE("opening a FIFO with no writer waits on a worker and cancelling it closes nothing twice") {
  TempDir tmp;
  REQUIRE(mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  size_t before = countOpenFds();
  {
    auto req = root.openAtRequest();
    req.setPath(bytes(tmp / "fifo"));
    req.initHow().setAccess(proto::AccessMode::READ_ONLY);
    auto pending = req.send();
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    CHECK(statAt(f, root, tmp / "fifo").result == 0);
    CHECK(!pending.poll(f.ws));
  }
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 0; }));
  CHECK(f.waitUntil([&]() { return countOpenFds() == before; }));

  // With a writer present the open completes.
  auto req = root.openAtRequest();
  req.setPath(bytes(tmp / "fifo"));
  req.initHow().setAccess(proto::AccessMode::READ_ONLY);
  auto pending = req.send();
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
  int writer = ::open((tmp / "fifo").c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(writer >= 0);
  auto resp = pending.wait(f.ws);
  CHECK(resp.getResult() == 0);
  CHECK(::write(writer, "hi", 2) == 2);
  auto node = resp.getNode();
  CHECK(read(f, node, 2).data == "hi");
  ::close(writer);
  CHECK(read(f, node, 2).result == 0);  // EOF once the writer left
}

TEST_CASE("every fd of a session is closed when its client disconnects") {
  TempDir tmp;
  REQUIRE(mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  writeFile(tmp / "f", "x");
  size_t before;
  {
    Fixture f;
    before = countOpenFds();
    auto session = f.session();
    auto root = f.root(session);
    std::vector<Node::Client> nodes;
    for (int i = 0; i < 20; ++i) {
      nodes.push_back(openAt(f, root, tmp / "f").node);
    }
    nodes.push_back(openAt(f, root, tmp.path).node);
    auto fifo = openAt(f, root, tmp / "fifo", rw(false)).node;
    auto req = fifo.readRequest();
    req.setCount(1);
    auto pending = req.send();  // left blocked on a worker across the disconnect
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    CHECK(countOpenFds() >= before + 23);
    nodes.clear();
    auto keep = kj::mv(pending);
    f.disconnect();
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 0; }));
    CHECK(f.waitUntil([&]() { return countOpenFds() == before; }));
    CHECK(countOpenFds() == before);
  }
}

TEST_CASE("an 8 MiB write and read cross the connection in one call each") {
  TempDir tmp;
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto file = openAt(f, root, tmp / "big", rw()).node;
  std::string data(8 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 7 + (i >> 12));
  CHECK(write(f, file, data) == int64_t(data.size()));
  auto r = pread(f, file, data.size(), 0);
  CHECK(r.result == int64_t(data.size()));
  CHECK(r.data == data);
}

TEST_CASE("listen addresses parse, and loopback is told from the rest") {
  kj::String error;
  KJ_IF_MAYBE(a, parseListenAddress("unix:/tmp/x.sock", error)) {
    CHECK(a->kind == ListenAddress::Kind::UNIX);
    CHECK(a->path == "/tmp/x.sock");
  } else {
    FAIL("unix address refused");
  }
  KJ_IF_MAYBE(a, parseListenAddress("tcp://127.0.0.1:7433", error)) {
    CHECK(a->kind == ListenAddress::Kind::TCP);
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == 7433);
  } else {
    FAIL("tcp address refused");
  }
  KJ_IF_MAYBE(a, parseListenAddress("tcp://[::1]:0", error)) {
    CHECK(a->host == "::1");
    CHECK(a->port == 0);
  } else {
    FAIL("ipv6 address refused");
  }
  for (const char* bad: {"tcp://host", "tcp://:80", "tcp://h:99999", "tcp://h:8x", "unix:",
                         "udp://h:1", "/tmp/sock"}) {
    INFO(bad);
    CHECK(parseListenAddress(bad, error) == nullptr);
    CHECK(error.size() > 0);
  }
  CHECK(resolvesOnlyToLoopback("127.0.0.1"));
  CHECK(resolvesOnlyToLoopback("127.3.2.1"));
  CHECK(resolvesOnlyToLoopback("::1"));
  CHECK(resolvesOnlyToLoopback("localhost"));
  CHECK(!resolvesOnlyToLoopback("0.0.0.0"));
  CHECK(!resolvesOnlyToLoopback("10.1.2.3"));
  CHECK(!resolvesOnlyToLoopback("::"));
}

TEST_CASE("the agent listens on a unix socket, replaces a stale one and serves real clients") {
  TempDir tmp;
  std::string sock = tmp / "agent.sock";
  // A stale socket file from an agent that died.
  {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {};
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, sock.c_str());
    REQUIRE(bind(s, reinterpret_cast<struct sockaddr*>(&sun), sizeof(sun)) == 0);
    ::close(s);
  }
  Fixture f;
  kj::String bound;
  auto address = KJ_ASSERT_NONNULL(parseListenAddress(kj::str("unix:", sock.c_str()), bound));
  auto accepting = f.listener.listen(address, bound).eagerlyEvaluate(nullptr);
  CHECK(bound == kj::str("unix:", sock.c_str()));
  auto conn = f.io.provider->getNetwork().parseAddress(kj::str("unix:", sock.c_str()))
                  .wait(f.ws)->connect().wait(f.ws);
  presentToken(*conn, nullptr).wait(f.ws);  // a listening agent admits before RPC
  capnp::TwoPartyClient client(*conn);
  auto agent = client.bootstrap().castAs<proto::Agent>();
  auto req = agent.handshakeRequest();
  req.initHello().setProtocolVersion(proto::PROTOCOL_VERSION);
  auto resp = req.send().wait(f.ws);
  CHECK(resp.getWelcome().getAgentPid() == getpid());
  CHECK(f.listener.connectionCount() == 2);  // the fixture's pipe and this socket
}

// ---------------------------------------------------------------------------------------------
// Session.spawn and Process

TEST_CASE("spawn runs a program: its output through a pipe, then EOF, then its exit code") {
  Fixture f;
  auto session = f.session();
  auto p = spawn(f, session, sh("echo hi; exit 3"));
  REQUIRE(p.result == 0);
  REQUIRE(p.stdio.size() == 1);
  pid_t pid = pidOf(f, p.proc());
  CHECK(pid > 0);
  CHECK(read(f, p.out(), 100).data == "hi\n");
  CHECK(read(f, p.out(), 100).result == 0);
  auto e = wait(f, p.proc());
  CHECK(e.result == 0);
  CHECK(!e.signaled);
  CHECK(e.value == 3);
  CHECK(!e.coreDumped);
  // Reaped: later waits answer at once, kill answers 0, and no zombie is left.
  CHECK(wait(f, p.proc()).value == 3);
  CHECK(kill(f, p.proc(), SIGTERM) == 0);
  CHECK(reaped(pid));
  CHECK(f.reaper.watchedCount() == 0);
}

TEST_CASE("spawn answers the errno execve gives, and leaves no process behind") {
  TempDir tmp;
  writeFile(tmp / "plain", "echo not executable\n");
  writeFile(tmp / "garbage", "\x01\x02 no format the kernel knows\n");
  REQUIRE(chmod((tmp / "garbage").c_str(), 0755) == 0);
  REQUIRE(symlink("/bin/true", (tmp / "link").c_str()) == 0);
  Fixture f;
  auto session = f.session();
  auto run = [&](const std::string& path, bool noFollow = false) {
    SpawnSpec spec;
    spec.path = path;
    spec.argv = {path};
    spec.noFollow = noFollow;
    return spawn(f, session, spec).result;
  };
  CHECK(run(tmp / "missing") == -ENOENT);
  CHECK(run(tmp / "plain") == -EACCES);
  CHECK(run(tmp.path) == -EACCES);
  CHECK(run(tmp / "garbage") == -ENOEXEC);
  CHECK(run(tmp / "link", true) == -ELOOP);
  CHECK(run(tmp / "plain/x") == -ENOTDIR);
  CHECK(run(tmp / "link") == 0);
  CHECK(f.waitUntil([&]() { return f.reaper.watchedCount() == 0; }));
}

TEST_CASE("a #! script runs through its interpreter and sees the path it was run by as $0") {
  TempDir tmp;
  writeFile(tmp / "s.sh", "#!/bin/sh\necho \"$0 $1\"\n");
  REQUIRE(chmod((tmp / "s.sh").c_str(), 0755) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto dir = openDir(f, root, tmp.path);

  SpawnSpec spec;
  spec.path = tmp / "s.sh";
  spec.argv = {"s.sh", "arg"};
  auto p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == tmp / "s.sh" + " arg\n");
  CHECK(wait(f, p.proc()).value == 0);

  // Relative to the working directory, as execve("./s.sh") there.
  spec.path = "./s.sh";
  spec.dir = &dir;
  spec.cwd = &dir;
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == "./s.sh arg\n");

  // Through an fd the interpreter would get /dev/fd/N of a close-on-exec fd: ENOENT, as Linux's
  // fexecve of such an fd gives.
  auto rootDir = f.root(session);
  spec.cwd = &rootDir;
  CHECK(spawn(f, session, spec).result == -ENOENT);
  auto script = openAt(f, root, tmp / "s.sh");
  REQUIRE(script.result == 0);
  spec.dir = &script.node;
  spec.path = "";
  spec.emptyPath = true;
  CHECK(spawn(f, session, spec).result == -ENOENT);
  // A binary runs either way.
  auto exe = openAt(f, root, "/bin/true");
  spec.dir = &exe.node;
  CHECK(spawn(f, session, spec).result == 0);
}

TEST_CASE("spawn honours cwd, envp, umask and the fds it is given, and closes every other fd") {
  TempDir tmp;
  REQUIRE(mkdir((tmp / "sub").c_str(), 0755) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);

  SpawnSpec spec = sh("pwd; echo \"[$FOO]\"; umask");
  auto sub = openDir(f, root, tmp / "sub");
  spec.cwd = &sub;
  spec.envp = {"FOO=bar baz"};
  spec.umask = 027;
  auto p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == tmp / "sub" + "\n[bar baz]\n0027\n");

  // Nothing of the agent's environment leaks in.
  spec = SpawnSpec();
  spec.path = "/usr/bin/env";
  spec.argv = {"env"};
  spec.envp = {"ONLY=this"};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == "ONLY=this\n");

  // A node at fd 5: the child writes the agent's file through it.
  auto out = openAt(f, root, tmp / "out", rw());
  REQUIRE(out.result == 0);
  spec = sh("echo x >&5");
  spec.fds = {{5, ChildFdSpec::NODE, &out.node}};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(p.stdio.empty());
  CHECK(wait(f, p.proc()).value == 0);
  CHECK(readFile(tmp / "out") == "x\n");

  // Exactly the fds asked for: ls sees 0-2 and the one it opened for /proc/self/fd.
  spec = SpawnSpec();
  spec.path = "/bin/ls";
  spec.argv = {"ls", "/proc/self/fd"};
  spec.fds = {{2, ChildFdSpec::DEV_NULL}, {1, ChildFdSpec::FROM_CHILD}, {0, ChildFdSpec::DEV_NULL}};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == "0\n1\n2\n3\n");

  // stdin from a pipe: closing the agent's end is the child's EOF.
  spec = SpawnSpec();
  spec.path = "/bin/cat";
  spec.argv = {"cat"};
  spec.fds = {{0, ChildFdSpec::TO_CHILD}, {1, ChildFdSpec::FROM_CHILD}};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(write(f, p.stdio.at(0), "through cat") == 11);
  CHECK(p.stdio.at(0).closeRequest().send().wait(f.ws).getResult() == 0);
  CHECK(readAll(f, p.out()) == "through cat");
  CHECK(wait(f, p.proc()).value == 0);

  // 2>&1: one pipe for both keeps the order they were written in.
  spec = sh("echo one; echo two >&2; echo three; ls /proc/self/fd >&2");
  spec.fds = {{1, ChildFdSpec::FROM_CHILD}, {2, ChildFdSpec::SAME_AS, nullptr, 1}};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(p.stdio.size() == 1);
  // ls opens /proc/self/fd as fd 0, which is closed: it was not asked for.
  CHECK(readAll(f, p.out()) == "one\ntwo\nthree\n0\n1\n2\n");
  spec.fds = {{1, ChildFdSpec::FROM_CHILD}, {2, ChildFdSpec::SAME_AS, nullptr, 3}};
  CHECK(spawn(f, session, spec).result == -EINVAL);
  spec.fds = {{1, ChildFdSpec::SAME_AS, nullptr, 2}, {2, ChildFdSpec::SAME_AS, nullptr, 1}};
  CHECK(spawn(f, session, spec).result == -EINVAL);

  // Running a node itself (fexecve).
  auto exe = openAt(f, root, "/bin/true");
  REQUIRE(exe.result == 0);
  spec = SpawnSpec();
  spec.dir = &exe.node;
  spec.emptyPath = true;
  spec.argv = {"true"};
  p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  CHECK(wait(f, p.proc()).value == 0);
}

TEST_CASE("spawn refuses another session's node and a closed one with EBADF") {
  TempDir tmp;
  Fixture f;
  auto session = f.session();
  auto other = f.session();
  auto foreign = openDir(f, f.root(other), tmp.path);
  SpawnSpec spec = sh("pwd");
  spec.cwd = &foreign;
  CHECK(spawn(f, session, spec).result == -EBADF);

  auto closed = openDir(f, f.root(session), tmp.path);
  CHECK(closed.closeRequest().send().wait(f.ws).getResult() == 0);
  spec.cwd = &closed;
  CHECK(spawn(f, session, spec).result == -EBADF);
  spec = sh("true");
  spec.fds = {{3, ChildFdSpec::NODE, &closed}};
  CHECK(spawn(f, session, spec).result == -EBADF);
  spec.fds = {{1, ChildFdSpec::DEV_NULL}, {1, ChildFdSpec::FROM_CHILD}};
  CHECK(spawn(f, session, spec).result == -EINVAL);
  CHECK(f.reaper.watchedCount() == 0);
}

TEST_CASE("kill signals the process, and a cancelled wait leaves it running") {
  Fixture f;
  auto session = f.session();
  SpawnSpec spec;
  spec.path = "/bin/sleep";
  spec.argv = {"sleep", "30"};
  auto p = spawn(f, session, spec);
  REQUIRE(p.result == 0);
  pid_t pid = pidOf(f, p.proc());
  {
    auto pending = p.proc().waitRequest().send();
    CHECK(!pending.poll(f.ws));
    // Dropped: cancelled.
  }
  CHECK(!reaped(pid));
  CHECK(kill(f, p.proc(), 0) == 0);
  CHECK(kill(f, p.proc(), 65) == -EINVAL);
  CHECK(kill(f, p.proc(), SIGTERM) == 0);
  auto e = wait(f, p.proc());
  CHECK(e.result == 0);
  CHECK(e.signaled);
  CHECK(e.value == SIGTERM);
  CHECK(reaped(pid));
}

TEST_CASE("a pipe from a spawned process ends when the process exits, even if a descendant "
          "still holds it") {
  Fixture f;
  auto session = f.session();
  auto start = std::chrono::steady_clock::now();
  auto p = spawn(f, session, sh("sleep 5 & echo $!; echo done"));
  REQUIRE(p.result == 0);
  std::string out = readAll(f, p.out());
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::seconds(3));
  auto newline = out.find('\n');
  REQUIRE(newline != std::string::npos);
  pid_t sleeper = pid_t(std::stol(out.substr(0, newline)));
  CHECK(out.substr(newline + 1) == "done\n");
  CHECK(wait(f, p.proc()).value == 0);

  // The same rule for a non-blocking read: EOF, not EAGAIN.
  auto set = p.out().setFlagsRequest();
  set.initFlags().setNonBlock(true);
  CHECK(set.send().wait(f.ws).getResult() == 0);
  CHECK(read(f, p.out(), 10).result == 0);
  ::kill(sleeper, SIGKILL);

  // While the process runs, a non-blocking read of an empty pipe is EAGAIN as usual.
  auto q = spawn(f, session, sh("exec sleep 30"));
  REQUIRE(q.result == 0);
  set = q.out().setFlagsRequest();
  set.initFlags().setNonBlock(true);
  CHECK(set.send().wait(f.ws).getResult() == 0);
  CHECK(read(f, q.out(), 10).result == -EAGAIN);
  CHECK(kill(f, q.proc(), SIGKILL) == 0);
  CHECK(wait(f, q.proc()).value == SIGKILL);
  CHECK(read(f, q.out(), 10).result == 0);
}

TEST_CASE("the session's end kills what it spawned and reaps it, leaving no fd and no zombie") {
  Fixture f;
  size_t before = countOpenFds();
  pid_t sleeper, dropped, orphan;
  {
    auto session = f.session();
    SpawnSpec spec;
    spec.path = "/bin/sleep";
    spec.argv = {"sleep", "30"};
    auto p = spawn(f, session, spec);
    REQUIRE(p.result == 0);
    sleeper = pidOf(f, p.proc());
    // A process whose capability goes before it is waited for: reaped all the same.
    auto q = spawn(f, session, sh("exit 0"));
    REQUIRE(q.result == 0);
    dropped = pidOf(f, q.proc());
    q.process = nullptr;
    q.stdio.clear();
    CHECK(f.waitUntil([&]() { return reaped(dropped); }));
    // A descendant in the process group of a process still running dies with it.
    auto r = spawn(f, session, sh("sleep 30 & echo $!; wait"));
    REQUIRE(r.result == 0);
    auto line = read(f, r.out(), 100).data;
    orphan = pid_t(std::stol(line));
    CHECK(!reaped(sleeper));
    CHECK(countOpenFds() > before);
  }
  f.disconnect();
  CHECK(f.waitUntil([&]() { return reaped(sleeper); }));
  CHECK(f.waitUntil([&]() { return f.reaper.watchedCount() == 0; }));
  // The descendant was not ours to reap: it is dead, and init reaps it.
  CHECK(f.waitUntil([&]() { return dead(orphan); }));
  CHECK(f.waitUntil([&]() { return countOpenFds() == before; }));
}

TEST_CASE("--root: a spawned program runs inside the root (chroot), or EPERM without the right") {
  TempDir tmp;
  // The libc of this process's own arch: a multiarch host (libc6:arm64 installed beside amd64's
  // for the board agents) has several, and /bin/sh runs only with its own.
#if defined(__x86_64__)
  const char* l = "/lib/x86_64-linux-gnu/libc.so.6";
  const char* d = "/lib64/ld-linux-x86-64.so.2";
#elif defined(__aarch64__)
  const char* l = "/lib/aarch64-linux-gnu/libc.so.6";
  const char* d = "/lib/ld-linux-aarch64.so.1";
#elif defined(__arm__)
  const char* l = "/lib/arm-linux-gnueabihf/libc.so.6";
  const char* d = "/lib/ld-linux-armhf.so.3";
#else
  const char* l = "";
  const char* d = "";
#endif
  std::string libc, loader;
  if (*l != '\0' && access(l, R_OK) == 0 && access(d, R_OK) == 0) {
    libc = l;
    loader = d;
  }
  for (auto dir: {"/bin", "/lib", "/lib64", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                  "/lib/arm-linux-gnueabihf", "/sub"}) {
    REQUIRE(mkdir((tmp.path + dir).c_str(), 0755) == 0);
  }
  copyFile("/bin/sh", tmp.path + "/bin/sh", 0755);
  if (!libc.empty()) {
    copyFile(libc, tmp.path + libc, 0755);
    copyFile(loader, tmp.path + loader, 0755);
  }
  writeFile(tmp / "marker", "inside\n");
  Fixture f(AgentConfig::confinedTo(tmp.path));
  auto session = f.session();
  auto sub = session.openPathRequest();
  sub.setPath(bytes("/sub"));
  SpawnSpec spec = sh("pwd; read line < /marker; echo $line; cd ..; pwd");
  auto subDir = sub.send().wait(f.ws).getDir();
  spec.cwd = &subDir;
  auto p = spawn(f, session, spec);
  if (!hasCapability(18)) {  // CAP_SYS_CHROOT
    CHECK(p.result == -EPERM);
    return;
  }
  if (libc.empty()) {
    MESSAGE("no known libc layout: the chroot's shell cannot run");
    return;
  }
  REQUIRE(p.result == 0);
  CHECK(readAll(f, p.out()) == "/sub\ninside\n/\n");
  CHECK(wait(f, p.proc()).value == 0);
  spec = sh("true");
  spec.path = "/bin/true";  // the host's, not the root's
  CHECK(spawn(f, session, spec).result == -ENOENT);
}

TEST_CASE("a read-only agent runs no programs") {
  Fixture f(AgentConfig::readOnlyAgent());
  auto session = f.session();
  CHECK(spawn(f, session, sh("true")).result == -EACCES);
}

}  // TEST_SUITE


// ---------------------------------------------------------------------------------------------
// Session.poll

namespace {

struct PollAnswer {
  int64_t result;
  std::vector<short> revents;
};

capnp::RemotePromise<proto::Session::PollResults> sendPoll(
    proto::Session::Client& s, std::vector<std::pair<Node::Client*, short>> fds,
    int64_t timeoutNs) {
  auto req = s.pollRequest();
  auto list = req.initFds(fds.size());
  for (size_t i = 0; i < fds.size(); ++i) {
    list[i].setNode(*fds[i].first);
    pollEventsFromHost(fds[i].second, list[i].initEvents());
  }
  req.setTimeoutNs(timeoutNs);
  return req.send();
}

PollAnswer answerOf(capnp::Response<proto::Session::PollResults>&& r) {
  PollAnswer a{r.getResult(), {}};
  for (auto ev : r.getRevents()) {
    a.revents.push_back(pollEventsToHost(ev));
  }
  return a;
}

}  // namespace

TEST_CASE("poll event bits map to and from the host's values, each on its own") {
  const short bits[] = {POLLIN,     POLLPRI,    POLLOUT,    POLLERR, POLLHUP,  POLLNVAL,
                        POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLMSG, POLLRDHUP};
  for (short bit : bits) {
    capnp::MallocMessageBuilder m;
    auto ev = m.initRoot<proto::PollEvents>();
    pollEventsFromHost(bit, ev);
    CAPTURE(bit);
    CHECK(pollEventsToHost(ev.asReader()) == bit);
  }
}

TEST_CASE("Session.poll looks, waits, times out, is cancellable, and says POLLNVAL for a closed node") {
  TempDir tmp;
  REQUIRE(mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto fifo = openAt(f, root, tmp / "fifo", rw(false));
  REQUIRE(fifo.result == 0);

  // A look: nothing to read, room to write.
  auto a = answerOf(sendPoll(session, {{&fifo.node, POLLIN}, {&fifo.node, POLLOUT}}, 0).wait(f.ws));
  CHECK(a.result == 1);
  CHECK(a.revents == std::vector<short>{0, POLLOUT});

  // A finite wait times out on a worker.
  auto t0 = std::chrono::steady_clock::now();
  a = answerOf(sendPoll(session, {{&fifo.node, POLLIN}}, 50 * 1000 * 1000).wait(f.ws));
  CHECK(a.result == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(50));

  // An endless wait ends when data arrives through another call.
  {
    auto pending = sendPoll(session, {{&fifo.node, POLLIN}}, -1);
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
    CHECK(write(f, fifo.node, "x") == 1);
    a = answerOf(pending.wait(f.ws));
    CHECK(a.result == 1);
    CHECK(a.revents == std::vector<short>{POLLIN});
    CHECK(read(f, fifo.node, 4).result == 1);
  }

  // Dropping the call interrupts the worker.
  {
    auto pending = sendPoll(session, {{&fifo.node, POLLIN}}, -1);
    CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 1; }));
  }
  CHECK(f.waitUntil([&]() { return f.executor.busyWorkers() == 0; }));

  // A closed node, and a node of another session: POLLNVAL, counted, at once.
  auto other = f.session();
  auto foreign = openAt(f, f.root(other), tmp / "fifo", rw(false));
  REQUIRE(foreign.result == 0);
  auto closed = openAt(f, root, tmp / "fifo", rw(false));
  REQUIRE(closed.result == 0);
  REQUIRE(closed.node.closeRequest().send().wait(f.ws).getResult() == 0);
  a = answerOf(sendPoll(session, {{&closed.node, POLLIN}, {&foreign.node, POLLIN},
                                  {&fifo.node, POLLIN}}, -1).wait(f.ws));
  CHECK(a.result == 2);
  CHECK(a.revents == std::vector<short>{POLLNVAL, POLLNVAL, 0});
}

// ---------------------------------------------------------------------------------------------
// Passing fds (SCM_RIGHTS) between the session's sockets

struct Pair {
  Node::Client a, b;
};

Pair unixPair(Fixture& f, proto::Session::Client& session, proto::SockType type) {
  auto req = session.socketpairRequest();
  req.setFamily(proto::SockFamily::UNIX);
  req.setType(type);
  auto resp = req.send().wait(f.ws);
  REQUIRE(resp.getResult() == 0);
  return {resp.getFirst(), resp.getSecond()};
}

// One byte with one SCM_RIGHTS message whose ints are `ints` (indexes into `nodes`).
int64_t sendRights(Fixture& f, Node::Client& sock, std::vector<int32_t> ints,
                   std::vector<Node::Client*> nodes) {
  auto req = sock.sendMsgRequest();
  req.setData(bytes("F"));
  auto c = req.initControl(1)[0];
  c.setLevel(SOL_SOCKET);
  c.setType(SCM_RIGHTS);
  c.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(ints.data()),
                         ints.size() * sizeof(int32_t)));
  auto fds = req.initFds(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    fds.set(i, *nodes[i]);
  }
  return req.send().wait(f.ws).getResult();
}

capnp::Response<Node::RecvMsgResults> recvRights(Fixture& f, Node::Client& sock,
                                                 uint32_t controlSize) {
  auto req = sock.recvMsgRequest();
  req.setCount(16);
  req.setControlSize(controlSize);
  req.initFlags().setDontWait(true);
  return req.send().wait(f.ws);
}

TEST_CASE("sendMsg passes nodes as fds (SCM_RIGHTS) and recvMsg returns them as new nodes") {
  TempDir tmp;
  writeFile(tmp / "data", "hello, passed file\n");
  Fixture f;
  auto session = f.session();
  auto root = f.root(session);
  auto pair = unixPair(f, session, proto::SockType::STREAM);
  auto file = openAt(f, root, tmp / "data");
  REQUIRE(file.result == 0);
  auto dgram = unixPair(f, session, proto::SockType::DGRAM);

  // A file and a socket in one message.
  CHECK(sendRights(f, pair.a, {0, 1}, {&file.node, &dgram.a}) == 1);
  auto got = recvRights(f, pair.b, CMSG_SPACE(2 * sizeof(int)));
  REQUIRE(got.getResult() == 1);
  CHECK(got.getControl().size() == 0);  // the SCM_RIGHTS message became `fds`
  CHECK(got.getDroppedFds() == 0);
  CHECK(!got.getFlags().getCtrunc());
  auto fds = got.getFds();
  REQUIRE(fds.size() == 2);
  CHECK(fds[0].getType() == proto::FileType::REGULAR);
  CHECK(!fds[0].getSocket());
  CHECK(fds[1].getType() == proto::FileType::SOCKET);
  CHECK(fds[1].getSocket());
  CHECK(fds[1].getFamily() == proto::SockFamily::UNIX);
  CHECK(fds[1].getSockType() == proto::SockType::DGRAM);
  // The same open file description: one offset.
  auto copy = fds[0].getNode();
  CHECK(read(f, copy, 5).data == "hello");
  CHECK(read(f, file.node, 2).data == ", ");
  auto passedSock = fds[1].getNode();
  CHECK(write(f, passedSock, "via") == 3);
  CHECK(read(f, dgram.b, 8).data == "via");

  // Bad ints: out of range, -1, a raw fd number of the agent (never used as one), a node of
  // another session, a closed node: EBADF, and nothing is sent.
  CHECK(sendRights(f, pair.a, {3}, {&file.node}) == -EBADF);
  CHECK(sendRights(f, pair.a, {-1}, {}) == -EBADF);
  CHECK(sendRights(f, pair.a, {0, 1}, {&file.node}) == -EBADF);
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(sendRights(f, pair.a, {raw}, {}) == -EBADF);
  ::close(raw);
  auto other = f.session();
  auto foreign = openAt(f, f.root(other), tmp / "data");
  REQUIRE(foreign.result == 0);
  CHECK(sendRights(f, pair.a, {0}, {&foreign.node}) == -EBADF);
  auto closed = openAt(f, root, tmp / "data");
  REQUIRE(closed.node.closeRequest().send().wait(f.ws).getResult() == 0);
  CHECK(sendRights(f, pair.a, {0}, {&closed.node}) == -EBADF);
  CHECK(recvRights(f, pair.b, 64).getResult() == -EAGAIN);

  // A control buffer with room for one: the kernel installs one, closes the rest, MSG_CTRUNC.
  size_t before = countOpenFds();
  CHECK(sendRights(f, pair.a, {0, 0, 0}, {&file.node}) == 1);
  got = recvRights(f, pair.b, CMSG_LEN(sizeof(int)));
  REQUIRE(got.getResult() == 1);
  CHECK(got.getFds().size() == 1);
  CHECK(got.getFlags().getCtrunc());
  CHECK(countOpenFds() == before + 1);
}

TEST_CASE("recvMsg installs passed fds only up to --max-fds: the rest are closed, MSG_CTRUNC") {
  TempDir tmp;
  writeFile(tmp / "data", "x");
  AgentConfig config;
  config.limits.maxNodes = 4;
  Fixture f(config);
  auto session = f.session();
  auto root = f.root(session);  // node 1
  auto pair = unixPair(f, session, proto::SockType::STREAM);  // 2, 3
  auto file = openAt(f, root, tmp / "data");  // 4
  REQUIRE(file.result == 0);
  // No room at all: every fd is closed on the agent.
  size_t before = countOpenFds();
  CHECK(sendRights(f, pair.a, {0, 0}, {&file.node}) == 1);
  auto got = recvRights(f, pair.b, CMSG_SPACE(2 * sizeof(int)));
  REQUIRE(got.getResult() == 1);
  CHECK(got.getFds().size() == 0);
  CHECK(got.getDroppedFds() == 2);
  CHECK(got.getFlags().getCtrunc());
  CHECK(countOpenFds() == before);
  // Room for one once the root node is gone.
  root = nullptr;
  CHECK(f.waitUntil([&]() {
    // A round trip lets the agent see the release.
    return session.unameRequest().send().wait(f.ws).getResult() >= 0 &&
           sendRights(f, pair.a, {0, 0, 0}, {&file.node}) == 1 &&
           recvRights(f, pair.b, CMSG_SPACE(3 * sizeof(int))).getFds().size() == 1;
  }));
}

TEST_CASE("the stash gate holds stash readers until every cancelled socket call's work is over") {
  Fixture f;  // for its event loop
  auto gate = kj::refcounted<StashGate>();
  CHECK(gate->settled() == nullptr);
  auto a = kj::newPromiseAndFulfiller<void>();
  auto b = kj::newPromiseAndFulfiller<void>();
  gate->addCancelled(kj::mv(a.promise));
  gate->addCancelled(kj::mv(b.promise));
  auto maybe = gate->settled();
  REQUIRE(maybe != nullptr);
  auto wait = kj::mv(KJ_ASSERT_NONNULL(maybe));
  a.fulfiller->fulfill();
  CHECK(!wait.poll(f.ws));
  CHECK(gate->settled() != nullptr);
  // Work that never ran (skipped in the executor's queue) breaks its promise: over, too.
  b.fulfiller->reject(KJ_EXCEPTION(FAILED, "never ran"));
  CHECK(wait.poll(f.ws));
  wait.wait(f.ws);
  CHECK(gate->settled() == nullptr);
}

}  // namespace
}  // namespace sb
