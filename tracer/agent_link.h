// AgentLink: one target of sbrun — a connection to an sbagent, its session and its root.
//
// It spawns the embedded agent (`local`, `local:ROOT`), or a transport command whose stdin and
// stdout reach an agent (`ssh://...` runs `ssh ... sbagent --stdio`, `exec:COMMAND` runs
// `sh -c COMMAND`), or connects over a unix socket or TCP; it does the handshake (bounded by
// CONNECT_TIMEOUT), and is the one place that turns a broken connection into EIO for the
// tracee (DESIGN D10): after the first disconnect every remote call answers -EIO and sbrun says
// so once on stderr.
//
// A child process (embedded agent, ssh, exec command) is reaped by the tracer's waitpid loop
// while the program runs (agentPid/agentExited), and by the destructor otherwise: it closes the
// connection, lets the child exit on the EOF, and stops it (SIGTERM, then SIGKILL) only if it
// does not, so sbrun leaves no process behind.

#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
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

  // TLS for a tcp:// target (the context outlives the link). Call before connect().
  void useTls(kj::TlsContext& context) { tls_ = context; }

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

  // Called by the tracer when it reaps the child process (agentPid()).
  void agentExited(int status);

  // How long connecting plus the handshake may take before sbrun gives up.
  static constexpr kj::Duration CONNECT_TIMEOUT = 10 * kj::SECONDS;

  // File content this program changed on the target (write, truncate, fallocate, copy): local
  // copies made for mmap before the change are not reused (map_cache.h), even when B's clock
  // ticks too coarsely for the file's mtime to show the change.
  void noteContentChange() { ++contentChanges_; }
  uint64_t contentChanges() const { return contentChanges_; }

  // Called once, on the first disconnect (for --control-fd events).
  void onDisconnect(kj::Function<void(AgentLink&)> hook) { disconnectHook = kj::mv(hook); }

 private:
  uint64_t contentChanges_ = 0;
  kj::Maybe<kj::Function<void(AgentLink&)>> disconnectHook;
  TargetUrl url_;
  kj::String name_;
  kj::String token_;
  kj::Maybe<kj::TlsContext&> tls_;
  // The child process (embedded agent, ssh, or `sh -c COMMAND`); -1 when there is none or it
  // has been reaped.
  pid_t agentPid_ = -1;
  // The child's command line, for messages ("" when there is no child).
  kj::String childCommand_;
  // How the child ended, as waitpid says, once reaped (-1: not known).
  int childStatus_ = -1;
  // The child leads a process group of its own (ssh, exec commands).
  bool ownGroup_ = false;
  // Set when CONNECT_TIMEOUT cut connect() short.
  bool timedOut_ = false;
  bool disconnected_ = false;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<struct AgentLinkRpc> rpcHolder_;
  kj::Maybe<proto::Session::Client> session_;
  kj::Maybe<proto::Node::Client> root_;
  kj::Own<capnp::MallocMessageBuilder> welcome_;

  kj::Promise<kj::Own<kj::AsyncIoStream>> openStream(kj::AsyncIoContext& io,
                                                     kj::StringPtr agentPath);
  kj::Own<kj::AsyncIoStream> spawnLocal(kj::AsyncIoContext& io, kj::StringPtr agentPath);
  // Starts argv (PATH lookup for argv[0]) with a socketpair on its stdin and stdout and sbrun's
  // stderr, and returns sbrun's end. The child gets SIGTERM if sbrun dies.
  kj::Own<kj::AsyncIoStream> spawnTransport(kj::AsyncIoContext& io,
                                            kj::ArrayPtr<const kj::String> argv);
  // What the child is, for messages: "the embedded agent", "ssh", "the exec command".
  kj::StringPtr childWhat() const;
  // A hint for a child's exit status before the handshake ("; ssh could not ..."), or "".
  kj::StringPtr exitHint(int status) const;
  // After a failed connect: waits up to `patience` for the child to exit on its own, else stops
  // it (SIGTERM, then SIGKILL) and reaps it. The status when it exited on its own, else null.
  kj::Promise<kj::Maybe<int>> childOutcome(kj::Timer& timer, kj::Duration patience);
  kj::Promise<kj::Maybe<int>> pollChild(kj::Timer& timer, kj::TimePoint deadline);
  // True when the child has exited (a zombie: its pid stays ours) or has been reaped.
  bool childExited();
  // Sends sig to the child, and to its process group when it has one of its own.
  void signalChild(int sig);
  // Reaps the child if it has exited (and sends SIGTERM to what is left in its group); true,
  // with its wait status (-1: unknown) and agentPid_ = -1, when it is gone.
  bool reapChild(int& status);
  // Waits up to graceMs for the child to exit, then sends SIGTERM and waits up to 2 s more, then
  // SIGKILL; reaps it in any case.
  void endChild(int graceMs) noexcept;
};

// Reader options for both ends: room for 64 MiB data chunks, bounded all the same.
capnp::ReaderOptions rpcReaderOptions();

}  // namespace sb
