#include "listener.h"
#include "socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <malloc.h>

#include <cerrno>
#include <cstring>

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <fmt/core.h>
#include <kj/debug.h>

#include "fd_stream.h"
#include "host_wire.h"
#include "log.h"
#include "message_guard.h"
#include "peer_check.h"
#include "preamble.h"
#include "tls_setup.h"

namespace sb {

// The connection's stream as the guard reads it, noting when bytes last arrived and when a
// write last completed: the silence check (Listener::watchSilence) decides on these.
class ActivityStream final: public kj::AsyncIoStream {
public:
  ActivityStream(kj::Own<kj::AsyncIoStream> inner, kj::Timer& timer)
      : inner(kj::mv(inner)), timer(timer), lastRead(timer.now()), lastWrite(timer.now()) {}

  kj::TimePoint lastReadAt() const { return lastRead; }
  kj::TimePoint lastWriteAt() const { return lastWrite; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    // Reads of the body of a big message come in chunks: each one counts.
    return inner->tryRead(buffer, minBytes, maxBytes).then([this](size_t n) {
      if (n > 0) {
        lastRead = timer.now();
      }
      return n;
    });
  }
  kj::Maybe<uint64_t> tryGetLength() override { return inner->tryGetLength(); }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner->write(buffer, size).then([this]() { lastWrite = timer.now(); });
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner->write(pieces).then([this]() { lastWrite = timer.now(); });
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner->whenWriteDisconnected(); }
  void shutdownWrite() override { inner->shutdownWrite(); }
  void abortRead() override { inner->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    inner->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    inner->getpeername(addr, length);
  }
  kj::Maybe<int> getFd() const override { return inner->getFd(); }

private:
  kj::Own<kj::AsyncIoStream> inner;
  kj::Timer& timer;
  kj::TimePoint lastRead;
  kj::TimePoint lastWrite;
};

namespace {

// One connection's RPC state. Member order matters: the RPC system refers to the network, which
// reads through the guard, which reads the stream; they are destroyed in the opposite order.
// The guard reads every frame in place of capnp's own reader (message_guard.h), and the flow
// limit stops reading while too many calls are unanswered (PITFALLS #20).
struct Connection {
  kj::Own<ActivityStream> stream;
  MessageGuard guard;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;

  Connection(kj::Own<ActivityStream> streamParam, const Limits& limits,
             capnp::Capability::Client bootstrap)
      : stream(kj::mv(streamParam)),
        guard(*stream, limits),
        network(guard, capnp::rpc::twoparty::Side::SERVER, readerOptionsFor(limits)),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {
    rpc.setFlowLimit(limits.flowLimitWords);
    guard.watchQueue([this]() { return network.getCurrentQueueSize(); });
  }
};

// A connection on its way through TLS and the admission preamble.
struct Admission {
  kj::Own<kj::AsyncIoStream> stream;
  kj::String peer;
  kj::Own<Listener::PeerSlot> slot;  // the peer's pending slot, until the handshake
};

// stdin and stdout as one stream, for ssh, which gives the agent two pipes.
class StdioStream final: public kj::AsyncIoStream {
public:
  StdioStream(kj::Own<kj::AsyncInputStream> in, kj::Own<kj::AsyncOutputStream> out)
      : in(kj::mv(in)), out(kj::mv(out)) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return in->tryRead(buffer, minBytes, maxBytes);
  }
  kj::Maybe<uint64_t> tryGetLength() override { return in->tryGetLength(); }
  kj::Promise<uint64_t> pumpTo(kj::AsyncOutputStream& output, uint64_t amount) override {
    return in->pumpTo(output, amount);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return output().write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return output().write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return output().whenWriteDisconnected(); }
  void shutdownWrite() override {
    out = nullptr;
    ::close(STDOUT_FILENO);
  }

private:
  kj::Own<kj::AsyncInputStream> in;
  kj::Own<kj::AsyncOutputStream> out;

  kj::AsyncOutputStream& output() {
    KJ_REQUIRE(out.get() != nullptr, "stdout was shut down");
    return *out;
  }
};

kj::String describeSockaddr(const struct sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return kj::str(host, ":", ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return kj::str("[", host, "]:", ntohs(in6->sin6_port));
  }
  return kj::str("unix");
}

kj::String describePeer(kj::AsyncIoStream& stream) {
  struct sockaddr_storage addr;
  uint len = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    stream.getpeername(reinterpret_cast<struct sockaddr*>(&addr), &len);
  })) {
    return kj::str("peer");
  }
  if (addr.ss_family == AF_UNIX) {
    struct ucred cred;
    uint credLen = sizeof(cred);
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      stream.getsockopt(SOL_SOCKET, SO_PEERCRED, &cred, &credLen);
    })) {
      return kj::str("unix peer");
    }
    return kj::str("unix peer pid ", cred.pid, " uid ", cred.uid);
  }
  return kj::str("tcp ", describeSockaddr(reinterpret_cast<struct sockaddr*>(&addr)));
}

bool isLoopbackSockaddr(const struct sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
      return true;
    }
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

// TCP keepalive and TCP_USER_TIMEOUT on an accepted connection, within `timeout`: the kernel
// then ends a connection whose peer machine stopped answering (a pulled cable, a partition, a
// crashed host), even for a client that sends no heartbeat. (A peer whose kernel still answers,
// a frozen sbrun or a proxy that stopped forwarding, is found by the silence check instead.)
// Other sockets, and timeouts of 0: nothing.
void tuneAcceptedTcp(kj::AsyncIoStream& stream, kj::Duration timeout) {
  int ms = int(timeout / kj::MILLISECONDS);
  if (ms <= 0) {
    return;
  }
  KJ_IF_MAYBE(fd, stream.getFd()) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(*fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 ||
        (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)) {
      return;
    }
    int on = 1;
    int idle = kj::max(1, ms / 2000);        // half the timeout of silence, then probes
    int interval = kj::max(1, ms / 10000);   // ... about five of them in the other half
    int count = kj::max(1, (ms / 1000 - idle) / interval);
    // Best effort: a kernel without one of these still has the silence check.
    (void)setsockopt(*fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(*fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(*fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    (void)setsockopt(*fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    // Answers unacknowledged for this long abort the connection.
    (void)setsockopt(*fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
  }
}

double secondsOf(kj::Duration d) { return double(d / kj::MILLISECONDS) / 1000.0; }

struct AddrInfoList {
  struct addrinfo* list = nullptr;
  ~AddrInfoList() {
    if (list != nullptr) {
      freeaddrinfo(list);
    }
  }
};

// What the per-peer pending cap counts by: the uid on a unix socket, the address (without the
// port, which a client picks freely) on TCP.
kj::String peerKey(kj::AsyncIoStream& stream) {
  struct sockaddr_storage addr;
  uint len = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    stream.getpeername(reinterpret_cast<struct sockaddr*>(&addr), &len);
  })) {
    return kj::str("?");
  }
  if (addr.ss_family == AF_UNIX) {
    KJ_IF_MAYBE(fd, stream.getFd()) {
      KJ_IF_MAYBE(cred, unixPeerCredentials(*fd)) {
        return kj::str("uid ", cred->uid);
      }
    }
    return kj::str("unix ?");
  }
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&addr)->sin_addr, host,
              sizeof(host));
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&addr)->sin6_addr, host,
              sizeof(host));
  }
  return kj::str("address ", host);
}

}  // namespace

// One of a peer's pending slots: given back when the peer's Agent.handshake is done, or when
// its connection goes before that (whichever comes first; destruction gives it back at the
// latest).
class Listener::PeerSlot {
public:
  PeerSlot(Listener& listener, kj::String key, kj::TimePoint since)
      : PeerSlot(listener, kj::mv(key), since, kj::newPromiseAndFulfiller<void>()) {}
  ~PeerSlot() { release(); }
  KJ_DISALLOW_COPY(PeerSlot);

  kj::TimePoint since() const { return since_; }

  // Resolves when the listener closes this connection to make room for a newer one of the same
  // peer; never once the slot is released.
  kj::Promise<void> whenEvicted() { return evicted.addBranch(); }

  void release() {
    if (held) {
      held = false;
      auto it = listener.pendingByPeer.find(std::string(key.cStr()));
      if (it != listener.pendingByPeer.end()) {
        it->second.remove(this);
        if (it->second.empty()) {
          listener.pendingByPeer.erase(it);
        }
      }
    }
  }

  void evict() {
    release();
    evictor->fulfill();
  }

private:
  Listener& listener;
  kj::String key;
  kj::TimePoint since_;
  bool held = true;
  kj::Own<kj::PromiseFulfiller<void>> evictor;
  kj::ForkedPromise<void> evicted;

  PeerSlot(Listener& listener, kj::String key, kj::TimePoint since,
           kj::PromiseFulfillerPair<void> paf)
      : listener(listener), key(kj::mv(key)), since_(since), evictor(kj::mv(paf.fulfiller)),
        evicted(paf.promise.fork()) {
    listener.pendingByPeer[std::string(this->key.cStr())].push_back(this);
  }
};

kj::Maybe<kj::Own<Listener::PeerSlot>> Listener::takePeerSlot(kj::StringPtr key) {
  auto now = io.provider->getTimer().now();
  auto& slots = pendingByPeer[std::string(key.cStr())];
  if (slots.size() >= agent.limits.maxPendingPerPeer) {
    PeerSlot* oldest = slots.front();
    if (now - oldest->since() < agent.limits.evictPendingAfterMs * kj::MILLISECONDS) {
      return nullptr;
    }
    oldest->evict();  // its connection closes on the next turn
  }
  return kj::heap<PeerSlot>(*this, kj::heapString(key), now);
}

bool Listener::peerAllowed(kj::AsyncIoStream& stream, kj::StringPtr peer) {
  KJ_IF_MAYBE(fd, stream.getFd()) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(*fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 ||
        addr.ss_family != AF_UNIX) {
      return true;  // TCP: TLS and the token are its gates
    }
    KJ_IF_MAYBE(cred, unixPeerCredentials(*fd)) {
      kj::String refusal = peerRefusal(options.peers, *cred);
      if (refusal.size() == 0) {
        return true;
      }
      options.log.warn("{}: refused: {}", peer.cStr(), refusal.cStr());
      tellRefused(stream, refusal);
      return false;
    }
    options.log.warn("{}: refused: SO_PEERCRED failed: {}", peer.cStr(), strerror(errno));
    return false;
  }
  return true;
}

void Listener::tellRefused(kj::AsyncIoStream& stream, kj::StringPtr why) {
  // The admission preamble's answer, so that sbrun says why (it reads it after sending its own
  // preamble; the line waits in the socket). Best effort: a full buffer loses it, and a client
  // whose preamble write fails first (the connection already closed) never reads it. Not
  // through TLS: a TLS client would take plain bytes for a broken handshake.
  if (tls != nullptr) {
    return;
  }
  KJ_IF_MAYBE(fd, stream.getFd()) {
    kj::String line = kj::str("refused: ", why, "\n");
    (void)::send(*fd, line.begin(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

kj::Promise<void> Listener::lingerRefused(kj::Own<kj::AsyncIoStream> stream) {
  // The refusal line is already in the socket. Closing at once would make the client's own
  // preamble write fail (EPIPE) before it reads why; so the connection stays until the client
  // closes or a second has passed, while what it sends is read and dropped (at most 4 KiB, then
  // it is closed anyway). It holds one of the peer's pending slots meanwhile, or is closed now
  // when there is none: a refused peer cannot pile connections up this way.
  KJ_IF_MAYBE(slot, takePeerSlot(peerKey(*stream))) {
    auto buffer = kj::heapArray<kj::byte>(4096);
    auto read = stream->tryRead(buffer.begin(), buffer.size(), buffer.size())
                    .then([](size_t) {}, [](kj::Exception&&) {});
    return read.exclusiveJoin(io.provider->getTimer().afterDelay(1 * kj::SECONDS))
        .attach(kj::mv(stream), kj::mv(buffer), kj::mv(*slot));
  }
  return kj::READY_NOW;
}

kj::Maybe<ListenAddress> parseListenAddress(kj::StringPtr text, kj::String& error) {
  if (text == "systemd") {
    return ListenAddress{ListenAddress::Kind::SYSTEMD, kj::heapString(""), kj::heapString(""), 0};
  }
  if (text.startsWith("unix:")) {
    kj::StringPtr path = text.slice(5);
    if (path.size() == 0) {
      error = kj::str("empty unix socket path in '", text, "'; use unix:/path/to/socket");
      return nullptr;
    }
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      error = kj::str("unix socket path too long (", path.size(), " bytes, the limit is ",
                      sizeof(sockaddr_un::sun_path) - 1, "): ", path);
      return nullptr;
    }
    return ListenAddress{ListenAddress::Kind::UNIX, kj::heapString(path), kj::heapString(""), 0};
  }
  if (text.startsWith("tcp://")) {
    kj::StringPtr rest = text.slice(6);
    kj::String host;
    kj::StringPtr portText;
    if (rest.startsWith("[")) {
      KJ_IF_MAYBE(close, rest.findFirst(']')) {
        host = kj::heapString(rest.slice(1, *close));
        if (rest.size() > *close + 1 && rest[*close + 1] == ':') {
          portText = rest.slice(*close + 2);
        }
      }
    } else {
      KJ_IF_MAYBE(colon, rest.findLast(':')) {
        host = kj::heapString(rest.slice(0, *colon));
        portText = rest.slice(*colon + 1);
      }
    }
    char* end = nullptr;
    unsigned long port = portText.size() > 0 ? strtoul(portText.cStr(), &end, 10) : 0;
    if (host == nullptr || host.size() == 0 || portText.size() == 0 || *end != '\0' ||
        port > 65535) {
      error = kj::str("bad TCP address '", text,
                      "'; use tcp://HOST:PORT, e.g. tcp://127.0.0.1:7433 or tcp://[::1]:0 "
                      "(port 0 picks a free port)");
      return nullptr;
    }
    return ListenAddress{ListenAddress::Kind::TCP, kj::heapString(""), kj::mv(host),
                         uint16_t(port)};
  }
  error = kj::str("unknown listen address '", text,
                  "'; use unix:PATH, tcp://HOST:PORT or systemd (socket activation)");
  return nullptr;
}

bool resolvesOnlyToLoopback(kj::StringPtr host) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  AddrInfoList res;
  if (getaddrinfo(host.cStr(), nullptr, &hints, &res.list) != 0 || res.list == nullptr) {
    return false;
  }
  for (auto* ai = res.list; ai != nullptr; ai = ai->ai_next) {
    if (!isLoopbackSockaddr(ai->ai_addr)) {
      return false;
    }
  }
  return true;
}

capnp::ReaderOptions readerOptionsFor(const Limits& limits) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = limits.traversalLimitWords;
  options.nestingLimit = limits.nestingLimit;
  return options;
}

capnp::ReaderOptions agentReaderOptions() { return readerOptionsFor(Limits()); }

Listener::Listener(kj::AsyncIoContext& io, AgentContext& agent, const AgentOptions& options)
    : io(io), agent(agent), options(options), tasks(*this) {}

void Listener::useTls(kj::TlsContext& context) { tls = context; }

Listener::~Listener() noexcept(false) {
  KJ_IF_MAYBE(path, createdSocket) {
    unlink(path->cStr());
  }
}

kj::Maybe<kj::StringPtr> Listener::unixPath() const {
  KJ_IF_MAYBE(path, createdSocket) {
    return path->asPtr();
  }
  return nullptr;
}

kj::Promise<void> Listener::serve(kj::Own<kj::AsyncIoStream> stream, kj::String peer) {
  ++connections;
  auto slot = kj::heap<PeerSlot>(*this, kj::str("stdio"), io.provider->getTimer().now());
  return serveAdmitted(kj::mv(stream), kj::mv(peer),
                       io.provider->getTimer().now() + options.handshakeTimeout, kj::mv(slot));
}

kj::Promise<void> Listener::serveAdmitted(kj::Own<kj::AsyncIoStream> stream, kj::String peer,
                                          kj::TimePoint deadline,
                                          kj::Own<PeerSlot> slot) {
  options.log.info("{}: connected", peer.cStr());
  auto bootstrap = kj::heap<AgentImpl>(agent, options, kj::heapString(peer));
  auto handshaken = bootstrap->whenHandshaken();
  auto connection = kj::heap<Connection>(
      kj::heap<ActivityStream>(kj::mv(stream), io.provider->getTimer()), agent.limits,
      kj::mv(bootstrap));
  auto& guard = connection->guard;
  auto& watched = *connection->stream;
  // A peer that never completes a handshake (silent, or refused and lingering) is dropped. The
  // race is decided first: a handshake cancels the timer for good (joining "never done" with the
  // timer instead would let the timer end every session at the deadline). After the handshake,
  // a client that announced a heartbeat is watched for silence.
  auto& peerSlot = *slot;
  auto deadlinePassed =
      handshaken
          .then([&guard, &peerSlot](uint32_t heartbeatMs) {
            // Authenticated: full-size frames from now on, and the peer's pending slot is free.
            guard.authenticated();
            peerSlot.release();
            return kj::Maybe<uint32_t>(heartbeatMs);
          })
          .exclusiveJoin(io.provider->getTimer().atTime(deadline).then(
              []() { return kj::Maybe<uint32_t>(nullptr); }))
          .then([this, &guard, &watched, peer = kj::heapString(peer)](
                    kj::Maybe<uint32_t> heartbeatMs) -> kj::Promise<void> {
            KJ_IF_MAYBE(ms, heartbeatMs) {
              return watchSilence(watched, guard, *ms * kj::MILLISECONDS, peer);
            }
            options.log.warn("{}: no handshake within the timeout: dropped", peer.cStr());
            return kj::READY_NOW;
          });
  auto disconnected = connection->network.onDisconnect().then(
      [this, &guard, who = kj::heapString(peer)]() {
        KJ_IF_MAYBE(why, guard.failure()) {
          options.log.warn("{}: dropped: {}", who.cStr(), why->cStr());
        }
      });
  // Destroying the connection drops every capability it exported: each Node closes its fd, and
  // in-flight worker calls are cancelled.
  auto endedLong = guard.whenPeerEnded()
                       .then([this]() {
                         return io.provider->getTimer().afterDelay(agent.limits.endGraceSeconds *
                                                                   kj::SECONDS);
                       })
                       .then([this, who = kj::heapString(peer)]() {
                         options.log.warn("{}: the peer has hung up, but its session did not "
                                          "end within {} s: dropped", who.cStr(),
                                          agent.limits.endGraceSeconds);
                       });
  // Still before its handshake, the connection may be closed for a newer one of its peer.
  auto evicted = slot->whenEvicted().then([this, who = kj::heapString(peer)]() {
    options.log.warn("{}: dropped before its handshake to make room for a newer connection of "
                     "the same peer", who.cStr());
  });
  return disconnected.exclusiveJoin(kj::mv(deadlinePassed))
      .exclusiveJoin(kj::mv(endedLong))
      .exclusiveJoin(kj::mv(evicted))
      .attach(kj::mv(connection), kj::mv(slot))
      .then([this, peer = kj::mv(peer)]() {
    --connections;
    options.log.info("{}: disconnected; its session and files are closed", peer.cStr());
    if (connections == 0) {
      // The agent keeps freed message memory for the next big call (main.cc,
      // keepMessageMemory); with no session left there is no next call to keep it for.
      malloc_trim(0);
    }
  });
}

kj::Promise<void> Listener::watchSilence(ActivityStream& stream, MessageGuard& guard,
                                         kj::Duration heartbeat, kj::StringPtr peer) {
  if (heartbeat <= 0 * kj::SECONDS || options.clientTimeout <= 0 * kj::SECONDS) {
    return kj::NEVER_DONE;  // The client sends no pings: silence proves nothing.
  }
  // A live client pings every quarter of its heartbeat; twice the heartbeat leaves room for a
  // client on a slow link that chose a long one.
  kj::Duration limit = kj::max(options.clientTimeout, 2 * heartbeat);
  kj::Duration tick = kj::min(limit / 8, 1 * kj::SECONDS);
  auto& timer = io.provider->getTimer();
  struct State {
    kj::TimePoint lastTick;
  };
  auto state = kj::heap<State>(State{timer.now()});
  auto& st = *state;
  auto loop = kj::heap<kj::Function<kj::Promise<void>()>>();
  auto& again = *loop;
  again = [this, &stream, &guard, &timer, &st, &again, limit, tick, heartbeat,
           peer = kj::heapString(peer)]() -> kj::Promise<void> {
    return timer.afterDelay(tick).then([this, &stream, &guard, &timer, &st, &again, limit, tick,
                                        heartbeat, &peer]() -> kj::Promise<void> {
      auto now = timer.now();
      // A tick that comes late means the agent's own loop was busy: what the client sent may
      // still sit unread in the socket, so no verdict this round.
      bool late = now - st.lastTick > 2 * tick;
      st.lastTick = now;
      kj::TimePoint last = stream.lastReadAt();
      if (guard.holdingBack()) {
        // The agent stopped reading until the client takes answers: taking them is its sign.
        last = kj::max(last, stream.lastWriteAt());
      }
      if (!late && now - last >= limit) {
        options.log.warn("{}: nothing from the client for {:.1f} s (its heartbeat is {:.1f} s, "
                         "--client-timeout {:.1f} s): dropped as gone, with its session",
                         peer.cStr(), secondsOf(now - last), secondsOf(heartbeat),
                         secondsOf(options.clientTimeout));
        return kj::READY_NOW;
      }
      return again();
    });
  };
  return again().attach(kj::mv(loop), kj::mv(state));
}

kj::String Listener::refusalFor(kj::ArrayPtr<const kj::byte> token) {
  KJ_IF_MAYBE(expected, options.token) {
    if (!tokensEqual(token, expected->asBytes())) {
      return kj::str("bad token: present the content of the agent's --token-file "
                     "(sbrun --token-file FILE)");
    }
  }
  if (connections >= agent.limits.maxSessions) {
    return kj::str("the agent already serves its maximum of ", agent.limits.maxSessions,
                   " sessions (sbagent --max-sessions); try again when one has ended");
  }
  return kj::str();
}

kj::Promise<void> Listener::admit(kj::Own<kj::AsyncIoStream> raw, kj::String peer) {
  if (pending >= agent.limits.maxPending) {
    options.log.warn("{}: dropped: {} connections are already in their handshake", peer.cStr(),
                     pending);
    tellRefused(*raw, kj::str("the agent is busy: ", pending, " connections are in their "
                              "handshake; try again"));
    return kj::READY_NOW;  // dropping `raw` closes it
  }
  kj::Own<PeerSlot> slot;
  kj::String key = peerKey(*raw);
  KJ_IF_MAYBE(s, takePeerSlot(key)) {
    slot = kj::mv(*s);
  } else {
    options.log.warn("{}: dropped: {} already has {} connections before their handshake "
                     "(at most {} per peer)", peer.cStr(), key.cStr(),
                     agent.limits.maxPendingPerPeer, agent.limits.maxPendingPerPeer);
    tellRefused(*raw, kj::str(key, " already has ", agent.limits.maxPendingPerPeer,
                              " connections in their handshake (sbagent "
                              "--max-pending-per-peer); try again"));
    return kj::READY_NOW;
  }
  ++pending;
  tuneAcceptedTcp(*raw, options.clientTimeout);
  auto& timer = io.provider->getTimer();
  kj::TimePoint deadline = timer.now() + options.handshakeTimeout;
  auto state = kj::heap<Admission>();
  state->peer = kj::mv(peer);
  Admission& st = *state;
  st.slot = kj::mv(slot);

  kj::Promise<void> secured = nullptr;
  KJ_IF_MAYBE(t, tls) {
    secured = t->wrapServer(kj::AuthenticatedStream{kj::mv(raw),
                                                    kj::UnknownPeerIdentity::newInstance()})
                  .then(
                      [&st](kj::AuthenticatedStream s) {
                        auto& id = kj::downcast<kj::TlsPeerIdentity>(*s.peerIdentity);
                        if (id.hasCertificate()) {
                          st.peer = kj::str(st.peer, " (certificate CN=", id.getCommonName(),
                                            ")");
                        }
                        st.stream = kj::mv(s.stream);
                      },
                      [](kj::Exception&& e) {
                        failClearly(describeTlsFailure(e, TlsRole::AGENT).cStr());
                      });
  } else {
    st.stream = kj::mv(raw);
    secured = kj::READY_NOW;
  }
  auto admitted =
      secured.then([&st]() { return readPreamble(*st.stream); })
          .then([this, &st](kj::Array<kj::byte> token) {
            kj::String refusal = refusalFor(token);
            if (refusal.size() == 0) {
              ++connections;  // taken now: two clients admitted at once must not both fit
            }
            return answerPreamble(*st.stream, refusal)
                .then([refusal = kj::mv(refusal)]() mutable { return kj::mv(refusal); },
                      [this, ok = refusal.size() == 0](kj::Exception&& e) -> kj::String {
                        if (ok) {
                          --connections;
                        }
                        kj::throwFatalException(kj::mv(e));
                      });
          });
  auto evicted = st.slot->whenEvicted().then([]() -> kj::String {
    failClearly("closed to make room for a newer connection of the same peer (at most "
                "--max-pending-per-peer before the handshake)");
  });
  auto timedOut = timer.atTime(deadline).then([this]() -> kj::String {
    failClearly(tls != nullptr
                    ? "no handshake within the timeout (TLS and the admission preamble)"
                    : "no handshake within the timeout (the admission preamble)");
  });
  return admitted.exclusiveJoin(kj::mv(timedOut))
      .exclusiveJoin(kj::mv(evicted))
      .then(
          [this, &st, deadline](kj::String refusal) -> kj::Promise<void> {
            --pending;
            if (refusal.size() > 0) {
              options.log.warn("{}: refused: {}", st.peer.cStr(), refusal.cStr());
              return kj::READY_NOW;
            }
            return serveAdmitted(kj::mv(st.stream), kj::mv(st.peer), deadline,
                                 kj::mv(st.slot));
          },
          [this, &st](kj::Exception&& e) -> kj::Promise<void> {
            --pending;
            options.log.warn("{}: dropped before admission: {}", st.peer.cStr(),
                             e.getDescription().cStr());
            return kj::READY_NOW;
          })
      .attach(kj::mv(state));
}

kj::Promise<void> Listener::serveStdio() {
  struct stat in, out;
  KJ_SYSCALL(fstat(STDIN_FILENO, &in), "--stdio needs an open stdin");
  KJ_SYSCALL(fstat(STDOUT_FILENO, &out), "--stdio needs an open stdout");
  auto pollable = [](int fd, const struct stat& st) {
    return S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(fd));
  };
  if (!pollable(STDIN_FILENO, in) || !pollable(STDOUT_FILENO, out)) {
    failClearly("--stdio needs stdin and stdout to be pipes or a socket (as ssh and sbrun give "
                "them), not a regular file or /dev/null; use --listen to run as a server");
  }
  kj::Own<kj::AsyncIoStream> stream;
  if (S_ISSOCK(in.st_mode) && in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
    // sbrun's socketpair: one socket on both fds.
    int fd;
    KJ_SYSCALL(fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0));
    stream = kj::heap<FdStream>(io.unixEventPort, kj::AutoCloseFd(fd));
  } else {
    stream = kj::heap<StdioStream>(io.lowLevelProvider->wrapInputFd(STDIN_FILENO),
                                   io.lowLevelProvider->wrapOutputFd(STDOUT_FILENO));
  }
  return serve(kj::mv(stream), kj::str("stdio"));
}

kj::Promise<void> Listener::listen(const ListenAddress& address, kj::String& bound) {
  int fd = -1;
  if (address.kind == ListenAddress::Kind::SYSTEMD) {
    kj::String error;
    fd = takeActivatedSocket(error);
    if (fd < 0) {
      failClearly(error.cStr());
    }
    struct sockaddr_storage actual;
    socklen_t len = sizeof(actual);
    KJ_SYSCALL(getsockname(fd, reinterpret_cast<struct sockaddr*>(&actual), &len));
    auto* sa = reinterpret_cast<struct sockaddr*>(&actual);
    if (sa->sa_family == AF_UNIX) {
      // The unit's SocketMode= and SocketUser= set who may connect; SO_PEERCRED is checked as
      // for our own sockets. The file is systemd's: not ours to remove.
      auto* sun = reinterpret_cast<struct sockaddr_un*>(sa);
      bound = kj::str("systemd:unix:", sun->sun_path);
    } else {
      if (!isLoopbackSockaddr(sa) && tls == nullptr) {
        failClearly(fmt::format("refusing to serve the passed socket {} without TLS: add "
                                "--tls-cert, --tls-key and --tls-ca, or listen on loopback",
                                describeSockaddr(sa).cStr()));
      }
      bound = kj::str("systemd:tcp://", describeSockaddr(sa));
    }
  } else if (address.kind == ListenAddress::Kind::UNIX) {
    const char* path = address.path.cStr();
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (address.path.size() >= sizeof(sun.sun_path)) {
      failClearly(fmt::format("unix socket path too long: {}", path));
    }
    memcpy(sun.sun_path, path, address.path.size());
    struct stat st;
    if (lstat(path, &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        failClearly(fmt::format("cannot listen on unix:{}: the path exists and is not a socket; "
                                "remove it or choose another path", path));
      }
      int probe;
      KJ_SYSCALL(probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      bool live = connect(probe, reinterpret_cast<struct sockaddr*>(&sun), sizeof(sun)) == 0;
      ::close(probe);
      if (live) {
        failClearly(fmt::format("cannot listen on unix:{}: another process is listening there; "
                                "stop it or choose another path", path));
      }
      // A stale socket left by an agent that died: replace it.
      if (unlink(path) < 0) {
        failClearly(fmt::format("cannot remove the stale socket {}: {}", path, strerror(errno)));
      }
    }
    KJ_SYSCALL(fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    kj::AutoCloseFd owner(fd);
    // The socket file is born 0600 whatever the process umask is (main sets it to 0 for the
    // clients' creation modes), so no other user can connect in the window before the chmod.
    mode_t oldMask = ::umask(0177);
    int bindResult = bind(fd, reinterpret_cast<struct sockaddr*>(&sun), sizeof(sun));
    int bindError = errno;
    ::umask(oldMask);
    if (bindResult < 0) {
      failClearly(fmt::format("cannot listen on unix:{}: {}; check that the directory exists and "
                              "is writable", path, strerror(bindError)));
    }
    createdSocket = kj::heapString(address.path);
    KJ_IF_MAYBE(gid, options.socketGroup) {
      if (chown(path, uid_t(-1), *gid) < 0) {
        failClearly(fmt::format("--socket-group: cannot give {} to group {}: {}", path, *gid,
                                strerror(errno)));
      }
    }
    if (options.socketMode != 0600 && chmod(path, options.socketMode) < 0) {
      failClearly(fmt::format("--socket-mode: cannot chmod {} to {:04o}: {}", path,
                              options.socketMode, strerror(errno)));
    }
    KJ_SYSCALL(::listen(fd, SOMAXCONN));
    bound = kj::str("unix:", address.path);
    owner.release();
  } else {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    AddrInfoList res;
    auto portText = kj::str(address.port);
    int gai = getaddrinfo(address.host.cStr(), portText.cStr(), &hints, &res.list);
    if (gai != 0 || res.list == nullptr) {
      failClearly(fmt::format("cannot resolve the listen host '{}': {}", address.host.cStr(),
                              gai_strerror(gai)));
    }
    bool loopback = true;
    for (auto* ai = res.list; ai != nullptr; ai = ai->ai_next) {
      loopback = loopback && isLoopbackSockaddr(ai->ai_addr);
    }
    if (!loopback && tls == nullptr) {
      failClearly(fmt::format(
          "refusing to listen on tcp://{}:{} without TLS: anyone who can reach a non-loopback "
          "address could act on this machine. Add --tls-cert, --tls-key and --tls-ca (client "
          "certificates signed by that CA are then required; --token-file adds a shared "
          "secret), or listen on 127.0.0.1, [::1] or a unix: socket",
          address.host.cStr(), address.port));
    }
    auto* ai = res.list;
    KJ_SYSCALL(fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    kj::AutoCloseFd owner(fd);
    int one = 1;
    KJ_SYSCALL(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      failClearly(fmt::format("cannot listen on tcp://{}:{}: {}; choose another port (0 picks a "
                              "free one)", address.host.cStr(), address.port, strerror(errno)));
    }
    KJ_SYSCALL(::listen(fd, SOMAXCONN));
    struct sockaddr_storage actual;
    socklen_t len = sizeof(actual);
    KJ_SYSCALL(getsockname(fd, reinterpret_cast<struct sockaddr*>(&actual), &len));
    bound = kj::str("tcp://", describeSockaddr(reinterpret_cast<struct sockaddr*>(&actual)));
    owner.release();
  }
  receiver = io.lowLevelProvider->wrapListenSocketFd(
      fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
              kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
  return acceptLoop();
}

kj::Promise<void> Listener::acceptLoop() {
  return receiver->accept().then(
      [this](kj::Own<kj::AsyncIoStream> stream) {
        kj::String peer = describePeer(*stream);
        if (peerAllowed(*stream, peer)) {
          tasks.add(admit(asFdStream(io.unixEventPort, kj::mv(stream)), kj::mv(peer)));
        } else {
          tasks.add(lingerRefused(kj::mv(stream)));
        }
        return acceptLoop();
      },
      [this](kj::Exception&& e) {
        // Out of file descriptors (EMFILE, ENFILE) or memory: the clients already served go on,
        // and accepting resumes once something was released.
        options.log.warn("accept failed: {}; retrying in 1 s", e.getDescription().cStr());
        return io.provider->getTimer().afterDelay(1 * kj::SECONDS).then([this]() {
          return acceptLoop();
        });
      });
}

void Listener::taskFailed(kj::Exception&& exception) {
  options.log.warn("connection failed: {}", exception.getDescription().cStr());
}

}  // namespace sb
