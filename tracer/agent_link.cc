#include "agent_link.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <capnp/rpc.h>
#include <fmt/core.h>
#include <kj/debug.h>
#include <kj/vector.h>

namespace sb {

capnp::ReaderOptions rpcReaderOptions() {
  capnp::ReaderOptions options;
  // 64 MiB of data per message plus headroom, counted in words.
  options.traversalLimitInWords = (128ull << 20) / 8;
  options.nestingLimit = 32;
  return options;
}

struct AgentLinkRpc {
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  explicit AgentLinkRpc(kj::AsyncIoStream& stream)
      : network(stream, capnp::rpc::twoparty::Side::CLIENT, rpcReaderOptions()),
        rpc(capnp::makeRpcClient(network)) {}
  capnp::Capability::Client bootstrap() {
    capnp::word scratch[4];
    memset(scratch, 0, sizeof(scratch));
    capnp::MallocMessageBuilder message(scratch);
    auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
    vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
    return rpc.bootstrap(vatId);
  }
};

AgentLink::AgentLink(TargetUrl url, kj::String name, kj::String token)
    : url_(kj::mv(url)), name_(kj::mv(name)), token_(kj::mv(token)) {}

AgentLink::~AgentLink() noexcept(false) {}

kj::Own<kj::AsyncIoStream> AgentLink::spawnLocal(kj::AsyncIoContext& io,
                                                 kj::StringPtr agentPath) {
  int sv[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  kj::Vector<kj::String> args;
  args.add(kj::str(agentPath));
  args.add(kj::str("--stdio"));
  if (url_.root.size() > 0) {
    args.add(kj::str("--root"));
    args.add(kj::str(url_.root));
  }
  if (url_.hostname.size() > 0) {
    args.add(kj::str("--hostname"));
    args.add(kj::str(url_.hostname));
  }
  kj::Vector<char*> argv;
  for (auto& a : args) {
    argv.add(const_cast<char*>(a.cStr()));
  }
  argv.add(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  KJ_SYSCALL(pid, "fork for the embedded agent");
  if (pid == 0) {
    // The agent dies with sbrun; it gets a clean signal state (sbrun blocks SIGCHLD).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_IGN);  // Ctrl-C is for the program; sbrun ends the agent.
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    execv(argv[0], argv.begin());
    fmt::print(stderr, "sbrun: cannot run the embedded agent {}: {}\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(sv[1]);
  agentPid_ = pid;
  return io.lowLevelProvider->wrapSocketFd(sv[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
}

kj::Promise<kj::Own<kj::AsyncIoStream>> AgentLink::openStream(kj::AsyncIoContext& io,
                                                              kj::StringPtr agentPath) {
  switch (url_.kind) {
    case TargetUrl::Kind::LOCAL:
      return spawnLocal(io, agentPath);
    case TargetUrl::Kind::UNIX:
    case TargetUrl::Kind::TCP: {
      auto address = url_.kind == TargetUrl::Kind::UNIX
                         ? kj::str("unix:", url_.path)
                         : kj::str(url_.host.findFirst(':') != nullptr ? "[" : "", url_.host,
                                   url_.host.findFirst(':') != nullptr ? "]" : "", ":",
                                   url_.port);
      auto connecting = io.provider->getNetwork()
                            .parseAddress(address)
                            .then([](kj::Own<kj::NetworkAddress> addr) {
                              return addr->connect().attach(kj::mv(addr));
                            });
      // An address that swallows SYNs must not hang sbrun.
      return io.provider->getTimer().timeoutAfter(10 * kj::SECONDS, kj::mv(connecting));
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<void> AgentLink::connect(kj::AsyncIoContext& io, kj::StringPtr agentPath) {
  return openStream(io, agentPath)
      .then(
          [this](kj::Own<kj::AsyncIoStream> stream) {
            stream_ = kj::mv(stream);
            auto rpc = kj::heap<AgentLinkRpc>(*stream_);
            auto agent = rpc->bootstrap().castAs<proto::Agent>();
            auto req = agent.handshakeRequest();
            auto hello = req.initHello();
            hello.setProtocolVersion(proto::PROTOCOL_VERSION);
            hello.setClientArch("x86_64");
            hello.setToken(token_.asBytes());
            hello.setClientName(kj::str("sbrun pid ", getpid()));
            rpcHolder_ = kj::mv(rpc);
            return req.send().then([this](capnp::Response<proto::Agent::HandshakeResults> r) {
              auto w = r.getWelcome();
              if (w.getProtocolVersion() != proto::PROTOCOL_VERSION) {
                KJ_FAIL_REQUIRE(kj::str("agent speaks protocol ", w.getProtocolVersion(),
                                        ", sbrun speaks ", proto::PROTOCOL_VERSION,
                                        ": install matching versions of sbrun and sbagent"));
              }
              welcome_ = kj::heap<capnp::MallocMessageBuilder>();
              welcome_->setRoot(w);
              session_ = r.getSession();
              return session().rootRequest().send().then(
                  [this](capnp::Response<proto::Session::RootResults> rr) {
                    root_ = rr.getDir();
                  });
            });
          })
      .catch_([this](kj::Exception&& e) -> kj::Promise<void> {
        kj::String why = kj::str(e.getDescription());
        if (e.getType() == kj::Exception::Type::DISCONNECTED && agentPid_ > 0) {
          why = kj::str("the embedded agent exited during the handshake (see its messages above)");
        }
        return KJ_EXCEPTION(FAILED, kj::str("cannot connect to target '", name_, "' (",
                                            url_.text, "): ", why));
      });
}

int64_t AgentLink::failure(const kj::Exception& e) {
  if (e.getType() == kj::Exception::Type::DISCONNECTED) {
    if (!disconnected_) {
      disconnected_ = true;
      fmt::print(stderr,
                 "sbrun: lost the connection to target '{}' ({}): remote calls now fail with "
                 "EIO\n",
                 name_.cStr(), url_.text.cStr());
      KJ_IF_MAYBE(hook, disconnectHook) {
        (*hook)(*this);
      }
    }
    return -EIO;
  }
  fmt::print(stderr, "sbrun: remote call to '{}' failed: {}\n", name_.cStr(),
             e.getDescription().cStr());
  return -EIO;
}

void AgentLink::agentExited(int status) {
  agentPid_ = -1;
  if (!disconnected_ && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    fmt::print(stderr, "sbrun: the embedded agent for '{}' exited ({} {})\n", name_.cStr(),
               WIFEXITED(status) ? "status" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
}

}  // namespace sb
