// The tracer: launches the program under seccomp + ptrace and runs the one event loop that owns
// every ptrace call (DESIGN D1).
//
// SIGCHLD is blocked and read from a signalfd; each wake-up drains waitpid(-1, __WALL|WNOHANG). A thread stopped
// at a trapped syscall stays stopped while its remote call is in flight; other threads run on.
// Handlers (handlers.cc) decide what a trapped syscall does and answer with an Outcome; this
// file applies it (inject a result, let it run, rewrite it) and follows clone/fork/exec/exit.

#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/function.h>
#include <kj/one-of.h>
#include <kj/refcount.h>
#include <kj/vector.h>
#include <map>
#include <set>
#include <sys/user.h>
#include <unordered_map>
#include <vector>

#include <chrono>

#include "agent_link.h"
#include "control.h"
#include "epoll_set.h"
#include "fd_guard.h"
#include "fd_table.h"
#include "map_cache.h"
#include "observer.h"
#include "options.h"
#include "path_rules.h"
#include "ptrace.h"
#include "seccomp_filter.h"
#include "syscall_table.h"
#include "tracee_memory.h"

namespace sb {

// What CLONE_FS shares: the working directory on each target, and which side the process's
// current directory is on (the last successful chdir decides: relative paths and getcwd follow
// it, whatever the scope).
// The working directory on one target: a directory node of session `generation`, and its path
// there as the agent last reported it ("" while unknown), by which it is found again after a
// reconnect (cwdNode, handler_support.h).
struct RemoteCwd {
  proto::Node::Client node;
  uint64_t generation;
  kj::String path;
  uint64_t serial = 0;  // Which chdir the path answers (a later one supersedes it).
};

class FsContext : public kj::Refcounted {
 public:
  std::map<AgentLink*, RemoteCwd> cwd;
  AgentLink* side = nullptr;  // null: the local cwd
  kj::Own<FsContext> copy() {
    auto fs = kj::refcounted<FsContext>();
    for (auto& [target, c] : cwd) {
      fs->cwd.emplace(target, RemoteCwd{c.node, c.generation, kj::str(c.path), c.serial});
    }
    fs->side = side;
    return fs;
  }
};

struct Task;

// What a handler decided for one trapped syscall.
struct Complete {                   // skip the syscall; return ret (-errno on failure)
  int64_t ret;
  // A signal the kernel would raise at the calling thread with this answer (SIGPIPE for EPIPE
  // from a send or write on a socket or FIFO, unless MSG_NOSIGNAL), or 0.
  int signal = 0;
};
struct RunLocal {                   // let the kernel run it as it is
  // For observers only: the answer when it is already known (a remote close that succeeded,
  // before the kernel closes the placeholder).
  kj::Maybe<int64_t> known = nullptr;
};
struct RunLocalThen {               // let it run, then see (and may change) its result
  kj::Function<int64_t(int64_t)> after;
};
struct Rewrite {                    // run another syscall instead; registers are restored after
  user_regs_struct regs;
  kj::Function<int64_t(int64_t)> after;
};
// Several syscalls run in the tracee on the program's behalf, one after another, before its own
// call returns (mmap of a remote file: open sbrun's copy, map it, close it). `regs` is the first
// one (it replaces the trapped call); after each, `next` sees its result and names the next
// syscall or ends the sequence with the program's answer. Steps after the first run from the
// syscall instruction again, so the filter must trap them (openat, close and mmap of an fd are
// trapped) and a signal handler may run in between: they must not rely on tracee memory written
// before the step (the scratch area below the stack may be a handler's frame by then).
struct Sequence {
  struct Next { user_regs_struct regs; };
  struct Done { int64_t ret; };
  using Step = kj::OneOf<Next, Done>;
  user_regs_struct regs;
  kj::Function<Step(int64_t)> next;
};
using Outcome = kj::OneOf<Complete, RunLocal, RunLocalThen, Rewrite, Sequence>;

class Tracer;

// One trapped syscall, as the handler sees it.
struct Call {
  Tracer& tracer;
  Task& task;
  user_regs_struct regs;
  int nr;
  const SyscallRow* row;
  // The target of the remote call in flight, so a failure maps to its errno policy (EIO).
  AgentLink* target = nullptr;
  // For observers (--trace, --stats): when the stop was seen, and the formatted arguments.
  std::chrono::steady_clock::time_point start = {};
  kj::String args = {};

  // Set by the handler: the call may wait indefinitely (a pipe read, a lock wait), so a signal
  // must interrupt it as the kernel's would (Tracer::park).
  bool interruptible = false;
  // Bytes a chunked transfer has completed so far: what an interrupted call returns.
  int64_t progress = 0;
  // What a signal that ends the wait makes of the call (Tracer::onParkedSignal): the result
  // (-ERESTARTSYS and friends included) and any register change (a restarted poll's remaining
  // timeout). Unset: `progress`, or -ERESTARTSYS.
  kj::Maybe<kj::Function<int64_t(user_regs_struct&)>> onInterrupt = nullptr;
  // Tracee address of a sigset to wait under while parked (ppoll, pselect6, epoll_pwait: the
  // temporary mask applies during the wait): parking uses rt_sigsuspend instead of pause.
  uint64_t parkMask = 0;
  // What a signal does to the interrupted call when it handled nothing yet: restart it under
  // SA_RESTART (-ERESTARTSYS), or always fail with EINTR (a socket call with a timeout set,
  // socket(7)).
  bool restartOnSignal = true;
  // Set by the handler of an interruptible call on a remote Node (a recv, an accept, a FIFO
  // read ...): a signal that ends the wait first asks the agent to interrupt the call
  // (Node.interrupt) and takes whatever it then returns (Tracer::onParkedSignal), so bytes or a
  // connection B's kernel already gave are not lost. Unset: the call is dropped.
  kj::Maybe<proto::Node::Client> interruptNode = nullptr;
  // With -v and --trace (Tracer::explains): why the call went local or remote, e.g.
  // "rule: local /usr (default)", "scope: target1", "relative to the cwd on target1".
  kj::String why = {};
  // Set by a read answered from a read-ahead window without a remote call of its own (for
  // --trace and --stats, which show it as "cached").
  bool readAheadHit = false;

  uint64_t arg(int i) const;
  // An answer of -EINTR although sbrun interrupted nothing: another thread's signal interrupted
  // every blocking call on the same node (Node.interrupt). The kernel never woke this call, so
  // it must run again.
  bool wokenByOther(const Outcome& o) const;
  int fdArg(int i) const { return static_cast<int>(arg(i)); }
  TraceeMemory mem() const;
};

// One tracee thread.
struct Task {
  pid_t tid;
  pid_t tgid;
  kj::Own<FdTable> fds;
  kj::Own<FsContext> fs;
  // The active target; null = local. `outer` holds the scopes it was entered from, innermost
  // last (DESIGN D6): `enter` pushes, `exit` pops (see control.h).
  AgentLink* scope = nullptr;
  std::vector<AgentLink*> outer;

  // Set while the thread is stopped in a trapped syscall awaiting its outcome; destroying it
  // cancels the remote call (the thread died). `call` is that syscall; it lives as long as
  // `pending` does, because an outcome's continuations may refer to it.
  kj::Maybe<kj::Promise<void>> pending;
  kj::Own<Call> call;
  // Parking (see Tracer::park): an interruptible call whose answer is slow lets the thread wait
  // in pause(2), where signals reach it. `parkTimer` runs until then; `parkedOutcome` holds an
  // answer that arrived while parked, until the pause's exit stop, or the delivery stop of a
  // signal that woke it, applies it. A parked thread runs under PTRACE_SYSCALL.
  kj::Maybe<kj::Promise<void>> parkTimer;
  bool parked = false;
  kj::Maybe<Outcome> parkedOutcome;
  // Two-phase interrupt (Tracer::onParkedSignal): the thread is held in the delivery stop of
  // `interruptSig` while the agent interrupts its call; the call's answer (settle) ends it, or
  // `interruptWait` gives up (Node.interrupt failed, or no answer in time) and drops the call.
  bool interrupting = false;
  int interruptSig = 0;
  kj::Maybe<kj::Promise<void>> interruptWait;
  // An outcome that must run the original syscall after all (RunLocal...): applied when the
  // thread, restarted at its syscall instruction, traps again with these registers.
  kj::Maybe<user_regs_struct> replay;
  kj::Maybe<Outcome> replayOutcome;
  // The thread is between sbrun's exec of the launched program and its first image: that exec
  // is sbrun's own and always local.
  bool launching = false;
  // Set after a PTRACE_SYSCALL resume: what to do at the syscall-exit stop.
  kj::Maybe<kj::Function<void(user_regs_struct&)>> atExit;
  // Set while a seccomp(2) call that stacks a guard filter is being injected: the registers to
  // restore once it is done, where its sock_fprog goes, and the program (see injectGuard).
  kj::Maybe<user_regs_struct> injecting;
  uint64_t injectProg = 0;
  kj::Array<sock_filter> injectInsns;
  // Set while a Sequence's next syscall waits to trap: its registers, the program's own (to
  // restore at the end), and the sequence's continuation (see Tracer::stepSequence).
  struct SequenceState {
    user_regs_struct step;
    user_regs_struct orig;
    kj::Function<Sequence::Step(int64_t)> next;
    kj::Function<void(int64_t)> reporter;
  };
  kj::Maybe<SequenceState> sequence;
  bool stepRunning = false;  // A step is between its entry and exit stops.
  // The first stop of a new thread may arrive before its parent's clone event.
  bool seenFirstStop = false;
  bool attached = false;  // its parent's clone event has set it up
  // Attach mode: sbrun is letting go of this thread (detach) at its next quiet stop.
  bool detached = false;
};

// A program running on a target in place of a local exec (DESIGN D7), seen from the local
// sb-stub process that stands in for it.
struct RemoteChild {
  AgentLink& target;
  proto::Process::Client process;
  // The agent's ends of the pipes for the remote fds 0-2 that the stub pumps; handed to the
  // stub (SB_STUB_FD) once each.
  kj::Maybe<proto::Node::Client> pipes[3];
  kj::String program;  // As exec named it, for messages.
  bool execDone = false;  // The local exec of the stub succeeded.
  bool ended = false;     // Its status has reached the stub: signals are the stub's own again.
};

inline TraceeMemory Call::mem() const { return TraceeMemory(task.tid); }

using Handler = kj::Promise<Outcome> (*)(Call& call);
// The handler for a syscall number, or null (see handlers.cc).
Handler findHandler(int nr);

class Tracer {
 public:
  Tracer(kj::AsyncIoContext& io, Options& options);
  ~Tracer();

  // Connects every target; throws with a clear message when one cannot be reached.
  void connectTargets(kj::WaitScope& ws);
  // Launches the program and runs until it and all its traced descendants are gone.
  // Returns sbrun's exit status.
  int run(kj::WaitScope& ws);

  PathRules& rules() { return rules_; }
  // Parks the thread's trapped call now (see park): for a call that must wait for a signal
  // already pending (ppoll's temporary mask unblocked it), so that the signal ends it.
  void parkCall(Task& task) { park(task); }
  kj::Timer& timer() { return io.provider->getTimer(); }
  kj::UnixEventPort& eventPort() { return io.unixEventPort; }
  // Remote interests of the program's epoll instances (epoll_set.h).
  EpollRegistry& epolls() { return *epolls_; }
  Options& options() { return options_; }
  kj::ArrayPtr<kj::Own<AgentLink>> targets() { return targets_; }
  AgentLink& defaultTarget() { return *targets_[0]; }

  // Prints `message` on stderr the first time `key` is seen (one-time explanations).
  void noteOnce(kj::StringPtr key, kj::StringPtr message);
  void verbose(kj::StringPtr message);
  // POSIX record locks: which traced processes hold some on which target (so close and exit
  // can release them as the kernel would).
  void noteLockOwner(AgentLink& target, pid_t tgid) { lockOwners.insert({&target, tgid}); }
  bool holdsLocks(AgentLink& target, pid_t tgid) {
    return lockOwners.count({&target, tgid}) > 0;
  }

  // Tells the observers how a trapped call ended (see observer.h).
  void report(pid_t tid, int nr, AgentLink* target, bool known, int64_t result,
              std::chrono::steady_clock::time_point start, kj::StringPtr args,
              bool cached = false, kj::StringPtr why = "");
  // -v with --trace: handlers say in Call::why where a call went and which rule sent it there.
  bool explains() const { return explain_; }

  // Fire-and-forget remote work whose failure is reported but needs no answer (a seek-back).
  void backgroundSend(kj::Promise<void> promise) { background.add(kj::mv(promise)); }

  // Places an O_PATH placeholder fd in the tracee for `file` and binds it (DESIGN D4): the
  // trapped syscall is rewritten into openat(AT_FDCWD, "/", O_PATH|cloexec). `result` maps the
  // new fd to the syscall's return value (identity for open).
  Outcome installPlaceholder(Call& call, kj::Own<RemoteFile> file, bool cloexec);
  // The registers of that openat(AT_FDCWD, "/", O_PATH|cloexec), its path written below the
  // program's stack; null (and a note) when the stack cannot be written.
  kj::Maybe<user_regs_struct> placeholderOpen(Call& call, bool cloexec);

  // Remote exec (handlers_exec.cc): where sb-stub is, and the remote child a process stands in
  // for, keyed by its tgid.
  // Looked up on first use: most runs never exec remotely.
  kj::StringPtr stubPath() const;
  // Local copies of remote files for mmap (handlers_mmap.cc).
  MapCache& mapCache() { return mapCache_; }
  void addRemoteChild(pid_t tgid, kj::Own<RemoteChild> child);
  kj::Maybe<RemoteChild&> remoteChild(pid_t tgid);
  void dropRemoteChild(pid_t tgid);

  // Scopes (control.h). The control fd's number in every tracee (-1: none), and the commands
  // of the --control-fd channel: 0 or -errno.
  int controlFd() const { return controlFd_; }
  kj::Maybe<Task&> findTask(pid_t tid);
  int64_t applyToAll(kj::StringPtr command);
  int64_t applyToThread(pid_t tid, kj::StringPtr command);
  int64_t detachAll();

 private:
  kj::AsyncIoContext& io;
  Options& options_;
  PathRules rules_;
  // TLS for tcp:// targets (--tls-*); declared before the links, which use it.
  kj::Own<kj::TlsContext> tls_;
  kj::Vector<kj::Own<AgentLink>> targets_;
  SeccompFilter filter;
  kj::Own<FsContext> initialFs;
  std::unordered_map<pid_t, kj::Own<Task>> tasks;
  kj::Vector<kj::String> notesShown;
  kj::Vector<kj::Own<SyscallObserver>> observers;
  bool wantArgs = false;
  bool explain_ = false;
  std::set<std::pair<AgentLink*, pid_t>> lockOwners;
  std::set<pid_t> reaped;
  // Per process: the fd blocks its stacked guard filters trap, and who waits for one.
  FdGuards guards;
  pid_t leader = -1;
  kj::Maybe<ptrace::WaitStatus> leaderStatus;
  kj::Own<kj::PromiseFulfiller<void>> allGone;
  kj::TaskSet background;
  mutable kj::Maybe<kj::String> stubPath_;
  // The program to launch as PATH resolves it ("" when it does not), found once for the
  // default rules and for exec (launch()).
  kj::String programPath_;
  MapCache mapCache_;
  int controlFd_ = -1;
  // Attach mode (--pid): every syscall stops (no seccomp filter), and sbrun can let go.
  bool attachMode_ = false;
  bool detaching_ = false;
  bool detachForced_ = false;
  kj::Maybe<kj::Promise<void>> detachGrace;
  static constexpr kj::Duration DETACH_GRACE = 2 * kj::SECONDS;
  std::vector<pid_t> justDetached;
  kj::Maybe<kj::Promise<void>> signalWatch;
  kj::Own<EpollRegistry> epolls_;
  kj::Own<RemoteFile> controlFile;  // Shared by every tracee's control fd, so never closed remotely.
  kj::Maybe<kj::Own<ControlChannel>> controlChannel;
  kj::Maybe<kj::Promise<void>> controlRunning;
  std::unordered_map<pid_t, kj::Own<RemoteChild>> remoteChildren;

  struct ErrorHandler : public kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&& e) override;
  } errorHandler;

  kj::AutoCloseFd sigchldFd;
  kj::Own<kj::UnixEventPort::FdObserver> sigchldObserver;

  pid_t launch();
  kj::Promise<void> watchChildren();
  void drainWaits();
  void onStop(Task& task, ptrace::WaitStatus status);
  void onSyscallStop(Task& task);
  void onInterruptStop(Task& task);
  void onSignal(Task& task, int sig);
  void onTrap(Task& task);
  pid_t attach();
  kj::String whyNoAttach(pid_t pid, int err);
  kj::Promise<void> detachOnSignal(int sig);
  void onSyscallExit(Task& task);
  void onNewChild(Task& parent, bool vfork);
  void onExec(Task& task);
  void onExit(pid_t tid, ptrace::WaitStatus status);
  void apply(Call& call, Outcome outcome);
  void settle(Task& task, Outcome outcome);
  void park(Task& task);
  void armPark(Task& task);
  void raiseAt(Task& task, int sig);
  void onParkedSyscallStop(Task& task);
  void onParkedSignal(Task& task, int sig);
  void finishParked(Task& task, Outcome outcome);
  void interruptParked(Task& task, int sig);
  void finishInterrupt(Task& task, Outcome outcome);
  void giveUpInterrupt(Task& task);
  void restartCall(Task& task);
  bool onReplay(Task& task, const user_regs_struct& regs);
  bool forwardToRemote(Task& task, int sig);
  void resume(Task& task, int sig = 0);
  Task& taskFor(pid_t tid);
  void maybeFinish();
  void adoptOrphans();
  // Before a thread at an exit stop returns to its program: every block of its remote fds must
  // trap (fd_guard.h). Injects a guard, holds the thread for another's, or resumes it.
  void guardThenResume(Task& task, user_regs_struct& regs);
  void replanGuards(kj::Vector<pid_t> tids);
  void injectGuard(Task& task, user_regs_struct& regs, kj::ArrayPtr<const int> blocks);
  bool onInjectedSeccomp(Task& task, const user_regs_struct& regs);
  // Sequence outcomes: runs the step at its seccomp stop, and continues after its exit.
  void runSequenceStep(Task& task, const user_regs_struct& orig, const user_regs_struct& step,
                       kj::Function<Sequence::Step(int64_t)> next,
                       kj::Function<void(int64_t)> reporter);
  bool onSequenceStep(Task& task, const user_regs_struct& regs);
  void setupInitialTask(Task& task);
  void startScope(Task& task);
  void startControlChannel();
};

}  // namespace sb
