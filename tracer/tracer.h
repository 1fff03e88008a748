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
#include "call.h"
#include "control.h"
#include "epoll_set.h"
#include "exec_rules.h"
#include "fd_guard.h"
#include "fd_table.h"
#include "gdb_server.h"
#include "injector.h"
#include "lease_signals.h"
#include "map_cache.h"
#include "observer.h"
#include "options.h"
#include "path_rules.h"
#include "ptrace.h"
#include "seccomp_filter.h"
#include "syscall_table.h"
#include "task.h"
#include "thread_creds.h"
#include "tracee_memory.h"

namespace sb {

// Launch mode: SIGINT, SIGTERM and SIGHUP reach the event loop, which passes them on to the
// program (run_end.cc). Call before any thread exists.
void captureForwardedSignals();

class Tracer final : public ScopeHost, public GdbHost {
 public:
  Tracer(kj::AsyncIoContext& io, Options& options);
  ~Tracer() noexcept(false);

  // Launch mode: passes SIGINT, SIGTERM and SIGHUP sent to sbrun on to the program (before it
  // starts, they end sbrun). Call before connectTargets().
  void watchSignals();
  // Connects every target; throws with a clear message when one cannot be reached.
  void connectTargets(kj::WaitScope& ws);
  // Launches the program and runs until it and all its traced descendants are gone.
  // Returns sbrun's exit status.
  int run(kj::WaitScope& ws);

  PathRules& rules() { return rules_; }
  // Where exec'd programs run (--exec-here/--exec-there, --spawn).
  const ExecRules& execRules() const { return execRules_; }
  // Parks the thread's trapped call now (see park): for a call that must wait for a signal
  // already pending (ppoll's temporary mask unblocked it), so that the signal ends it.
  void parkCall(Task& task) { park(task); }
  kj::Timer& timer() { return io.provider->getTimer(); }
  kj::UnixEventPort& eventPort() { return io.unixEventPort; }
  // Each thread's credentials (thread_creds.h).
  CredentialsRegistry& credentials() { return credentials_; }
  // Remote interests of the program's epoll instances (epoll_set.h).
  EpollRegistry& epolls() { return *epolls_; }
  // The signals lease breaks on B raise in the program (lease_signals.h).
  LeaseSignals& leaseSignals() { return leaseSignals_; }
  Options& options() { return options_; }
  kj::ArrayPtr<kj::Own<AgentLink>> targets() override { return targets_; }
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
  // POSIX: closing any fd of a file drops the process's record locks on it, however the fd is
  // closed (close, dup2 over it, close_range, exec's close-on-exec). Ready once every target
  // holding locks of `tgid` has dropped those on `files` (at once when none does); a lost
  // connection took the locks with it.
  kj::Promise<void> releaseLocksOn(pid_t tgid, kj::ArrayPtr<RemoteFile* const> files);

  // Tells the observers how a trapped call ended (see observer.h).
  void report(const CallObservation& obs, AgentLink* target, bool known, int64_t result,
              bool cached = false, kj::StringPtr why = "");
  // A program started on a target (handlers_exec.cc), for --trace.
  void reportRemoteStart(const RemoteStart& start) {
    for (auto& o : observers) {
      o->onRemoteStart(start);
    }
  }
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
  kj::Maybe<Task&> findTask(pid_t tid) override;
  int64_t applyToAll(kj::StringPtr command) override;
  int64_t applyToThread(pid_t tid, kj::StringPtr command) override;
  int64_t detachAll() override;

  // --gdb (gdb_server.h): the debugged process's threads, and resuming them as usual.
  kj::Vector<pid_t> gdbThreads() override;
  void gdbRelease(pid_t tid, int sig) override;
  void gdbContinueAfterSignal(pid_t tid, int sig) override;

 private:
  kj::AsyncIoContext& io;
  Options& options_;
  PathRules rules_;
  ExecRules execRules_;
  // TLS for tcp:// targets (--tls-*); declared before the links, which use it.
  kj::Own<kj::TlsContext> tls_;
  // --record / --replay (recorder.h, replayer.h): before the links, which use them.
  kj::Own<Recorder> recorder_;
  kj::Own<Replayer> replayer_;
  bool replayDiverged_ = false;
  // Every traced process is gone (run() returns): nothing may be killed by pid any more, the
  // numbers may be other processes' by now.
  bool runEnded_ = false;
  kj::Vector<kj::Own<AgentLink>> targets_;
  SeccompFilter filter;
  CredentialsRegistry credentials_;
  kj::Own<FsContext> initialFs;
  std::unordered_map<pid_t, kj::Own<Task>> tasks;
  kj::Vector<kj::String> notesShown;
  kj::Vector<kj::Own<SyscallObserver>> observers;
  bool wantArgs = false;
  TraceStyle traceStyle_;  // -s
  // -e inject=: null without rules (trapped_call.cc tests only that).
  kj::Own<Injector> injector_;
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
  // Threads let go, whose tasks are dropped once no stop handler holds them (forgetDetached).
  std::vector<pid_t> justDetached;
  kj::Maybe<kj::Promise<void>> signalWatch;
  // --on-disconnect=exit ended the program (run_end.cc).
  bool endedForLostTarget_ = false;
  // run_end.cc: signals to sbrun, lost targets, and sbrun's exit status.
  void watchTargets();
  kj::Promise<void> forwardSignal(int sig);
  void endForLostTarget();
  // --replay: the program asked what the recording does not have; it ends (exit status 125).
  void endForDivergence(kj::StringPtr report);
  // Every traced process goes (SIGKILL); programs they run on B end with their stubs.
  void killProgram();
  // --record / --replay: a getrandom (trapped then only) is recorded, or answered from the
  // recording. Null for any other call.
  kj::Maybe<kj::Promise<Outcome>> pinnedRandom(Call& call);
  int exitStatus();
  kj::Own<EpollRegistry> epolls_;
  LeaseSignals leaseSignals_;
  kj::Own<RemoteFile> controlFile;  // Shared by every tracee's control fd, so never closed remotely.
  kj::Maybe<kj::Own<ControlChannel>> controlChannel;
  kj::Maybe<kj::Promise<void>> controlRunning;
  std::unordered_map<pid_t, kj::Own<RemoteChild>> remoteChildren;
  // --gdb: null without it, and then each of its hooks is one null check.
  kj::Own<GdbServer> gdb_;

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
  kj::Promise<Outcome> runHandler(Call& call);
  void observeEntry(Call& call);
  bool sbrunsOwn(const Call& call);
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
  void forgetDetached();
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
