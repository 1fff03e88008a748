// AgentLink: one target of sbrun — a connection to an sbagent, its session and its root.
//
// It spawns the embedded agent (`local`, `local:ROOT`), or a transport command whose stdin and
// stdout reach an agent (`ssh://...` runs `ssh ... sbagent --stdio`, `exec:COMMAND` runs
// `sh -c COMMAND`), or connects over a unix socket or TCP; it does the handshake (bounded by
// CONNECT_TIMEOUT).
//
// It is also the one place that knows whether the target is there (DESIGN D10,
// docs/failure-semantics.md). Its states:
//
//   UP ──(the stream ends; the heartbeat finds the peer silent)──▶ AWAY ──(an attempt works)──▶ UP
//
// Each UP period is one session, numbered by generation(). Going AWAY is reported once (stderr,
// and the "disconnected NAME" event), the connection is retired (a transport child is killed),
// and reconnect attempts start in the background with backoff (reconnect.h) — the same way the
// first connection was made: dial again, run the ssh/exec command again, restart the embedded
// agent. While AWAY, session() and root() hand out promises of the next session, so a new
// remote operation waits for it (--on-disconnect=wait) or joins the attempt in flight or makes
// one of its own (fail) but waits for it only briefly (callPatience), and fails with an
// awayError (EIO, or ETIMEDOUT once the outage is older than --reconnect-timeout) when the target
// is not back. Everything made in an earlier session (fds,
// remote processes, the cwd node) is stale: its calls fail with DISCONNECTED, i.e. EIO.
//
// A child process (embedded agent, ssh, exec command) is reaped by the tracer's waitpid loop
// while the program runs (reapedChild), and by the destructor otherwise: it closes the
// connection, lets the child exit on the EOF, and stops it (SIGTERM, then SIGKILL) only if it
// does not, so sbrun leaves no process behind.

#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <kj/function.h>
#include <kj/vector.h>
#include <sys/types.h>

#include <set>

#include "deploy.h"
#include "options.h"
#include "reconnect.h"
#include "splitbrain.capnp.h"
#include "target_url.h"

namespace sb {

struct AgentLinkRpc;
class Recorder;
class Replayer;

class AgentLink final : public kj::TaskSet::ErrorHandler {
 public:
  AgentLink(TargetUrl url, kj::String name, kj::String token, ReconnectOptions reconnect = {});
  ~AgentLink() noexcept(false);
  KJ_DISALLOW_COPY(AgentLink);

  // TLS for a tcp:// target (the context outlives the link). Call before connect().
  void useTls(kj::TlsContext& context) { tls_ = context; }
  // Zero-deploy for an ssh:// target without a path (tracer/deploy.h; the options outlive the
  // link). Call before connect(). Without it, ssh runs `sbagent` from B's PATH.
  void useDeploy(const DeployOptions& options) { deploy_ = options; }
  // --record: every connection's Agent is wrapped by `recorder` as target `index` of the
  // recording. --replay: no connection at all; each "connection" is the replayer's (recorder.h,
  // replayer.h). Call before connect().
  void useRecorder(Recorder& recorder, uint16_t index) {
    recorder_ = recorder;
    recordIndex_ = index;
  }
  void useReplay(Replayer& replayer, uint16_t index) {
    replayer_ = replayer;
    recordIndex_ = index;
  }

  // Connects and handshakes, the first time. Throws a kj::Exception whose description says what
  // to do when the agent cannot be reached or refuses us. Reconnects later the same way.
  kj::Promise<void> connect(kj::AsyncIoContext& io, kj::StringPtr agentPath);

  kj::StringPtr name() const { return name_; }
  const TargetUrl& url() const { return url_; }
  // The session and the root directory for a new remote operation: the current session's while
  // UP; while AWAY a promise of the next session's (see the top of this file).
  proto::Session::Client session();
  proto::Node::Client root();
  // Resolves once the target is UP; while AWAY, waits or makes an attempt as the mode says, and
  // fails with an awayError when the target does not come back in time.
  kj::Promise<void> ready();
  // The handshake's answer (of the latest session).
  proto::Welcome::Reader welcome() { return welcome_->getRoot<proto::Welcome>(); }
  pid_t agentPid() const { return agentPid_; }

  bool away() const { return !up_; }
  // The current session: 1 for the first, one more per reconnect.
  uint64_t generation() const { return generation_; }
  // Whether something made in session `made` is stale (that session is gone).
  bool isStale(uint64_t made) const { return !up_ || made != generation_; }

  // Maps a failed RPC to the tracee's errno. A lost connection (or a target that is away)
  // becomes -EIO, or -ETIMEDOUT past --reconnect-timeout; the disconnect itself is reported once
  // when it happens. Anything else is a bug or a protocol error, reported and mapped to -EIO
  // too, never swallowed.
  int64_t failure(const kj::Exception& e);

  // Called by the tracer's waitpid loop for each reaped process: true when `pid` was a child of
  // this link (the transport or embedded agent, current or retired).
  bool reapedChild(pid_t pid, int status);

  // How long connecting plus the handshake may take before sbrun gives up (each reconnect
  // attempt too).
  static constexpr kj::Duration CONNECT_TIMEOUT = 10 * kj::SECONDS;
  // How much longer an attempt may take when it uploads an agent (zero-deploy): several MiB
  // over a slow link to a board.
  static constexpr kj::Duration UPLOAD_TIMEOUT = 120 * kj::SECONDS;

  // File content this program changed on the target (write, truncate, fallocate, copy): local
  // copies made for mmap before the change are not reused (map_cache.h), even when B's clock
  // ticks too coarsely for the file's mtime to show the change.
  void noteContentChange() { ++contentChanges_; }
  uint64_t contentChanges() const { return contentChanges_; }

  // Each hook is called with "disconnected" and "reconnected" (--control-fd events,
  // --on-disconnect=exit).
  void onEvent(kj::Function<void(AgentLink&, kj::StringPtr)> hook) {
    eventHooks_.add(kj::mv(hook));
  }
  // How many times this run lost the target (each UP period that ended).
  uint64_t outages() const { return outages_; }
  // Prints `message` on stderr the first time `key` is seen on this link.
  void note(kj::StringPtr key, kj::StringPtr message);
  // Remote work that needs no answer but must not outlive the link (a path query for later).
  void background(kj::Promise<void> work) { tasks_->add(kj::mv(work)); }

 private:
  uint64_t contentChanges_ = 0;
  kj::Vector<kj::Function<void(AgentLink&, kj::StringPtr)>> eventHooks_;
  uint64_t outages_ = 0;
  TargetUrl url_;
  kj::String name_;
  kj::String token_;
  ReconnectOptions options_;
  kj::AsyncIoContext* io_ = nullptr;
  kj::String agentPath_;
  kj::Maybe<kj::TlsContext&> tls_;
  kj::Maybe<const DeployOptions&> deploy_;
  kj::Maybe<Recorder&> recorder_;
  kj::Maybe<Replayer&> replayer_;
  uint16_t recordIndex_ = 0;
  // When the attempt in progress gives up (CONNECT_TIMEOUT, more while uploading an agent).
  kj::TimePoint deadline_ = kj::origin<kj::TimePoint>();
  // The child process (embedded agent, ssh, or `sh -c COMMAND`); -1 when there is none or it
  // has been reaped.
  pid_t agentPid_ = -1;
  // Children of earlier sessions: killed when their session ended, reaped by the tracer's loop
  // (or the destructor).
  std::set<pid_t> formerChildren_;
  // The child's command line, for messages ("" when there is no child).
  kj::String childCommand_;
  // How the child ended, as waitpid says, once reaped (-1: not known).
  int childStatus_ = -1;
  // The child leads a process group of its own (ssh, exec commands).
  bool ownGroup_ = false;
  // Set when CONNECT_TIMEOUT cut an attempt short.
  bool timedOut_ = false;
  kj::Own<struct AgentLinkRpc> rpcHolder_;
  kj::Maybe<proto::Session::Client> session_;
  kj::Maybe<proto::Node::Client> root_;
  kj::Own<capnp::MallocMessageBuilder> welcome_;
  std::set<kj::String> notes_;

  // The state machine (see the top of this file).
  bool up_ = false;
  uint64_t generation_ = 0;
  kj::TimePoint downSince_ = kj::origin<kj::TimePoint>();
  // While AWAY: resolves when the target is UP again.
  kj::Own<kj::PromiseFulfiller<void>> backFulfiller_;
  kj::Maybe<kj::ForkedPromise<void>> back_;
  // The reconnect attempt in flight (at most one), and when the last one ended.
  bool attempting_ = false;
  kj::TimePoint attemptStarted_ = kj::origin<kj::TimePoint>();
  kj::Maybe<kj::ForkedPromise<bool>> attempt_;
  kj::TimePoint lastAttemptEnd_ = kj::origin<kj::TimePoint>();
  kj::String lastError_;
  // Background attempts: the current loop's number (an older loop ends itself) and its delays.
  uint64_t loopId_ = 0;
  Backoff backoff_;
  // Heartbeats, reconnect loops, retired connections, path queries. Last, so that it goes first.
  kj::Own<kj::TaskSet> tasks_;

  void taskFailed(kj::Exception&& e) override;
  kj::Timer& timer() { return io_->provider->getTimer(); }
  // One connection attempt: stream, handshake, root. On success the new connection is in
  // rpcHolder_, session_, root_ and welcome_, not yet in use (started() does that).
  kj::Promise<void> establish();
  // The handshake and the root on a new connection's Agent.
  kj::Promise<void> handshake(proto::Agent::Client agent);
  // A connection is established: UP, with its watchers and heartbeat.
  void started();
  // Session `gen` is gone (why: for the message): AWAY, once per session.
  void dropped(uint64_t gen, kj::StringPtr why);
  // Ends the current connection's objects once the RPC system is done with them, and kills a
  // transport child.
  void retire();
  kj::Promise<bool> attempt();
  kj::Promise<void> reconnectLoop(uint64_t id);
  kj::Promise<void> heartbeat(uint64_t gen);
  kj::Promise<kj::Own<kj::AsyncIoStream>> openStream();
  kj::Own<kj::AsyncIoStream> spawnLocal();
  // Whether openStream deploys the agent (an ssh:// target without a path, --deploy not never).
  bool deploying() const;
  // Resolves at deadline_, which may move later while it waits.
  kj::Promise<void> untilDeadline();
  // What to add to a protocol version mismatch's message ("... so they match"): for ssh://,
  // that zero-deploy brings an agent of sbrun's own version; else "".
  kj::StringPtr mismatchHint() const;
  // Starts argv (PATH lookup for argv[0]) with a socketpair on its stdin and stdout and sbrun's
  // stderr, and returns sbrun's end. The child gets SIGTERM if sbrun dies.
  kj::Own<kj::AsyncIoStream> spawnTransport(kj::ArrayPtr<const kj::String> argv);
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
  // The current child has exited (reaped by the tracer).
  void agentExited(int status);
};

// Reader options for both ends: room for 64 MiB data chunks, bounded all the same.
capnp::ReaderOptions rpcReaderOptions();

}  // namespace sb
