// AgentLink: one target of sbrun — a connection to an sbagent, its session and its root.
//
// It spawns the embedded agent (`local`, `local:ROOT`) or connects over a unix socket or TCP,
// does the handshake, and is the one place that turns a broken connection into EIO for the
// tracee (DESIGN D10): after the first disconnect every remote call answers -EIO and sbrun says
// so once on stderr.

#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/function.h>
#include <sys/types.h>

#include "splitbrain.capnp.h"
#include "target_url.h"

namespace sb {

struct AgentLinkRpc;

class AgentLink {
 public:
  AgentLink(TargetUrl url, kj::String name, kj::String token);
  ~AgentLink();
  KJ_DISALLOW_COPY(AgentLink);

  // Connects and handshakes. Throws a kj::Exception whose description says what to do when the
  // agent cannot be reached or refuses us.
  kj::Promise<void> connect(kj::AsyncIoContext& io, kj::StringPtr agentPath);

  kj::StringPtr name() const { return name_; }
  const TargetUrl& url() const { return url_; }
  proto::Session::Client& session() { return KJ_ASSERT_NONNULL(session_); }
  proto::Node::Client& root() { return KJ_ASSERT_NONNULL(root_); }
  proto::Welcome::Reader welcome() { return welcome_->getRoot<proto::Welcome>(); }
  pid_t agentPid() const { return agentPid_; }

  // Maps a failed RPC to the tracee's errno. Disconnects become -EIO (reported once); anything
  // else is a bug or a protocol error, reported and mapped to -EIO too, never swallowed.
  int64_t failure(const kj::Exception& e);

  // Called by the tracer when it reaps the embedded agent's process.
  void agentExited(int status);

  // Called once, on the first disconnect (for --control-fd events).
  void onDisconnect(kj::Function<void(AgentLink&)> hook) { disconnectHook = kj::mv(hook); }

 private:
  kj::Maybe<kj::Function<void(AgentLink&)>> disconnectHook;
  TargetUrl url_;
  kj::String name_;
  kj::String token_;
  pid_t agentPid_ = -1;
  bool disconnected_ = false;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<struct AgentLinkRpc> rpcHolder_;
  kj::Maybe<proto::Session::Client> session_;
  kj::Maybe<proto::Node::Client> root_;
  kj::Own<capnp::MallocMessageBuilder> welcome_;

  kj::Promise<kj::Own<kj::AsyncIoStream>> openStream(kj::AsyncIoContext& io,
                                                     kj::StringPtr agentPath);
  kj::Own<kj::AsyncIoStream> spawnLocal(kj::AsyncIoContext& io, kj::StringPtr agentPath);
};

// Reader options for both ends: room for 64 MiB data chunks, bounded all the same.
capnp::ReaderOptions rpcReaderOptions();

}  // namespace sb
