// The x86-64 tracee ABI of the socket calls on one side, the arch-neutral wire on the other
// (DESIGN D3), like tracee_abi.h for files: socket families, types and flags, `struct sockaddr`
// in its four supported families, MSG_* flags and the control-message layout of msghdr.
//
// Pure translation: nothing here reads tracee memory or makes a syscall. The constants are the
// kernel's x86-64 values, written out (K_*), so a second tracee arch is a second file pair.

#pragma once

#include <kj/array.h>
#include <kj/common.h>
#include <kj/vector.h>
#include <stdint.h>

#include "splitbrain.capnp.h"

namespace sb::x86_64 {

// The x86-64 address families sbrun sends to a target; any other family in a remote scope is
// EAFNOSUPPORT with a note (handlers_net.cc).
constexpr int K_AF_UNSPEC = 0;
constexpr int K_AF_UNIX = 1;
constexpr int K_AF_INET = 2;
constexpr int K_AF_INET6 = 10;
constexpr int K_AF_NETLINK = 16;

// The largest address the kernel accepts from a program (sizeof(struct sockaddr_storage)).
constexpr uint32_t MAX_SOCKADDR = 128;
// sizeof(struct sockaddr_un) and the offset of sun_path.
constexpr uint32_t SOCKADDR_UN_SIZE = 110;

// socket(2)'s domain. Null for a family the protocol does not carry.
kj::Maybe<proto::SockFamily> decodeFamily(int64_t domain);
int encodeFamily(proto::SockFamily family);

// socket(2)'s type argument: the type (low 4 bits) and SOCK_NONBLOCK / SOCK_CLOEXEC.
struct SocketType {
  proto::SockType type;
  bool nonBlock;
  bool cloexec;
};
// -EINVAL for unknown flag bits or a type outside the kernel's range (as socket(2) says),
// -ESOCKTNOSUPPORT for a number in range that names no type; else 0 and `out`.
int64_t decodeSocketType(int64_t type, SocketType& out);

// A program's sockaddr of `raw.size()` bytes (0..MAX_SOCKADDR, checked by the caller) into
// `out`; `out.length` is raw.size(). Missing bytes of a short address read as zero: the agent's
// kernel sees the same length and refuses it as ours would. -EINVAL when even sa_family does
// not fit, or an AF_UNIX address is longer than sockaddr_un.
int64_t decodeSockAddr(kj::ArrayPtr<const kj::byte> raw, proto::SockAddr::Builder out);

// The program's bytes for an address from the agent; returns how many of `out` it fills, which
// is what the kernel reports as the address length (a unix path counts its NUL, as the kernel's
// unix_getname does).
size_t encodeSockAddr(proto::SockAddr::Reader in, kj::ArrayPtr<kj::byte> out);

// MSG_* flags. Bits the wire has no name for are returned in `unknown` (the kernel ignores most
// of them; the caller decides).
void decodeMsgFlags(uint64_t flags, proto::MsgFlags::Builder out, uint32_t& unknown);
uint32_t encodeMsgFlags(proto::MsgFlags::Reader flags);

// Control messages in a msghdr's msg_control (struct cmsghdr: u64 len, i32 level, i32 type,
// data aligned to 8). decodeCmsgs: -EINVAL for a malformed buffer (as sendmsg says).
struct RawCmsg {
  int32_t level;
  int32_t type;
  kj::ArrayPtr<const kj::byte> data;
};
int64_t decodeCmsgs(kj::ArrayPtr<const kj::byte> control, kj::Vector<RawCmsg>& out);
// Lays `in` out into `out` as the kernel's put_cmsg does: whole messages while they fit, the
// last one cut short (with `ctrunc` set) when only part of it does. Returns the bytes used.
size_t encodeCmsgs(capnp::List<proto::Cmsg>::Reader in, kj::ArrayPtr<kj::byte> out, bool& ctrunc);
size_t cmsgSpace(size_t dataLen);

// SOL_SOCKET / SCM_RIGHTS: control messages that pass fds.
constexpr int K_SOL_SOCKET = 1;
constexpr int K_SCM_RIGHTS = 1;

}  // namespace sb::x86_64
