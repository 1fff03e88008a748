// Socket wire: the protocol's socket meaning (SockFamily, SockType, MsgFlags, SockAddr; see
// schema/splitbrain.capnp) as this host's AF_*/SOCK_*/MSG_* values and sockaddr structs, and
// back, like host_wire.h for files. Pure translation: no syscalls. Unix *paths* are not handled
// here: they go through Confinement (node_socket.cc).

#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "splitbrain.capnp.h"

namespace sb {

// AF_* / SOCK_* of this host, or -EINVAL for a value a newer peer may send.
int64_t sockFamilyToHost(proto::SockFamily family);
int64_t sockTypeToHost(proto::SockType type);
// And back (a socket passed to the agent, SCM_RIGHTS): null for a value the wire has no name for.
kj::Maybe<proto::SockFamily> sockFamilyFromHost(int domain);
kj::Maybe<proto::SockType> sockTypeFromHost(int type);

// MSG_* of this host. `noSignal` is not translated: the agent always adds MSG_NOSIGNAL (it must
// never die of SIGPIPE; the tracer raises SIGPIPE in the program).
int msgFlagsToHost(proto::MsgFlags::Reader flags);
void msgFlagsFromHost(int flags, proto::MsgFlags::Builder out);

// Any address but a unix path into `out`/`len`. The length the program gave is kept (the kernel
// checks it), within sockaddr_storage; -EINVAL for a unix path or an unknown union member.
int64_t sockAddrToHost(proto::SockAddr::Reader in, struct sockaddr_storage& out, socklen_t& len);

// A kernel-given address (getsockname, accept, recvmsg) into the wire form. A family the wire
// does not name becomes `other`.
void sockAddrFromHost(const struct sockaddr_storage& in, socklen_t len,
                      proto::SockAddr::Builder out);

}  // namespace sb
