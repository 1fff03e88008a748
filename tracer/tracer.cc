#include "tracer.h"
#include "recorder.h"
#include "replayer.h"

#include "errno_names.h"
#include "launch.h"
#include "proc_status.h"
#include "ptrace.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <dirent.h>
#include <algorithm>
#include <unordered_set>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/io.h>

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

void Tracer::ErrorHandler::taskFailed(kj::Exception&& e) {
  fmt::print(stderr, "sbrun: background remote call failed: {}\n", e.getDescription().cStr());
}

namespace {

// Local syscalls a recording pins (Tracer::pinnedRandom): what makes temporary file names and
// hash seeds differ from run to run.
kj::ArrayPtr<const int> pinnedSyscalls(const Options& options) {
  static const int kPinned[] = {SYS_getrandom};
  if (options.recordFile == nullptr && options.replayFile == nullptr) {
    return nullptr;
  }
  return kPinned;
}

// An observer's output: stderr for "", else FILE (truncated), with a clear error if it can't.
FILE* openOutput(kj::StringPtr path, kj::StringPtr option, bool& owned) {
  if (path.size() == 0) {
    owned = false;
    return stderr;
  }
  FILE* f = fopen(path.cStr(), "we");
  if (f == nullptr) {
    // The user's mistake: the message alone, no assertion text.
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str("cannot write ", option, " file ", path,
                                                         ": ", strerror(errno))));
  }
  owned = true;
  return f;
}

// The fd numbers below which the fast calls (read, write ... on local fds) run untrapped. An
// -e inject= rule on a fast call must see every such call, or its when= would miss the ones on
// local fds: then they trap on every fd (slower, and only when asked for).
int launchFastLimit(const Options& options, int controlFd) {
  for (auto& rule : options.injects) {
    for (auto& row : syscallTable()) {
      if (row.localFast && rule.set.has(row.nr)) {
        return 0;
      }
    }
  }
  return fastLimitFor(controlFd);
}

}  // namespace

Tracer::Tracer(kj::AsyncIoContext& io, Options& options)
    : io(io), options_(options),
      filter(SeccompFilter::build(launchFastLimit(options, pickControlFd()),
                                  pinnedSyscalls(options))),
      background(errorHandler), attachMode_(options.attachPid > 0),
      epolls_(kj::heap<EpollRegistry>()),
      leaseSignals_([this](pid_t tid) -> pid_t {
        KJ_IF_MAYBE(task, findTask(tid)) {
          return task->tgid;
        }
        return 0;
      }) {
  bool owned;
  KJ_IF_MAYBE(path, options.traceFile) {
    FILE* out = openOutput(*path, "--trace", owned);
    explain_ = options.verbose > 0;
    observers.add(kj::heap<TraceWriter>(out, owned, explain_,
                                        options.traceOptions.set != nullptr ||
                                            options.traceOptions.paths.size() > 0,
                                        options.traceOptions.time));
  }
  KJ_IF_MAYBE(path, options.statsFile) {
    FILE* out = openOutput(*path, "--stats", owned);
    observers.add(kj::heap<StatsCollector>(out, owned, options.statsJson, options.statsSort));
  }
  traceStyle_.stringLimit = options.traceOptions.stringLimit;
  if (options.injects.size() > 0) {
    injector_ = kj::heap<Injector>(options.injects, options.traceOptions.paths,
                                   io.provider->getTimer());
  }
  for (auto& o : observers) {
    wantArgs = wantArgs || o->wantsArgs();
  }
  KJ_IF_MAYBE(path, options.replayFile) {
    // The targets are the recording's (parseOptions refused --target).
    replayer_ = Replayer::open(*path);
    options_.targets.clear();
    for (auto t : replayer_->header().getTargets()) {
      auto url = parseTargetUrl(t.getUrl());
      url.name = kj::str(t.getName());
      options_.targets.add(kj::mv(url));
    }
    replayer_->onDivergence([this](kj::StringPtr report) { endForDivergence(report); });
  }
  KJ_IF_MAYBE(path, options.recordFile) {
    kj::Vector<Recorder::Target> targets;
    for (auto& t : options.targets) {
      targets.add(Recorder::Target{t.name, t.text});
    }
    recorder_ = Recorder::create(*path, options.command, targets);
  }
  for (auto& rule : options.userRules) {
    rules_.addUser(rule.first, rule.second);
  }
  if (options.recordFile != nullptr || options.replayFile != nullptr) {
    // The recording holds the program's randomness (SQLite's journal nonces, seeds): read from
    // the target, so that a replay gives the same bytes (docs/replay.md).
    for (kj::StringPtr dev : {"/dev/urandom", "/dev/random"}) {
      rules_.addUser(Placement::REMOTE, dev);
    }
  }
  for (auto& rule : options.execRules) {
    execRules_.addUser(rule.first, rule.second);
  }
  if (options.command.empty()) {
    rules_.addDefaults("");
  } else {
    programPath_ = findProgram(options.command[0]);
    auto prefixes = programPrefixes(programPath_);
    rules_.addDefaults(prefixes.first, prefixes.second);
  }
}

Tracer::~Tracer() noexcept(false) {}

kj::StringPtr Tracer::stubPath() const {
  KJ_IF_MAYBE(path, stubPath_) {
    return *path;
  }
  return stubPath_.emplace(findStub());
}

void Tracer::noteOnce(kj::StringPtr key, kj::StringPtr message) {
  for (auto& k : notesShown) {
    if (k == key) {
      return;
    }
  }
  notesShown.add(kj::str(key));
  fmt::print(stderr, "sbrun: {}\n", message.cStr());
}

void Tracer::verbose(kj::StringPtr message) {
  if (options_.verbose > 0) {
    fmt::print(stderr, "sbrun: {}\n", message.cStr());
  }
}

void Tracer::setupInitialTask(Task& task) {
  task.fds = kj::refcounted<FdTable>();
  task.fs = kj::addRef(*initialFs);
  startScope(task);
  task.fs->side = task.scope;
  task.attached = true;
  task.launching = true;
  task.execChainHead = true;
  task.lineage = kj::str("1");
  credentials_.refresh(task);
  if (controlFd_ >= 0) {
    task.fds->bind(controlFd_, kj::addRef(*controlFile));
  }
}

// The control fd's number: high, under the usual fd limit, out of the way of lowest-free
// allocation. -1 when the limit leaves no room.
namespace {
}  // namespace

kj::Maybe<Task&> Tracer::findTask(pid_t tid) {
  auto it = tasks.find(tid);
  if (it == tasks.end()) {
    return nullptr;
  }
  return *it->second;
}

pid_t Tracer::launch() {
  controlFd_ = pickControlFd();
  if (controlFd_ >= 0) {
    controlFile = kj::refcounted<RemoteFile>(defaultTarget(), defaultTarget().root(),
                                             proto::FileType::UNKNOWN, kj::str("control fd"));
    controlFile->control = true;
  }
  return launchTraced(options_.command, programPath_, controlFd_, filter);
}

int Tracer::run(kj::WaitScope& ws) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  allGone = kj::mv(paf.fulfiller);
  startControlChannel();
  credentials_.onCannotAssume([this](AgentLink& target) {
    verbose(kj::str("target ", target.name(), ": the agent cannot take on the program's "
                    "credentials (it lacks CAP_SETUID/CAP_SETGID): calls there run as its uid ",
                    target.welcome().getUid(), " whatever the program's"));
  });
  if (attachMode_) {
    leader = attach();
    signalWatch = detachOnSignal(SIGINT)
                      .exclusiveJoin(detachOnSignal(SIGTERM))
                      .eagerlyEvaluate([](kj::Exception&& e) {
                        fmt::print(stderr, "sbrun: {}\n", e.getDescription().cStr());
                      });
  } else {
    leader = launch();
    auto task = kj::heap<Task>();
    task->tid = leader;
    task->tgid = leader;
    setupInitialTask(*task);
    tasks.emplace(leader, kj::mv(task));
  }
  watchTargets();

  KJ_IF_MAYBE(address, options_.gdb) {
    gdb_ = kj::heap<GdbServer>(*this, io.unixEventPort, *address, leader, attachMode_);
    gdb_->listen();
  }

  auto watching = watchChildren().eagerlyEvaluate([](kj::Exception&& e) {
    fmt::print(stderr, "sbrun: internal error in the event loop: {}\n",
               e.getDescription().cStr());
    exit(EXIT_SBRUN_ERROR);
  });
  drainWaits();
  paf.promise.wait(ws);
  runEnded_ = true;
  for (auto& o : observers) {
    o->finish();
  }

  return exitStatus();
}

// SIGCHLD (blocked since main) comes through a signalfd of our own rather than kj's onSignal():
// kj reads its signalfd until EAGAIN, two reads per wakeup, while SIGCHLD, a standard signal, is
// pending at most once: one read consumes it, and the next SIGCHLD makes a new edge. One syscall
// less per ptrace stop.
kj::Promise<void> Tracer::watchChildren() {
  if (sigchldFd == nullptr) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    int fd;
    KJ_SYSCALL(fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    sigchldFd = kj::AutoCloseFd(fd);
    sigchldObserver = kj::heap<kj::UnixEventPort::FdObserver>(
        io.unixEventPort, fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
  }
  return sigchldObserver->whenBecomesReadable().then([this]() {
    struct signalfd_siginfo info;
    // EAGAIN is fine: the signal was consumed by the read after an earlier edge.
    if (read(sigchldFd.get(), &info, sizeof(info)) < 0 && errno != EAGAIN) {
      KJ_FAIL_SYSCALL("read(signalfd for SIGCHLD)", errno);
    }
    drainWaits();
    return watchChildren();
  });
}

void Tracer::drainWaits() {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, __WALL | WNOHANG);
    if (pid <= 0) {
      return;
    }
    bool agent = false;
    for (auto& t : targets_) {
      agent = t->reapedChild(pid, status) || agent;
    }
    if (agent) {
      continue;
    }
    ptrace::WaitStatus what(status);
    using Kind = ptrace::WaitStatus::Kind;
    if (what.kind() == Kind::EXITED || what.kind() == Kind::KILLED) {
      onExit(pid, what);
    } else {
      onStop(taskFor(pid), what);
      forgetDetached();
    }
  }
}

Task& Tracer::taskFor(pid_t tid) {
  auto it = tasks.find(tid);
  if (it != tasks.end()) {
    return *it->second;
  }
  reaped.erase(tid);  // A live task with this number: any earlier one is long gone.
  // A new thread or child whose parent's clone event has not been seen yet.
  auto task = kj::heap<Task>();
  task->tid = tid;
  task->tgid = tid;
  auto& ref = *task;
  tasks.emplace(tid, kj::mv(task));
  return ref;
}

void Tracer::resume(Task& task, int sig) {
  // A remote fd left open after the detach is a placeholder the kernel answers with EBADF: give
  // the program a moment to close the files it is using (a `with open(...)` block).
  bool fdsClosed = task.fds->size() == 0 || detachForced_;
  if (detaching_ && fdsClosed && task.atExit == nullptr && !task.parked &&
      task.injecting == nullptr && task.sequence == nullptr) {
    // Nothing of ours is left in flight on this thread: let it go, with its signal.
    ptrace::resume(task.tid, ptrace::Resume::DETACH, sig);
    task.detached = true;
    justDetached.push_back(task.tid);
    // A detached thread stops no more, so no later stop may be the one that drops its task: a
    // detach from a call's answer (not from a stop in drainWaits) must finish sbrun too. Later,
    // once the caller's reference to the task is gone.
    background.add(kj::evalLater([this]() { forgetDetached(); }));
    return;
  }
  // Syscall stops: attach mode (no filter); something to do at this call's exit; a Sequence
  // waiting for its next step (which the filter may let through); a parked thread's pause,
  // which must report its exit, also after the kernel restarts it.
  bool needExit = task.atExit != nullptr || task.sequence != nullptr || task.parked;
  auto how = attachMode_ || needExit ? ptrace::Resume::SYSCALL : ptrace::Resume::CONT;
  // While gdb has the program stopped, the thread stays in this stop (gdb_server.h).
  if (gdb_.get() != nullptr &&
      gdb_->onResume(task.tid, task.tgid, task.launching, needExit, how, sig)) {
    return;
  }
  ptrace::resume(task.tid, how, sig);
}

kj::Vector<pid_t> Tracer::gdbThreads() {
  kj::Vector<pid_t> out;
  for (auto& [tid, task] : tasks) {
    if (task->tgid == leader && task->attached && !task->launching && !task->detached) {
      out.add(tid);
    }
  }
  // The leader first (gdb's thread 1), then by tid.
  std::sort(out.begin(), out.end(), [this](pid_t a, pid_t b) {
    return a != b && (a == leader || (b != leader && a < b));
  });
  return out;
}

void Tracer::gdbRelease(pid_t tid, int sig) {
  KJ_IF_MAYBE(task, findTask(tid)) {
    resume(*task, sig);
  }
}

void Tracer::gdbContinueAfterSignal(pid_t tid, int sig) {
  KJ_IF_MAYBE(task, findTask(tid)) {
    if (sig == 0) {
      resume(*task);  // Discarded (a breakpoint's trap); a parked pause restarts.
    } else {
      onSignal(*task, sig);
    }
  }
}

void Tracer::onStop(Task& task, ptrace::WaitStatus status) {
  using Kind = ptrace::WaitStatus::Kind;
  switch (status.kind()) {
    case Kind::SYSCALL:
      onSyscallStop(task);
      return;
    case Kind::GROUP_STOP:
      // Stay stopped until SIGCONT, but keep reporting (PTRACE_LISTEN).
      ptrace::resume(task.tid, ptrace::Resume::LISTEN);
      return;
    case Kind::INTERRUPT:
      onInterruptStop(task);
      return;
    case Kind::SECCOMP:
      onTrap(task);
      return;
    case Kind::NEW_CHILD:
      onNewChild(task, status.isVfork());
      resume(task);
      return;
    case Kind::EXEC:
      onExec(task);
      return;
    case Kind::OTHER_EVENT:
      resume(task);
      return;
    case Kind::SIGNAL:
      // A lease break's signal gets the kernel's siginfo before anyone looks at it.
      leaseSignals_.rewrite(task.tid, status.signal());
      if (gdb_.get() != nullptr && !task.launching &&
          gdb_->onSignal(task.tid, task.tgid, status.signal())) {
        return;  // gdb decides what becomes of it (gdbContinueAfterSignal).
      }
      onSignal(task, status.signal());
      return;
    case Kind::EXITED:
    case Kind::KILLED:
      break;
  }
  KJ_FAIL_ASSERT("onStop called for an exit");
}

// A syscall-entry or -exit stop: only threads that asked for them get these (resume()).
void Tracer::onSyscallStop(Task& task) {
  if (task.parked) {
    onParkedSyscallStop(task);
    return;
  }
  if ((attachMode_ || task.sequence != nullptr) && ptrace::atSyscallEntry(task.tid)) {
    if (attachMode_) {
      onTrap(task);
      return;
    }
    // Launch mode, a Sequence pending: the entry of its next step, or of a signal handler's own
    // call, which the filter then decides as usual.
    user_regs_struct regs;
    if (getRegs(task.tid, regs) && !onSequenceStep(task, regs)) {
      resume(task);
    }
    return;
  }
  onSyscallExit(task);
}

// PTRACE_EVENT_STOP that is not a group-stop: a new task's first stop, a PTRACE_INTERRUPT, or
// the end of a LISTEN.
void Tracer::onInterruptStop(Task& task) {
  if (!task.attached) {
    task.seenFirstStop = true;  // Resumed when the parent's clone event sets it up.
    return;
  }
  if (task.parked) {
    // The interrupt meant to end a parked pause (settle) was taken on the way back to user
    // mode between two pauses (a signal the program ignores had woken it): apply the answer
    // here, or the restarted pause would wait for an interrupt already spent.
    KJ_IF_MAYBE(outcome, task.parkedOutcome) {
      auto o = kj::mv(*outcome);
      task.parkedOutcome = nullptr;
      finishParked(task, kj::mv(o));
    }
  }
  resume(task);
}

// A signal for the tracee: deliver it as the kernel would have (or to the remote program a
// stub stands for).
void Tracer::onSignal(Task& task, int sig) {
  if (task.parked) {
    onParkedSignal(task, sig);
    return;
  }
  if (forwardToRemote(task, sig)) {
    resume(task);
    return;
  }
  resume(task, sig);
}

void Tracer::onNewChild(Task& parent, bool vfork) {
  pid_t child;
  KJ_IF_MAYBE(msg, ptrace::eventMessage(parent.tid)) {
    child = static_cast<pid_t>(*msg);
  } else {
    return;
  }
  uint64_t flags = 0;
  user_regs_struct regs;
  if (getRegs(parent.tid, regs)) {
    switch (abi::syscallNr(regs)) {
      case SYS_clone: flags = abi::arg(regs, 0); break;
      case SYS_clone3: {
        uint64_t f = 0;
        TraceeMemory(parent.tid).readValue(abi::arg(regs, 0), f);
        flags = f;
        break;
      }
      case SYS_vfork: flags = CLONE_VM | CLONE_VFORK; break;
      default: flags = 0; break;
    }
  }
  if (vfork) {
    flags |= CLONE_VFORK;
  }
  if (reaped.count(child) > 0) {
    return;  // Killed and reaped before its parent's event got here.
  }
  Task& task = taskFor(child);
  task.tgid = (flags & CLONE_THREAD) ? parent.tgid : child;
  task.fds = (flags & CLONE_FILES) ? kj::addRef(*parent.fds) : parent.fds->copy();
  task.fs = (flags & CLONE_FS) ? kj::addRef(*parent.fs) : parent.fs->copy();
  task.scope = parent.scope;
  task.outer = parent.outer;
  task.credsId = parent.credsId;
  task.attached = true;
  // A thread shares its process's place in the exec chain; a new process (fork, vfork, clone
  // without CLONE_THREAD) is a child, whatever memory or files it shares.
  task.execChainHead = (flags & CLONE_THREAD) && parent.execChainHead;
  task.lineage = kj::str(parent.lineage, ".", ++parent.offspring);
  if (task.tgid != parent.tgid) {
    // Seccomp filters are inherited.
    guards.inherit(parent.tgid, task.tgid, flags & CLONE_FILES);
    if (gdb_.get() != nullptr && (flags & CLONE_VM) == 0) {
      gdb_->onFork(parent.tgid, child);
    }
  }
  if (task.seenFirstStop) {
    resume(task);
  }
}

void Tracer::onExec(Task& task) {
  // Whatever this tid was doing before the exec belongs to a thread that no longer exists (the
  // old leader when another thread exec'd): its call in flight must never touch the new image.
  task.pending = nullptr;
  task.atExit = nullptr;
  task.launching = false;
  KJ_IF_MAYBE(child, remoteChild(task.tgid)) {
    child->execDone = true;  // This process is sb-stub now.
  }
  unsigned long former = ptrace::eventMessage(task.tid).orDefault(task.tid);
  if (static_cast<pid_t>(former) != task.tid) {
    // A non-leader thread exec'd (de_thread): it now wears the leader's tid (PITFALLS #10).
    auto it = tasks.find(static_cast<pid_t>(former));
    if (it != tasks.end()) {
      task.fds = kj::mv(it->second->fds);
      task.fs = kj::mv(it->second->fs);
      task.scope = it->second->scope;
      task.outer = it->second->outer;
      task.execChainHead = it->second->execChainHead;
      task.lineage = kj::mv(it->second->lineage);
      task.offspring = it->second->offspring;
      tasks.erase(it);
    }
  }
  // Every other thread of the process is gone.
  for (auto it = tasks.begin(); it != tasks.end();) {
    if (it->second->tgid == task.tgid && it->first != task.tid) {
      guards.threadGone(task.tgid, it->first);  // Its waiters are gone with it.
      it = tasks.erase(it);
    } else {
      ++it;
    }
  }
  // exec computes the capabilities anew (a root program keeps them, any other loses them).
  credentials_.refresh(task);
  // exec unshares the file table; O_CLOEXEC placeholders are gone: forget their remote side.
  task.fds = task.fds->copy();
  pid_t tid = task.tid;
  kj::Vector<kj::Own<RemoteFile>> closed;
  task.fds->retainIf([tid](int fd) { return fdOpenIn(tid, fd); }, closed);
  kj::Vector<RemoteFile*> files;
  for (auto& f : closed) {
    files.add(f.get());
  }
  if (files.size() == 0 || lockOwners.empty()) {
    resume(task);
    return;
  }
  // The new image runs once the locks those closes dropped are gone on B too.
  background.add(releaseLocksOn(task.tgid, files)
                     .attach(kj::mv(closed))
                     .catch_([this](kj::Exception&& e) {
                       noteOnce("exec-locks", kj::str("cannot drop the locks of the files exec "
                                                      "closed on the target: ",
                                                      e.getDescription()));
                     })
                     .then([this, tid]() {
                       KJ_IF_MAYBE(t, findTask(tid)) {
                         resume(*t);  // Whatever became of the release: never left stopped.
                       }
                     }));
}

void Tracer::onExit(pid_t tid, ptrace::WaitStatus status) {
  if (gdb_.get() != nullptr) {
    gdb_->onExit(tid, status);
  }
  // Remembered until a new task reuses the number (see onNewChild); the race it covers lasts
  // microseconds, so a bounded memory is enough.
  if (reaped.size() > 4096) {
    reaped.clear();
  }
  reaped.insert(tid);
  auto it = tasks.find(tid);
  if (it != tasks.end()) {
    pid_t tgid = it->second->tgid;
    tasks.erase(it);
    bool processGone = true;
    for (auto& [other, task] : tasks) {
      processGone = processGone && task->tgid != tgid;
    }
    adoptOrphans();
    replanGuards(guards.threadGone(tgid, tid));
    if (processGone) {
      guards.processGone(tgid);
      KJ_IF_MAYBE(child, remoteChild(tgid)) {
        if (!child->ended) {
          // The stub died before its remote process (SIGKILL): so does the remote process.
          auto req = child->process.killRequest();
          req.setSignal(SIGKILL);
          background.add(req.send().ignoreResult().catch_([](kj::Exception&&) {}));
        }
        dropRemoteChild(tgid);
      }
      // A dead process holds no record locks (POSIX); tell each target it locked on.
      for (auto lock = lockOwners.begin(); lock != lockOwners.end();) {
        if (lock->second == tgid) {
          auto req = lock->first->session().releaseOwnerRequest();
          req.setOwner(tgid);
          background.add(req.send().ignoreResult().catch_([](kj::Exception&&) {
            // A target that is gone holds no locks either.
          }));
          lock = lockOwners.erase(lock);
        } else {
          ++lock;
        }
      }
    }
  }
  if (tid == leader) {
    leaderStatus = status;
  }
  maybeFinish();
}

kj::Promise<void> Tracer::releaseLocksOn(pid_t tgid, kj::ArrayPtr<RemoteFile* const> files) {
  kj::Vector<kj::Promise<void>> releases;
  std::unordered_set<RemoteFile*> seen;  // close_range may close two fds of one description
  for (RemoteFile* file : files) {
    if (!seen.insert(file).second || !holdsLocks(file->target, tgid)) {
      continue;
    }
    auto req = file->node.releaseLocksRequest();
    req.setOwner(tgid);
    releases.add(req.send().ignoreResult().catch_([](kj::Exception&& e) {
      if (!isConnectionLoss(e)) {
        kj::throwFatalException(kj::mv(e));
      }
    }));
  }
  return kj::joinPromises(releases.releaseAsArray());
}

// A new task whose creator died at its clone event stop (SIGKILL) never gets that event: adopt
// it with what can still be known (no remote fds, the starting cwd and scope) so it runs on and
// sbrun does not wait for it forever. Its inherited remote fds, if any, fail loudly (EBADF on
// the placeholder).
void Tracer::adoptOrphans() {
  for (auto& [tid, task] : tasks) {
    if (task->attached || !task->seenFirstStop) {
      continue;
    }
    auto status = ProcStatus::read(tid);
    if (!status.found) {
      continue;
    }
    pid_t tgid = status.tgid, ppid = status.ppid;
    bool creatorAlive = false;
    for (auto& [otherTid, other] : tasks) {
      if (otherTid != tid && (other->tgid == (tgid != tid ? tgid : ppid) || otherTid == ppid)) {
        creatorAlive = true;
      }
    }
    if (creatorAlive) {
      continue;  // Its event is still on the way.
    }
    noteOnce(kj::str("orphan", tid),
             kj::str("task ", tid, " lost its creator before sbrun saw the clone: it runs on "
                     "without the remote fds it may have inherited"));
    task->tgid = tgid;
    task->fds = kj::refcounted<FdTable>();
    task->fs = initialFs->copy();
    credentials_.refresh(*task);
    startScope(*task);
    task->fs->side = task->scope;
    task->attached = true;
    resume(*task);
  }
}

void Tracer::forgetDetached() {
  if (justDetached.empty()) {
    return;
  }
  for (pid_t tid : justDetached) {
    tasks.erase(tid);
  }
  justDetached.clear();
  maybeFinish();
}

void Tracer::maybeFinish() {
  if (tasks.empty() && allGone.get() != nullptr && allGone->isWaiting()) {
    allGone->fulfill();
  }
}

}  // namespace sb
