// Session: the bootstrap `Agent` a connection sees first, and the `Session` its handshake returns
// (DESIGN D8, STYLE §2.10). One Session per handshake owns, through SessionState, every Node it
// hands out; when the connection ends capnp drops the capabilities and each Node closes its fd.
// It also owns the processes it spawned (process.h): its end kills those still running.
//
// The handshake refuses a protocol version mismatch and, when the agent has a token, any hello
// that does not present exactly that token; both are logged and thrown as exceptions (they are
// failures of the connection, not errnos of a syscall).

#pragma once

#include <kj/string.h>

#include "log.h"
#include "peer_check.h"
#include "node.h"
#include "process.h"
#include "splitbrain.capnp.h"

namespace sb {

// Agent-wide handshake policy. Owned by main (or a test).
struct AgentOptions {
  kj::Maybe<kj::String> token;  // --token-file content, trailing newline stripped
  const Log& log;
  // A connection that has not completed a handshake by then is dropped (a silent peer must not
  // hold a connection, and its memory, forever).
  kj::Duration handshakeTimeout = 10 * kj::SECONDS;
  // --client-timeout: a session whose client announced a heartbeat and from which nothing has
  // arrived for this long (or twice its heartbeat, if that is longer) is ended, as if the client
  // had hung up; accepted TCP connections also get keepalive and TCP_USER_TIMEOUT within it.
  // 0: never (only an end of stream or a TCP error ends a session).
  kj::Duration clientTimeout = 600 * kj::SECONDS;
  // Unix sockets: who may connect (peer_check.h), and the socket file's mode and group.
  PeerPolicy peers = {};
  mode_t socketMode = 0600;
  kj::Maybe<gid_t> socketGroup = nullptr;
};

class AgentImpl final: public proto::Agent::Server {
public:
  // `peer` names the connection in logs ("unix peer pid 42", "tcp 10.0.0.2:5512", "stdio").
  AgentImpl(AgentContext& context, const AgentOptions& options, kj::String peer);
  // Fulfilled by the first successful handshake, with the heartbeat period the client announced
  // (Hello.heartbeatMillis; 0: it sends no pings).
  kj::Promise<uint32_t> whenHandshaken();

  kj::Promise<void> handshake(HandshakeContext context) override;

private:
  AgentContext& agent;
  const AgentOptions& options;
  kj::String peer;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<uint32_t>>> handshaken;
};

class SessionImpl final: public proto::Session::Server {
public:
  explicit SessionImpl(kj::Own<SessionState> state);

  kj::Promise<void> root(RootContext context) override;
  kj::Promise<void> uname(UnameContext context) override;
  kj::Promise<void> openPath(OpenPathContext context) override;
  kj::Promise<void> releaseOwner(ReleaseOwnerContext context) override;
  kj::Promise<void> spawn(SpawnContext context) override;
  // Readiness of this session's nodes (poll.cc).
  kj::Promise<void> poll(PollContext context) override;
  kj::Promise<void> socket(SocketContext context) override;
  kj::Promise<void> socketpair(SocketpairContext context) override;
  // Names a traced thread's credentials for asCaller and spawn (credentials.h).
  kj::Promise<void> defineCredentials(DefineCredentialsContext context) override;

private:
  kj::Own<SessionState> state;
  SessionProcesses processes;
};

// Equality of a token without an early exit, so response timing does not reveal a prefix.
bool tokensEqual(kj::ArrayPtr<const kj::byte> a, kj::ArrayPtr<const kj::byte> b);

}  // namespace sb
