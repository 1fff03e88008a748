// What the socket handlers share (handlers_net.cc: socket, addresses, options, the calls on a
// socket fd; handlers_sockmsg.cc: the send and receive family, SCM_RIGHTS).

#pragma once

#include "handler_support.h"
#include "tracee_socket.h"

namespace sb::handler::sock {

namespace net = sb::x86_64;

constexpr uint32_t UIO_MAXIOV_ = 1024;
// Control data larger than this is refused, as the kernel refuses more than optmem_max.
constexpr uint64_t MAX_CONTROL = 64u << 10;
// A datagram cannot be split: more than this in one message is refused by any kernel.
constexpr uint64_t MAX_DATAGRAM = 64u << 20;

// Whether the target speaks the tracee's ABI (raw option and control bytes may cross).
bool sameAbi(AgentLink& target);
bool isStream(const SocketInfo& s);
// Raw socket-level bytes (options, control messages) are ABI-bound: refuse them towards an
// agent of another arch, with a note naming what was refused.
bool refuseForeignAbi(Call& c, AgentLink& target, kj::StringPtr what);
// A sockaddr argument as the kernel's move_addr_to_kernel reads it.
int64_t readSockAddr(Call& c, uint64_t addr, uint64_t len64, proto::SockAddr::Builder out);
// An address answer as move_addr_to_user writes it: 0 or -errno.
int64_t putSockAddr(Call& c, uint64_t addr, uint64_t lenAddr, bool has,
                    proto::SockAddr::Reader in);
// A remote fd that is not one of our sockets: what the target's kernel says of a socket call.
kj::Promise<Outcome> notASocket(Call& c, RemoteFile& f);
// MSG_* flags into `out` (unknown bits are noted once).
void msgFlags(Call& c, uint64_t flags, proto::MsgFlags::Builder out);
// How messages name a socket of the target ("socket:inet/1").
kj::String socketLabel(proto::SockFamily family, proto::SockType type);
// -yy: whether the trace wants remote sockets' endpoints, and asking B for a socket's own
// address (kept in its SocketInfo; errors leave it unknown).
bool wantEndpoints(Call& c);
kj::Promise<void> learnLocalEnd(RemoteFile& f);
// A remote socket of `target` as the program's file.
kj::Own<RemoteFile> socketFile(AgentLink& target, proto::Node::Client node,
                               proto::SockFamily family, const net::SocketType& st);

// A relative unix path resolves against the program's cwd on the target, as bind(2) and
// connect(2) resolve it against the process's cwd.
template <typename Req>
void setDirFor(Call& c, RemoteFile& f, Req& req, proto::SockAddr::Reader addr) {
  if (addr.isUnixPath() && !(addr.getUnixPath().size() > 0 && addr.getUnixPath()[0] == '/')) {
    req.setDir(cwdNode(c.task, f.target));
  }
}

// Runs `fn(file, socket)` when fd argument 0 is a remote socket; local otherwise.
template <typename Func>
kj::Promise<Outcome> onSocket(Call& c, Func&& fn) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    KJ_IF_MAYBE(s, f->socket) {
      return fn(*f, *s);
    }
    return notASocket(c, *f);
  }
  return local();
}

}  // namespace sb::handler::sock

namespace sb::handler {
// The send and receive family (handlers_sockmsg.cc).
kj::ArrayPtr<const HandlerEntry> sockMsgHandlers();
}  // namespace sb::handler
