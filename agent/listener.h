// Listener: the agent's transports (DESIGN D8). It parses --listen addresses, opens the unix or
// TCP socket, serves one connection per client, or one session over stdin/stdout (--stdio, used
// by ssh and by sbrun's embedded default), and runs capnp's two-party RPC on each connection
// with the agent's limits (PITFALLS #20): a traversal limit that admits one maximal transfer, a
// per-connection flow limit, and capability bootstrap through `Agent` only.
//
// Policy that belongs to listening lives here too: a TCP address off loopback is refused unless
// the agent requires a token.

#pragma once

#include <kj/async-io.h>
#include <kj/string.h>

#include <capnp/message.h>

#include "node.h"
#include "session.h"

namespace sb {

struct ListenAddress {
  enum class Kind { UNIX, TCP };
  Kind kind;
  kj::String path;  // UNIX
  kj::String host;  // TCP, without brackets
  uint16_t port = 0;
};

// Parses "unix:PATH" or "tcp://HOST:PORT" ("tcp://[::1]:7433" for IPv6). On a bad address
// returns null and sets `error` to a message that says what is expected.
kj::Maybe<ListenAddress> parseListenAddress(kj::StringPtr text, kj::String& error);

// True when every address `host` resolves to is a loopback address.
bool isLoopbackHost(kj::StringPtr host);

// Reader limits for messages from the tracer: one maximal write plus headroom.
capnp::ReaderOptions agentReaderOptions();

class Listener final: private kj::TaskSet::ErrorHandler {
public:
  Listener(kj::AsyncIoContext& io, AgentContext& agent, const AgentOptions& options);
  ~Listener() noexcept(false);

  // Serves RPC on `stream` until the peer disconnects.
  kj::Promise<void> serve(kj::Own<kj::AsyncIoStream> stream, kj::String peer);

  // Serves one connection over fd 0/1: the same socket on both (sbrun's socketpair) or two
  // one-way pipes (ssh).
  kj::Promise<void> serveStdio();

  // Opens the socket (a stale unix socket is replaced; a live one is an error) and accepts
  // clients forever. Returns the address actually bound ("tcp://127.0.0.1:41234") through
  // `bound` before accepting. Throws a clear error when it cannot listen.
  kj::Promise<void> listen(const ListenAddress& address, kj::String& bound);

  // The unix socket path this listener created (to remove on exit), if any.
  kj::Maybe<kj::StringPtr> unixPath() const;

  size_t connectionCount() const { return connections; }

private:
  kj::AsyncIoContext& io;
  AgentContext& agent;
  const AgentOptions& options;
  kj::TaskSet tasks;
  kj::Own<kj::ConnectionReceiver> receiver;
  kj::Maybe<kj::String> createdSocket;
  size_t connections = 0;

  kj::Promise<void> acceptLoop();
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace sb
