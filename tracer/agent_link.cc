#include "agent_link.h"
#include "recorder.h"
#include "replayer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

#include <capnp/rpc.h>
#include <fmt/core.h>
#include <kj/debug.h>
#include <kj/vector.h>

#include "fd_stream.h"
#include "preamble.h"

namespace sb {

capnp::ReaderOptions rpcReaderOptions() {
  capnp::ReaderOptions options;
  // 64 MiB of data per message plus headroom, counted in words.
  options.traversalLimitInWords = (128ull << 20) / 8;
  options.nestingLimit = 32;
  return options;
}

// One connection: the transport stream (watched: reconnect.h), the RPC system over it, and its
// heartbeat's bookkeeping.
struct AgentLinkRpc {
  kj::Own<WatchedStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  kj::Maybe<Liveness> liveness;
  AgentLinkRpc(kj::Own<kj::AsyncIoStream> raw, kj::Timer& timer)
      : stream(kj::heap<WatchedStream>(kj::mv(raw), timer)),
        network(*stream, capnp::rpc::twoparty::Side::CLIENT, rpcReaderOptions()),
        rpc(capnp::makeRpcClient(network)) {}
  capnp::Capability::Client bootstrap() {
    capnp::word scratch[4];
    memset(scratch, 0, sizeof(scratch));
    capnp::MallocMessageBuilder message(scratch);
    auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
    vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
    return rpc.bootstrap(vatId);
  }
};

namespace {

// Transports that start a process per connection (ssh, exec:) are retried less often.
kj::Duration backoffCap(const TargetUrl& url) {
  bool command = url.kind == TargetUrl::Kind::SSH || url.kind == TargetUrl::Kind::EXEC;
  return command ? 5 * kj::SECONDS : 1 * kj::SECONDS;
}

// In fail mode each new remote operation makes an attempt of its own, unless the last one ended
// less than this ago: a refused connect costs microseconds, but ssh and exec: start a process
// per attempt, and a program retrying in a tight loop must not turn that into a storm.
kj::Duration minRetry(const TargetUrl& url) {
  switch (url.kind) {
    case TargetUrl::Kind::SSH:
    case TargetUrl::Kind::EXEC:
      return 1 * kj::SECONDS;
    case TargetUrl::Kind::LOCAL:
      return 100 * kj::MILLISECONDS;
    default:
      return 0 * kj::SECONDS;
  }
}

// In fail mode a call waits for a reconnect attempt at most this long after the attempt began,
// then fails with EIO while the attempt goes on in the background. A restarted agent answers
// well within it; a frozen one (connect accepted, handshake never answered) would otherwise
// cost every call the whole CONNECT_TIMEOUT. ssh and exec: start a process and authenticate.
kj::Duration callPatience(const TargetUrl& url) {
  bool command = url.kind == TargetUrl::Kind::SSH || url.kind == TargetUrl::Kind::EXEC;
  return command ? 3 * kj::SECONDS : 1 * kj::SECONDS;
}

// What happens now, for the disconnect message.
kj::String disconnectPolicy(OnDisconnect mode, uint64_t timeoutSecs) {
  switch (mode) {
    case OnDisconnect::WAIT:
      return kj::str("remote calls wait for it, up to ", timeoutSecs,
                     " s (--on-disconnect=wait); reconnecting");
    case OnDisconnect::EXIT:
      return kj::str("ending the program (--on-disconnect=exit); sbrun exits ", EXIT_TARGET_LOST);
    case OnDisconnect::FAIL:
      break;
  }
  return kj::str("remote calls fail with EIO until it is back (--on-disconnect=fail); "
                 "reconnecting");
}

kj::String seconds(kj::Duration d) {
  return kj::str(fmt::format("{:.1f}", static_cast<double>(d / kj::MILLISECONDS) / 1000).c_str());
}

}  // namespace

AgentLink::AgentLink(TargetUrl url, kj::String name, kj::String token, ReconnectOptions reconnect)
    : url_(kj::mv(url)), name_(kj::mv(name)), token_(kj::mv(token)), options_(reconnect),
      backoff_(backoffCap(url_)), tasks_(kj::heap<kj::TaskSet>(*this)) {}

AgentLink::~AgentLink() noexcept(false) {
  // Heartbeats, loops and an attempt in flight first: they use what follows.
  tasks_ = nullptr;
  attempt_ = nullptr;
  back_ = nullptr;
  if (agentPid_ > 0) {
    // Close our end first (in the order the members would go): the child sees EOF and exits.
    welcome_ = nullptr;
    root_ = nullptr;
    session_ = nullptr;
    rpcHolder_ = nullptr;
    // A child that sees EOF normally exits within milliseconds (ssh: a round trip or two).
    endChild(3000);
  }
  // Children of earlier sessions were killed when their session ended: reap what is left.
  for (pid_t pid : formerChildren_) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

void AgentLink::taskFailed(kj::Exception&& e) {
  fmt::print(stderr, "sbrun: internal error on the link to target '{}': {}\n", name_.cStr(),
             e.getDescription().cStr());
}

void AgentLink::note(kj::StringPtr key, kj::StringPtr message) {
  if (notes_.insert(kj::str(key)).second) {
    fmt::print(stderr, "sbrun: {}\n", message.cStr());
  }
}

namespace {

// The ssh program and its own options: $SB_SSH split on blanks (no quoting), default "ssh".
kj::Vector<kj::String> sshCommand() {
  kj::Vector<kj::String> words;
  const char* env = getenv("SB_SSH");
  kj::StringPtr text = env != nullptr ? env : "ssh";
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
      ++i;
    }
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') {
      ++i;
    }
    if (i > start) {
      words.add(kj::heapString(text.begin() + start, i - start));
    }
  }
  if (words.empty()) {
    KJ_FAIL_REQUIRE("SB_SSH is set but empty: unset it (for plain `ssh`) or give an ssh command");
  }
  return words;
}

bool shellSafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("/._-+,:=@%", c) != nullptr;
}

// One word for a POSIX shell: as is when that is safe, else in single quotes.
kj::String shellQuote(kj::StringPtr word) {
  bool safe = word.size() > 0;
  for (char c: word) {
    safe = safe && shellSafe(c);
  }
  if (safe) {
    return kj::str(word);
  }
  kj::Vector<char> quoted;
  quoted.add('\'');
  for (char c: word) {
    if (c == '\'') {
      quoted.addAll(kj::StringPtr("'\\''"));
    } else {
      quoted.add(c);
    }
  }
  quoted.add('\'');
  quoted.add('\0');
  return kj::String(quoted.releaseAsArray());
}

// The agent path as one word for the remote shell (ssh hands it the command as a string), with
// a leading "~/" left outside the quotes so that it expands.
kj::String remoteWord(kj::StringPtr path) {
  if (path.startsWith("~/") && path.size() > 2) {
    return kj::str("~/", shellQuote(path.slice(2)));
  }
  return shellQuote(path);
}

kj::String joinWords(kj::ArrayPtr<const kj::String> words) {
  return kj::strArray(words, " ");
}

kj::String describeStatus(int status) {
  if (status == -1) {
    return kj::str("ended");
  }
  if (WIFEXITED(status)) {
    return kj::str("exited with status ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return kj::str("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                   ")");
  }
  return kj::str("ended (wait status ", status, ")");
}

}  // namespace

kj::StringPtr AgentLink::exitHint(int status) const {
  if (!WIFEXITED(status)) {
    return "";
  }
  int code = WEXITSTATUS(status);
  if (url_.kind == TargetUrl::Kind::SSH && code == 255) {
    return "; ssh could not connect or log in";
  }
  // Zero-deploy: the script's shell found the agent in the cache but could not execute it (126),
  // or B has no `sh` at all (127).
  if (url_.kind == TargetUrl::Kind::SSH && deploying() && code == 126) {
    return "; B could not execute the agent deployed to its ~/.cache: is that on a noexec "
           "mount? Then give ssh sessions on B an XDG_CACHE_HOME where programs may run";
  }
  if (url_.kind == TargetUrl::Kind::SSH && deploying() && code == 127) {
    return "; B's shell did not find `sh` or the deployed agent";
  }
  if (url_.kind == TargetUrl::Kind::SSH && code == 127) {
    return url_.path.size() == 0
               ? "; no sbagent on the remote PATH? give its path: ssh://HOST/PATH/TO/sbagent, "
                 "or let sbrun deploy its own (--deploy=auto, the default)"
               : "; is the agent path right on that machine?";
  }
  if (code == 127) {
    return "; a command was not found";
  }
  if (code == 126) {
    return "; a command could not be executed";
  }
  return "";
}

bool AgentLink::deploying() const {
  if (url_.kind != TargetUrl::Kind::SSH || url_.path.size() > 0) {
    return false;
  }
  KJ_IF_MAYBE(d, deploy_) {
    return d->mode != DeployMode::NEVER;
  }
  return false;
}

kj::StringPtr AgentLink::mismatchHint() const {
  if (deploying()) {
    return " (the agent sbrun deployed is its own and should always match: please report this)";
  }
  if (url_.kind == TargetUrl::Kind::SSH) {
    return ", or let sbrun deploy an agent of its own version to B: ssh://[USER@]HOST without an "
           "agent path, and not --deploy=never";
  }
  return "";
}

kj::Promise<void> AgentLink::untilDeadline() {
  auto now = timer().now();
  if (now >= deadline_) {
    return kj::READY_NOW;
  }
  return timer().afterDelay(deadline_ - now).then([this]() { return untilDeadline(); });
}

kj::StringPtr AgentLink::childWhat() const {
  switch (url_.kind) {
    case TargetUrl::Kind::SSH:
      return "ssh";
    case TargetUrl::Kind::EXEC:
      return "the exec: command";
    default:
      return "the embedded agent";
  }
}

kj::Own<kj::AsyncIoStream> AgentLink::spawnTransport(kj::ArrayPtr<const kj::String> args) {
  int sv[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  kj::Vector<char*> argv;
  for (auto& a : args) {
    argv.add(const_cast<char*>(a.cStr()));
  }
  argv.add(nullptr);
  childCommand_ = url_.kind == TargetUrl::Kind::EXEC ? kj::str("sh -c ", shellQuote(url_.command))
                                                     : joinWords(args);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(sv[0]);
    close(sv[1]);
    KJ_FAIL_SYSCALL("fork", err, "for the transport command");
  }
  if (pid == 0) {
    // If sbrun dies, the command goes too (it would see EOF anyway; ssh then ends the remote
    // agent's session). SIGTERM rather than SIGKILL, so that ssh can say goodbye.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
      _exit(127);
    }
    // A process group of its own: Ctrl-C, Ctrl-\ and Ctrl-Z are for the program, and sbrun can
    // stop the command together with whatever it started (`sh -c` forks its commands).
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);  // sbrun ignores these for itself only.
    signal(SIGQUIT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    // Not in the terminal's foreground: a prompt on /dev/tty fails (EIO) rather than stopping
    // the command until the connect timeout. Use ssh's BatchMode, keys or an agent instead.
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    // ssh makes its non-tty stdio non-blocking. Its stderr is sbrun's, and the program's: on a
    // pipe, give it an open file description of its own so that the flag stays with ssh (a
    // non-blocking stderr would make the program's writes fail with EAGAIN). O_NONBLOCK only
    // so that the open cannot wait for a reader.
    struct stat st;
    if (fstat(2, &st) == 0 && S_ISFIFO(st.st_mode)) {
      int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) {
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        dup2(fd, 2);
        close(fd);
      }
    }
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    // Nothing else of sbrun's (a --control-fd socket, say) may stay open in the command.
    syscall(SYS_close_range, 3, UINT_MAX, 0);
    execvp(argv[0], argv.begin());
    fmt::print(stderr, "sbrun: cannot run {} for target '{}': {}\n", argv[0], name_.cStr(),
               strerror(errno));
    _exit(127);
  }
  close(sv[1]);
  setpgid(pid, pid);  // Also here, so that the group exists whichever of the two runs first.
  agentPid_ = pid;
  ownGroup_ = true;
  return kj::heap<FdStream>(io_->unixEventPort, kj::AutoCloseFd(sv[0]));
}

bool AgentLink::childExited() {
  if (agentPid_ <= 0) {
    return true;
  }
  siginfo_t info;
  info.si_pid = 0;
  // WNOWAIT: an exited child stays a zombie, so its pid (and group id) cannot be reused yet.
  if (waitid(P_PID, agentPid_, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    if (errno == ECHILD) {
      agentPid_ = -1;  // Reaped elsewhere: agentExited() saw it, or nobody knows.
      return true;
    }
    return false;
  }
  return info.si_pid == agentPid_;
}

void AgentLink::signalChild(int sig) {
  if (agentPid_ > 0) {
    kill(ownGroup_ ? -agentPid_ : agentPid_, sig);
  }
}

bool AgentLink::reapChild(int& status) {
  if (!childExited()) {
    return false;
  }
  if (agentPid_ > 0) {
    // What it started and left behind in its group goes with it (a shell's command, say).
    if (ownGroup_) {
      kill(-agentPid_, SIGTERM);
    }
    if (waitpid(agentPid_, &childStatus_, 0) < 0) {
      childStatus_ = -1;
    }
    agentPid_ = -1;
  }
  status = childStatus_;
  return true;
}

kj::Promise<kj::Maybe<int>> AgentLink::childOutcome(kj::Timer& timer, kj::Duration patience) {
  return pollChild(timer, timer.now() + patience);
}

kj::Promise<kj::Maybe<int>> AgentLink::pollChild(kj::Timer& timer, kj::TimePoint deadline) {
  int status;
  if (reapChild(status)) {
    return kj::Maybe<int>(status);
  }
  if (timer.now() >= deadline) {
    endChild(0);  // SIGTERM, then SIGKILL; the status is of no interest then.
    return kj::Maybe<int>(nullptr);
  }
  return timer.afterDelay(10 * kj::MILLISECONDS).then([this, &timer, deadline]() {
    return pollChild(timer, deadline);
  });
}

void AgentLink::endChild(int graceMs) noexcept {
  int status;
  auto waitUpTo = [&](int ms) {
    for (int waited = 0; waited < ms; waited += 10) {
      if (reapChild(status)) {
        return true;
      }
      usleep(10000);
    }
    return reapChild(status);
  };
  if (waitUpTo(graceMs)) {
    return;
  }
  signalChild(SIGTERM);
  if (waitUpTo(2000)) {
    return;
  }
  signalChild(SIGKILL);
  if (agentPid_ > 0 && waitpid(agentPid_, &childStatus_, 0) < 0) {
    childStatus_ = -1;
  }
  agentPid_ = -1;
}

kj::Own<kj::AsyncIoStream> AgentLink::spawnLocal() {
  int sv[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  kj::Vector<kj::String> args;
  args.add(kj::str(agentPath_));
  args.add(kj::str("--stdio"));
  if (url_.root.size() > 0) {
    args.add(kj::str("--root"));
    args.add(kj::str(url_.root));
  }
  if (url_.hostname.size() > 0) {
    args.add(kj::str("--hostname"));
    args.add(kj::str(url_.hostname));
  }
  kj::Vector<char*> argv;
  for (auto& a : args) {
    argv.add(const_cast<char*>(a.cStr()));
  }
  argv.add(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  KJ_SYSCALL(pid, "fork for the embedded agent");
  if (pid == 0) {
    // The agent dies with sbrun; it gets a clean signal state (sbrun blocks SIGCHLD).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_IGN);  // Ctrl-C is for the program; sbrun ends the agent.
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    syscall(SYS_close_range, 3, UINT_MAX, 0);  // Nothing else of sbrun's stays open in it.
    execv(argv[0], argv.begin());
    fmt::print(stderr, "sbrun: cannot run the embedded agent {}: {}\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(sv[1]);
  agentPid_ = pid;
  childCommand_ = joinWords(args);
  return kj::heap<FdStream>(io_->unixEventPort, kj::AutoCloseFd(sv[0]));
}

kj::Promise<kj::Own<kj::AsyncIoStream>> AgentLink::openStream() {
  switch (url_.kind) {
    case TargetUrl::Kind::LOCAL:
      return spawnLocal();
    case TargetUrl::Kind::SSH: {
      // ssh [SB_SSH options] -T -o BatchMode=yes [-p PORT] [-l USER] HOST -- AGENT --stdio.
      // Options in SB_SSH come first, so they win where ssh takes the first value it is given
      // (-o BatchMode=no to allow a password prompt, say).
      auto argv = sshCommand();
      argv.add(kj::str("-T"));
      argv.add(kj::str("-o"));
      argv.add(kj::str("BatchMode=yes"));
      if (url_.port != 0) {
        argv.add(kj::str("-p"));
        argv.add(kj::str(url_.port));
      }
      if (url_.user.size() > 0) {
        argv.add(kj::str("-l"));
        argv.add(kj::str(url_.user));
      }
      argv.add(kj::str(url_.host));
      argv.add(kj::str("--"));
      if (!deploying()) {
        argv.add(url_.path.size() > 0 ? remoteWord(url_.path) : kj::str("sbagent"));
        argv.add(kj::str("--stdio"));
        return spawnTransport(argv);
      }
      // Zero-deploy (tracer/deploy.h): the ssh command is the script that asks B its machine,
      // uploads the agent if needed and execs it; then the same stream is the agent's.
      argv.add(deployCommand());
      auto stream = spawnTransport(argv);
      argv.removeLast();
      childCommand_ = kj::str(joinWords(argv), " <tracer/deploy.sh, then ~/.cache/splitbrain/",
                              deployVersion(), "/sbagent-ARCH --stdio>");
      auto& opts = KJ_ASSERT_NONNULL(deploy_);
      DeployHooks hooks{
          [this](kj::StringPtr message) {
            KJ_IF_MAYBE(d, deploy_) {
              if (d->verbose) {
                fmt::print(stderr, "sbrun: {}\n", message.cStr());
              }
            }
          },
          [this](uint64_t) { deadline_ = timer().now() + CONNECT_TIMEOUT + UPLOAD_TIMEOUT; }};
      auto done = deployAgent(*stream, name_, opts, kj::mv(hooks));
      return done.then([stream = kj::mv(stream)]() mutable { return kj::mv(stream); });
    }
    case TargetUrl::Kind::EXEC: {
      kj::String argv[] = {kj::str("/bin/sh"), kj::str("-c"), kj::str(url_.command)};
      return spawnTransport(kj::arrayPtr(argv, 3));
    }
    case TargetUrl::Kind::UNIX:
    case TargetUrl::Kind::TCP: {
      auto address = url_.kind == TargetUrl::Kind::UNIX
                         ? kj::str("unix:", url_.path)
                         : kj::str(url_.host.findFirst(':') != nullptr ? "[" : "", url_.host,
                                   url_.host.findFirst(':') != nullptr ? "]" : "", ":",
                                   url_.port);
      // An address that swallows SYNs must not hang sbrun: connect() bounds the whole of it.
      // A listening agent admits a client before any RPC: TLS (tcp:// with --tls-ca), then
      // the token preamble (src/preamble.h).
      kj::Maybe<kj::TlsContext&> tls = url_.kind == TargetUrl::Kind::TCP ? tls_ : nullptr;
      return io_->provider->getNetwork()
          .parseAddress(address)
          .then([](kj::Own<kj::NetworkAddress> addr) {
            return addr->connect().attach(kj::mv(addr));
          })
          .then([this, tls](kj::Own<kj::AsyncIoStream> stream) mutable {
            stream = asFdStream(io_->unixEventPort, kj::mv(stream));
            tuneTcp(*stream, options_.heartbeat);  // On the socket itself, before any TLS.
            return admitAsClient(kj::mv(stream), tls, url_.host, token_.asBytes());
          });
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<void> AgentLink::connect(kj::AsyncIoContext& io, kj::StringPtr agentPath) {
  io_ = &io;
  agentPath_ = kj::str(agentPath);
  return establish().then([this]() { started(); });
}

kj::Promise<void> AgentLink::handshake(proto::Agent::Client agent) {
  auto req = agent.handshakeRequest();
  auto hello = req.initHello();
  hello.setProtocolVersion(proto::PROTOCOL_VERSION);
  hello.setClientArch("x86_64");
  hello.setToken(token_.asBytes());
  hello.setClientName(kj::str("sbrun pid ", getpid()));
  // The agent may then end this session if it hears nothing for much longer
  // (sbagent --client-timeout). Not for an embedded agent: it is our own child, goes
  // with us, and must keep the session while we are stopped (^Z).
  hello.setHeartbeatMillis(url_.kind == TargetUrl::Kind::LOCAL
                               ? 0
                               : uint32_t(options_.heartbeat / kj::MILLISECONDS));
  return req.send().then([this](capnp::Response<proto::Agent::HandshakeResults> r) {
    auto w = r.getWelcome();
    if (w.getProtocolVersion() != proto::PROTOCOL_VERSION) {
      KJ_FAIL_REQUIRE(kj::str("agent speaks protocol ", w.getProtocolVersion(),
                              ", sbrun speaks ", proto::PROTOCOL_VERSION,
                              ": install matching versions of sbrun and sbagent",
                              mismatchHint()));
    }
    welcome_ = kj::heap<capnp::MallocMessageBuilder>();
    welcome_->setRoot(w);
    session_ = r.getSession();
    return KJ_ASSERT_NONNULL(session_).rootRequest().send().then(
        [this](capnp::Response<proto::Session::RootResults> rr) { root_ = rr.getDir(); });
  });
}

kj::Promise<void> AgentLink::establish() {
  auto& timer = this->timer();
  timedOut_ = false;
  deadline_ = timer.now() + CONNECT_TIMEOUT;
  auto limit = untilDeadline().then([this]() -> kj::Promise<void> {
    timedOut_ = true;
    return KJ_EXCEPTION(FAILED, "timed out");
  });
  kj::Promise<void> connected = nullptr;
  KJ_IF_MAYBE(replayer, replayer_) {
    // No connection: the recording answers (replayer.h).
    connected = kj::evalNow([&]() {
      return handshake(replayer->bootstrap(recordIndex_, uint32_t(generation_ + 1))
                           .castAs<proto::Agent>());
    });
  } else {
    connected = kj::evalNow([&]() { return openStream(); })
                    .then([this, &timer](kj::Own<kj::AsyncIoStream> stream) {
                      auto rpc = kj::heap<AgentLinkRpc>(kj::mv(stream), timer);
                      capnp::Capability::Client agent = rpc->bootstrap();
                      KJ_IF_MAYBE(recorder, recorder_) {
                        agent = recorder->wrap(kj::mv(agent), recordIndex_,
                                               uint32_t(generation_ + 1));
                      }
                      rpcHolder_ = kj::mv(rpc);
                      return handshake(agent.castAs<proto::Agent>());
                    });
  }
  return connected
      .exclusiveJoin(kj::mv(limit))
      .catch_([this, &timer](kj::Exception&& e) -> kj::Promise<void> {
        auto fail = [this](kj::StringPtr why) {
          return KJ_EXCEPTION(FAILED, kj::str("cannot connect to target '", name_, "' (",
                                              url_.text, "): ", why));
        };
        kj::String seconds = kj::str(CONNECT_TIMEOUT / kj::SECONDS, " s");
        if (agentPid_ <= 0) {
          return fail(timedOut_ ? kj::str("no answer within ", seconds)
                                : kj::str(e.getDescription()));
        }
        // A child of ours (embedded agent, ssh, exec command).
        kj::String who = url_.kind == TargetUrl::Kind::LOCAL
                             ? kj::str("the embedded agent (", childCommand_, ")")
                             : kj::str("`", childCommand_, "`");
        if (timedOut_) {
          // It never answered (ssh waiting on a dead host, a command that is no agent).
          endChild(0);
          return fail(kj::str("no handshake within ", seconds, " from ", who,
                              " (stopped it; does it run `sbagent --stdio`?)"));
        }
        if (e.getType() != kj::Exception::Type::DISCONNECTED) {
          // A refusal (bad token, a zero-deploy that cannot go on): the destructor reaps it.
          // An older or newer agent refuses our protocol version in words of its own; say what
          // to do about it here.
          kj::StringPtr desc = e.getDescription();
          if (strstr(desc.cStr(), "protocol version mismatch") != nullptr) {
            return fail(kj::str(desc, mismatchHint()));
          }
          return fail(desc);
        }
        // It went away, and how it ended is the news: ssh's 255, a shell's 127.
        // Bytes that are not Cap'n Proto (a banner, a shell rc file's echo) also end the
        // connection; that is the news then, not how the command ended afterwards.
        kj::StringPtr desc = e.getDescription();
        bool peerGone = desc.startsWith("Peer disconnected") ||
                        strstr(desc.cStr(), "Connection reset") != nullptr ||
                        strstr(desc.cStr(), "Broken pipe") != nullptr;
        if (!peerGone) {
          return fail(kj::str(who, " sent something that is not the agent's protocol (", desc,
                              "): does anything print on its stdout before `sbagent --stdio` "
                              "starts, such as a shell rc file or a banner?"));
        }
        return childOutcome(timer, 2 * kj::SECONDS)
            .then([this, fail, who = kj::mv(who)](kj::Maybe<int> status) -> kj::Promise<void> {
              KJ_IF_MAYBE(s, status) {
                return fail(kj::str(who, " ", describeStatus(*s), " before the handshake (",
                                    url_.kind == TargetUrl::Kind::LOCAL ? "its" : childWhat(),
                                    url_.kind == TargetUrl::Kind::LOCAL ? "" : "'s",
                                    " messages, if any, are above", exitHint(*s), ")"));
              }
              return fail(kj::str(who, " closed the connection before the handshake "
                                       "(stopped it)"));
            });
      });
}

int64_t AgentLink::failure(const kj::Exception& e) {
  if (isReconnectTimeout(e)) {
    return -ETIMEDOUT;
  }
  if (isConnectionLoss(e)) {
    return -EIO;  // The disconnect was reported when it happened (dropped()).
  }
  fmt::print(stderr, "sbrun: remote call to '{}' failed: {}\n", name_.cStr(),
             e.getDescription().cStr());
  return -EIO;
}

bool AgentLink::reapedChild(pid_t pid, int status) {
  if (pid > 0 && pid == agentPid_) {
    agentExited(status);
    return true;
  }
  return formerChildren_.erase(pid) > 0;
}

void AgentLink::agentExited(int status) {
  agentPid_ = -1;
  childStatus_ = status;
  if (up_ && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    fmt::print(stderr, "sbrun: {} for '{}' exited ({} {})\n", childWhat().cStr(), name_.cStr(),
               WIFEXITED(status) ? "status" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
}

// ---------------------------------------------------------------------------------------------
// Losing and regaining the target (the state machine at the top of agent_link.h)

proto::Session::Client AgentLink::session() {
  if (up_) {
    return KJ_ASSERT_NONNULL(session_);
  }
  return ready().then([this]() { return session(); });
}

proto::Node::Client AgentLink::root() {
  if (up_) {
    return KJ_ASSERT_NONNULL(root_);
  }
  return ready().then([this]() { return root(); });
}

kj::Promise<void> AgentLink::ready() {
  if (up_) {
    return kj::READY_NOW;
  }
  auto now = timer().now();
  auto deadline = downSince_ + options_.timeout;
  bool expired = now >= deadline;
  auto timeout = [this, deadline]() {
    return timer().atTime(deadline).then([this]() -> kj::Promise<void> {
      return awayError(name_, true);
    });
  };
  if (options_.mode == OnDisconnect::WAIT && !expired) {
    // The background attempts bring it back; the call waits for that, up to the timeout.
    return KJ_ASSERT_NONNULL(back_).addBranch().exclusiveJoin(timeout());
  }
  // Fail mode (or an outage past the timeout): this call joins the attempt in flight, or makes
  // one unless one has just failed (minRetry); either way it waits only while the attempt is
  // young (callPatience), so a target that accepts connections but never answers costs a call
  // at most that, and most calls nothing.
  if (attempting_) {
    if (now >= attemptStarted_ + callPatience(url_)) {
      return awayError(name_, expired);
    }
  } else if (now - lastAttemptEnd_ < minRetry(url_)) {
    return awayError(name_, expired);
  }
  auto tried = attempt().then([this, expired](bool ok) -> kj::Promise<void> {
    if (ok) {
      return kj::READY_NOW;
    }
    return awayError(name_, expired);
  });
  auto patience = timer().atTime(attemptStarted_ + callPatience(url_))
                      .then([this, expired]() -> kj::Promise<void> {
                        return awayError(name_, expired);
                      });
  auto bounded = tried.exclusiveJoin(kj::mv(patience));
  return expired ? kj::mv(bounded) : bounded.exclusiveJoin(timeout());
}

void AgentLink::started() {
  up_ = true;
  uint64_t gen = ++generation_;
  // A replay (replayer.h) has no connection to watch.
  if (rpcHolder_.get() != nullptr) {
    auto& conn = *rpcHolder_;
    // The end of the stream is the first sign of a peer that closed or died: before the RPC
    // system fails the calls in flight, so no new call is sent on the dead connection meanwhile.
    conn.stream->onEnd([this, gen]() { dropped(gen, "the connection was closed"); });
    // The RPC system may also end the connection itself (a protocol error).
    tasks_->add(conn.network.onDisconnect().then(
        [this, gen]() { dropped(gen, "the connection ended"); },
        [](kj::Exception&&) {
          // The network object was destroyed unfulfilled: that happens only to a connection
          // retired after its session was dropped (retire()), so there is nothing left to do.
        }));
    if (options_.heartbeat > 0 * kj::SECONDS) {
      conn.liveness = Liveness(options_.heartbeat, timer().now());
      tasks_->add(heartbeat(gen));
    }
  }
  if (gen > 1) {
    fmt::print(stderr,
               "sbrun: reconnected to target '{}' ({}) after {} s; fds opened before are stale "
               "(EIO until closed)\n",
               name_.cStr(), url_.text.cStr(), seconds(timer().now() - downSince_).cStr());
    for (auto& hook : eventHooks_) {
      hook(*this, "reconnected");
    }
    back_ = nullptr;
    backFulfiller_->fulfill();  // Calls waiting for the target go on, on the new session.
    backFulfiller_ = nullptr;
  }
}

void AgentLink::dropped(uint64_t gen, kj::StringPtr why) {
  if (gen != generation_ || !up_) {
    return;  // Reported already, or an older session.
  }
  up_ = false;
  downSince_ = timer().now();
  ++outages_;
  auto paf = kj::newPromiseAndFulfiller<void>();
  back_ = paf.promise.fork();
  backFulfiller_ = kj::mv(paf.fulfiller);
  auto secs = options_.timeout / kj::SECONDS;
  fmt::print(stderr, "sbrun: lost the connection to target '{}' ({}): {}; {}\n",
             name_.cStr(), url_.text.cStr(), why.cStr(),
             disconnectPolicy(options_.mode, secs).cStr());
  for (auto& hook : eventHooks_) {
    hook(*this, "disconnected");
  }
  retire();
  backoff_.reset();
  tasks_->add(reconnectLoop(++loopId_));
}

void AgentLink::retire() {
  session_ = nullptr;
  root_ = nullptr;
  if (agentPid_ > 0) {
    // Its session is over whatever it does now (a frozen agent, ssh to a host that went
    // silent): it goes, with what it started; the tracer's waitpid loop reaps it.
    signalChild(SIGKILL);
    formerChildren_.insert(agentPid_);
    agentPid_ = -1;
  }
  if (rpcHolder_.get() != nullptr) {
    // The RPC system is destroyed once it has let go of the connection (it fails the calls in
    // flight first), and then only from the event loop, never from inside one of its own
    // callbacks; 2 s bound that wait (a connection that never got going).
    auto old = kj::mv(rpcHolder_);
    auto done = old->network.onDisconnect();
    tasks_->add(done.exclusiveJoin(timer().afterDelay(2 * kj::SECONDS))
                    .then([]() { return kj::evalLater([]() {}); })
                    .attach(kj::mv(old)));
  }
}

kj::Promise<bool> AgentLink::attempt() {
  if (!attempting_) {
    attempting_ = true;
    attemptStarted_ = timer().now();
    auto p = establish().then(
        [this]() {
          attempting_ = false;
          lastAttemptEnd_ = timer().now();
          started();
          return true;
        },
        [this](kj::Exception&& e) {
          attempting_ = false;
          lastAttemptEnd_ = timer().now();
          lastError_ = kj::str(e.getDescription());
          retire();  // Whatever the attempt left half made.
          return false;
        });
    attempt_ = p.fork();
  }
  return KJ_ASSERT_NONNULL(attempt_).addBranch();
}

kj::Promise<void> AgentLink::reconnectLoop(uint64_t id) {
  return timer().afterDelay(backoff_.next()).then([this, id]() -> kj::Promise<void> {
    if (up_ || id != loopId_) {
      return kj::READY_NOW;
    }
    return attempt().then([this, id](bool ok) -> kj::Promise<void> {
      if (ok || up_ || id != loopId_) {
        return kj::READY_NOW;
      }
      return reconnectLoop(id);
    });
  });
}

kj::Promise<void> AgentLink::heartbeat(uint64_t gen) {
  auto& live = KJ_ASSERT_NONNULL(rpcHolder_->liveness);
  return timer().afterDelay(live.tick()).then([this, gen]() -> kj::Promise<void> {
    if (gen != generation_ || !up_) {
      return kj::READY_NOW;  // That session is over.
    }
    auto& conn = *rpcHolder_;
    auto& live = KJ_ASSERT_NONNULL(conn.liveness);
    auto now = timer().now();
    live.sign(conn.stream->lastRead());
    switch (live.onTick(now)) {
      case Liveness::Verdict::PING: {
        // uname: the cheapest call there is (no file system, no worker).
        // Not in a --record recording: a replay has no link to keep alive.
        proto::Session::Client session = KJ_ASSERT_NONNULL(session_);
        KJ_IF_MAYBE(recorder, recorder_) {
          session = recorder->unwrap(session).castAs<proto::Session>();
        }
        auto ping = session.unameRequest().send();
        tasks_->add(ping.then([this, gen](auto&&) {
                          if (gen == generation_ && up_) {
                            KJ_ASSERT_NONNULL(rpcHolder_->liveness).pingAnswered(timer().now());
                          }
                        },
                        [](kj::Exception&&) {
                          // The connection went: the stream's end says so.
                        }));
        break;
      }
      case Liveness::Verdict::DEAD: {
        auto silent = seconds(live.silentFor(now));
        // Make it an ordinary end of stream: calls in flight fail, the RPC system lets go.
        conn.stream->cut();
        dropped(gen, kj::str("no answer for ", silent, " s (--heartbeat ",
                             seconds(options_.heartbeat), " s)"));
        return kj::READY_NOW;
      }
      case Liveness::Verdict::WAIT:
        break;
    }
    return heartbeat(gen);
  });
}

}  // namespace sb
