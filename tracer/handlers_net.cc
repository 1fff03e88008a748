// Handlers for sockets (issue 5): in a remote scope, socket and socketpair make the socket on the
// thread's target, and every socket call on a remote fd acts through its Node on the target's
// network stack. A local socket's calls cost a stop but no RPC: they run locally (RunLocal).
//
// What crosses (docs/protocol.md, Sockets): families, types and MSG_* flags as meaning, addresses
// as typed SockAddr (tracee_socket.h); option values and control messages as raw bytes, only
// between equal ABIs and only for the options sockopt_table.h lists; passed fds (SCM_RIGHTS)
// as nodes of the socket's target (mapRights, deliverFds). Calls that may wait
// (connect, accept, send, recv) are interruptible; with SO_RCVTIMEO/SO_SNDTIMEO set, a signal
// gives EINTR even under SA_RESTART, as socket(7) says.

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <capnp/message.h>
#include <kj/debug.h>
#include <kj/vector.h>

#include "handlers_net.h"
#include "options.h"
#include "sockopt_table.h"
#include "tracee_socket.h"

namespace sb::handler {

namespace sock {

// Netlink protocols that are plain datagram exchanges with the target's kernel. Others
// (NETLINK_AUDIT, NETLINK_CONNECTOR, ...) are refused: their semantics involve more than
// messages (process events of the target, credentials).
struct NetlinkRow {
  int protocol;
  const char* name;
};
constexpr NetlinkRow NETLINK_PROTOCOLS[] = {
    {0, "NETLINK_ROUTE"},
    {4, "NETLINK_SOCK_DIAG"},
    {12, "NETLINK_NETFILTER"},
    {15, "NETLINK_KOBJECT_UEVENT"},
    {16, "NETLINK_GENERIC"},
};

bool sameAbi(AgentLink& target) { return target.welcome().getArch() == "x86_64"; }

const char* familyName(proto::SockFamily f) {
  switch (f) {
    case proto::SockFamily::UNIX: return "unix";
    case proto::SockFamily::INET: return "inet";
    case proto::SockFamily::INET6: return "inet6";
    case proto::SockFamily::NETLINK: return "netlink";
  }
  return "?";
}

bool isStream(const SocketInfo& s) { return s.type == proto::SockType::STREAM; }

// Raw socket-level bytes (options, control messages) are ABI-bound: refuse them towards an
// agent of another arch, with a note naming what was refused.
bool refuseForeignAbi(Call& c, AgentLink& target, kj::StringPtr what) {
  if (sameAbi(target)) {
    return false;
  }
  c.tracer.noteOnce(kj::str("abi:", what),
                    kj::str(what, " cannot cross to an agent of another ABI (",
                            target.welcome().getArch(), ")"));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Addresses

// A sockaddr argument as the kernel's move_addr_to_kernel reads it.
int64_t readSockAddr(Call& c, uint64_t addr, uint64_t len64, proto::SockAddr::Builder out) {
  int32_t len = static_cast<int32_t>(len64);  // socklen_t, an int to the kernel
  if (len < 0 || static_cast<uint32_t>(len) > net::MAX_SOCKADDR) {
    return -EINVAL;
  }
  kj::byte raw[net::MAX_SOCKADDR];
  if (len > 0 && c.mem().read(addr, kj::arrayPtr(raw, len)) < 0) {
    return -EFAULT;
  }
  return net::decodeSockAddr(kj::arrayPtr(raw, len), out);
}

// An address answer as move_addr_to_user writes it: min(*lenAddr, klen) bytes to addr, then klen
// to *lenAddr. With no address (`has` false) the length written is 0. 0 or -errno.
int64_t putSockAddr(Call& c, uint64_t addr, uint64_t lenAddr, bool has,
                    proto::SockAddr::Reader in) {
  int32_t len;
  if (c.mem().readValue(lenAddr, len) < 0) {
    return -EFAULT;
  }
  if (len < 0) {
    return -EINVAL;
  }
  kj::byte raw[net::MAX_SOCKADDR] = {};
  uint32_t klen = has ? net::encodeSockAddr(in, raw) : 0;
  uint32_t n = kj::min(static_cast<uint32_t>(len), klen);
  if (n > 0 && c.mem().write(addr, kj::arrayPtr(raw, n)) < 0) {
    return -EFAULT;
  }
  return c.mem().writeValue(lenAddr, static_cast<int32_t>(klen)) < 0 ? -EFAULT : 0;
}

// ---------------------------------------------------------------------------------------------
// socket, socketpair

constexpr int64_t K_SOCK_FLAGS = 04000 | 02000000;  // SOCK_NONBLOCK | SOCK_CLOEXEC

// Checks socket(2)/socketpair(2) arguments in the kernel's order and decides whether the target
// can make this socket: flags (EINVAL), family (EAFNOSUPPORT), type (EINVAL, ESOCKTNOSUPPORT),
// netlink protocol (EPROTONOSUPPORT). 0 or -errno.
int64_t planSocket(Call& c, AgentLink& target, proto::SockFamily& family, net::SocketType& st) {
  int64_t domain = static_cast<int32_t>(c.arg(0));
  int32_t type = static_cast<int32_t>(c.arg(1));
  if (type & ~(0xf | K_SOCK_FLAGS)) {
    return -EINVAL;
  }
  KJ_IF_MAYBE(f, net::decodeFamily(domain)) {
    family = *f;
  } else {
    // Never silently local: the program asked for a socket in a remote scope.
    c.tracer.noteOnce(kj::str("family", domain),
                      kj::str("socket family ", domain, " has no remote implementation (",
                              target.name(), " serves AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK):",
                              " answering EAFNOSUPPORT"));
    return -EAFNOSUPPORT;
  }
  int64_t r = net::decodeSocketType(type, st);
  if (r < 0) {
    return r;
  }
  if (family == proto::SockFamily::NETLINK) {
    int protocol = static_cast<int32_t>(c.arg(2));
    bool known = false;
    for (auto& row : NETLINK_PROTOCOLS) {
      known = known || row.protocol == protocol;
    }
    if (!known) {
      c.tracer.noteOnce(kj::str("netlink", protocol),
                        kj::str("netlink protocol ", protocol,
                                " is not a plain datagram exchange sbrun passes to a target:"
                                " answering EPROTONOSUPPORT"));
      return -EPROTONOSUPPORT;
    }
    // Netlink messages are the target's host-endian structs.
    if (refuseForeignAbi(c, target, "netlink messages")) {
      return -EAFNOSUPPORT;
    }
  }
  return 0;
}

kj::String socketLabel(proto::SockFamily family, proto::SockType type) {
  return kj::str("socket:", familyName(family), "/", static_cast<int>(type));
}

// Session.socket and Session.socketpair take the same four parameters.
template <typename Request>
void setSocketParams(Request& req, Call& c, proto::SockFamily family, const net::SocketType& st) {
  req.setFamily(family);
  req.setType(st.type);
  req.setProtocol(static_cast<int32_t>(c.arg(2)));
  req.setNonBlock(st.nonBlock);
}

kj::Own<RemoteFile> socketFile(AgentLink& target, proto::Node::Client node,
                               proto::SockFamily family, const net::SocketType& st) {
  auto file = kj::refcounted<RemoteFile>(target, kj::mv(node), proto::FileType::SOCKET,
                                         socketLabel(family, st.type));
  file->socket = SocketInfo{family, st.type};
  return file;
}

kj::Promise<Outcome> hSocket(Call& c) {
  if (c.task.scope == nullptr) {
    return local();
  }
  AgentLink& target = *c.task.scope;
  proto::SockFamily family;
  net::SocketType st;
  int64_t r = planSocket(c, target, family, st);
  if (r < 0) {
    return done(r);
  }
  auto req = target.session().socketRequest();
  setSocketParams(req, c, family, st);
  return send(c, target, req).then([&c, &target, family, st](auto reply) -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    return c.tracer.installPlaceholder(c, socketFile(target, reply.getNode(), family, st),
                                       st.cloexec);
  });
}

// socketpair needs two fds in one call: the trapped call is rewritten into a local
// socketpair(AF_UNIX, SOCK_STREAM) on the same `sv`, and both numbers it gives are bound to the
// two remote ends. Those local sockets are only placeholders: every call on them is trapped.
kj::Promise<Outcome> hSocketpair(Call& c) {
  if (c.task.scope == nullptr) {
    return local();
  }
  AgentLink& target = *c.task.scope;
  proto::SockFamily family;
  net::SocketType st;
  int64_t r = planSocket(c, target, family, st);
  if (r < 0) {
    return done(r);
  }
  auto req = target.session().socketpairRequest();
  setSocketParams(req, c, family, st);
  return send(c, target, req).then([&c, &target, family, st](auto reply) -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    kj::Own<RemoteFile> ends[2] = {socketFile(target, reply.getFirst(), family, st),
                                   socketFile(target, reply.getSecond(), family, st)};
    auto regs = c.regs;
    // The 4th argument (sv) stays the program's own pointer.
    regs = abi::syscallRegs(regs, SYS_socketpair,
                            {net::K_AF_UNIX, 1 /* SOCK_STREAM */ | (st.cloexec ? 02000000u : 0u),
                             0});
    Task& task = c.task;
    uint64_t sv = c.arg(3);
    return Rewrite{regs, [&task, sv, a = kj::mv(ends[0]), b = kj::mv(ends[1])](
                             int64_t ret) mutable -> int64_t {
                     if (ret < 0) {
                       return ret;  // EFAULT, EMFILE: the remote ends are dropped (closed).
                     }
                     int32_t fds[2];
                     if (TraceeMemory(task.tid).readValue(sv, fds) < 0) {
                       return -EFAULT;  // The kernel just wrote there: not reached in practice.
                     }
                     task.fds->bind(fds[0], kj::mv(a));
                     task.fds->bind(fds[1], kj::mv(b));
                     return ret;
                   }};
  });
}

// ---------------------------------------------------------------------------------------------
// Calls on a socket fd

// A remote fd that is not one of our sockets (a file, a directory): the target's kernel says
// what a socket call on it gives (ENOTSOCK; EBADF for an O_PATH fd) without looking further.
kj::Promise<Outcome> notASocket(Call& c, RemoteFile& f) {
  if (f.control) {
    return done(-EBADF);  // an O_PATH placeholder to the kernel
  }
  auto req = f.node.sockNameRequest();
  return send(c, f.target, req).then([](auto reply) -> Outcome {
    int64_t r = reply.getResult();
    return Complete{r < 0 ? r : -ENOTSOCK};
  });
}

// MSG_* flags into `out`; bits the protocol has no name for are ignored, as the kernel ignores
// most unknown bits, with a note.
void msgFlags(Call& c, uint64_t flags, proto::MsgFlags::Builder out) {
  uint32_t unknown;
  net::decodeMsgFlags(flags, out, unknown);
  if (unknown != 0) {
    c.tracer.noteOnce(kj::str("msgflags", unknown),
                      kj::str("MSG_* flags 0x", kj::hex(unknown), " are not passed to targets"));
  }
}

// -yy (docs/user-guide.md, tracing): a socket's endpoints as B sees them, for the trace's fd
// notes. They are learnt only when they change and only with -yy: connect and accept already
// say the peer; B is asked for the socket's own address (one sockName, after the call's
// answer) where its port may be one B chose.
bool wantEndpoints(Call& c) { return c.tracer.options().traceOptions.decodeFds >= 2; }

// An endpoint as strace's -yy prints it: "10.0.0.2:40000", "[::1]:80", a unix name quoted
// ("@name" for an abstract one); "" for an unnamed or unknown one.
std::string endpointText(proto::SockAddr::Reader a) {
  char text[INET6_ADDRSTRLEN] = "";
  switch (a.which()) {
    case proto::SockAddr::INET: {
      struct in_addr in = {htonl(a.getInet().getAddr())};
      inet_ntop(AF_INET, &in, text, sizeof(text));
      return std::string(text) + ":" + std::to_string(a.getInet().getPort());
    }
    case proto::SockAddr::INET6: {
      auto bytes = a.getInet6().getAddr();
      struct in6_addr in6 = {};
      if (bytes.size() == sizeof(in6)) {
        memcpy(&in6, bytes.begin(), sizeof(in6));
      }
      inet_ntop(AF_INET6, &in6, text, sizeof(text));
      return std::string("[") + text + "]:" + std::to_string(a.getInet6().getPort());
    }
    case proto::SockAddr::UNIX_PATH: {
      auto p = a.getUnixPath();
      return std::string("\"").append(reinterpret_cast<const char*>(p.begin()), p.size()) + "\"";
    }
    case proto::SockAddr::UNIX_ABSTRACT: {
      auto p = a.getUnixAbstract();
      return "\"@" + std::string(reinterpret_cast<const char*>(p.begin()), p.size()) + "\"";
    }
    default: return std::string();
  }
}

// Asks B for the socket's own address and keeps it (errors leave it unknown).
kj::Promise<void> learnLocalEnd(RemoteFile& f) {
  auto req = f.node.sockNameRequest();
  return req.send().then(
      [file = kj::addRef(f)](auto reply) mutable {
        KJ_IF_MAYBE(s, file->socket) {
          if (reply.getResult() >= 0) {
            s->localEnd = endpointText(reply.getAddr());
          }
        }
      },
      [](kj::Exception&&) {});
}

kj::Promise<Outcome> hBind(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo&) {
    auto req = asCaller(c, f.target, f.node).bindRequest();  // a unix name's owner, access
    int64_t r = readSockAddr(c, c.arg(1), c.arg(2), req.initAddr());
    if (r < 0) {
      return done(r);
    }
    setDirFor(c, f, req, req.asReader().getAddr());
    if (!wantEndpoints(c)) {
      return resultOf(send(c, f.target, req));
    }
    return send(c, f.target, req).then([file = kj::addRef(f)](auto reply) mutable
                                           -> kj::Promise<Outcome> {
      int64_t r = reply.getResult();
      if (r < 0) {
        return Outcome(Complete{r});
      }
      return learnLocalEnd(*file).then([r]() -> Outcome { return Complete{r}; });
    });
  });
}

kj::Promise<Outcome> hConnect(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    auto req = asCaller(c, f.target, f.node).connectRequest();  // a unix name's owner, access
    int64_t r = readSockAddr(c, c.arg(1), c.arg(2), req.initAddr());
    if (r < 0) {
      return done(r);
    }
    setDirFor(c, f, req, req.asReader().getAddr());
    c.interruptible = true;  // a blocking connect waits for the peer
    c.interruptNode = f.node;  // two-phase interrupt (Tracer::onParkedSignal)
    c.restartOnSignal = !s.sendTimeout;
    if (!wantEndpoints(c)) {
      return resultOf(send(c, f.target, req));
    }
    std::string peer = endpointText(req.asReader().getAddr());
    return send(c, f.target, req).then([file = kj::addRef(f), peer = kj::mv(peer)](
                                           auto reply) mutable -> kj::Promise<Outcome> {
      int64_t r = reply.getResult();
      if (r < 0 && r != -EINPROGRESS) {
        return Outcome(Complete{r});
      }
      KJ_IF_MAYBE(sock, file->socket) {
        sock->peerEnd = kj::mv(peer);
      }
      return learnLocalEnd(*file).then([r]() -> Outcome { return Complete{r}; });
    });
  });
}

kj::Promise<Outcome> hListen(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo&) {
    auto req = f.node.listenRequest();
    req.setBacklog(static_cast<int32_t>(c.arg(1)));
    return resultOf(send(c, f.target, req));
  });
}

kj::Promise<Outcome> acceptCommon(Call& c, int64_t flags) {
  if (flags & ~K_SOCK_FLAGS) {
    return done(-EINVAL);  // accept4 checks its flags before the fd
  }
  return onSocket(c, [&c, flags](RemoteFile& f, SocketInfo& s) {
    f.ioEpoch++;  // An EPOLLET interest counts the next rise as an edge (epoll_set.h).
    auto req = f.node.acceptRequest();
    req.setNonBlock(flags & 04000);
    c.interruptible = true;
    c.interruptNode = f.node;
    c.restartOnSignal = !s.receiveTimeout;
    uint64_t addr = c.arg(1), lenAddr = c.arg(2);
    bool cloexec = flags & 02000000;
    SocketInfo info{s.family, s.type};
    AgentLink& target = f.target;
    return send(c, target, req).then(
        [&c, &target, addr, lenAddr, cloexec, info](auto reply) -> kj::Promise<Outcome> {
          if (reply.getResult() < 0) {
            return Outcome(Complete{reply.getResult()});
          }
          if (addr != 0) {
            // As the kernel: an address that cannot be written loses the new connection.
            int64_t w = putSockAddr(c, addr, lenAddr, reply.hasAddr(), reply.getAddr());
            if (w < 0) {
              return Outcome(Complete{w});
            }
          }
          auto file = kj::refcounted<RemoteFile>(target, reply.getNode(), proto::FileType::SOCKET,
                                                 socketLabel(info.family, info.type));
          file->socket = info;
          if (!wantEndpoints(c)) {
            return c.tracer.installPlaceholder(c, kj::mv(file), cloexec);
          }
          KJ_ASSERT_NONNULL(file->socket).peerEnd =
              reply.hasAddr() ? endpointText(reply.getAddr()) : std::string();
          auto learnt = learnLocalEnd(*file);
          return learnt.then([&c, file = kj::mv(file), cloexec]() mutable -> Outcome {
            return c.tracer.installPlaceholder(c, kj::mv(file), cloexec);
          });
        });
  });
}

kj::Promise<Outcome> hAccept(Call& c) { return acceptCommon(c, 0); }
kj::Promise<Outcome> hAccept4(Call& c) { return acceptCommon(c, static_cast<int32_t>(c.arg(3))); }

kj::Promise<Outcome> hShutdown(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo&) {
    static const proto::ShutdownHow HOW[] = {proto::ShutdownHow::READ, proto::ShutdownHow::WRITE,
                                             proto::ShutdownHow::BOTH};
    int32_t how = static_cast<int32_t>(c.arg(1));
    if (how < 0 || how > 2) {
      return done(-EINVAL);
    }
    auto req = f.node.shutdownRequest();
    req.setHow(HOW[how]);
    return resultOf(send(c, f.target, req));
  });
}

kj::Promise<Outcome> nameCommon(Call& c, bool peer) {
  return onSocket(c, [&c, peer](RemoteFile& f, SocketInfo&) {
    auto req = f.node.sockNameRequest();
    req.setPeer(peer);
    uint64_t addr = c.arg(1), lenAddr = c.arg(2);
    return send(c, f.target, req).then([&c, addr, lenAddr](auto reply) -> Outcome {
      if (reply.getResult() < 0) {
        return Complete{reply.getResult()};
      }
      return Complete{putSockAddr(c, addr, lenAddr, true, reply.getAddr())};
    });
  });
}
kj::Promise<Outcome> hGetsockname(Call& c) { return nameCommon(c, false); }
kj::Promise<Outcome> hGetpeername(Call& c) { return nameCommon(c, true); }

// ---------------------------------------------------------------------------------------------
// Options

// An option the table does not pass: its errno, with a note naming it.
kj::Promise<Outcome> refuseOption(Call& c, int level, int name, const SockoptPlan& plan) {
  int err = plan.kind == SockoptKind::REFUSE ? plan.err : ENOPROTOOPT;
  auto what = sockoptName(level, name);
  kj::StringPtr why = plan.kind == SockoptKind::REFUSE
                          ? "carries a pointer or an fd of this machine"
                          : "is not in sbrun's table of socket options";
  c.tracer.noteOnce(kj::str("sockopt:", what),
                    kj::str("socket option ", what, " on a remote socket ", why, ": answering ",
                            strerrorname_np(err)));
  return done(-err);
}

kj::Promise<Outcome> hGetsockopt(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo&) {
    int level = static_cast<int32_t>(c.arg(1)), name = static_cast<int32_t>(c.arg(2));
    uint64_t val = c.arg(3), lenAddr = c.arg(4);
    int32_t len;
    if (c.mem().readValue(lenAddr, len) < 0) {
      return done(-EFAULT);
    }
    if (len < 0) {
      return done(-EINVAL);
    }
    auto plan = planSockopt(level, name);
    if (plan.kind != SockoptKind::VALUE) {
      return refuseOption(c, level, name, plan);
    }
    if (refuseForeignAbi(c, f.target, "socket option values")) {
      return done(-ENOPROTOOPT);
    }
    auto req = f.node.getSockOptRequest();
    req.setLevel(level);
    req.setName(name);
    uint32_t size = kj::min(static_cast<uint32_t>(len), plan.size);
    req.setSize(size);
    return send(c, f.target, req).then([&c, val, lenAddr, size](auto reply) -> Outcome {
      if (reply.getResult() < 0) {
        return Complete{reply.getResult()};
      }
      auto value = reply.getValue();
      KJ_REQUIRE(value.size() <= size, "agent answered getsockopt with more bytes than asked");
      if (value.size() > 0 && c.mem().write(val, value) < 0) {
        return Complete{-EFAULT};
      }
      int32_t n = value.size();
      return Complete{putStruct(c, lenAddr, n, reply.getResult())};
    });
  });
}

kj::Promise<Outcome> hSetsockopt(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    int level = static_cast<int32_t>(c.arg(1)), name = static_cast<int32_t>(c.arg(2));
    int32_t len = static_cast<int32_t>(c.arg(4));
    if (len < 0) {
      return done(-EINVAL);
    }
    auto plan = planSockopt(level, name);
    if (plan.kind != SockoptKind::VALUE) {
      return refuseOption(c, level, name, plan);
    }
    if (refuseForeignAbi(c, f.target, "socket option values")) {
      return done(-ENOPROTOOPT);
    }
    auto req = f.node.setSockOptRequest();
    req.setLevel(level);
    req.setName(name);
    // The kernel reads at most the option's size (a longer optlen is accepted and ignored).
    auto value = req.initValue(kj::min(static_cast<uint32_t>(len), plan.size));
    if (value.size() > 0 && c.mem().read(c.arg(3), value) < 0) {
      return done(-EFAULT);
    }
    bool nonZero = false;
    for (auto b : value) {
      nonZero = nonZero || b != 0;
    }
    auto timeout = plan.timeout;
    SocketInfo* info = &s;
    // Held: the Own keeps `info` (inside the file) alive while the call is in flight.
    return send(c, f.target, req).then([info, timeout, nonZero, ref = kj::addRef(f)](
                                           auto reply) -> Outcome {
      if (reply.getResult() >= 0 && timeout == SockoptTimeout::RECEIVE) {
        info->receiveTimeout = nonZero;
      }
      if (reply.getResult() >= 0 && timeout == SockoptTimeout::SEND) {
        info->sendTimeout = nonZero;
      }
      return Complete{reply.getResult()};
    });
  });
}

}  // namespace sock

namespace {

using namespace sock;

const HandlerEntry NET_HANDLERS[] = {
    {SYS_socket, hSocket},
    {SYS_socketpair, hSocketpair},
    {SYS_bind, hBind},
    {SYS_connect, hConnect},
    {SYS_listen, hListen},
    {SYS_accept, hAccept},
    {SYS_accept4, hAccept4},
    {SYS_shutdown, hShutdown},
    {SYS_getsockname, hGetsockname},
    {SYS_getpeername, hGetpeername},
    {SYS_getsockopt, hGetsockopt},
    {SYS_setsockopt, hSetsockopt},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> netHandlers() { return NET_HANDLERS; }

}  // namespace sb::handler
