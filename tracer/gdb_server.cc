#include "gdb_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/core.h>
#include <kj/debug.h>

#include "gdb_regs.h"

namespace sb {

namespace {

// How long a reply may wait for gdb to take it before the connection is dropped: gdb reads
// continuously, so a full socket buffer for this long means it is gone.
constexpr int SEND_TIMEOUT_MS = 10000;

kj::String hexNumber(uint64_t v) { return kj::str(kj::hex(v)); }

kj::String hexByte(int v) {
  const char* digits = "0123456789abcdef";
  return kj::str(digits[(v >> 4) & 15], digits[v & 15]);
}

// The state letter of /proc/TID/stat: 't' while the thread sits in a ptrace stop.
char procState(pid_t tid) {
  auto path = kj::str("/proc/", tid, "/stat");
  int fd = open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  char buf[512];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) {
    return 0;
  }
  buf[n] = 0;
  const char* paren = strrchr(buf, ')');  // The command name may hold spaces and parentheses.
  return paren != nullptr && paren[1] == ' ' ? paren[2] : 0;
}

bool isLoopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    auto in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

}  // namespace

kj::Maybe<GdbAddress> parseGdbAddress(kj::StringPtr text, kj::String& error) {
  GdbAddress a;
  if (text.startsWith("unix:")) {
    a.isUnix = true;
    a.path = kj::str(text.slice(5));
    if (a.path.size() == 0 || a.path.size() >= sizeof(sockaddr_un::sun_path)) {
      error = kj::str("--gdb=unix:PATH needs a socket path of 1 to ",
                      sizeof(sockaddr_un::sun_path) - 1, " bytes");
      return nullptr;
    }
    return kj::mv(a);
  }
  kj::StringPtr port = text;
  a.host = kj::str("127.0.0.1");
  KJ_IF_MAYBE(colon, text.findLast(':')) {
    kj::StringPtr host(text.begin(), *colon);
    port = text.slice(*colon + 1);
    if (host.size() >= 2 && host[0] == '[' && host[host.size() - 1] == ']') {
      a.host = kj::heapString(host.begin() + 1, host.size() - 2);
    } else if (host.size() > 0) {
      if (host.findFirst(':') != nullptr) {
        error = kj::str("--gdb: write an IPv6 address in brackets, e.g. [::1]:1234");
        return nullptr;
      }
      a.host = kj::str(host);
    }
  }
  char* end = nullptr;
  errno = 0;
  unsigned long p = strtoul(port.cStr(), &end, 10);
  if (port.size() == 0 || *end != 0 || errno != 0 || p > 65535) {
    error = kj::str("--gdb takes [HOST:]PORT (PORT 0: any free port) or unix:PATH, not '", text,
                    "'");
    return nullptr;
  }
  a.port = static_cast<uint16_t>(p);
  return kj::mv(a);
}

GdbServer::GdbServer(GdbHost& host, kj::UnixEventPort& port, const GdbAddress& address,
                     pid_t pid, bool attached)
    : host(host), eventPort(port),
      address{address.isUnix, kj::str(address.host), address.port, kj::str(address.path)},
      pid(pid), attached(attached),
      // A launched program waits at its first instruction for gdb, as under gdbserver.
      state(attached ? State::RUNNING : State::STOPPED) {
  lastStop.tid = pid;
  lastStop.sig = SIGTRAP;
}

GdbServer::~GdbServer() noexcept(false) {
  reading = nullptr;
  clientObserver = nullptr;
  accepting = nullptr;
  listenObserver = nullptr;
  if (address.isUnix && listener != nullptr) {
    unlink(address.path.cStr());
  }
}

// ---------------------------------------------------------------------------------------------
// The connection

void GdbServer::listen() {
  int fd;
  kj::String shown;
  bool loopback = true;
  if (address.isUnix) {
    sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, address.path.begin(), address.path.size());
    KJ_SYSCALL(fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    listener = kj::AutoCloseFd(fd);
    // Only our user may connect: whoever can, controls the program. umask is per process, and
    // sbrun has one thread.
    mode_t old = umask(0177);
    int r = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    int err = errno;
    umask(old);
    KJ_REQUIRE(r == 0, kj::str("--gdb: cannot listen on unix:", address.path, ": ",
                               strerror(err),
                               err == EADDRINUSE ? " (remove the old socket first)" : ""));
    shown = kj::str("unix:", address.path);
  } else {
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* found = nullptr;
    auto portText = kj::str(address.port);
    int gai = getaddrinfo(address.host.cStr(), portText.cStr(), &hints, &found);
    KJ_REQUIRE(gai == 0, kj::str("--gdb: cannot resolve '", address.host, "': ",
                                 gai_strerror(gai)));
    KJ_DEFER(freeaddrinfo(found));
    KJ_SYSCALL(fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    listener = kj::AutoCloseFd(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    KJ_REQUIRE(bind(fd, found->ai_addr, found->ai_addrlen) == 0,
               kj::str("--gdb: cannot listen on ", address.host, ":", address.port, ": ",
                       strerror(errno)));
    loopback = isLoopback(found->ai_addr);
    sockaddr_storage bound = {};
    socklen_t len = sizeof(bound);
    KJ_SYSCALL(getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len));
    char text[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (bound.ss_family == AF_INET) {
      auto in = reinterpret_cast<sockaddr_in*>(&bound);
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      port = ntohs(in->sin_port);
      shown = kj::str(text, ":", port);
    } else {
      auto in6 = reinterpret_cast<sockaddr_in6*>(&bound);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      port = ntohs(in6->sin6_port);
      shown = kj::str("[", text, "]:", port);
    }
  }
  KJ_SYSCALL(::listen(fd, 1));
  fmt::print(stderr, "sbrun: gdb: listening on {}\n", shown.cStr());
  if (!loopback) {
    fmt::print(stderr,
               "sbrun: gdb: warning: {} is reachable from other machines, and the gdb protocol "
               "has no authentication: whoever connects controls the program (the default, "
               "127.0.0.1, is reachable from this machine only)\n",
               shown.cStr());
  }
  if (!attached) {
    // What to type in gdb: a unix socket is named by its path alone.
    fmt::print(stderr, "sbrun: gdb: the program waits at its first instruction for gdb "
                       "(target remote {})\n",
               address.isUnix ? address.path.cStr() : shown.cStr());
  }
  listenObserver = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort, fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
  accepting = acceptLoop().eagerlyEvaluate([](kj::Exception&& e) {
    fmt::print(stderr, "sbrun: gdb: the listener failed: {}\n", e.getDescription().cStr());
  });
}

kj::Promise<void> GdbServer::acceptLoop() {
  return listenObserver->whenBecomesReadable().then([this]() {
    for (;;) {
      int fd = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        break;  // EAGAIN, or a connection that went away before we took it
      }
      if (client != nullptr) {
        static const char busy[] = "$E01#a6";
        (void)!::write(fd, busy, sizeof(busy) - 1);
        close(fd);
        fmt::print(stderr, "sbrun: gdb: refused a second connection (one gdb at a time)\n");
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // Fails on unix: fine.
      client = kj::AutoCloseFd(fd);
      reader = gdb::PacketReader();
      noAck = false;
      replyOnStop = false;
      generalThread = 0;
      continueThread = -1;
      for (auto& p : passSignal) {
        p = false;
      }
      clientObserver = kj::heap<kj::UnixEventPort::FdObserver>(
          eventPort, fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
      reading = readLoop().eagerlyEvaluate([](kj::Exception&& e) {
        fmt::print(stderr, "sbrun: gdb: {}\n", e.getDescription().cStr());
      });
      fmt::print(stderr, "sbrun: gdb: connected\n");
      if (!exited && state == State::RUNNING) {
        lastStop = Stop{focus(0), SIGTRAP, kj::str("")};
        stopAll();
      }
    }
    return acceptLoop();
  });
}

kj::Promise<void> GdbServer::readLoop() {
  return clientObserver->whenBecomesReadable().then([this]() -> kj::Promise<void> {
    kj::byte buf[8192];
    for (;;) {
      ssize_t n = ::read(client.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        break;
      }
      if (n <= 0) {
        dropClient(n == 0 ? "gdb closed the connection" : strerror(errno));
        return kj::READY_NOW;
      }
      for (auto& in : reader.feed(kj::arrayPtr(buf, static_cast<size_t>(n)))) {
        switch (in.kind) {
          case gdb::Incoming::PACKET:
            if (!noAck) {
              sendRaw("+");
            }
            dispatch(in.payload);
            break;
          case gdb::Incoming::BAD_PACKET:
            if (!noAck) {
              sendRaw("-");
            }
            break;
          case gdb::Incoming::INTERRUPT:
            if (state == State::RUNNING && !exited) {
              lastStop = Stop{focus(lastStop.tid), SIGINT, kj::str("")};
              stopAll();
            }
            break;
        }
        if (client == nullptr) {
          return kj::READY_NOW;  // Detached or killed: this connection is over.
        }
      }
    }
    return readLoop();
  });
}

// gdb is gone (it detached, quit or died): the program runs on under sbrun as if it had never
// been there; its breakpoints are gdb's to remove (it does on detach and quit).
void GdbServer::dropClient(kj::StringPtr why) {
  if (client == nullptr) {
    return;
  }
  fmt::print(stderr, "sbrun: gdb: {}; the program runs on\n", why.cStr());
  // The observer goes with the fd; `reading` is left to end (this may run inside it).
  clientObserver = nullptr;
  client = nullptr;
  if (!exited) {
    releaseAll();
  }
}

void GdbServer::sendRaw(kj::StringPtr bytes) {
  size_t done = 0;
  while (client != nullptr && done < bytes.size()) {
    ssize_t n = ::send(client.get(), bytes.begin() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {client.get(), POLLOUT, 0};
      if (poll(&p, 1, SEND_TIMEOUT_MS) > 0) {
        continue;
      }
    }
    dropClient("gdb stopped reading its connection");
    return;
  }
}

void GdbServer::send(kj::StringPtr payload) { sendRaw(gdb::framePacket(payload)); }

// ---------------------------------------------------------------------------------------------
// Threads and stops

GdbServer::Thread& GdbServer::thread(pid_t tid) {
  auto it = threads.find(tid);
  if (it == threads.end()) {
    Thread t;
    // A thread born while gdb lets the program run runs too; one born in a stop waits.
    t.resumed = state == State::RUNNING;
    it = threads.emplace(tid, t).first;
  }
  return it->second;
}

pid_t GdbServer::anyThread() {
  auto all = host.gdbThreads();
  return all.empty() ? pid : all[0];
}

// The thread a request is about: `wanted` when it is alive, else the last one reported.
pid_t GdbServer::focus(pid_t wanted) {
  auto all = host.gdbThreads();
  for (pid_t t : all) {
    if (wanted > 0 && t == wanted) {
      return t;
    }
  }
  for (pid_t t : all) {
    if (t == lastStop.tid) {
      return t;
    }
  }
  return all.empty() ? pid : all[0];
}

// All-stop: every thread of the program comes to a stop before gdb hears of the one that
// stopped. A thread in one of sbrun's own ptrace stops (a trapped call waiting for the agent)
// is stopped already: the tracer's resume of it, when its answer is in, is held (onResume).
void GdbServer::stopAll() {
  state = State::STOPPING;
  for (pid_t tid : host.gdbThreads()) {
    auto& t = thread(tid);
    t.resumed = false;
    if (t.held || t.stopSig >= 0 || waiting.count(tid) > 0) {
      continue;
    }
    if (procState(tid) == 't') {
      continue;
    }
    if (ptrace::interrupt(tid)) {
      waiting.insert(tid);
    }
  }
  maybeReport();
}

void GdbServer::maybeReport() {
  if (state != State::STOPPING) {
    return;
  }
  if (!waiting.empty()) {
    // Threads that vanished without an exit of their own (an exec by another thread) never stop.
    auto all = host.gdbThreads();
    for (auto it = waiting.begin(); it != waiting.end();) {
      it = std::find(all.begin(), all.end(), *it) == all.end() ? waiting.erase(it) : ++it;
    }
    if (!waiting.empty()) {
      return;
    }
  }
  state = State::STOPPED;
  if (replyOnStop) {
    reportStop();
  }
}

void GdbServer::reportStop() {
  replyOnStop = false;
  if (exited) {
    send(exitReply);
    return;
  }
  generalThread = lastStop.tid;
  send(kj::str("T", hexByte(gdb::toGdbSignal(lastStop.sig)), lastStop.extra, "thread:",
               hexNumber(static_cast<uint64_t>(lastStop.tid)), ";"));
}

// What a stop of `tid` for `sig` tells gdb: a watchpoint that triggered says which (DR6).
GdbServer::Stop GdbServer::describeStop(pid_t tid, int sig) {
  Stop s{tid, sig, kj::str("")};
  auto& t = thread(tid);
  t.reported = true;
  if (sig != SIGTRAP) {
    return s;
  }
  bool anyWatch = false;
  for (auto& w : watches) {
    anyWatch = anyWatch || w.used;
  }
  uint64_t dr6 = 0;
  if (!anyWatch || !ptrace::getDebugReg(tid, 6, dr6)) {
    return s;
  }
  int hits = x86_64::dr6Hits(dr6);
  for (int slot = 0; slot < 4; ++slot) {
    auto& w = watches[slot];
    if ((hits & (1 << slot)) == 0 || !w.used) {
      continue;
    }
    if (w.type == '2') {
      s.extra = kj::str("watch:", hexNumber(w.addr), ";");
    } else if (w.type == '4') {
      s.extra = kj::str("awatch:", hexNumber(w.addr), ";");
    }
    break;
  }
  ptrace::setDebugReg(tid, 6, 0);  // DR6 is sticky: clear it for the next trap.
  return s;
}

// A breakpoint trap gdb has not heard of yet, whose int3 gdb has removed since (it hit while
// another thread's stop was being reported): the thread backs up onto the instruction and runs
// it as if the breakpoint had never been there.
bool GdbServer::staleBreakpoint(pid_t tid) {
  auto& t = thread(tid);
  if (t.stopSig != SIGTRAP || t.siCode != SI_KERNEL) {
    return false;
  }
  ptrace::Regs regs;
  if (!ptrace::getRegs(tid, regs)) {
    return false;
  }
  uint64_t at = abi::pc(regs) - x86_64::INT3_SIZE;
  kj::byte b = 0;
  if (ptrace::readMemory(tid, at, kj::arrayPtr(&b, 1)) != 1 || b == x86_64::INT3) {
    return false;
  }
  abi::setPc(regs, at);
  ptrace::setRegs(tid, regs);
  return true;
}

bool GdbServer::onResume(pid_t tid, pid_t tgid, bool launching, bool needExitStop,
                         ptrace::Resume how, int sig) {
  if (tgid != pid || launching || exited) {
    return false;
  }
  auto& t = thread(tid);
  if (!t.resumed) {
    t.held = true;
    t.heldSig = sig;
    waiting.erase(tid);
    maybeReport();
    return true;
  }
  if (t.drGeneration != drGeneration) {
    applyDebugRegs(tid);  // A thread new since the watchpoints changed.
  }
  if (!t.step || needExitStop) {
    return false;  // A step waits until the tracer no longer needs the syscall stops.
  }
  if (how == ptrace::Resume::SYSCALL) {
    // --pid: no filter traps the syscalls; a single-stepped `syscall` instruction would run
    // locally unseen. Let the tracer see its entry; the step goes on after it.
    ptrace::Regs regs;
    unsigned char insn[abi::SYSCALL_INSN_SIZE] = {};
    if (ptrace::getRegs(tid, regs) &&
        ptrace::readMemory(tid, abi::pc(regs), kj::arrayPtr(insn, sizeof(insn))) ==
            int64_t(sizeof(insn)) &&
        abi::isSyscallInsn(insn)) {
      return false;
    }
  }
  ptrace::resume(tid, ptrace::Resume::STEP, sig);
  return true;
}

bool GdbServer::onSignal(pid_t tid, pid_t tgid, int sig) {
  if (tgid != pid || exited || (client == nullptr && state == State::RUNNING)) {
    return false;
  }
  auto& t = thread(tid);
  bool pass = sig > 0 && sig < 65 && passSignal[sig];
  if (state == State::RUNNING && t.resumed && pass) {
    return false;  // gdb asked not to hear of it (QPassSignals): delivered as always.
  }
  siginfo_t info = {};
  t.siCode = ptrace::signalInfo(tid, info) ? info.si_code : 0;
  t.stopSig = sig;
  t.reported = false;
  t.passSig = pass ? sig : 0;
  t.step = false;
  t.held = false;
  waiting.erase(tid);
  if (state == State::RUNNING) {
    lastStop = describeStop(tid, sig);
    stopAll();
  } else {
    // Another thread's stop is being (or was) reported: this one waits its turn (resume()).
    t.eventPending = !pass;
    maybeReport();
  }
  return true;
}

void GdbServer::onExit(pid_t tid, ptrace::WaitStatus status) {
  waiting.erase(tid);
  threads.erase(tid);
  if (tid != pid) {
    maybeReport();
    return;
  }
  exited = true;
  exitReply = status.kind() == ptrace::WaitStatus::Kind::EXITED
                  ? kj::str("W", hexByte(status.exitCode()))
                  : kj::str("X", hexByte(gdb::toGdbSignal(status.signal())));
  if (client != nullptr && (replyOnStop || state != State::STOPPED)) {
    replyOnStop = false;
    send(exitReply);
  }
}

// gdb resumes the program: threads with an action run (or step); others stay stopped.
void GdbServer::resume(kj::ArrayPtr<const Action> actions) {
  if (exited) {
    send(exitReply);
    return;
  }
  auto actionFor = [&](pid_t tid) -> const Action* {
    for (auto& a : actions) {
      if (a.tid == tid) {
        return &a;
      }
    }
    for (auto& a : actions) {
      if (a.tid == -1 || a.tid == 0) {
        return &a;
      }
    }
    return nullptr;
  };
  auto all = host.gdbThreads();
  // A stop that happened meanwhile is reported first, and nothing runs (as gdbserver does).
  for (pid_t tid : all) {
    auto& t = thread(tid);
    if (!t.eventPending || actionFor(tid) == nullptr) {
      continue;
    }
    t.eventPending = false;
    if (staleBreakpoint(tid)) {
      t.passSig = 0;  // Never reported: the trap is undone and forgotten.
      continue;
    }
    lastStop = describeStop(tid, t.stopSig);
    state = State::STOPPED;
    reportStop();
    return;
  }
  replyOnStop = true;
  state = State::RUNNING;
  for (pid_t tid : all) {
    const Action* a = actionFor(tid);
    if (a == nullptr) {
      continue;
    }
    auto& t = thread(tid);
    t.resumed = true;
    t.step = a->kind == 's';
    if (t.stopSig >= 0) {
      // gdb decides the fate of the signals it was told of; the others are ours to deliver.
      int sig = t.reported ? a->sig : t.passSig;
      t.stopSig = -1;
      host.gdbContinueAfterSignal(tid, sig);
    } else if (t.held) {
      t.held = false;
      if (a->sig != 0) {
        syscall(SYS_tgkill, pid, tid, a->sig);  // Not at a signal stop: queue it.
        t.passSig = a->sig;
      }
      host.gdbRelease(tid, t.heldSig);
    }
    // Otherwise the thread is in one of sbrun's stops: it goes when the tracer resumes it.
  }
}

// Let every thread go, gdb gone: signals it was told of are delivered, except its own traps.
void GdbServer::releaseAll() {
  for (auto& w : watches) {
    w = Watch{};
  }
  ++drGeneration;
  replyOnStop = false;
  state = State::RUNNING;
  for (pid_t tid : host.gdbThreads()) {
    auto& t = thread(tid);
    applyDebugRegs(tid);
    t.resumed = true;
    t.step = false;
    t.eventPending = false;
    if (t.stopSig >= 0) {
      int sig = t.stopSig == SIGTRAP || t.stopSig == SIGINT ? 0 : t.stopSig;
      t.stopSig = -1;
      host.gdbContinueAfterSignal(tid, sig);
    } else if (t.held) {
      t.held = false;
      host.gdbRelease(tid, t.heldSig);
    }
  }
  waiting.clear();
}

// ---------------------------------------------------------------------------------------------
// Debug registers

void GdbServer::applyDebugRegs(pid_t tid) {
  thread(tid).drGeneration = drGeneration;
  uint64_t dr7 = 0;
  ptrace::setDebugReg(tid, 7, 0);  // Off first: the kernel checks each address against DR7.
  for (int slot = 0; slot < 4; ++slot) {
    auto& w = watches[slot];
    if (!w.used) {
      continue;
    }
    ptrace::setDebugReg(tid, slot, w.addr);
    auto kind = w.type == '1'   ? x86_64::DebugKind::EXECUTE
                : w.type == '2' ? x86_64::DebugKind::WRITE
                                : x86_64::DebugKind::READ_WRITE;
    dr7 = x86_64::dr7With(dr7, slot, kind, w.len);
  }
  ptrace::setDebugReg(tid, 7, dr7);
}

// Every thread gets the new setting now (all are stopped); false when the kernel refuses it.
bool GdbServer::setAllDebugRegs() {
  ++drGeneration;
  bool good = true;
  for (pid_t tid : host.gdbThreads()) {
    applyDebugRegs(tid);
    uint64_t dr7 = 0;
    good = good && ptrace::getDebugReg(tid, 7, dr7);
  }
  return good;
}

}  // namespace sb
