// sbagent: serves splitbrain sessions (DESIGN D8). main builds every component explicitly (no
// singletons): confinement, executor, the listener; then serves --stdio or --listen.

#include <fcntl.h>
#include <signal.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/main.h>

#include "confinement.h"
#include "executor.h"
#include "identity.h"
#include "listener.h"
#include "log.h"
#include "process.h"
#include "session.h"

namespace sb {
namespace {

constexpr const char* VERSION = "sbagent 0.1.0 (splitbrain protocol 1)";

// Big messages (reads of up to 64 MiB) are allocated and freed once per call. Left to its
// defaults, glibc maps each one afresh or trims it back to the kernel, and touching fresh pages
// costs more than the copy itself on this class of machine (STYLE §4.9: ~15 µs per 4 KiB page,
// 2 s of page faults per GiB read). Keeping freed memory for reuse bounds the footprint by the
// peak instead.
void keepMessageMemory() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
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
            "loopback is refused unless --token-file is given.")
        .addOptionWithArg({"root"}, KJ_BIND_METHOD(*this, setRoot), "<dir>",
            "Confine every path to <dir>: `..`, absolute paths and symlinks resolve inside it "
            "and magic links (/proc/PID/root ...) are refused (openat2 RESOLVE_IN_ROOT). "
            "Default: the whole file system.")
        .addOption({"read-only"}, KJ_BIND_METHOD(*this, setReadOnly),
            "Refuse every modifying operation with EROFS: opening for writing, creating or "
            "truncating, mkdir, mknod, unlink, rename, link, symlink, chmod, chown, utimens, "
            "truncate, fallocate, xattr changes, write, copy.")
        .addOptionWithArg({"token-file"}, KJ_BIND_METHOD(*this, setTokenFile), "<file>",
            "Require every handshake to present exactly the content of <file> (one trailing "
            "newline is ignored); a mismatch is refused and logged as \"bad token\".")
        .addOptionWithArg({"hostname"}, KJ_BIND_METHOD(*this, setHostname), "<name>",
            "Run in new UTS and mount namespaces with hostname <name> (a user namespace first "
            "when not root), so clients see a visibly different machine. Fails clearly when "
            "namespaces are not available.")
        .addOptionWithArg({"handshake-timeout"}, KJ_BIND_METHOD(*this, setHandshakeTimeout),
            "<seconds>",
            "Drop a connection that has not completed a handshake within <seconds> (default "
            "10): a silent or refused peer cannot hold a connection open.")
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

  kj::MainBuilder::Validity setHandshakeTimeout(kj::StringPtr text) {
    char* end = nullptr;
    double seconds = strtod(text.cStr(), &end);
    if (text.size() == 0 || *end != '\0' || !(seconds > 0) || seconds > 86400) {
      return kj::str("--handshake-timeout ", text, ": expected seconds, e.g. 10 or 0.5");
    }
    handshakeTimeout = int64_t(seconds * 1000) * kj::MILLISECONDS;
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
    int fd = open(file.cStr(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return kj::str("--token-file ", file, ": ", strerror(errno));
    }
    kj::AutoCloseFd owner(fd);
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
      fmt::print(stderr, "sbagent: warning: --token-file {} is readable by other users; "
                 "chmod 600 it\n", file.cStr());
    }
    kj::String content = kj::FdInputStream(kj::mv(owner)).readAllText();
    size_t size = content.size();
    if (size > 0 && content[size - 1] == '\n') --size;
    if (size > 0 && content[size - 1] == '\r') --size;
    if (size == 0) {
      return kj::str("--token-file ", file, ": the file is empty; put a secret in it");
    }
    token = kj::heapString(content.slice(0, size));
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
    kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() { serve(); });
    KJ_IF_MAYBE(e, failure) {
      context.exitError(kj::str("sbagent: error: ", e->getDescription()));
    }
    return true;
  }

  void serve() {
    // Creation modes arrive with the client's umask already applied (the tracee's own): ours
    // must not take bits away a second time.
    ::umask(0);
    keepMessageMemory();
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
    auto io = kj::setupAsyncIo();
    if (!stdio) {
      // Also before any thread: workers inherit the blocked mask, so these reach the loop.
      kj::UnixEventPort::captureSignal(SIGTERM);
      kj::UnixEventPort::captureSignal(SIGINT);
    }
    Executor executor(io.provider->getTimer());
    Reaper reaper(executor);
    AgentContext agent{*confinement, executor, reaper, readOnly};
    AgentOptions options{kj::mv(token), log};
    options.handshakeTimeout = handshakeTimeout;
    Listener listener(io, agent, options);

    KJ_IF_MAYBE(address, listenAddress) {
      kj::String bound;
      auto accepting = listener.listen(*address, bound);
      log.warn("listening on {} (root {}{}{})", bound.cStr(), confinement->rootPath().cStr(),
               readOnly ? ", read-only" : "", options.token != nullptr ? ", token required" : "");
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
      listener.serveStdio().wait(io.waitScope);
      log.info("stdio peer disconnected");
    }
  }
};

}  // namespace
}  // namespace sb

KJ_MAIN(sb::AgentMain)
