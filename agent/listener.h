// Listener: the agent's transports (DESIGN D8). It parses --listen addresses, opens the unix or
// TCP socket, serves one connection per client, or one session over stdin/stdout (--stdio, used
// by ssh and by sbrun's embedded default), and runs capnp's two-party RPC on each connection
// with the agent's limits (resource_limits.h, PITFALLS #20): frames read by MessageGuard
// (segment count, message size, exception types checked before capnp sees them), a traversal
// and nesting limit, a per-connection flow limit, backpressure on unsent answers, and
// capability bootstrap through `Agent` only.
//
// A connection accepted by a listening agent is *admitted* before any Cap'n Proto byte is read:
// TLS first when the agent has --tls-cert (kj-tls, client certificate required and verified
// against --tls-ca), then the admission preamble (preamble.h: the token, --max-sessions), all
// within --handshake-timeout. At most Limits::maxPending connections may be in that stage at
// once. --stdio connections skip admission: ssh, or sbrun's socketpair, decided who talks.
//
// Policy that belongs to listening lives here too: a TCP address off loopback is refused unless
// the agent uses TLS.

#pragma once

#include <kj/async-io.h>
#include <kj/string.h>

#include <capnp/message.h>
#include <kj/compat/tls.h>

#include <list>
#include <map>
#include <string>

#include "resource_limits.h"
#include "node.h"
#include "session.h"

namespace sb {

class ActivityStream;
class MessageGuard;

struct ListenAddress {
  // SYSTEMD: the socket a supervisor passed (socket_activation.h).
  enum class Kind { UNIX, TCP, SYSTEMD };
  Kind kind;
  kj::String path;  // UNIX
  kj::String host;  // TCP, without brackets
  uint16_t port = 0;
};

// Parses "unix:PATH", "tcp://HOST:PORT" ("tcp://[::1]:7433" for IPv6) or "systemd". On a bad address
// returns null and sets `error` to a message that says what is expected.
kj::Maybe<ListenAddress> parseListenAddress(kj::StringPtr text, kj::String& error);

// True when every address `host` resolves to is a loopback address.
bool resolvesOnlyToLoopback(kj::StringPtr host);

// Reader limits for messages from the tracer (traversal and nesting, from Limits).
capnp::ReaderOptions readerOptionsFor(const Limits& limits);
// The same for the default Limits.
capnp::ReaderOptions agentReaderOptions();

class Listener final: private kj::TaskSet::ErrorHandler {
public:
  Listener(kj::AsyncIoContext& io, AgentContext& agent, const AgentOptions& options);
  ~Listener() noexcept(false);

  // Connections accepted from now on go through TLS with `context` (owned by the caller) before
  // the preamble. Call before listen().
  void useTls(kj::TlsContext& context);

  // Serves RPC on `stream` until the peer disconnects, without admission (stdio, tests, the
  // fuzzer): the handshake must come within the handshake timeout.
  kj::Promise<void> serve(kj::Own<kj::AsyncIoStream> stream, kj::String peer);

  // Admits a connection (TLS if configured, the preamble, the session limit) and serves it.
  // Whatever goes wrong before RPC is logged and closes the connection; the promise never fails.
  kj::Promise<void> admit(kj::Own<kj::AsyncIoStream> stream, kj::String peer);

  // Serves one connection over fd 0/1: the same socket on both (sbrun's socketpair) or two
  // one-way pipes (ssh).
  kj::Promise<void> serveStdio();

  // Opens the socket (a stale unix socket is replaced; a live one is an error) and accepts
  // clients forever. Returns the address actually bound ("tcp://127.0.0.1:41234") through
  // `bound` before accepting. Throws a clear error when it cannot listen.
  kj::Promise<void> listen(const ListenAddress& address, kj::String& bound);

  // The unix socket path this listener created (to remove on exit), if any.
  kj::Maybe<kj::StringPtr> unixPath() const;

  // Connections served (admitted, or stdio), and connections still being admitted.
  size_t connectionCount() const { return connections; }
  size_t pendingCount() const { return pending; }

  // A peer's pending slot (Limits::maxPendingPerPeer), held until its handshake is done.
  class PeerSlot;

private:
  kj::AsyncIoContext& io;
  AgentContext& agent;
  const AgentOptions& options;
  kj::TaskSet tasks;
  kj::Own<kj::ConnectionReceiver> receiver;
  kj::Maybe<kj::String> createdSocket;
  kj::Maybe<kj::TlsContext&> tls;
  size_t connections = 0;
  size_t pending = 0;
  // Connections per peer (peerKey()) not yet past their Agent.handshake, oldest first
  // (Limits::maxPendingPerPeer).
  std::map<std::string, std::list<PeerSlot*>> pendingByPeer;

  // Takes one of `key`'s pending slots; null when it has none left.
  kj::Maybe<kj::Own<PeerSlot>> takePeerSlot(kj::StringPtr key);
  // Accepted unix connections from a peer the policy does not allow are closed here; true when
  // `stream` may go on.
  bool peerAllowed(kj::AsyncIoStream& stream, kj::StringPtr peer);
  // Writes "refused: WHY" to a connection about to be closed before admission.
  void tellRefused(kj::AsyncIoStream& stream, kj::StringPtr why);
  // Keeps a refused connection briefly, so that its client can read why (see the .cc).
  kj::Promise<void> lingerRefused(kj::Own<kj::AsyncIoStream> stream);

  kj::Promise<void> serveAdmitted(kj::Own<kj::AsyncIoStream> stream, kj::String peer,
                                  kj::TimePoint deadline, kj::Own<PeerSlot> slot);
  // Why a client that presented `token` is refused ("" when admitted).
  kj::String refusalFor(kj::ArrayPtr<const kj::byte> token);
  // Resolves when nothing has come from a client that announced `heartbeat` for
  // AgentOptions::clientTimeout (at least twice the heartbeat): the caller then ends the
  // session. Never, for a client without heartbeat or with --client-timeout 0.
  kj::Promise<void> watchSilence(ActivityStream& stream, MessageGuard& guard,
                                 kj::Duration heartbeat, kj::StringPtr peer);
  kj::Promise<void> acceptLoop();
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace sb
