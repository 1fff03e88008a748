// sbagent: serves splitbrain sessions (DESIGN D8). main builds every component explicitly (no
// singletons): confinement, executor, the listener; then serves --stdio or --listen.

#include <fcntl.h>
#include <signal.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/main.h>

#include "token_file.h"
#include "confinement.h"
#include "executor.h"
#include "identity.h"
#include "landlock.h"
#include "lease_breaks.h"
#include "resource_limits.h"
#include "listener.h"
#include "log.h"
#include "peer_check.h"
#include "process.h"
#include "session.h"
#include "session_isolation.h"
#include "tls_setup.h"

namespace sb {
namespace {

// The version and the protocol it speaks (the schema's protocolVersion).
const kj::String VERSION = kj::str("sbagent ", SB_VERSION, " (protocol ", proto::PROTOCOL_VERSION, ")");

// Big messages (reads of up to 64 MiB) are allocated and freed once per call. Left to its
// defaults, glibc maps each one afresh or trims it back to the kernel, and touching fresh pages
// costs more than the copy itself on this class of machine (STYLE §4.9: ~15 µs per 4 KiB page,
// 2 s of page faults per GiB read). Keeping freed memory for reuse bounds the footprint by the
// peak instead.
void keepMessageMemory() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

// Sessions hold fds for their clients (up to --max-fds each): the soft limit (often 1024) would
// make the agent itself run out long before that. The hard limit is what the administrator
// allows.
void raiseFdLimit(const Log& log) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) {
      log.warn("cannot raise the open-file limit to {}: {}", limit.rlim_max, strerror(errno));
    }
  }
}

// A positive count for --max-* options.
kj::MainBuilder::Validity parseCount(kj::StringPtr option, kj::StringPtr text, size_t& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = strtoull(text.cStr(), &end, 10);
  if (text.size() == 0 || *end != '\0' || errno != 0 || value == 0 || value > (1u << 30) ||
      text[0] == '-') {
    return kj::str(option, " ", text, ": expected a positive number");
  }
  out = size_t(value);
  return true;
}

class AgentMain {
public:
  explicit AgentMain(kj::ProcessContext& context): context(context) {}

  kj::MainFunc getMain() {
    return kj::MainBuilder(context, VERSION,
        "Serves splitbrain sessions: performs, on this machine, the file operations of programs "
        "that sbrun runs on another machine. Give exactly one of --stdio or --listen.",
        "Each connection starts with a handshake (protocol version, optional token) and gets "
        "its own session; everything a session opened is closed when its connection ends. "
        "Messages go to stderr only. Exit status: 0 when a --stdio peer disconnects or a "
        "listening agent gets SIGTERM/SIGINT, 1 on bad options or when the agent cannot start.")
        .addOption({"stdio"}, KJ_BIND_METHOD(*this, setStdio),
            "Serve one session over stdin/stdout (for ssh, or sbrun spawning the agent on a "
            "socketpair). Exit 0 when the peer disconnects.")
        .addOptionWithArg({"listen"}, KJ_BIND_METHOD(*this, setListen), "<address>",
            "Accept any number of concurrent clients on <address>: unix:PATH (a stale socket "
            "at PATH is replaced, a live one is an error) or tcp://HOST:PORT (tcp://[::1]:PORT "
            "for IPv6; port 0 picks a free port, printed on stderr). A HOST that is not "
            "loopback is refused unless TLS is on (--tls-cert, --tls-key, --tls-ca). "
            "systemd: the one listening socket a .socket unit passes (LISTEN_FDS; "
            "sbagent.socket sets its path and mode).")
        .addOptionWithArg({"root"}, KJ_BIND_METHOD(*this, setRoot), "<dir>",
            "Confine every path to <dir>: `..`, absolute paths and symlinks resolve inside it "
            "and magic links (/proc/PID/root ...) are refused (openat2 RESOLVE_IN_ROOT). "
            "A root agent also refuses device nodes (see --allow-devices) and abstract unix "
            "socket addresses (EPERM), and runs each session's programs chrooted, in a pid "
            "namespace of the session's own, with a cut capability set (see "
            "--spawn-privileged). Default: the whole file system.")
        .addOption({"read-only"}, KJ_BIND_METHOD(*this, setReadOnly),
            "Refuse every modifying operation with EROFS: opening for writing, creating or "
            "truncating, mkdir, mknod, unlink, rename, link, symlink, chmod, chown, utimens, "
            "truncate, fallocate, xattr changes, write, copy.")
        .addOptionWithArg({"token-file"}, KJ_BIND_METHOD(*this, setTokenFile), "<file>",
            "Require every handshake to present exactly the content of <file> (one trailing "
            "newline is ignored); a mismatch is refused and logged as \"bad token\". On a "
            "--listen socket the token is checked before any Cap'n Proto message is read.")
        .addOptionWithArg({"tls-cert"}, KJ_BIND_METHOD(*this, setTlsCert), "<file>",
            "TLS for tcp:// (with --tls-key and --tls-ca): the agent's certificate (PEM, leaf "
            "first). It must name the host clients write in their URL.")
        .addOptionWithArg({"tls-key"}, KJ_BIND_METHOD(*this, setTlsKey), "<file>",
            "The private key of --tls-cert (PEM, unencrypted; chmod 600).")
        .addOptionWithArg({"tls-ca"}, KJ_BIND_METHOD(*this, setTlsCa), "<file>",
            "The CA (PEM; several allowed) whose client certificates are accepted: every client "
            "must present a certificate it signed, verified in the TLS handshake before "
            "anything else is read. The system trust store is never used.")
        .addOptionWithArg({"max-sessions"}, KJ_BIND_METHOD(*this, setMaxSessions), "<n>",
            "Serve at most <n> sessions at once (default 64); a client past that is refused with "
            "a message it prints.")
        .addOptionWithArg({"max-fds"}, KJ_BIND_METHOD(*this, setMaxFds), "<n>",
            "At most <n> open files, directories and pipes per session (default: no cap but "
            "the agent's own open-file limit); past that, opens answer EMFILE.")
        .addOptionWithArg({"max-procs"}, KJ_BIND_METHOD(*this, setMaxProcs), "<n>",
            "At most <n> running programs per session (default 256); past that, running "
            "another answers EAGAIN. Where the agent can make a pids cgroup per session (it "
            "says at start), every process and thread the session's programs make counts, and "
            "fork on B fails with EAGAIN past <n>.")
        .addOptionWithArg({"max-memory"}, KJ_BIND_METHOD(*this, setMaxMemory), "<bytes>",
            "Limit each session's programs together to <bytes> of memory (suffix K, M or G), "
            "through the session's cgroup v2 memory.max; where the agent cannot make cgroup v2 "
            "cgroups with the memory controller it says so at start and the limit is not "
            "enforced.")
        .addOptionWithArg({"max-pending-per-peer"}, KJ_BIND_METHOD(*this, setMaxPendingPerPeer),
            "<n>",
            "At most <n> connections of one peer (a uid on a unix socket, an address on TCP) "
            "that have not yet completed their handshake (default 8). Past that, the peer's "
            "oldest such connection is closed if it has waited 1 s, else the new one is. "
            "This is apart from --max-sessions, so strangers that never finish a handshake "
            "cannot take the sessions' places.")
        .addOptionWithArg({"socket-mode"}, KJ_BIND_METHOD(*this, setSocketMode), "<octal>",
            "The mode of the unix socket file (default 0600: only the agent's own uid can "
            "connect; 0660 with --socket-group lets a group in). The socket is created 0600 "
            "and then changed, never wider for a moment.")
        .addOptionWithArg({"socket-group"}, KJ_BIND_METHOD(*this, setSocketGroup), "<group>",
            "Give the unix socket file to <group> (a name or a number); use with --socket-mode "
            "0660 and --allow-gid.")
        .addOptionWithArg({"allow-uid"}, KJ_BIND_METHOD(*this, setAllowUid), "<user>",
            "Also let <user> (a name or a number) connect to the unix socket; may be repeated. "
            "By default only the agent's own uid and root may: every connection is checked "
            "with SO_PEERCRED before anything is read, whatever the socket file's mode allows.")
        .addOptionWithArg({"allow-gid"}, KJ_BIND_METHOD(*this, setAllowGid), "<group>",
            "Also let members of <group> (primary or supplementary; a name or a number) connect "
            "to the unix socket; may be repeated.")
        .addOption({"allow-devices"}, KJ_BIND_METHOD(*this, setAllowDevices),
            "Under --root, allow mknod of character and block devices (refused with EPERM by "
            "default: a device node inside the root opens the machine's device), and keep "
            "CAP_MKNOD for programs run on B.")
        .addOption({"spawn-privileged"}, KJ_BIND_METHOD(*this, setSpawnPrivileged),
            "For a root agent under --root: let the programs run on B keep every capability "
            "and gain privileges through setuid programs (by default their capability bounding "
            "set is cut to file ownership, DAC override, kill, setuid/setgid and low ports, "
            "no_new_privs is set, and they may use only abstract unix sockets they made "
            "themselves). They still run in their session's pid namespace and cgroup.")
        .addOptionWithArg({"hostname"}, KJ_BIND_METHOD(*this, setHostname), "<name>",
            "Run in new UTS and mount namespaces with hostname <name> (a user namespace first "
            "when not root), so clients see a visibly different machine. Fails clearly when "
            "namespaces are not available.")
        .addOptionWithArg({"handshake-timeout"}, KJ_BIND_METHOD(*this, setHandshakeTimeout),
            "<seconds>",
            "Drop a connection that has not completed its handshake (TLS, token, protocol) "
            "within <seconds> (default 10): a silent or refused peer cannot hold a connection "
            "open.")
        .addOptionWithArg({"client-timeout"}, KJ_BIND_METHOD(*this, setClientTimeout),
            "<seconds>",
            "End a session when nothing has arrived from its client for <seconds> (default 600; "
            "at least twice the heartbeat the client announced), as if it had hung up: its "
            "files are closed and its programs killed. Only clients that send heartbeats "
            "(sbrun --heartbeat, on by default) are watched; TCP connections also get "
            "keepalive and TCP_USER_TIMEOUT within <seconds>. 0 turns both off.")
        .addOptionWithArg({"ready-fd"}, KJ_BIND_METHOD(*this, setReadyFd), "<n>",
            "Once listening, write \"ready ADDRESS\\n\" (with the real TCP port) to file "
            "descriptor <n> and close it, so a script or test can wait for the agent.")
        // kj::MainBuilder owns --verbose (it also turns on KJ's informational logs); -v is ours
        // and run() treats both the same.
        .addOption({'v'}, KJ_BIND_METHOD(*this, setVerbose),
            "Same as --verbose: log connections, sessions, refused handshakes and disconnects "
            "on stderr.")
        .callAfterParsing(KJ_BIND_METHOD(*this, run))
        .build();
  }

private:
  kj::ProcessContext& context;
  bool stdio = false;
  kj::Maybe<ListenAddress> listenAddress;
  kj::Maybe<kj::String> rootDir;
  bool readOnly = false;
  kj::Maybe<kj::String> token;
  kj::Maybe<kj::String> hostname;
  kj::Maybe<int> readyFd;
  bool verbose = false;
  kj::Duration handshakeTimeout = 10 * kj::SECONDS;
  kj::Duration clientTimeout = 600 * kj::SECONDS;
  TlsFiles tlsFiles;
  Limits limits;
  PeerPolicy peers;
  mode_t socketMode = 0600;
  bool socketModeGiven = false;
  kj::Maybe<gid_t> socketGroup;
  bool allowDevices = false;
  bool spawnPrivileged = false;
  uint64_t maxMemory = 0;

  kj::MainBuilder::Validity setMaxMemory(kj::StringPtr text) {
    char* end = nullptr;
    errno = 0;
    unsigned long long value = strtoull(text.cStr(), &end, 10);
    unsigned long long unit = 1;
    if (end != nullptr && *end != '\0' && end[1] == '\0') {
      switch (*end) {
        case 'K': case 'k': unit = 1ull << 10; ++end; break;
        case 'M': case 'm': unit = 1ull << 20; ++end; break;
        case 'G': case 'g': unit = 1ull << 30; ++end; break;
        default: break;
      }
    }
    if (text.size() == 0 || text[0] == '-' || *end != '\0' || errno != 0 || value == 0 ||
        value > (1ull << 50) / unit) {
      return kj::str("--max-memory ", text, ": expected a size in bytes, e.g. 512M or 2G");
    }
    maxMemory = value * unit;
    return true;
  }
  kj::MainBuilder::Validity setMaxPendingPerPeer(kj::StringPtr text) {
    return parseCount("--max-pending-per-peer", text, limits.maxPendingPerPeer);
  }
  kj::MainBuilder::Validity setSocketMode(kj::StringPtr text) {
    char* end = nullptr;
    unsigned long mode = strtoul(text.cStr(), &end, 8);
    if (text.size() == 0 || *end != '\0' || mode > 0777 || (mode & 0600) != 0600) {
      return kj::str("--socket-mode ", text, ": expected an octal mode such as 0600 or 0660 "
                     "that lets the owner read and write");
    }
    socketMode = mode_t(mode);
    socketModeGiven = true;
    return true;
  }
  kj::MainBuilder::Validity setSocketGroup(kj::StringPtr text) {
    kj::String error;
    KJ_IF_MAYBE(gid, parseGroup(text, error)) {
      socketGroup = *gid;
      return true;
    }
    return kj::str("--socket-group ", error);
  }
  kj::MainBuilder::Validity setAllowUid(kj::StringPtr text) {
    kj::String error;
    KJ_IF_MAYBE(uid, parseUser(text, error)) {
      peers.uids.push_back(*uid);
      return true;
    }
    return kj::mv(error);
  }
  kj::MainBuilder::Validity setAllowGid(kj::StringPtr text) {
    kj::String error;
    KJ_IF_MAYBE(gid, parseGroup(text, error)) {
      peers.gids.push_back(*gid);
      return true;
    }
    return kj::str("--allow-gid ", error);
  }
  kj::MainBuilder::Validity setAllowDevices() {
    allowDevices = true;
    return true;
  }
  kj::MainBuilder::Validity setSpawnPrivileged() {
    spawnPrivileged = true;
    return true;
  }

  kj::MainBuilder::Validity setTlsCert(kj::StringPtr file) {
    tlsFiles.cert = kj::heapString(file);
    return true;
  }
  kj::MainBuilder::Validity setTlsKey(kj::StringPtr file) {
    tlsFiles.key = kj::heapString(file);
    return true;
  }
  kj::MainBuilder::Validity setTlsCa(kj::StringPtr file) {
    tlsFiles.ca = kj::heapString(file);
    return true;
  }
  kj::MainBuilder::Validity setMaxSessions(kj::StringPtr text) {
    return parseCount("--max-sessions", text, limits.maxSessions);
  }
  kj::MainBuilder::Validity setMaxFds(kj::StringPtr text) {
    return parseCount("--max-fds", text, limits.maxNodes);
  }
  kj::MainBuilder::Validity setMaxProcs(kj::StringPtr text) {
    return parseCount("--max-procs", text, limits.maxProcs);
  }

  kj::MainBuilder::Validity setHandshakeTimeout(kj::StringPtr text) {
    char* end = nullptr;
    double seconds = strtod(text.cStr(), &end);
    if (text.size() == 0 || *end != '\0' || !(seconds > 0) || seconds > 86400) {
      return kj::str("--handshake-timeout ", text, ": expected seconds, e.g. 10 or 0.5");
    }
    handshakeTimeout = int64_t(seconds * 1000) * kj::MILLISECONDS;
    return true;
  }

  kj::MainBuilder::Validity setClientTimeout(kj::StringPtr text) {
    char* end = nullptr;
    double seconds = strtod(text.cStr(), &end);
    if (text.size() == 0 || *end != '\0' || !(seconds >= 0) || seconds > 86400 * 7 ||
        (seconds > 0 && seconds < 0.1)) {
      return kj::str("--client-timeout ", text, ": expected seconds, e.g. 60, 2.5, or 0 (off)");
    }
    clientTimeout = int64_t(seconds * 1000) * kj::MILLISECONDS;
    return true;
  }

  kj::MainBuilder::Validity setStdio() {
    stdio = true;
    return true;
  }

  kj::MainBuilder::Validity setListen(kj::StringPtr text) {
    if (listenAddress != nullptr) {
      return "--listen given twice; run one agent per address";
    }
    kj::String error;
    KJ_IF_MAYBE(address, parseListenAddress(text, error)) {
      listenAddress = kj::mv(*address);
      return true;
    }
    return kj::mv(error);
  }

  kj::MainBuilder::Validity setRoot(kj::StringPtr dir) {
    struct stat st;
    if (stat(dir.cStr(), &st) < 0 || !S_ISDIR(st.st_mode)) {
      return kj::str("--root ", dir, ": not an existing directory");
    }
    rootDir = kj::heapString(dir);
    return true;
  }

  kj::MainBuilder::Validity setReadOnly() {
    readOnly = true;
    return true;
  }

  kj::MainBuilder::Validity setTokenFile(kj::StringPtr file) {
    auto read = readTokenFile(file);
    if (read.error.size() > 0) {
      return kj::mv(read.error);
    }
    if (read.othersCanRead) {
      fmt::print(stderr, "sbagent: warning: --token-file {} is readable by other users; "
                 "chmod 600 it\n", file.cStr());
    }
    token = kj::mv(read.token);
    return true;
  }

  kj::MainBuilder::Validity setHostname(kj::StringPtr name) {
    if (name.size() == 0 || name.size() > 64) {
      return "--hostname: the name must be 1 to 64 characters";
    }
    hostname = kj::heapString(name);
    return true;
  }

  kj::MainBuilder::Validity setReadyFd(kj::StringPtr text) {
    char* end = nullptr;
    long fd = strtol(text.cStr(), &end, 10);
    if (text.size() == 0 || *end != '\0' || fd < 0 || fd > 1 << 20) {
      return kj::str("--ready-fd ", text, ": expected a file descriptor number");
    }
    if (fd == STDIN_FILENO || fd == STDERR_FILENO) {
      return kj::str("--ready-fd ", fd, ": use a descriptor other than stdin and stderr");
    }
    if (fcntl(int(fd), F_GETFD) < 0) {
      return kj::str("--ready-fd ", fd, ": that descriptor is not open; e.g. run with 3>FILE");
    }
    readyFd = int(fd);
    return true;
  }

  kj::MainBuilder::Validity setVerbose() {
    verbose = true;
    return true;
  }

  kj::MainBuilder::Validity run() {
    verbose = verbose || kj::_::Debug::shouldLog(kj::LogSeverity::INFO);
    if (stdio == (listenAddress != nullptr)) {
      return "give exactly one of --stdio or --listen ADDRESS";
    }
    if (stdio && readyFd != nullptr) {
      return "--ready-fd only applies to --listen";
    }
    auto kind = ListenAddress::Kind::TCP;
    KJ_IF_MAYBE(address, listenAddress) {
      kind = address->kind;
    }
    if (kind != ListenAddress::Kind::UNIX && (socketModeGiven || socketGroup != nullptr)) {
      return kind == ListenAddress::Kind::SYSTEMD
                 ? "--socket-mode and --socket-group do not apply to --listen systemd: set "
                   "SocketMode= and SocketGroup= in the .socket unit"
                 : "--socket-mode and --socket-group apply to --listen unix:PATH only";
    }
    if (kind == ListenAddress::Kind::TCP && (!peers.uids.empty() || !peers.gids.empty())) {
      return "--allow-uid and --allow-gid apply to unix sockets only (TCP peers are checked "
             "by TLS and --token-file)";
    }
    if ((allowDevices || spawnPrivileged) && rootDir == nullptr) {
      return "--allow-devices and --spawn-privileged apply with --root only (without --root "
             "nothing is confined)";
    }
    if (tlsFiles.any()) {
      KJ_IF_MAYBE(address, listenAddress) {
        if (address->kind == ListenAddress::Kind::UNIX) {
          return "--tls-cert/--tls-key/--tls-ca apply to --listen tcp://... only (a unix socket "
                 "is protected by its file permissions, --stdio by its transport)";
        }
      } else {
        return "--tls-cert/--tls-key/--tls-ca apply to --listen tcp://... only";
      }
      kj::String problem = tlsFilesProblem(tlsFiles, TlsRole::AGENT);
      if (problem.size() > 0) {
        return kj::mv(problem);
      }
    }
    kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() { serve(); });
    KJ_IF_MAYBE(e, failure) {
      context.exitError(kj::str("sbagent: error: ", e->getDescription()));
    }
    return true;
  }

  void serve() {
    keepMessageMemory();
    // Before any thread exists, so every thread inherits the block (lease_breaks.h).
    LeaseBreaks::block();
    // Before any thread exists: unshare(CLONE_NEWUSER) needs a single-threaded process.
    KJ_IF_MAYBE(name, hostname) {
      enterHostnameNamespace(*name);
    }
    kj::Own<Confinement> confinement;
    KJ_IF_MAYBE(dir, rootDir) {
      confinement = Confinement::confinedTo(*dir);
    } else {
      confinement = Confinement::unconfined();
    }
    Log log(verbose);
    raiseFdLimit(log);
    auto io = kj::setupAsyncIo();
    // Before Landlock (it opens the cgroup directory and /proc/self/ns/pid) and before any
    // thread (the executor's); after the event loop, since it keeps promises on its timer and
    // must be gone before the loop is.
    IsolationOptions isolationOptions;
    isolationOptions.confined = rootDir != nullptr;
    isolationOptions.allowDevices = allowDevices;
    isolationOptions.spawnPrivileged = spawnPrivileged;
    isolationOptions.maxMemory = maxMemory;
    SessionIsolation isolation(isolationOptions, log);
    if (!stdio) {
      // Also before any thread: workers inherit the blocked mask, so these reach the loop.
      kj::UnixEventPort::captureSignal(SIGTERM);
      kj::UnixEventPort::captureSignal(SIGINT);
    }
    // Read before Landlock, which would hide the files.
    kj::Own<kj::TlsContext> tls;
    if (tlsFiles.any()) {
      tls = makeTlsContext(tlsFiles, TlsRole::AGENT);
    }
    LeaseBreaks leaseBreaks(io.unixEventPort, log);
    Executor executor(io.provider->getTimer());
    Reaper reaper(executor);
    isolation.useTimer(io.provider->getTimer());
    AgentContext agent{*confinement, executor, reaper, readOnly, limits, allowDevices,
                       isolation, leaseBreaks};
    AgentOptions options{kj::mv(token), log};
    options.handshakeTimeout = handshakeTimeout;
    options.clientTimeout = clientTimeout;
    peers.agentUid = getuid();
    options.peers = peers;
    options.socketMode = socketMode;
    options.socketGroup = socketGroup;
    Listener listener(io, agent, options);
    if (tls.get() != nullptr) {
      listener.useTls(*tls);
    }
    // no_new_privs is inherited by every program the agent runs; a root agent asked to let them
    // keep their privileges (--spawn-privileged) does without it (Landlock does not need it
    // from root).
    if (!(spawnPrivileged && geteuid() == 0)) {
      setNoNewPrivs();
    }

    KJ_IF_MAYBE(address, listenAddress) {
      kj::String bound;
      auto accepting = listener.listen(*address, bound);
      // Creation modes arrive with the client's umask already applied (the tracee's own): ours
      // must not take bits away a second time. Only now: the socket file was made 0600.
      ::umask(0);
      // After the socket exists, before the first worker thread: Landlock binds this thread
      // and what it creates later (landlock.h).
      restrictToRoot(*confinement, listener.unixPath(), log, isolation.cgroupPath());
      log.warn("listening on {} (root {}{}{}{}; at most {} sessions)", bound.cStr(),
               confinement->rootPath().cStr(), readOnly ? ", read-only" : "",
               tls.get() != nullptr ? ", TLS with client certificates" : "",
               options.token != nullptr ? ", token required" : "", limits.maxSessions);
      KJ_IF_MAYBE(fd, readyFd) {
        auto line = fmt::format("ready {}\n", bound.cStr());
        ssize_t n = write(*fd, line.data(), line.size());
        if (n != ssize_t(line.size())) {
          log.warn("--ready-fd {}: write failed: {}", *fd, strerror(errno));
        }
        ::close(*fd);
      }
      auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(
          io.unixEventPort.onSignal(SIGINT));
      auto signal = accepting.then([]() { return siginfo_t(); }).exclusiveJoin(kj::mv(stop))
                        .wait(io.waitScope);
      log.info("stopping on signal {}", signal.si_signo);
    } else {
      ::umask(0);  // as above
      restrictToRoot(*confinement, nullptr, log, isolation.cgroupPath());
      listener.serveStdio().wait(io.waitScope);
      log.info("stdio peer disconnected");
    }
  }
};

}  // namespace
}  // namespace sb

KJ_MAIN(sb::AgentMain)
