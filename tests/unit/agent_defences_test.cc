// The agent's defences in process (issue 7): MessageGuard against malformed frames and RPC
// exceptions of unknown types, the admission preamble (token, --max-sessions) and the per-session
// node limit (--max-fds). Real listener, real two-party RPC over kj's in-process pipe.

#include <doctest.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.capnp.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/vector.h>

#include "confinement.h"
#include "executor.h"
#include "landlock.h"
#include "listener.h"
#include "log.h"
#include "message_guard.h"
#include "preamble.h"
#include "process.h"
#include "session.h"

namespace sb {
namespace {

int removeScratchEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

struct Scratch {
  std::string path;
  Scratch() {
    char tmpl[] = "/tmp/sbagent-defences-XXXXXX";
    KJ_ASSERT(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    int fd = ::open((path + "/f").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    KJ_ASSERT(fd >= 0);
    ::close(fd);
  }
  ~Scratch() { nftw(path.c_str(), removeScratchEntry, 16, FTW_DEPTH | FTW_PHYS); }
};

struct DefencesAgent {
  Scratch scratch;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::WaitScope& ws = io.waitScope;
  kj::Own<Confinement> confinement = Confinement::confinedTo(scratch.path.c_str());
  Executor executor{io.provider->getTimer()};
  Reaper reaper{executor};
  AgentContext context;
  Log log;
  AgentOptions options;
  Listener listener;

  explicit DefencesAgent(Limits limits = {}, kj::Maybe<kj::String> token = nullptr)
      : context{*confinement, executor, reaper, false, limits},
        options{kj::mv(token), log},
        listener(io, context, options) {
    options.handshakeTimeout = 5 * kj::SECONDS;
  }

  // True when `done` resolves within `seconds`.
  bool endsWithin(kj::Promise<void>& done, int seconds) {
    return done.then([]() { return true; })
        .exclusiveJoin(io.provider->getTimer().afterDelay(seconds * kj::SECONDS).then([]() {
          return false;
        }))
        .wait(ws);
  }
};

kj::Array<kj::byte> words(std::initializer_list<uint32_t> halves) {
  auto out = kj::heapArray<kj::byte>(halves.size() * 4);
  size_t i = 0;
  for (uint32_t h: halves) {
    for (int b = 0; b < 4; ++b) out[i++] = kj::byte(h >> (8 * b));
  }
  return out;
}

// Sends `bytes` to a session served without admission and reports whether the agent ends the
// connection (while the client keeps its end open) within 2 s.
bool dropsConnection(kj::ArrayPtr<const kj::byte> bytes) {
  DefencesAgent agent;
  auto pipe = agent.io.provider->newTwoWayPipe();
  auto done = agent.listener.serve(kj::mv(pipe.ends[0]), kj::str("test"));
  pipe.ends[1]->write(bytes.begin(), bytes.size()).wait(agent.ws);
  return agent.endsWithin(done, 2);
}

TEST_CASE("MessageGuard drops a frame with 0xFFFFFFFF segments, huge sizes or too many segments") {
  // capnp 0.9.2 computes the count as uint32 n + 1: 0xFFFFFFFF would wrap to 0.
  CHECK(dropsConnection(words({0xFFFFFFFF, 1, 0, 0})));
  CHECK(dropsConnection(words({0, 0x7FFFFFFF, 0, 0})));
  CHECK(dropsConnection(words({3, 0x3FFFFFFF, 0x3FFFFFFF, 0x3FFFFFFF, 0x3FFFFFFF, 0})));
  CHECK(dropsConnection(words({600, 1, 1, 1})));
}

TEST_CASE("checkRpcMessage refuses exceptions of types kj does not know, anywhere they travel") {
  auto check = [](auto fill) {
    capnp::MallocMessageBuilder builder;
    fill(builder.initRoot<capnp::rpc::Message>());
    capnp::SegmentArrayMessageReader reader(builder.getSegmentsForOutput());
    return kj::runCatchingExceptions([&]() { checkRpcMessage(reader); }) == nullptr;
  };
  using Type = capnp::rpc::Exception::Type;
  CHECK(check([](capnp::rpc::Message::Builder m) {
    m.initAbort().setType(Type::UNIMPLEMENTED);
  }));
  CHECK(!check([](capnp::rpc::Message::Builder m) { m.initAbort().setType(Type(4)); }));
  CHECK(!check([](capnp::rpc::Message::Builder m) {
    m.initReturn().initException().setType(Type(99));
  }));
  CHECK(!check([](capnp::rpc::Message::Builder m) {
    m.initResolve().initException().setType(Type(0xFFFF));
  }));
  CHECK(!check([](capnp::rpc::Message::Builder m) {
    m.initUnimplemented().initAbort().setType(Type(7));
  }));
  CHECK(check([](capnp::rpc::Message::Builder m) { m.initBootstrap().setQuestionId(0); }));
}

TEST_CASE("MessageGuard drops an abort carrying an unknown exception type") {
  capnp::MallocMessageBuilder builder;
  builder.initRoot<capnp::rpc::Message>().initAbort().setType(capnp::rpc::Exception::Type(99));
  auto flat = capnp::messageToFlatArray(builder);
  CHECK(dropsConnection(flat.asBytes()));
}

// A client admitted through the preamble, then speaking RPC.
struct Client {
  kj::Own<kj::AsyncIoStream> stream;
  kj::Maybe<kj::Exception> refused;
  kj::Own<capnp::TwoPartyClient> rpc;
};

Client admitClient(DefencesAgent& agent, kj::StringPtr token, kj::Promise<void>& served) {
  auto pipe = agent.io.provider->newTwoWayPipe();
  served = agent.listener.admit(kj::mv(pipe.ends[0]), kj::str("test"));
  Client c;
  c.stream = kj::mv(pipe.ends[1]);
  c.refused = kj::runCatchingExceptions(
      [&]() { presentToken(*c.stream, token.asBytes()).wait(agent.ws); });
  if (c.refused == nullptr) {
    c.rpc = kj::heap<capnp::TwoPartyClient>(*c.stream);
  }
  return c;
}

proto::Session::Client handshake(DefencesAgent& agent, Client& c, kj::StringPtr token) {
  auto req = c.rpc->bootstrap().castAs<proto::Agent>().handshakeRequest();
  auto hello = req.initHello();
  hello.setProtocolVersion(proto::PROTOCOL_VERSION);
  hello.setToken(token.asBytes());
  return req.send().wait(agent.ws).getSession();
}

TEST_CASE("admission: a wrong token is refused before RPC, the right one is served") {
  DefencesAgent agent({}, kj::str("sekrit"));
  kj::Promise<void> served1 = nullptr, served2 = nullptr;
  auto bad = admitClient(agent, "guess", served1);
  auto& e = KJ_ASSERT_NONNULL(bad.refused);
  CHECK(std::string(e.getDescription().cStr()).find("refused the connection: bad token") !=
        std::string::npos);
  CHECK(agent.endsWithin(served1, 2));
  auto good = admitClient(agent, "sekrit", served2);
  REQUIRE(good.refused == nullptr);
  auto session = handshake(agent, good, "sekrit");
  auto dir = session.rootRequest().send().wait(agent.ws).getDir();
  auto info = dir.infoRequest().send().wait(agent.ws);
  CHECK(info.getResult() == 0);
  CHECK(agent.listener.connectionCount() == 1);
}

TEST_CASE("admission: past --max-sessions a client is refused with a sentence") {
  Limits limits;
  limits.maxSessions = 1;
  DefencesAgent agent(limits);
  kj::Promise<void> served1 = nullptr, served2 = nullptr, served3 = nullptr;
  auto first = admitClient(agent, "", served1);
  REQUIRE(first.refused == nullptr);
  auto session = handshake(agent, first, "");
  auto second = admitClient(agent, "", served2);
  auto& e = KJ_ASSERT_NONNULL(second.refused);
  CHECK(std::string(e.getDescription().cStr()).find("maximum of 1 sessions") !=
        std::string::npos);
  // The first goes: its slot is free again.
  session = nullptr;
  first.rpc = nullptr;
  first.stream = nullptr;
  CHECK(agent.endsWithin(served1, 2));
  auto third = admitClient(agent, "", served3);
  CHECK(third.refused == nullptr);
}

TEST_CASE("--max-fds: opens past the limit answer EMFILE, and a close makes room") {
  Limits limits;
  limits.maxNodes = 3;
  DefencesAgent agent(limits);
  kj::Promise<void> served = nullptr;
  auto c = admitClient(agent, "", served);
  REQUIRE(c.refused == nullptr);
  auto session = handshake(agent, c, "");
  auto root = session.rootRequest().send().wait(agent.ws).getDir();  // node 1
  auto open = [&](kj::Maybe<proto::Node::Client>& out) {
    auto req = root.openAtRequest();
    req.setPath(kj::StringPtr("f").asBytes());
    req.initHow().setAccess(proto::AccessMode::READ_ONLY);
    auto r = req.send().wait(agent.ws);
    if (r.getResult() == 0) {
      out = r.getNode();
    }
    return r.getResult();
  };
  kj::Maybe<proto::Node::Client> a, b, c3;
  CHECK(open(a) == 0);
  CHECK(open(b) == 0);
  CHECK(open(c3) == -EMFILE);
  auto path = session.openPathRequest();
  path.setPath(kj::StringPtr("/").asBytes());
  CHECK(path.send().wait(agent.ws).getResult() == -EMFILE);
  CHECK(kj::runCatchingExceptions([&]() { session.rootRequest().send().wait(agent.ws); }) !=
        nullptr);
  // Dropping a node makes room for one more once the agent has seen the release.
  a = nullptr;
  bool room = false;
  for (int i = 0; i < 200 && !room; ++i) {
    kj::Maybe<proto::Node::Client> d;
    room = open(d) == 0;
    if (!room) {
      agent.io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(agent.ws);
    }
  }
  CHECK(room);
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

// In a child: Landlock binds the process for good.
TEST_CASE("Landlock under --root: files outside the root are refused, the root and /dev/null not") {
  Scratch scratch;
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto confinement = Confinement::confinedTo(scratch.path.c_str());
    Log log;
    setNoNewPrivs();
    int abi = restrictToRoot(*confinement, nullptr, log);
    if (abi == 0) {
      _exit(77);  // no Landlock here: said so on stderr
    }
    auto opens = [](const std::string& path, int flags) {
      int fd = ::open(path.c_str(), flags | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      return fd >= 0 ? 0 : errno;
    };
    int code = 0;
    if (opens(scratch.path + "/f", O_RDWR) != 0) code |= 1;
    if (opens("/dev/null", O_RDWR) != 0) code |= 2;
    if (opens("/etc/passwd", O_RDONLY) != EACCES) code |= 4;
    if (opens("/tmp", O_RDONLY | O_DIRECTORY) != EACCES) code |= 8;
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    MESSAGE("Landlock is not available on this kernel: not tested");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);  // bits: 1 root, 2 /dev/null, 4 /etc/passwd, 8 /tmp
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

// Raw RPC frames, as a client that never reads would send them.
struct RawCalls {
  kj::Vector<kj::Array<capnp::word>> frames;

  void add(capnp::MallocMessageBuilder& message) {
    frames.add(capnp::messageToFlatArray(message));
  }
  // A call of interface T's `method` on promisedAnswer(target, [pointer field]).
  template <typename T, typename Fill>
  void call(uint32_t question, const char* method, uint32_t target, int field, Fill fill) {
    capnp::MallocMessageBuilder message;
    auto c = message.initRoot<capnp::rpc::Message>().initCall();
    c.setQuestionId(question);
    c.setInterfaceId(capnp::typeId<T>());
    auto m = capnp::Schema::from<T>().getMethodByName(method);
    c.setMethodId(m.getOrdinal());
    auto answer = c.initTarget().initPromisedAnswer();
    answer.setQuestionId(target);
    if (field >= 0) {
      answer.initTransform(1)[0].setGetPointerField(uint16_t(field));
    }
    fill(c.initParams().getContent().initAs<capnp::DynamicStruct>(m.getParamType()));
    add(message);
  }
};

uint16_t resultPointer(capnp::InterfaceSchema::Method method, const char* field) {
  return method.getResultType().getFieldByName(field).getProto().getSlot().getOffset();
}

TEST_CASE("a client that never reads its answers: the agent stops reading its requests") {
  Limits limits;
  limits.maxUnsentBytes = 256 << 10;
  DefencesAgent agent(limits);
  {
    int fd = ::open((agent.scratch.path + "/big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 1 << 20) == 0);
    ::close(fd);
  }
  RawCalls raw;
  {
    capnp::MallocMessageBuilder message;
    message.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(0);
    raw.add(message);
  }
  auto handshake = capnp::Schema::from<proto::Agent>().getMethodByName("handshake");
  raw.call<proto::Agent>(1, "handshake", 0, -1, [](capnp::DynamicStruct::Builder p) {
    p.init("hello").as<capnp::DynamicStruct>().set("protocolVersion", proto::PROTOCOL_VERSION);
  });
  auto root = capnp::Schema::from<proto::Session>().getMethodByName("root");
  raw.call<proto::Session>(2, "root", 1, resultPointer(handshake, "session"),
                           [](capnp::DynamicStruct::Builder) {});
  auto openAt = capnp::Schema::from<proto::Node>().getMethodByName("openAt");
  raw.call<proto::Node>(3, "openAt", 2, resultPointer(root, "dir"),
                        [](capnp::DynamicStruct::Builder p) {
                          p.set("path", capnp::Data::Reader(
                                            reinterpret_cast<const kj::byte*>("big"), 3));
                        });
  constexpr uint32_t PREADS = 400;  // 64 KiB answers each: 25 MiB if nothing held them back
  for (uint32_t q = 4; q < 4 + PREADS; ++q) {
    raw.call<proto::Node>(q, "pread", 3, resultPointer(openAt, "node"),
                          [](capnp::DynamicStruct::Builder p) { p.set("count", 65536); });
  }

  auto pipe = agent.io.provider->newTwoWayPipe();
  // The pipe is a socketpair: small kernel buffers, so that what the agent holds back shows.
  int small = 4096;
  pipe.ends[0]->setsockopt(SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  pipe.ends[1]->setsockopt(SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  auto done = agent.listener.serve(kj::mv(pipe.ends[0]), kj::str("test"));
  auto& client = *pipe.ends[1];
  // A client write completes once its bytes fit in the socket, and nobody reads the agent's
  // answers: without backpressure the agent would read every request and queue every answer.
  size_t taken = 0;
  for (auto& frame: raw.frames) {
    auto bytes = frame.asBytes();
    bool written = client.write(bytes.begin(), bytes.size())
                       .then([]() { return true; })
                       .exclusiveJoin(agent.io.provider->getTimer()
                                          .afterDelay(500 * kj::MILLISECONDS)
                                          .then([]() { return false; }))
                       .wait(agent.ws);
    if (!written) {
      break;
    }
    ++taken;
  }
  MESSAGE("the agent read " << taken << " of " << raw.frames.size() << " requests");
  CHECK(taken > 8);                   // it served some preads ...
  CHECK(taken < 4 + PREADS / 2);      // ... and stopped reading long before the end
  pipe.ends[1] = nullptr;             // the client goes: the session ends
  CHECK(agent.endsWithin(done, 5));
}

}  // namespace
}  // namespace sb
