// libFuzzer target (issue 7): arbitrary bytes from "the client" into the agent's real
// dispatcher — Listener::serve, so MessageGuard, TwoPartyVatNetwork, RpcSystem, AgentImpl, the
// session and its nodes — over an in-process pipe, against a scratch root directory that is
// emptied and rebuilt before every input.
//
// Input: the first byte chooses the start. Odd: the raw bytes are all there is (garbage before a
// handshake). Even: a valid prefix comes first — bootstrap (question 0), handshake (question 1),
// Session.root (question 2) — and the rest of the input follows it, so that mutations reach the
// Node and Session methods: a call may target the root directory as promisedAnswer(2, [ptr 0])
// and the session as promisedAnswer(1, [ptr 1]). SB_FUZZ_SEEDS=DIR writes a seed corpus of such
// calls, one per Node and Session method, and exits.
//
// Safety: as root, the process first becomes nobody (no mknod of real devices, no chroot, so a
// spawn fails before exec), files are capped at 16 MiB (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG;
// -handle_xfsz=0), and every path is confined to the scratch root. libFuzzer's SIGUSR2 handler
// is turned off (-handle_usr2=0): the executor interrupts its workers with SIGUSR2.
//
// Built by `meson setup -Dfuzz=true` with clang (tests/fuzz/meson.build); run by
// tests/fuzz/run.sh.

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/rpc.capnp.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include "confinement.h"
#include "executor.h"
#include "listener.h"
#include "log.h"
#include "process.h"
#include "session.h"
#include "splitbrain.capnp.h"

namespace sb {
namespace {

std::string scratch;

int removeEntry(const char* path, const struct stat*, int, struct FTW* ftw) {
  if (ftw->level > 0) {
    ::remove(path);
  }
  return 0;
}

void writeFile(const std::string& path, const char* content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t n = ::write(fd, content, strlen(content));
    (void)n;
    ::close(fd);
  }
}

// The same small tree before every input, so a crash reproduces from its input alone.
void resetScratch() {
  nftw(scratch.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  writeFile(scratch + "/hello.txt", "hello from the fuzzer\n");
  ::mkdir((scratch + "/sub").c_str(), 0755);
  writeFile(scratch + "/sub/a.txt", "a\n");
  if (::symlink("hello.txt", (scratch + "/link").c_str()) < 0) {
    // Already there is impossible after the removal; any other failure shows in coverage only.
  }
}

void dropPrivileges() {
  if (geteuid() != 0) {
    return;
  }
  if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 ||
      setresuid(65534, 65534, 65534) < 0) {
    perror("fuzz_agent: cannot become nobody");
    abort();
  }
}

// A frame for `builder`, appended to `out`.
void appendFrame(capnp::MessageBuilder& builder, std::vector<kj::byte>& out) {
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  out.insert(out.end(), bytes.begin(), bytes.end());
}

uint16_t pointerIndex(capnp::StructSchema type, const char* field) {
  return type.getFieldByName(field).getProto().getSlot().getOffset();
}

// A call of `method` on promisedAnswer(question, [getPointerField(field)...]).
void appendCall(std::vector<kj::byte>& out, uint32_t questionId, uint64_t interfaceId,
                capnp::InterfaceSchema::Method method, uint32_t targetQuestion,
                kj::ArrayPtr<const uint16_t> transform,
                kj::Function<void(capnp::DynamicStruct::Builder)> fill) {
  capnp::MallocMessageBuilder message;
  auto call = message.initRoot<capnp::rpc::Message>().initCall();
  call.setQuestionId(questionId);
  call.setInterfaceId(interfaceId);
  call.setMethodId(method.getOrdinal());
  auto answer = call.initTarget().initPromisedAnswer();
  answer.setQuestionId(targetQuestion);
  auto ops = answer.initTransform(transform.size());
  for (size_t i = 0; i < transform.size(); ++i) {
    ops[i].setGetPointerField(transform[i]);
  }
  auto params = call.initParams().getContent().initAs<capnp::DynamicStruct>(
      method.getParamType());
  fill(params);
  appendFrame(message, out);
}

struct World {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<Confinement> confinement = Confinement::confinedTo(scratch.c_str());
  Executor executor{io.provider->getTimer()};
  Reaper reaper{executor};
  AgentContext agent{*confinement, executor, reaper, false};
  Log log{false};
  AgentOptions options{nullptr, log};
  Listener listener{io, agent, options};
  std::vector<kj::byte> prefix;

  capnp::InterfaceSchema agentSchema = capnp::Schema::from<proto::Agent>();
  capnp::InterfaceSchema sessionSchema = capnp::Schema::from<proto::Session>();
  capnp::InterfaceSchema nodeSchema = capnp::Schema::from<proto::Node>();
  uint16_t sessionField = 0;
  uint16_t dirField = 0;

  World() {
    options.handshakeTimeout = 2 * kj::SECONDS;
    auto handshake = agentSchema.getMethodByName("handshake");
    sessionField = pointerIndex(handshake.getResultType(), "session");
    dirField = pointerIndex(sessionSchema.getMethodByName("root").getResultType(), "dir");
    {
      capnp::MallocMessageBuilder message;
      message.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(0);
      appendFrame(message, prefix);
    }
    {
      capnp::MallocMessageBuilder message;
      auto call = message.initRoot<capnp::rpc::Message>().initCall();
      call.setQuestionId(1);
      call.setInterfaceId(capnp::typeId<proto::Agent>());
      call.setMethodId(handshake.getOrdinal());
      call.initTarget().initPromisedAnswer().setQuestionId(0);
      auto hello = call.initParams().getContent().initAs<proto::Agent::HandshakeParams>()
                       .initHello();
      hello.setProtocolVersion(proto::PROTOCOL_VERSION);
      hello.setClientArch("x86_64");
      hello.setClientName("fuzz");
      appendFrame(message, prefix);
    }
    uint16_t toSession[] = {sessionField};
    appendCall(prefix, 2, capnp::typeId<proto::Session>(), sessionSchema.getMethodByName("root"),
               1, toSession, [](capnp::DynamicStruct::Builder) {});
  }

  // One seed per method of Node (on the root directory) and of Session: default parameters,
  // with "hello.txt" in every Data/Text field, and a read of an opened file.
  void writeSeeds(const char* dir) {
    int n = 0;
    auto fillPaths = [](capnp::DynamicStruct::Builder params) {
      for (auto field: params.getSchema().getFields()) {
        auto which = field.getType().which();
        if (which == capnp::schema::Type::DATA) {
          params.set(field, capnp::Data::Reader(
                                reinterpret_cast<const kj::byte*>("hello.txt"), 9));
        } else if (which == capnp::schema::Type::TEXT) {
          params.set(field, "hello.txt");
        }
      }
    };
    auto save = [&](std::vector<kj::byte>& frames) {
      auto path = std::string(dir) + "/seed-" + std::to_string(n++);
      FILE* f = fopen(path.c_str(), "wb");
      KJ_REQUIRE(f != nullptr, "cannot write a seed", path);
      kj::byte start = 0;  // even: after the valid prefix
      fwrite(&start, 1, 1, f);
      fwrite(frames.data(), 1, frames.size(), f);
      fclose(f);
    };
    uint16_t toDir[] = {dirField};
    uint16_t toSession[] = {sessionField};
    for (auto method: nodeSchema.getMethods()) {
      std::vector<kj::byte> frames;
      appendCall(frames, 3, capnp::typeId<proto::Node>(), method, 2, toDir, fillPaths);
      save(frames);
    }
    for (auto method: sessionSchema.getMethods()) {
      std::vector<kj::byte> frames;
      appendCall(frames, 3, capnp::typeId<proto::Session>(), method, 1, toSession, fillPaths);
      save(frames);
    }
    // openAt("hello.txt") then read on the node it answers.
    auto openAt = nodeSchema.getMethodByName("openAt");
    uint16_t toNode[] = {pointerIndex(openAt.getResultType(), "node")};
    std::vector<kj::byte> frames;
    appendCall(frames, 3, capnp::typeId<proto::Node>(), openAt, 2, toDir, fillPaths);
    appendCall(frames, 4, capnp::typeId<proto::Node>(), nodeSchema.getMethodByName("read"), 3,
               toNode, [](capnp::DynamicStruct::Builder p) { p.set("count", 100); });
    save(frames);
    fprintf(stderr, "fuzz_agent: wrote %d seeds to %s\n", n, dir);
  }
};

World* world = nullptr;

kj::Promise<void> drain(kj::AsyncIoStream& stream, kj::Array<kj::byte>& buffer) {
  return stream.tryRead(buffer.begin(), 1, buffer.size()).then([&stream, &buffer](size_t n) {
    if (n == 0) {
      return kj::Promise<void>(kj::READY_NOW);
    }
    return drain(stream, buffer);
  });
}

}  // namespace
}  // namespace sb

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace sb;
  // The executor interrupts workers with SIGUSR2; libFuzzer would take it as "stop". And a file
  // past RLIMIT_FSIZE must give the agent EFBIG (SIGXFSZ ignored), not end the run.
  static std::vector<char*> args;
  args.assign(*argv, *argv + *argc);
  args.insert(args.begin() + 1, const_cast<char*>("-handle_usr2=0"));
  args.insert(args.begin() + 1, const_cast<char*>("-handle_xfsz=0"));
  args.push_back(nullptr);
  *argc = int(args.size() - 1);
  *argv = args.data();

  dropPrivileges();
  struct rlimit fsize = {16 << 20, 16 << 20};
  setrlimit(RLIMIT_FSIZE, &fsize);
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  char dir[] = "/tmp/sb-fuzz-root-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    perror("fuzz_agent: mkdtemp");
    abort();
  }
  scratch = dir;
  resetScratch();
  world = new World();
  if (const char* seeds = getenv("SB_FUZZ_SEEDS")) {
    world->writeSeeds(seeds);
    exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sb;
  resetScratch();
  std::vector<kj::byte> input;
  bool raw = size > 0 && (data[0] & 1);
  if (!raw) {
    input = world->prefix;
  }
  if (size > 1) {
    input.insert(input.end(), data + 1, data + size);
  }
  auto& io = world->io;
  auto pipe = io.provider->newTwoWayPipe();
  kj::AsyncIoStream& client = *pipe.ends[1];
  auto done = world->listener.serve(kj::mv(pipe.ends[0]), kj::str("fuzz"));
  auto writing = client.write(input.data(), input.size())
                     .then([&client]() { client.shutdownWrite(); },
                           [](kj::Exception&&) {})  // the agent may hang up first
                     .eagerlyEvaluate(nullptr);
  auto buffer = kj::heapArray<kj::byte>(1 << 16);
  auto draining = drain(client, buffer).catch_([](kj::Exception&&) {}).eagerlyEvaluate(nullptr);
  // The agent must end the session once the input ends: a hang is a finding. The agent itself
  // drops a session that lingers Limits::endGraceSeconds after its peer hung up; such inputs are
  // kept as stall-* next to the findings (SB_FUZZ_STALLS=DIR), since they show a call or an RPC
  // state that outlives its connection.
  auto started = io.provider->getTimer().now();
  bool finished = done.then([]() { return true; })
                      .exclusiveJoin(io.provider->getTimer().afterDelay(20 * kj::SECONDS).then(
                          []() { return false; }))
                      .wait(io.waitScope);
  auto took = io.provider->getTimer().now() - started;
  if (const char* stalls = getenv("SB_FUZZ_STALLS")) {
    if (finished && took >= (world->agent.limits.endGraceSeconds - 1) * kj::SECONDS) {
      static int n = 0;
      auto path = std::string(stalls) + "/stall-" + std::to_string(getpid()) + "-" +
                  std::to_string(n++);
      if (FILE* f = fopen(path.c_str(), "wb")) {
        fwrite(data, 1, size, f);
        fclose(f);
        fprintf(stderr, "fuzz_agent: the session took %lld ms to end: input kept as %s\n",
                (long long)(took / kj::MILLISECONDS), path.c_str());
      }
    }
  }
  if (!finished) {
    fprintf(stderr,
            "fuzz_agent: the agent did not end the session within 20 s of EOF (connections %zu, "
            "workers %zu, busy %zu, children %zu)\n",
            world->listener.connectionCount(), world->executor.workerCount(),
            world->executor.busyWorkers(), world->reaper.watchedCount());
    abort();
  }
  return 0;
}
