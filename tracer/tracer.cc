#include "tracer.h"

#include "errno_names.h"
#include "handler_support.h"
#include "ptrace.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <dirent.h>
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

// How long an interruptible remote call holds its thread in the seccomp stop before parking it
// (Tracer::park): longer than a fast answer takes, short enough that a signal is not noticed late.
constexpr auto PARK_AFTER = 2 * kj::MILLISECONDS;


// How long a two-phase interrupt (onParkedSignal) waits for the interrupted call's answer before
// it drops the call as an agent without Node.interrupt makes it do.
constexpr auto INTERRUPT_WAIT = 500 * kj::MILLISECONDS;

// A remote call's answer that is -EINTR although sbrun interrupted nothing: another thread's
// signal interrupted every blocking call on the same node (Node.interrupt). The kernel never
// woke this call, so it must run again.
bool interruptedByOther(const Call& call, const Outcome& o) {
  return call.target != nullptr && o.is<Complete>() && o.get<Complete>().ret == -EINTR &&
         call.progress == 0;
}

// ptrace on a tracee that vanished (SIGKILL, exit_group from another thread) is an expected
// race (PITFALLS #6): the exit shows up in waitpid; callers just stop caring.
int pickControlFd() {
  struct rlimit lim;
  rlim_t soft = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 1024;
  if (soft < 64) {
    return -1;
  }
  return static_cast<int>(kj::min(soft, rlim_t(1024)) - 1);
}

// Fast calls run untrapped below the control fd's block (it must always trap).
int fastLimitFor(int controlFd) {
  return controlFd < 0 ? 1024 : controlFd / SeccompFilter::BLOCK * SeccompFilter::BLOCK;
}

using ptrace::getRegs;
using ptrace::setRegs;

// A program sbrun runs: $ENV, else the first of `relative` (paths relative to sbrun's own
// directory: installed, then build tree) that is executable, else `fallback`.
kj::String findHelper(const char* env, std::initializer_list<kj::StringPtr> relative,
                      kj::StringPtr fallback) {
  if (const char* value = getenv(env)) {
    return kj::str(value);
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = 0;
    kj::StringPtr exe(self);
    KJ_IF_MAYBE(slash, exe.findLast('/')) {
      auto dir = kj::heapString(exe.slice(0, *slash));
      for (auto& rel : relative) {
        auto candidate = kj::str(dir, "/", rel);
        if (access(candidate.cStr(), X_OK) == 0) {
          return candidate;
        }
      }
    }
  }
  return kj::str(fallback);
}

// The sbagent to spawn for `local` targets: beside sbrun (installed), the build tree, or PATH.
kj::String findAgent() {
  return findHelper("SB_AGENT", {"sbagent", "../agent/sbagent"}, "sbagent");
}

// sb-stub, which stands in for remote programs: it must be an absolute path, as it is exec'd
// from whatever directory the program is in.
kj::String findStub() {
  auto found = findHelper("SB_STUB", {"../libexec/splitbrain/sb-stub", "sb-stub"}, "");
  if (found.size() > 0 && !found.startsWith("/")) {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) {
      return kj::str(cwd, "/", found);
    }
  }
  return found;
}

// The program as exec will find it: PROGRAM itself when it has a slash, else the first
// executable match on PATH. "" when there is none.
kj::String findProgram(kj::StringPtr program) {
  if (program.findFirst('/') != nullptr) {
    return kj::str(program);
  }
  // Without PATH, glibc's execvpe searches confstr(_CS_PATH).
  const char* path = getenv("PATH");
  kj::StringPtr rest = path ? path : "/bin:/usr/bin";
  while (rest.size() > 0) {
    auto colon = rest.findFirst(':').orDefault(rest.size());
    kj::ArrayPtr<const char> dir = rest.slice(0, colon);
    // An empty entry is the current directory, for execvpe as for the shell.
    auto candidate = kj::str(dir.size() > 0 ? dir : kj::StringPtr(".").asArray(), "/", program);
    if (access(candidate.cStr(), X_OK) == 0) {
      return candidate;
    }
    rest = colon < rest.size() ? rest.slice(colon + 1) : kj::StringPtr("");
  }
  return kj::str("");
}

// The install prefix of an executable path (PREFIX/bin/prog -> PREFIX), lexically.
kj::String prefixOf(kj::StringPtr exe) {
  auto abs = normalizePath("/", exe);
  auto bin = kj::heapString(abs.slice(0, abs.findLast('/').orDefault(0)));
  return kj::heapString(bin.slice(0, bin.findLast('/').orDefault(0)));
}

// The program's install prefixes for the default fallback rules: where its path says (a
// virtualenv's bin/python) and where its symlinks lead (the interpreter's own prefix). `found`
// is findProgram()'s answer.
std::pair<kj::String, kj::String> programPrefixes(kj::StringPtr found) {
  if (found.size() == 0) {
    return {kj::str(""), kj::str("")};
  }
  char cwd[4096];
  auto absolute = found.startsWith("/") || getcwd(cwd, sizeof(cwd)) == nullptr
                      ? kj::str(found) : kj::str(cwd, "/", found);
  char real[4096];
  auto resolved = realpath(found.cStr(), real) ? prefixOf(real) : kj::str("");
  return {prefixOf(absolute), kj::mv(resolved)};
}

}  // namespace

uint64_t Call::arg(int i) const {
  KJ_ASSERT(i >= 0 && i < 6, "syscall argument index out of range", i);
  return abi::arg(regs, i);
}

void Tracer::ErrorHandler::taskFailed(kj::Exception&& e) {
  fmt::print(stderr, "sbrun: background remote call failed: {}\n", e.getDescription().cStr());
}

namespace {

// An observer's output: stderr for "", else FILE (truncated), with a clear error if it can't.
FILE* openOutput(kj::StringPtr path, kj::StringPtr option, bool& owned) {
  if (path.size() == 0) {
    owned = false;
    return stderr;
  }
  FILE* f = fopen(path.cStr(), "we");
  KJ_REQUIRE(f != nullptr, kj::str("cannot write ", option, " file ", path, ": ", strerror(errno)));
  owned = true;
  return f;
}

}  // namespace

Tracer::Tracer(kj::AsyncIoContext& io, Options& options)
    : io(io), options_(options), filter(SeccompFilter::build(fastLimitFor(pickControlFd()))),
      background(errorHandler), attachMode_(options.attachPid > 0),
      epolls_(kj::heap<EpollRegistry>()) {
  bool owned;
  KJ_IF_MAYBE(path, options.traceFile) {
    FILE* out = openOutput(*path, "--trace", owned);
    explain_ = options.verbose > 0;
    observers.add(kj::heap<TraceWriter>(out, owned, explain_));
  }
  KJ_IF_MAYBE(path, options.statsFile) {
    FILE* out = openOutput(*path, "--stats", owned);
    observers.add(kj::heap<StatsCollector>(out, owned, options.statsJson));
  }
  for (auto& o : observers) {
    wantArgs = wantArgs || o->wantsArgs();
  }
  for (auto& rule : options.userRules) {
    rules_.addUser(rule.first, rule.second);
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

void Tracer::connectTargets(kj::WaitScope& ws) {
  kj::String token;
  if (options_.tokenFile.size() > 0) {
    int fd = open(options_.tokenFile.cStr(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      KJ_FAIL_REQUIRE(kj::str("cannot read --token-file ", options_.tokenFile, ": ",
                              strerror(errno)));
    }
    kj::FdInputStream in{kj::AutoCloseFd(fd)};
    auto bytes = in.readAllBytes();
    size_t n = bytes.size();
    while (n > 0 && (bytes[n - 1] == '\n' || bytes[n - 1] == '\r')) {
      --n;
    }
    token = kj::heapString(reinterpret_cast<const char*>(bytes.begin()), n);
  }
  // Only `local` targets spawn an agent: the others need not look for one.
  kj::Maybe<kj::String> agentPath;
  char here[4096];
  kj::StringPtr localCwd = getcwd(here, sizeof(here)) ? kj::StringPtr(here) : "/";
  initialFs = kj::refcounted<FsContext>();
  if (options_.tls.any()) {
    tls_ = makeTlsContext(options_.tls, TlsRole::CLIENT);
  }
  for (auto& url : options_.targets) {
    kj::StringPtr agent = "";
    if (url.kind == TargetUrl::Kind::LOCAL) {
      KJ_IF_MAYBE(path, agentPath) {
        agent = *path;
      } else {
        agent = agentPath.emplace(findAgent());
      }
    }
    auto link = kj::heap<AgentLink>(parseTargetUrl(url.text), kj::str(url.name), kj::str(token),
                                    options_.reconnect);
    if (tls_.get() != nullptr && url.kind == TargetUrl::Kind::TCP) {
      link->useTls(*tls_);
    }
    link->connect(io, agent).wait(ws);
    auto w = link->welcome();
    verbose(kj::str("target '", link->name(), "': ", w.getUname().getNodename(), " (",
                    w.getArch(), ", Linux ", w.getKernel(), "), root ", w.getRoot().asChars(),
                    w.getReadOnly() ? ", read-only" : ""));

    // The remote cwd: --remote-cwd, else the same path as here when it exists there.
    bool explicitCwd = options_.remoteCwd.size() > 0;
    kj::StringPtr want = explicitCwd ? options_.remoteCwd.asPtr() : localCwd;
    auto req = link->session().openPathRequest();
    req.setPath(want.asBytes());
    auto reply = req.send().wait(ws);
    if (reply.getResult() >= 0) {
      initialFs->cwd.emplace(link.get(),
                             RemoteCwd{reply.getDir(), link->generation(), kj::str(want)});
      verbose(kj::str("target '", link->name(), "': working directory ", want));
    } else if (explicitCwd) {
      KJ_FAIL_REQUIRE(kj::str("--remote-cwd ", want, " on target '", link->name(),
                              "': ", strerror(-reply.getResult())));
    } else {
      verbose(kj::str("target '", link->name(), "': ", want, " does not exist there (",
                      strerror(-reply.getResult()), "): working directory is its root"));
    }
    targets_.add(kj::mv(link));
  }
}

void Tracer::setupInitialTask(Task& task) {
  task.fds = kj::refcounted<FdTable>();
  task.fs = kj::addRef(*initialFs);
  startScope(task);
  task.fs->side = task.scope;
  task.attached = true;
  task.launching = true;
  if (controlFd_ >= 0) {
    task.fds->bind(controlFd_, kj::addRef(*controlFile));
  }
}

// The control fd's number: high, under the usual fd limit, out of the way of lowest-free
// allocation. -1 when the limit leaves no room.
namespace {
}  // namespace

// The scope stack a program starts with: inside the first target for --mode remote (entered from
// local, so `exit` returns there), else empty.
void Tracer::startScope(Task& task) {
  task.scope = nullptr;
  task.outer.clear();
  if (options_.startRemote) {
    applyScopeCommand(*this, &task, "enter");
  }
}

kj::Maybe<Task&> Tracer::findTask(pid_t tid) {
  auto it = tasks.find(tid);
  if (it == tasks.end()) {
    return nullptr;
  }
  return *it->second;
}

int64_t Tracer::applyToThread(pid_t tid, kj::StringPtr command) {
  KJ_IF_MAYBE(task, findTask(tid)) {
    return applyScopeCommand(*this, task, command);
  }
  return -ESRCH;
}

int64_t Tracer::applyToAll(kj::StringPtr command) {
  // Checked first, so that an unknown name changes nobody.
  int64_t r = applyScopeCommand(*this, nullptr, command);
  if (r < 0) {
    return r;
  }
  int64_t result = 0;
  for (auto& [tid, task] : tasks) {
    int64_t one = applyScopeCommand(*this, task.get(), command);
    result = result < 0 ? result : one;  // `exit` on a thread with nothing to leave: EINVAL.
  }
  return result;
}

void Tracer::startControlChannel() {
  int in = options_.controlFd;
  if (in < 0) {
    return;
  }
  int out = options_.statusFd;
  struct stat st;
  if (out < 0 && fstat(in, &st) == 0 && S_ISSOCK(st.st_mode)) {
    out = in;  // A socket answers on itself.
  }
  // The harness's fds are sbrun's, never the program's.
  fcntl(in, F_SETFD, FD_CLOEXEC);
  if (out >= 0) {
    fcntl(out, F_SETFD, FD_CLOEXEC);
    // Answers must never block the tracer (and every traced thread with it).
    int flags = fcntl(out, F_GETFL);
    if (flags >= 0) {
      fcntl(out, F_SETFL, flags | O_NONBLOCK);
    }
  }
  auto channel = kj::heap<ControlChannel>(*this, *io.lowLevelProvider, in, out);
  auto& ch = *channel;
  for (auto& t : targets_) {
    // "disconnected NAME", "reconnected NAME".
    t->onEvent([&ch](AgentLink& link, kj::StringPtr what) {
      ch.event(kj::str(what, " ", link.name()));
    });
  }
  controlRunning = ch.run().eagerlyEvaluate([](kj::Exception&& e) {
    fmt::print(stderr, "sbrun: --control-fd: {}\n", e.getDescription().cStr());
  });
  controlChannel = kj::mv(channel);
}

int64_t Tracer::detachAll() {
  if (!attachMode_) {
    // A seccomp filter can never be removed: a launched program cannot run without its tracer.
    return -EOPNOTSUPP;
  }
  if (!detaching_) {
    detaching_ = true;
    verbose("detaching: each thread is let go at its next stop with no call of ours in flight "
            "and no remote fd open");
    // Every thread comes to a stop soon; resume() then detaches it.
    for (auto& [tid, task] : tasks) {
      ptrace::interrupt(tid);
    }
    // Threads whose process keeps remote fds open go after DETACH_GRACE all the same.
    detachGrace = io.provider->getTimer()
                      .afterDelay(DETACH_GRACE)
                      .then([this]() {
                        detachForced_ = true;
                        kj::Vector<kj::String> left;
                        for (auto& [tid, task] : tasks) {
                          if (!task->detached) {
                            task->fds->forEach([&](int fd, RemoteFile& file) {
                              left.add(kj::str(fd, " (", file.path, ")"));
                            });
                            ptrace::interrupt(tid);
                          }
                        }
                        if (left.size() > 0) {
                          noteOnce("detach-fds",
                                   kj::str("detaching with remote fds still open: ",
                                           kj::strArray(left, ", "),
                                           "; the program's calls on them now fail with EBADF"));
                        }
                      })
                      .eagerlyEvaluate(nullptr);
  }
  return 0;
}

kj::Promise<void> Tracer::detachOnSignal(int sig) {
  return io.unixEventPort.onSignal(sig).then([this](siginfo_t) -> kj::Promise<void> {
    detachAll();
    return kj::Promise<void>(kj::NEVER_DONE);
  });
}

kj::String Tracer::whyNoAttach(pid_t pid, int err) {
  if (err == ESRCH) {
    return kj::str("process ", pid, " exited while sbrun was attaching");
  }
  if (err != EPERM) {
    return kj::str(strerror(err));
  }
  auto status = kj::str("/proc/", pid, "/status");
  if (FILE* f = fopen(status.cStr(), "re")) {
    char line[256];
    pid_t tracer = 0;
    while (fgets(line, sizeof(line), f)) {
      sscanf(line, "TracerPid: %d", &tracer);
    }
    fclose(f);
    if (tracer > 0) {
      return kj::str("it is already traced by process ", tracer,
                     " (a debugger, strace, or another sbrun): only one tracer at a time");
    }
  }
  int scope = -1;
  if (FILE* f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re")) {
    if (fscanf(f, "%d", &scope) != 1) {
      scope = -1;
    }
    fclose(f);
  }
  if (scope >= 1) {
    return kj::str("operation not permitted: Yama ptrace_scope is ", scope,
                   scope == 1 ? " (only a parent may trace its child: run sbrun as root, or "
                                "`sysctl kernel.yama.ptrace_scope=0`)"
                              : " (tracing other processes needs CAP_SYS_PTRACE, or is off)");
  }
  return kj::str("operation not permitted (another user's process? tracing it needs "
                 "CAP_SYS_PTRACE)");
}

// Seizes every thread of the process (and any it starts meanwhile) and sets each up as a task;
// their first stop (PTRACE_INTERRUPT) resumes them under PTRACE_SYSCALL.
pid_t Tracer::attach() {
  pid_t pid = options_.attachPid;
  KJ_REQUIRE(pid != getpid(), "sbrun cannot attach to itself");
  auto taskDir = kj::str("/proc/", pid, "/task");
  auto fs = kj::addRef(*initialFs);
  fs->side = nullptr;  // The process's working directory is here.
  auto fds = kj::refcounted<FdTable>();
  for (bool added = true; added;) {
    added = false;
    DIR* dir = opendir(taskDir.cStr());
    if (dir == nullptr) {
      KJ_REQUIRE(tasks.empty(), kj::str("cannot attach to process ", pid, ": ",
                                        whyNoAttach(pid, ESRCH)));
      KJ_FAIL_REQUIRE(kj::str("no process with pid ", pid));
    }
    while (struct dirent* e = readdir(dir)) {
      pid_t tid = atoi(e->d_name);
      if (tid <= 0 || tasks.count(tid) > 0) {
        continue;
      }
      if (int err = ptrace::seize(tid, ptrace::ATTACH_OPTIONS); err != 0) {
        if (err == ESRCH && tid != pid) {
          continue;  // A thread that just ended.
        }
        closedir(dir);
        for (auto& [t, task] : tasks) {
          ptrace::resume(t, ptrace::Resume::DETACH);
        }
        KJ_FAIL_REQUIRE(kj::str("cannot attach to process ", pid, ": ", whyNoAttach(pid, err)));
      }
      auto task = kj::heap<Task>();
      task->tid = tid;
      task->tgid = pid;
      task->fds = kj::addRef(*fds);
      task->fs = kj::addRef(*fs);
      startScope(*task);
      task->attached = true;
      tasks.emplace(tid, kj::mv(task));
      added = true;
    }
    closedir(dir);
  }
  for (auto& [tid, task] : tasks) {
    ptrace::interrupt(tid);
  }
  verbose(kj::str("attached to process ", pid, " (", tasks.size(), " threads)"));
  return pid;
}

pid_t Tracer::launch() {
  auto& argv0 = options_.command[0];
  kj::Vector<char*> argv;
  for (auto& a : options_.command) {
    argv.add(const_cast<char*>(a.cStr()));
  }
  argv.add(nullptr);
  // The program's environment, with SB_CONTROL_FD naming its control fd (control.h).
  controlFd_ = pickControlFd();
  kj::Vector<kj::String> envStrings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!kj::StringPtr(*e).startsWith("SB_CONTROL_FD=")) {
      envStrings.add(kj::str(*e));
    }
  }
  if (controlFd_ >= 0) {
    envStrings.add(kj::str("SB_CONTROL_FD=", controlFd_));
    controlFile = kj::refcounted<RemoteFile>(defaultTarget(), defaultTarget().root(),
                                             proto::FileType::UNKNOWN, kj::str("control fd"));
    controlFile->control = true;
  }
  kj::Vector<char*> envp;
  for (auto& e : envStrings) {
    envp.add(const_cast<char*>(e.cStr()));
  }
  envp.add(nullptr);
  int controlFd = controlFd_;
  kj::StringPtr programPath = programPath_;

  int gate[2];
  KJ_SYSCALL(pipe2(gate, O_CLOEXEC));
  pid_t pid = fork();
  KJ_SYSCALL(pid, "fork");
  if (pid == 0) {
    // Child: only async-signal-safe work until exec. Restore what sbrun changed for itself.
    close(gate[1]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (controlFd >= 0) {
      // Its placeholder: an O_PATH fd, inherited by children, a plain fd to anyone but sbrun.
      int fd = open("/", O_PATH);
      if (fd < 0 || (fd != controlFd && (dup2(fd, controlFd) < 0 || close(fd) < 0))) {
        _exit(EXIT_SBRUN_ERROR);
      }
    }
    char go;
    if (read(gate[0], &go, 1) != 1) {
      _exit(EXIT_SBRUN_ERROR);  // The parent could not trace us: never run untraced.
    }
    int rc = filter.install();
    if (rc < 0) {
      const char msg[] = "sbrun: cannot install the seccomp filter\n";
      (void)!write(2, msg, sizeof(msg) - 1);
      _exit(EXIT_SBRUN_ERROR);
    }
    if (programPath.size() > 0) {
      // Where the PATH walk in the constructor found it: execvpe would try every PATH entry
      // before it again, each failed execve a stop for the tracer. Should this exec fail after
      // all (ENOEXEC for a script without #!, a race), execvpe decides as it always did.
      execve(programPath.cStr(), argv.begin(), envp.begin());
    }
    execvpe(argv[0], argv.begin(), envp.begin());
    int err = errno;
    // The filter is in place and traced: this message goes through the tracer like any write.
    fmt::print(stderr, "sbrun: cannot execute {}: {}\n", argv[0], strerror(err));
    _exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
  }
  close(gate[0]);
  if (int err = ptrace::seize(pid, ptrace::LAUNCH_OPTIONS); err != 0) {
    kill(pid, SIGKILL);
    close(gate[1]);
    waitpid(pid, nullptr, 0);
    KJ_FAIL_REQUIRE(kj::str("cannot trace ", argv0, ": ptrace(PTRACE_SEIZE): ", strerror(err),
                            err == EPERM ? " (is ptrace forbidden here, e.g. by Yama "
                                           "ptrace_scope=3 or a container's seccomp profile?)"
                                         : ""));
  }
  KJ_SYSCALL(write(gate[1], "g", 1));
  close(gate[1]);
  return pid;
}

int Tracer::run(kj::WaitScope& ws) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  allGone = kj::mv(paf.fulfiller);
  startControlChannel();
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

  auto watching = watchChildren().eagerlyEvaluate([](kj::Exception&& e) {
    fmt::print(stderr, "sbrun: internal error in the event loop: {}\n",
               e.getDescription().cStr());
    exit(EXIT_SBRUN_ERROR);
  });
  drainWaits();
  paf.promise.wait(ws);
  for (auto& o : observers) {
    o->finish();
  }

  if (detaching_ && leaderStatus == nullptr) {
    return 0;  // Let go of a process that runs on.
  }
  KJ_IF_MAYBE(status, leaderStatus) {
    return status->shellCode();
  }
  return EXIT_SBRUN_ERROR;
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
      if (!justDetached.empty()) {
        for (pid_t tid : justDetached) {
          tasks.erase(tid);
        }
        justDetached.clear();
        maybeFinish();
      }
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
    return;
  }
  // Syscall stops: attach mode (no filter); something to do at this call's exit; a Sequence
  // waiting for its next step (which the filter may let through); a parked thread's pause,
  // which must report its exit, also after the kernel restarts it.
  bool syscallStops = attachMode_ || task.atExit != nullptr || task.sequence != nullptr ||
                      task.parked;
  ptrace::resume(task.tid, syscallStops ? ptrace::Resume::SYSCALL : ptrace::Resume::CONT, sig);
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
  task.attached = true;
  if (task.tgid != parent.tgid) {
    // Seccomp filters are inherited.
    guards.inherit(parent.tgid, task.tgid, flags & CLONE_FILES);
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
  // exec unshares the file table; O_CLOEXEC placeholders are gone: forget their remote side.
  task.fds = task.fds->copy();
  pid_t tid = task.tid;
  task.fds->retainIf([tid](int fd) {
    auto path = kj::str("/proc/", tid, "/fd/", fd);
    struct stat st;
    return lstat(path.cStr(), &st) == 0;
  });
  resume(task);
}

void Tracer::onExit(pid_t tid, ptrace::WaitStatus status) {
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

// A new task whose creator died at its clone event stop (SIGKILL) never gets that event: adopt
// it with what can still be known (no remote fds, the starting cwd and scope) so it runs on and
// sbrun does not wait for it forever. Its inherited remote fds, if any, fail loudly (EBADF on
// the placeholder).
void Tracer::adoptOrphans() {
  for (auto& [tid, task] : tasks) {
    if (task->attached || !task->seenFirstStop) {
      continue;
    }
    auto path = kj::str("/proc/", tid, "/status");
    FILE* f = fopen(path.cStr(), "re");
    if (f == nullptr) {
      continue;
    }
    pid_t tgid = tid, ppid = 0;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
      sscanf(line, "Tgid: %d", &tgid);
      sscanf(line, "PPid: %d", &ppid);
    }
    fclose(f);
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
    startScope(*task);
    task->fs->side = task->scope;
    task->attached = true;
    resume(*task);
  }
}

void Tracer::maybeFinish() {
  if (tasks.empty() && allGone.get() != nullptr && allGone->isWaiting()) {
    allGone->fulfill();
  }
}

// A trapped syscall: a seccomp stop (launch), or any syscall-entry stop (attach).
void Tracer::onTrap(Task& task) {
  if (task.stepRunning) {
    // The seccomp stop of a Sequence step already let through at its syscall-entry stop.
    resume(task);
    return;
  }
  user_regs_struct regs;
  if (!getRegs(task.tid, regs)) {
    return;  // Gone; its exit is on its way.
  }
  if (onInjectedSeccomp(task, regs) || onSequenceStep(task, regs) || onReplay(task, regs)) {
    return;
  }
  int nr = static_cast<int>(abi::syscallNr(regs));
  if (attachMode_) {
    // What the launch filter lets through never needs us; what it refuses, we refuse.
    const SyscallRow* row = findSyscall(nr);
    if (row != nullptr && (row->cls == SyscallClass::LOCAL || row->cls == SyscallClass::PROCESS)) {
      resume(task);
      return;
    }
    if (row != nullptr && row->cls == SyscallClass::REFUSED) {
      abi::skipSyscall(regs);
      setRegs(task.tid, regs);
      task.atExit = [](user_regs_struct& r) { abi::setResult(r, -ENOSYS); };
      resume(task);
      return;
    }
  }
  // The previous call of this thread is over: its continuations go before the call they use.
  task.pending = nullptr;
  task.parkTimer = nullptr;
  task.interruptWait = nullptr;
  task.call = kj::heap<Call>(Call{*this, task, regs, nr, findSyscall(nr)});
  auto& call = task.call;
  if (!observers.empty()) {
    call->start = std::chrono::steady_clock::now();
    if (wantArgs) {
      call->args = formatArgs(call->row, nr, regs, call->mem());
    }
  }
  Handler handler = findHandler(nr);
  kj::Promise<Outcome> outcome = nullptr;
  if (handler == nullptr) {
    // A trapped row with no handler is a bug the unit tests catch; never run it locally.
    noteOnce(kj::str("nohandler", nr),
             kj::str("internal: no handler for trapped syscall ", syscallName(nr),
                     ": answering ENOSYS"));
    outcome = Outcome(Complete{-ENOSYS});
  } else if (auto stale = handler::staleFd(*call); stale != nullptr) {
    outcome = Outcome(Complete{KJ_ASSERT_NONNULL(stale)});  // Its session is gone: EIO.
  } else {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { outcome = handler(*call); })) {
      outcome = kj::mv(*e);
    }
  }
  auto& c = *call;
  task.pending = outcome
                     .then([this, &task](Outcome o) { settle(task, kj::mv(o)); },
                           [this, &task, &c](kj::Exception&& e) {
                             int64_t err = c.target ? c.target->failure(e) : -EIO;
                             if (c.target == nullptr) {
                               fmt::print(stderr, "sbrun: internal error in {}: {}\n",
                                          syscallName(c.nr).cStr(), e.getDescription().cStr());
                             }
                             settle(task, Complete{err});
                           })
                     .eagerlyEvaluate([tid = task.tid](kj::Exception&& e) {
                       fmt::print(stderr, "sbrun: internal error: {}\n",
                                  e.getDescription().cStr());
                       // Never leave the thread stopped for good.
                       ptrace::resume(tid, ptrace::Resume::CONT);
                     });
  // A call that waits for a target that is away (reconnecting) waits like a slow FIFO read:
  // a signal must get through.
  if (c.interruptible || (c.target != nullptr && c.target->away())) {
    task.parkTimer = io.provider->getTimer()
                         .afterDelay(PARK_AFTER)
                         .then([this, &task]() { park(task); })
                         .eagerlyEvaluate(nullptr);
  }
}

// An answer for the thread's trapped call: applied now, or at the exit stop of its parking.
void Tracer::settle(Task& task, Outcome outcome) {
  if (task.interrupting) {
    finishInterrupt(task, kj::mv(outcome));
    return;
  }
  if (task.parked) {
    task.parkedOutcome = kj::mv(outcome);
    // Wakes pause(2) without a signal the program could see; its exit stop applies the answer.
    ptrace::interrupt(task.tid);  // False: gone, its exit is on its way.
    return;
  }
  task.parkTimer = nullptr;
  if (interruptedByOther(*task.call, outcome)) {
    restartCall(task);
    return;
  }
  apply(*task.call, kj::mv(outcome));
}

// Runs the trapped call again from its syscall instruction, so it traps anew and makes a new
// remote call. (Not with -ERESTARTNOINTR: the kernel acts on it only when a signal is pending.)
// At a seccomp stop the syscall is skipped; at a parked thread's stop the pause is over.
void Tracer::restartCall(Task& task) {
  Call& call = *task.call;
  auto regs = call.regs;
  bool atSeccompStop = !task.parked;
  task.parked = false;
  if (atSeccompStop) {
    abi::skipSyscall(regs);
  }
  abi::reissueSyscall(regs, abi::syscallNr(call.regs));
  setRegs(task.tid, regs);
  if (atSeccompStop && attachMode_) {
    // At a syscall-entry stop the kernel sets the result after skipping: set it at the exit stop.
    task.atExit = [nr = abi::syscallNr(call.regs)](user_regs_struct& r) { abi::setResult(r, nr); };
    resume(task);
    return;
  }
  if (atSeccompStop) {
    resume(task);
  }
}

// A thread held in a ptrace stop never sees its signals: a remote call that may wait forever (a
// FIFO read, a lock wait, a remote child's exit) would make it deaf to ^C and alarm(). So once
// such a call has taken PARK_AFTER, the thread waits in pause(2) instead, where a signal ends the
// wait as it would end the real call (onParkedSignal).
void Tracer::park(Task& task) {
  if (task.parked || task.pending == nullptr) {
    return;
  }
  auto regs = task.call->regs;
  if (task.call->parkMask != 0) {
    // Wait under the call's temporary signal mask, as ppoll/pselect6/epoll_pwait do.
    regs = abi::syscallRegs(regs, SYS_rt_sigsuspend, {task.call->parkMask, 8});
  } else {
    abi::setSyscallNr(regs, SYS_pause);
  }
  task.parked = true;  // Before resume(): a parked thread's pause must report its exit.
  setRegs(task.tid, regs);
  resume(task);
}

// A ptrace stop of a parked thread (PTRACE_SYSCALL is in effect for it): the entry of a
// restarted pause(2) goes on; at its exit the answer came (PTRACE_INTERRUPT), or something
// else woke it: a signal, whose delivery stop follows (onParkedSignal), or a stop. Without a
// signal the kernel restarts the pause, and the thread stays parked.
void Tracer::onParkedSyscallStop(Task& task) {
  if (ptrace::atSyscallEntry(task.tid)) {
    resume(task);
    return;
  }
  KJ_IF_MAYBE(outcome, task.parkedOutcome) {
    auto o = kj::mv(*outcome);
    task.parkedOutcome = nullptr;
    finishParked(task, kj::mv(o));
    resume(task);  // The interrupt stop follows; onStop resumes it.
    return;
  }
  resume(task);
}

// A signal is about to be delivered to a parked thread (its pause returned for it). As for a
// blocking call in the kernel: a signal the program ignores does not interrupt the call, nor
// does one a stub forwards to its remote process; an answer that came meanwhile completes the
// call before the signal is handled; anything else ends the call now, before the kernel's
// handle_signal reads the registers (restart or EINTR, as for its own calls).
void Tracer::onParkedSignal(Task& task, int sig) {
  if (forwardToRemote(task, sig)) {
    resume(task);
    return;
  }
  KJ_IF_MAYBE(outcome, task.parkedOutcome) {
    auto o = kj::mv(*outcome);
    task.parkedOutcome = nullptr;
    if (interruptedByOther(*task.call, o)) {
      interruptParked(task, sig);  // This signal interrupts it now.
      return;
    }
    finishParked(task, kj::mv(o));
    resume(task, sig);
    return;
  }
  if (handler::signalIgnored(task.tid, sig)) {
    resume(task, sig);  // Discarded; the pause restarts, the remote call goes on.
    return;
  }
  KJ_IF_MAYBE(node, task.call->interruptNode) {
    AgentLink* target = task.call->target;
    if (target == nullptr || !target->away()) {
      // Two-phase: the agent interrupts the call, whose answer then says whether B's kernel had
      // already completed it (bytes received, a connection accepted: the call completes and the
      // signal is handled after it) or not (-EINTR: as below). The thread stays in this
      // delivery stop until then (settle -> finishInterrupt).
      task.interrupting = true;
      task.interruptSig = sig;
      auto failed = node->interruptRequest().send().ignoreResult().then(
          []() -> kj::Promise<void> { return kj::NEVER_DONE; },
          [](kj::Exception&&) -> kj::Promise<void> { return kj::READY_NOW; });
      task.interruptWait = failed.exclusiveJoin(timer().afterDelay(INTERRUPT_WAIT))
                               .then([this, &task]() { giveUpInterrupt(task); })
                               .eagerlyEvaluate(nullptr);
      return;
    }
  }
  // Cancel the remote call (the agent interrupts its worker) and let the kernel's restart logic
  // decide.
  task.pending = nullptr;
  interruptParked(task, sig);
}

// The two-phase interrupt got nothing (an old agent, a lost connection, no answer in time):
// drop the call as before, with the risk of losing an answer already on its way.
void Tracer::giveUpInterrupt(Task& task) {
  if (!task.interrupting) {
    return;
  }
  task.interrupting = false;
  task.pending = nullptr;
  interruptParked(task, task.interruptSig);
}

// The answer of a call the tracer interrupted (onParkedSignal), at the signal's delivery stop.
void Tracer::finishInterrupt(Task& task, Outcome outcome) {
  task.interrupting = false;
  task.interruptWait = nullptr;
  int sig = task.interruptSig;
  if (outcome.is<Complete>() && outcome.get<Complete>().ret == -EINTR) {
    interruptParked(task, sig);
    return;
  }
  // B's kernel completed the call first: it returns, and the signal is handled after it.
  finishParked(task, kj::mv(outcome));
  resume(task, sig);
}

// A parked call that `sig` interrupted (its remote call is over or dropped): let the kernel's
// restart logic decide: with an SA_RESTART handler or no handler the call starts again (and traps
// again); otherwise the program sees EINTR. A transfer that already moved bytes returns their
// count.
void Tracer::interruptParked(Task& task, int sig) {
  task.parked = false;
  task.parkTimer = nullptr;
  Call& call = *task.call;
  auto regs = call.regs;
  int64_t ret = call.progress > 0         ? call.progress
                : call.restartOnSignal ? -abi::ERESTARTSYS
                                       : -EINTR;
  KJ_IF_MAYBE(fn, call.onInterrupt) {
    ret = (*fn)(regs);
  }
  abi::setResult(regs, ret);
  setRegs(task.tid, regs);
  if (!observers.empty()) {
    report(task.tid, call.nr, call.target, true, ret < -511 && ret > -4096 ? -EINTR : ret,
           call.start, call.args, false, call.why);
  }
  resume(task, sig);
}

// Puts the answer that came for a parked thread's call in its registers, in place of the pause.
void Tracer::finishParked(Task& task, Outcome o) {
  task.parked = false;
  Call& call = *task.call;
  auto regs = call.regs;
  if (interruptedByOther(call, o)) {
    // Not woken by a signal: run the call again (at this exit or interrupt stop).
    task.parked = true;  // restartCall: not at a seccomp stop
    restartCall(task);
    return;
  }
  if (o.is<Complete>()) {
    abi::skipSyscall(regs);  // No restart: the call is over.
    abi::setResult(regs, o.get<Complete>().ret);
    setRegs(task.tid, regs);
    raiseAt(task, o.get<Complete>().signal);
    if (!observers.empty()) {
      report(task.tid, call.nr, call.target, true, o.get<Complete>().ret, call.start, call.args,
             call.readAheadHit, call.why);
    }
  } else {
    // The syscall must run here after all: back to its instruction, to be applied when it
    // traps again (onReplay). A signal handler may run first, as for any restart.
    abi::reissueSyscall(regs, abi::syscallNr(call.regs));
    setRegs(task.tid, regs);
    task.replay = call.regs;
    task.replayOutcome = kj::mv(o);
  }
}

// At a seccomp stop: the restarted syscall of a parked call whose answer runs it here.
bool Tracer::onReplay(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(saved, task.replay) {
    if (!abi::sameSyscall(regs, *saved)) {
      return false;  // A signal handler's own call, before the restart.
    }
    task.replay = nullptr;
    auto outcome = kj::mv(KJ_ASSERT_NONNULL(task.replayOutcome));
    task.replayOutcome = nullptr;
    apply(*task.call, kj::mv(outcome));
    return true;
  }
  return false;
}

// At a signal-delivery stop of a stub (DESIGN D7): signals meant for the program it stands for
// go to the remote process. Returns true when the signal is not to be delivered here.
bool Tracer::forwardToRemote(Task& task, int sig) {
  RemoteChild* child = nullptr;
  KJ_IF_MAYBE(c, remoteChild(task.tgid)) {
    child = c;
  }
  if (child == nullptr || !child->execDone || child->ended) {
    return false;
  }
  siginfo_t si;
  if (!ptrace::signalInfo(task.tid, si)) {
    return false;
  }
  // Sent by someone (kill, a shell) other than the stub itself; or by the terminal (^C, ^Z,
  // hangup, resize). The kernel's own (SIGPIPE of the stub's write, SIGTTIN of its pump) are
  // the stub's.
  bool sent = si.si_code <= 0 && si.si_pid != task.tgid;
  bool terminal = si.si_code == SI_KERNEL &&
                  (sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP || sig == SIGHUP ||
                   sig == SIGWINCH);
  if (!sent && !terminal) {
    return false;
  }
  auto req = child->process.killRequest();
  req.setSignal(sig);
  background.add(req.send().ignoreResult());
  // Stop and continue apply to the stub too, so its parent's job control sees them.
  bool stopOrCont = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU ||
                    sig == SIGCONT;
  return !stopOrCont;
}

void Tracer::addRemoteChild(pid_t tgid, kj::Own<RemoteChild> child) {
  remoteChildren[tgid] = kj::mv(child);
}

kj::Maybe<RemoteChild&> Tracer::remoteChild(pid_t tgid) {
  auto it = remoteChildren.find(tgid);
  if (it == remoteChildren.end()) {
    return nullptr;
  }
  return *it->second;
}

void Tracer::dropRemoteChild(pid_t tgid) { remoteChildren.erase(tgid); }

void Tracer::apply(Call& call, Outcome outcome) {
  Task& task = call.task;
  bool observed = !observers.empty();
  // What an exit-stop continuation needs to report (the Call is gone by then).
  kj::String args = kj::mv(call.args);
  auto reporter = [this, observed, tid = task.tid, nr = call.nr, target = call.target,
                   start = call.start, args = kj::str(args),
                   cached = call.readAheadHit, why = kj::str(call.why)](int64_t result) {
    if (observed) {
      report(tid, nr, target, true, result, start, args, cached, why);
    }
  };
  KJ_SWITCH_ONEOF(outcome) {
    KJ_CASE_ONEOF(complete, Complete) {
      auto regs = call.regs;
      abi::skipSyscall(regs);               // Skip the syscall...
      abi::setResult(regs, complete.ret);  // ...and return this (PITFALLS: set both in one write).
      setRegs(task.tid, regs);
      raiseAt(task, complete.signal);
      if (attachMode_) {
        // At a syscall-entry stop the kernel sets the result after skipping: set it at the exit stop.
        task.atExit = [ret = complete.ret](user_regs_struct& r) { abi::setResult(r, ret); };
        resume(task);
      } else {
        resume(task);
      }
      reporter(complete.ret);
    }
    KJ_CASE_ONEOF(run, RunLocal) {
      resume(task);
      if (observed) {
        KJ_IF_MAYBE(result, run.known) {
          reporter(*result);
        } else {
          report(task.tid, call.nr, call.target, false, 0, call.start, args, false, call.why);
        }
      }
    }
    KJ_CASE_ONEOF(then, RunLocalThen) {
      task.atExit = [after = kj::mv(then.after), reporter = kj::mv(reporter)](
                        user_regs_struct& regs) mutable {
        abi::setResult(regs, after(abi::result(regs)));
        reporter(abi::result(regs));
      };
      resume(task);
    }
    KJ_CASE_ONEOF(rewrite, Rewrite) {
      setRegs(task.tid, rewrite.regs);
      task.atExit = [orig = call.regs, after = kj::mv(rewrite.after),
                     reporter = kj::mv(reporter)](user_regs_struct& regs) mutable {
        int64_t ret = after(abi::result(regs));
        regs = orig;  // The program must find its registers as the syscall left them.
        abi::setResult(regs, ret);
        reporter(ret);
      };
      resume(task);
    }
    KJ_CASE_ONEOF(seq, Sequence) {
      runSequenceStep(task, call.regs, seq.regs, kj::mv(seq.next), kj::mv(reporter));
    }
  }
}

// A signal the kernel raises at the calling thread together with a syscall's answer (SIGPIPE):
// queued while the thread is stopped, so it is delivered as the call returns, as the kernel's.
void Tracer::raiseAt(Task& task, int sig) {
  if (sig == 0 || remoteChild(task.tgid) != nullptr) {
    // An sb-stub pumps its pipes itself and handles EPIPE (the remote reader is gone, its output
    // must still be pumped); a signal at a stub would also be forwarded to its remote program.
    return;
  }
  if (syscall(SYS_tgkill, task.tgid, task.tid, sig) != 0) {
    noteOnce(kj::str("raise", sig), kj::str("cannot raise signal ", sig, " in thread ", task.tid,
                                            ": ", strerror(errno)));
  }
}

// One step of a Sequence: the first at the trapped call's own stop, the next ones at their
// syscall-entry stops. It runs with `step`'s registers; at its exit stop the sequence either
// ends with the program's own registers and answer, or backs the instruction pointer onto the
// syscall instruction for the next step. Until that one has run, the thread is resumed with
// PTRACE_SYSCALL, so its entry stops even when the filter would let it through (an mmap of the
// local copy is a fast call), and onSequenceStep recognises it by its registers.
void Tracer::runSequenceStep(Task& task, const user_regs_struct& orig,
                             const user_regs_struct& step,
                             kj::Function<Sequence::Step(int64_t)> next,
                             kj::Function<void(int64_t)> reporter) {
  setRegs(task.tid, step);
  task.stepRunning = true;
  task.atExit = [&task, orig, next = kj::mv(next),
                 reporter = kj::mv(reporter)](user_regs_struct& regs) mutable {
    task.stepRunning = false;
    auto result = next(abi::result(regs));
    KJ_SWITCH_ONEOF(result) {
      KJ_CASE_ONEOF(done, Sequence::Done) {
        regs = orig;
        abi::setResult(regs, done.ret);
        reporter(done.ret);
      }
      KJ_CASE_ONEOF(more, Sequence::Next) {
        regs = more.regs;
        abi::reissueFrom(regs, orig);
        task.sequence = Task::SequenceState{regs, orig, kj::mv(next), kj::mv(reporter)};
      }
    }
  };
  resume(task);
}

// At a syscall-entry stop (or, in attach mode, the trap): whether it is the next step of the
// thread's Sequence (a signal handler's own calls may come first, and are the program's).
bool Tracer::onSequenceStep(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(state, task.sequence) {
    const auto& s = state->step;
    if (!abi::isReissued(regs, s)) {
      return false;
    }
    auto st = kj::mv(*state);
    task.sequence = nullptr;
    runSequenceStep(task, st.orig, regs, kj::mv(st.next), kj::mv(st.reporter));
    return true;
  }
  return false;
}

void Tracer::report(pid_t tid, int nr, AgentLink* target, bool known, int64_t result,
                    std::chrono::steady_clock::time_point start, kj::StringPtr args,
                    bool cached, kj::StringPtr why) {
  auto elapsed = std::chrono::steady_clock::now() - start;
  CallRecord record{tid, nr, target ? target->name() : kj::StringPtr("local"), target != nullptr,
                    known, result,
                    // A local call's own time is the kernel's, which sbrun does not see.
                    target ? static_cast<uint64_t>(
                                 std::chrono::duration_cast<std::chrono::microseconds>(elapsed)
                                     .count())
                           : 0,
                    args, cached && target != nullptr, why};
  for (auto& o : observers) {
    o->onCall(record);
  }
}

void Tracer::onSyscallExit(Task& task) {
  KJ_IF_MAYBE(fn, task.atExit) {
    user_regs_struct regs;
    if (!getRegs(task.tid, regs)) {
      return;
    }
    auto callback = kj::mv(*fn);
    task.atExit = nullptr;
    callback(regs);
    // The call may just have made an fd remote (an open, dup2 onto stdout): its block must trap
    // before the program can use it.
    guardThenResume(task, regs);
    return;
  }
  resume(task);
}

void Tracer::guardThenResume(Task& task, user_regs_struct& regs) {
  // Attach mode has no filter: every call stops anyway. A Sequence's steps run under
  // PTRACE_SYSCALL, and its last one plans.
  if (!attachMode_ && task.injecting == nullptr && task.sequence == nullptr) {
    std::set<int> needed;
    int limit = filter.fastLimit();
    task.fds->forEach([&](int fd, RemoteFile&) {
      if (fd < limit) {
        needed.insert(fd / SeccompFilter::BLOCK);
      }
    });
    auto plan = guards.plan(task.tgid, task.tid, needed);
    if (plan.inject.size() > 0) {
      injectGuard(task, regs, plan.inject);
    } else if (plan.wait) {
      // Another thread's guard for a block of ours is on its way: held here until it is in
      // effect (replanGuards).
      setRegs(task.tid, regs);
      guards.addWaiter(task.tgid, task.tid);
      return;
    }
  }
  setRegs(task.tid, regs);
  resume(task);
}

// Threads held for a guard that is now in effect (or whose injector is gone): each plans again,
// still in its exit stop with its answer in its registers.
void Tracer::replanGuards(kj::Vector<pid_t> tids) {
  for (pid_t tid : tids) {
    KJ_IF_MAYBE(task, findTask(tid)) {
      user_regs_struct regs;
      if (getRegs(tid, regs)) {
        guardThenResume(*task, regs);
      }
    }
  }
}

// Turns this syscall-exit stop into a seccomp(SET_MODE_FILTER, TSYNC, guard) call: the
// instruction pointer goes back to the syscall instruction, and the program's own registers
// (with its result) come back once the injected call is done (onInjectedSeccomp). Like a
// restarted syscall, a signal handler may run first; the filter bytes are written only at the
// injected call's own seccomp stop, so a handler's stack frame cannot spoil them.
void Tracer::injectGuard(Task& task, user_regs_struct& regs, kj::ArrayPtr<const int> blocks) {
  bool all = blocks.size() == 1 && blocks[0] == FdGuards::ALL;
  task.injectInsns = SeccompFilter::blockGuard(all ? nullptr : blocks);
  task.injecting = regs;
  size_t bytes = task.injectInsns.size() * sizeof(sock_filter);
  uint64_t insns = abi::scratchBelow(regs, bytes + 64);
  task.injectProg = insns - 32;
  // The `syscall` instruction that just returned runs again, as seccomp(2).
  abi::setArg(regs, 0, SECCOMP_SET_MODE_FILTER);
  abi::setArg(regs, 1, SECCOMP_FILTER_FLAG_TSYNC);
  abi::setArg(regs, 2, task.injectProg);
  abi::reissueSyscall(regs, SYS_seccomp);
}

// At a seccomp stop: whether it is the injected guard call (then it is handled here).
bool Tracer::onInjectedSeccomp(Task& task, const user_regs_struct& regs) {
  KJ_IF_MAYBE(saved, task.injecting) {
    if (abi::syscallNr(regs) != SYS_seccomp || abi::pc(regs) != abi::pc(*saved) ||
        abi::arg(regs, 2) != task.injectProg) {
      return false;
    }
    auto program = kj::mv(task.injectInsns);
    uint64_t insns = task.injectProg + 32;
    struct sock_fprog fprog = {static_cast<unsigned short>(program.size()),
                               reinterpret_cast<sock_filter*>(insns)};
    TraceeMemory mem(task.tid);
    bool written = mem.write(insns, program.asBytes()) == 0 &&
                   mem.writeValue(task.injectProg, fprog) == 0;
    auto restore = *saved;
    task.injecting = nullptr;
    if (!written) {
      auto skip = regs;
      abi::skipSyscall(skip);
      abi::setResult(skip, -EFAULT);
      setRegs(task.tid, skip);
    }
    task.atExit = [this, &task, restore](user_regs_struct& r) {
      if (abi::result(r) != 0) {
        noteOnce("guard", kj::str("cannot guard the program's remote fds (seccomp: ",
                                  formatSysResult(abi::result(r)),
                                  "): its calls on them may reach the local placeholder (EBADF)"));
      }
      r = restore;
      // In effect now for every thread of the process (TSYNC), or failed for good: the threads
      // that waited for it go on.
      replanGuards(guards.injected(task.tgid, task.tid));
    };
    resume(task);
    return true;
  }
  return false;
}

kj::Maybe<user_regs_struct> Tracer::placeholderOpen(Call& call, bool cloexec) {
  // The path "/" goes just below the stack's red zone (abi::scratchBelow).
  uint64_t scratch = abi::scratchBelow(call.regs, 16);
  static const kj::byte ROOT[] = {'/', 0};
  if (call.mem().write(scratch, ROOT) < 0) {
    noteOnce("scratch", "cannot write to the program's stack to create a placeholder fd");
    return nullptr;
  }
  return abi::syscallRegs(call.regs, SYS_openat,
                          {static_cast<uint64_t>(static_cast<int64_t>(AT_FDCWD)), scratch,
                           static_cast<uint64_t>(O_PATH | (cloexec ? O_CLOEXEC : 0)), 0});
}

Outcome Tracer::installPlaceholder(Call& call, kj::Own<RemoteFile> file, bool cloexec) {
  user_regs_struct regs;
  KJ_IF_MAYBE(r, placeholderOpen(call, cloexec)) {
    regs = *r;
  } else {
    return Complete{-ENOMEM};
  }
  Task& task = call.task;
  return Rewrite{regs, [&task, file = kj::mv(file)](int64_t fd) mutable {
                   if (fd >= 0) {
                     task.fds->bind(static_cast<int>(fd), kj::mv(file));
                   }
                   // On EMFILE the remote file is dropped, which closes it on the agent.
                   return fd;
                 }};
}

}  // namespace sb
