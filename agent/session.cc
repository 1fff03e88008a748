#include "session.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/core.h>
#include <kj/debug.h>

#include "host_wire.h"
#include "identity.h"
#include "socket_wire.h"

namespace sb {

bool tokensEqual(kj::ArrayPtr<const kj::byte> a, kj::ArrayPtr<const kj::byte> b) {
  // The length is not secret (it would show in the message size anyway); the content is.
  if (a.size() != b.size()) {
    return false;
  }
  volatile kj::byte diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | (a[i] ^ b[i]);
  }
  return diff == 0;
}

AgentImpl::AgentImpl(AgentContext& context, const AgentOptions& options, kj::String peer)
    : agent(context), options(options), peer(kj::mv(peer)) {}

kj::Promise<uint32_t> AgentImpl::whenHandshaken() {
  auto paf = kj::newPromiseAndFulfiller<uint32_t>();
  handshaken = kj::mv(paf.fulfiller);
  return kj::mv(paf.promise);
}

kj::Promise<void> AgentImpl::handshake(HandshakeContext context) {
  auto hello = context.getParams().getHello();
  kj::StringPtr client = hello.getClientName();
  uint32_t theirs = hello.getProtocolVersion();
  if (theirs != proto::PROTOCOL_VERSION) {
    auto message = fmt::format(
        "protocol version mismatch: the client ({}) speaks version {}, this sbagent speaks "
        "version {}; upgrade sbrun or sbagent so they match",
        client.cStr(), theirs, proto::PROTOCOL_VERSION);
    options.log.warn("{}: handshake refused: {}", peer.cStr(), message);
    failClearly(message);
  }
  KJ_IF_MAYBE(token, options.token) {
    if (!tokensEqual(hello.getToken(), token->asBytes())) {
      auto message = fmt::format(
          "bad token: the handshake must present the content of the agent's --token-file "
          "(client {})", client.cStr());
      options.log.warn("{}: handshake refused: {}", peer.cStr(), message);
      failClearly(message);
    }
  }

  auto results = context.getResults();
  auto welcome = results.initWelcome();
  welcome.setProtocolVersion(proto::PROTOCOL_VERSION);
  struct utsname u;
  if (::uname(&u) == 0) {
    welcome.setArch(u.machine);
    welcome.setKernel(u.release);
  }
  fillUname(welcome.initUname());
  welcome.setRoot(agent.confinement.rootPath().asBytes());
  welcome.setReadOnly(agent.readOnly);
  welcome.setAgentPid(getpid());
  welcome.setUid(geteuid());
  welcome.setGid(getegid());
  welcome.setAssumesCredentials(canAssumeCredentials());
  results.setSession(kj::heap<SessionImpl>(kj::refcounted<SessionState>(agent)));
  if (!canAssumeCredentials()) {
    options.log.info("{}: this agent lacks CAP_SETUID/CAP_SETGID: the program's calls run as uid "
                     "{} whatever its own credentials", peer.cStr(), geteuid());
  }
  options.log.info("{}: session for {} (client arch {}, heartbeat {} ms)", peer.cStr(),
                   client.cStr(), hello.getClientArch().cStr(), hello.getHeartbeatMillis());
  KJ_IF_MAYBE(f, handshaken) {
    (*f)->fulfill(hello.getHeartbeatMillis());
    handshaken = nullptr;
  }
  return kj::READY_NOW;
}

SessionImpl::SessionImpl(kj::Own<SessionState> state): state(kj::mv(state)) {}

kj::Promise<void> SessionImpl::root(RootContext context) {
  // A dup of the agent's root O_PATH fd: O_PATH fds carry no locks, so duplicating is harmless.
  // root() has no errno to answer with; a client that asks past --max-fds gets an exception.
  if (state->nodeRoom() < 0) {
    failClearly(fmt::format("this session holds its maximum of {} open files (sbagent "
                            "--max-fds)", state->agent.limits.maxNodes));
  }
  int fd;
  KJ_SYSCALL(fd = fcntl(state->agent.confinement.rootFd(), F_DUPFD_CLOEXEC, 0),
             "cannot duplicate the root directory fd; is the agent out of file descriptors?");
  proto::FileType type;
  context.getResults().setDir(state->newNode(fd, type));
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::uname(UnameContext context) {
  auto results = context.getResults();
  results.setResult(fillUname(results.initUname()));
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::openPath(OpenPathContext context) {
  auto results = context.getResults();
  kj::String path;
  int64_t r = pathFromWire(context.getParams().getPath(), path);
  if (r >= 0) {
    r = state->nodeRoom();  // --max-fds
  }
  if (r >= 0) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    const Confinement& conf = state->agent.confinement;
    // Relative paths are relative to the root, like absolute ones.
    r = conf.open(conf.rootFd(), path.size() == 0 ? kj::StringPtr("") : path, how);
  }
  if (r >= 0) {
    proto::FileType type;
    results.setDir(state->newNode(int(r), type));
    r = 0;
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::releaseOwner(ReleaseOwnerContext context) {
  state->releaseOwner(context.getParams().getOwner());
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::spawn(SpawnContext context) {
  // --max-procs answers as fork(2) does at RLIMIT_NPROC; --max-fds as open(2) (up to three
  // pipes become nodes).
  int64_t refused = processes.running() >= state->agent.limits.maxProcs ? -EAGAIN
                                                                        : state->nodeRoom(3);
  if (refused < 0) {
    context.getResults().setResult(refused);
    return kj::READY_NOW;
  }
  return sb::spawn(*state, processes, kj::mv(context));
}

// Sockets are made on this host's network stack whatever --read-only says: the network is not
// the file system (binding a unix socket *path* is what a read-only agent refuses, node_socket.cc).
namespace {

// socket(2)/socketpair(2)'s domain and type for this host, or -EINVAL.
int64_t socketArgs(proto::SockFamily family, proto::SockType type, bool nonBlock, int& domain,
                   int& kind) {
  int64_t d = sockFamilyToHost(family), t = sockTypeToHost(type);
  if (d < 0 || t < 0) {
    return -EINVAL;
  }
  domain = int(d);
  // Close-on-exec always: agent fds must never leak into the processes it spawns.
  kind = int(t) | SOCK_CLOEXEC | (nonBlock ? SOCK_NONBLOCK : 0);
  return 0;
}

}  // namespace

kj::Promise<void> SessionImpl::socket(SocketContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int domain, kind;
  int64_t r = socketArgs(params.getFamily(), params.getType(), params.getNonBlock(), domain, kind);
  if (r >= 0) {
    r = sysResult(::socket(domain, kind, params.getProtocol()));
  }
  if (r >= 0) {
    proto::FileType type;
    results.setNode(state->newNode(int(r), type));
    r = 0;
  }
  results.setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::defineCredentials(DefineCredentialsContext context) {
  auto params = context.getParams();
  uint32_t id = params.getId();
  int64_t r = 0;
  kj::Own<const CallerCredentials> creds;
  if (!canAssumeCredentials()) {
    r = -EPERM;
  } else if (id == 0 || (state->credentials.size() >= SessionState::MAX_CREDENTIALS &&
                         state->credentials.count(id) == 0)) {
    r = -EINVAL;
  } else {
    r = CallerCredentials::fromWire(params.getCredentials(), creds);
  }
  if (r >= 0) {
    state->credentials[id] = kj::mv(creds);
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> SessionImpl::socketpair(SocketpairContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int domain, kind;
  int64_t r = socketArgs(params.getFamily(), params.getType(), params.getNonBlock(), domain, kind);
  int sv[2];
  if (r >= 0) {
    r = sysResult(::socketpair(domain, kind, params.getProtocol(), sv));
  }
  if (r >= 0) {
    proto::FileType type;
    results.setFirst(state->newNode(sv[0], type));
    results.setSecond(state->newNode(sv[1], type));
    r = 0;
  }
  results.setResult(r);
  return kj::READY_NOW;
}

}  // namespace sb
