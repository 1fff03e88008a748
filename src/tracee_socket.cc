#include "tracee_socket.h"

#include <errno.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <string.h>

namespace sb::x86_64 {

namespace {

// socket(2) type flags on x86-64 (SOCK_NONBLOCK is O_NONBLOCK, SOCK_CLOEXEC O_CLOEXEC).
constexpr int64_t K_SOCK_NONBLOCK = 04000;
constexpr int64_t K_SOCK_CLOEXEC = 02000000;
constexpr int64_t K_SOCK_TYPE_MASK = 0xf;
constexpr int64_t K_SOCK_MAX = 11;

struct FamilyRow {
  int number;
  proto::SockFamily family;
};
constexpr FamilyRow FAMILIES[] = {
    {K_AF_UNIX, proto::SockFamily::UNIX},
    {K_AF_INET, proto::SockFamily::INET},
    {K_AF_INET6, proto::SockFamily::INET6},
    {K_AF_NETLINK, proto::SockFamily::NETLINK},
};

struct TypeRow {
  int number;
  proto::SockType type;
};
constexpr TypeRow TYPES[] = {
    {1, proto::SockType::STREAM}, {2, proto::SockType::DGRAM},     {3, proto::SockType::RAW},
    {4, proto::SockType::RDM},    {5, proto::SockType::SEQPACKET}, {6, proto::SockType::DCCP},
    {10, proto::SockType::PACKET},
};

// MSG_* on x86-64 (include/linux/socket.h), each with its wire field.
struct MsgRow {
  uint32_t bit;
  bool (*get)(proto::MsgFlags::Reader);
  void (*set)(proto::MsgFlags::Builder, bool);
};
#define MSG_ROW(bit, Name)                                                   \
  MsgRow {                                                                   \
    bit, [](proto::MsgFlags::Reader r) { return r.get##Name(); },            \
        [](proto::MsgFlags::Builder b, bool v) { b.set##Name(v); }           \
  }
const MsgRow MSG_ROWS[] = {
    MSG_ROW(0x1, Oob),          MSG_ROW(0x2, Peek),         MSG_ROW(0x4, DontRoute),
    MSG_ROW(0x8, Ctrunc),       MSG_ROW(0x20, Trunc),       MSG_ROW(0x40, DontWait),
    MSG_ROW(0x80, Eor),         MSG_ROW(0x100, WaitAll),    MSG_ROW(0x800, Confirm),
    MSG_ROW(0x2000, ErrQueue),  MSG_ROW(0x4000, NoSignal),  MSG_ROW(0x8000, More),
    MSG_ROW(0x10000, WaitForOne), MSG_ROW(0x40000, Batch),  MSG_ROW(0x4000000, ZeroCopy),
    MSG_ROW(0x20000000, FastOpen),
};
#undef MSG_ROW
// MSG_CMSG_CLOEXEC: only about fds received; the tracer applies it to their placeholders.
constexpr uint32_t K_MSG_CMSG_CLOEXEC = 0x40000000;

uint16_t load16(const kj::byte* p) { uint16_t v; memcpy(&v, p, 2); return v; }
uint32_t load32(const kj::byte* p) { uint32_t v; memcpy(&v, p, 4); return v; }
uint16_t loadBe16(const kj::byte* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t loadBe32(const kj::byte* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
void store16(kj::byte* p, uint16_t v) { memcpy(p, &v, 2); }
void store32(kj::byte* p, uint32_t v) { memcpy(p, &v, 4); }
void storeBe16(kj::byte* p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
void storeBe32(kj::byte* p, uint32_t v) {
  p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}

constexpr size_t CMSG_HEADER = 16;  // u64 cmsg_len, i32 cmsg_level, i32 cmsg_type
size_t align8(size_t n) { return (n + 7) & ~size_t(7); }

}  // namespace

kj::Maybe<proto::SockFamily> decodeFamily(int64_t domain) {
  for (auto& row : FAMILIES) {
    if (row.number == domain) {
      return row.family;
    }
  }
  return nullptr;
}

int encodeFamily(proto::SockFamily family) {
  for (auto& row : FAMILIES) {
    if (row.family == family) {
      return row.number;
    }
  }
  return K_AF_UNSPEC;
}

int64_t decodeSocketType(int64_t type, SocketType& out) {
  // The kernel takes an int: the upper register half is not part of it.
  int32_t t = static_cast<int32_t>(type);
  if (t & ~(K_SOCK_TYPE_MASK | K_SOCK_NONBLOCK | K_SOCK_CLOEXEC)) {
    return -EINVAL;
  }
  int kind = t & K_SOCK_TYPE_MASK;
  if (kind >= K_SOCK_MAX) {
    return -EINVAL;
  }
  out.nonBlock = t & K_SOCK_NONBLOCK;
  out.cloexec = t & K_SOCK_CLOEXEC;
  for (auto& row : TYPES) {
    if (row.number == kind) {
      out.type = row.type;
      return 0;
    }
  }
  return -ESOCKTNOSUPPORT;
}

int64_t decodeSockAddr(kj::ArrayPtr<const kj::byte> raw, proto::SockAddr::Builder out) {
  if (raw.size() < 2) {
    return -EINVAL;
  }
  out.setLength(raw.size());
  // Room for the largest layout below, zero beyond what the program gave.
  kj::byte b[MAX_SOCKADDR] = {};
  memcpy(b, raw.begin(), kj::min(raw.size(), sizeof(b)));
  uint16_t family = load16(b);
  switch (family) {
    case K_AF_UNSPEC:
      out.setUnspec();
      return 0;
    case K_AF_INET: {
      auto in = out.initInet();
      in.setPort(loadBe16(b + 2));
      in.setAddr(loadBe32(b + 4));
      return 0;
    }
    case K_AF_INET6: {
      auto in6 = out.initInet6();
      in6.setPort(loadBe16(b + 2));
      in6.setFlowInfo(loadBe32(b + 4));
      in6.setAddr(kj::arrayPtr(b + 8, 16));
      in6.setScopeId(load32(b + 24));
      return 0;
    }
    case K_AF_UNIX: {
      if (raw.size() > SOCKADDR_UN_SIZE) {
        return -EINVAL;
      }
      auto path = raw.slice(2, raw.size());
      if (path.size() == 0) {
        out.setUnixUnnamed();
      } else if (path[0] == 0) {
        out.setUnixAbstract(path.slice(1, path.size()));
      } else {
        // The kernel ends the path at its first NUL or at the given length.
        size_t n = strnlen(reinterpret_cast<const char*>(path.begin()), path.size());
        out.setUnixPath(path.slice(0, n));
      }
      return 0;
    }
    case K_AF_NETLINK: {
      auto nl = out.initNetlink();
      nl.setPortId(load32(b + 4));
      nl.setGroups(load32(b + 8));
      return 0;
    }
    default:
      out.setOther(family);
      return 0;
  }
}

size_t encodeSockAddr(proto::SockAddr::Reader in, kj::ArrayPtr<kj::byte> out) {
  kj::byte b[MAX_SOCKADDR + 1] = {};
  size_t len = 2;
  switch (in.which()) {
    case proto::SockAddr::UNSPEC:
      store16(b, K_AF_UNSPEC);
      break;
    case proto::SockAddr::INET: {
      auto a = in.getInet();
      store16(b, K_AF_INET);
      storeBe16(b + 2, a.getPort());
      storeBe32(b + 4, a.getAddr());
      len = 16;
      break;
    }
    case proto::SockAddr::INET6: {
      auto a = in.getInet6();
      store16(b, K_AF_INET6);
      storeBe16(b + 2, a.getPort());
      storeBe32(b + 4, a.getFlowInfo());
      auto addr = a.getAddr();
      KJ_REQUIRE(addr.size() == 16, "malformed inet6 address from the agent");
      memcpy(b + 8, addr.begin(), 16);
      store32(b + 24, a.getScopeId());
      len = 28;
      break;
    }
    case proto::SockAddr::UNIX_PATH: {
      auto path = in.getUnixPath();
      KJ_REQUIRE(path.size() <= SOCKADDR_UN_SIZE - 2, "unix path from the agent is too long");
      store16(b, K_AF_UNIX);
      memcpy(b + 2, path.begin(), path.size());
      // A path of the full 108 bytes has no room for its NUL: the kernel reports 110 then.
      len = kj::min(size_t(2 + path.size() + 1), size_t(SOCKADDR_UN_SIZE));
      break;
    }
    case proto::SockAddr::UNIX_ABSTRACT: {
      auto name = in.getUnixAbstract();
      KJ_REQUIRE(name.size() <= SOCKADDR_UN_SIZE - 3, "abstract name from the agent is too long");
      store16(b, K_AF_UNIX);
      memcpy(b + 3, name.begin(), name.size());
      len = 3 + name.size();
      break;
    }
    case proto::SockAddr::UNIX_UNNAMED:
      store16(b, K_AF_UNIX);
      break;
    case proto::SockAddr::NETLINK: {
      auto a = in.getNetlink();
      store16(b, K_AF_NETLINK);
      store32(b + 4, a.getPortId());
      store32(b + 8, a.getGroups());
      len = 12;
      break;
    }
    case proto::SockAddr::OTHER:
      store16(b, in.getOther());
      break;
  }
  size_t n = kj::min(len, out.size());
  memcpy(out.begin(), b, n);
  return len;
}

void decodeMsgFlags(uint64_t flags, proto::MsgFlags::Builder out, uint32_t& unknown) {
  uint32_t f = static_cast<uint32_t>(flags);  // the kernel's `unsigned int flags`
  uint32_t known = K_MSG_CMSG_CLOEXEC;
  for (auto& row : MSG_ROWS) {
    row.set(out, f & row.bit);
    known |= row.bit;
  }
  unknown = f & ~known;
}

uint32_t encodeMsgFlags(proto::MsgFlags::Reader flags) {
  uint32_t f = 0;
  for (auto& row : MSG_ROWS) {
    if (row.get(flags)) {
      f |= row.bit;
    }
  }
  return f;
}

size_t cmsgSpace(size_t dataLen) { return CMSG_HEADER + align8(dataLen); }

int64_t decodeCmsgs(kj::ArrayPtr<const kj::byte> control, kj::Vector<RawCmsg>& out) {
  // As the kernel's __sys_sendmsg/cmsghdr_from_user_compat walk: each header must fit, its
  // length cover the header and stay inside the buffer.
  size_t pos = 0;
  while (pos + CMSG_HEADER <= control.size()) {
    uint64_t len;
    memcpy(&len, control.begin() + pos, 8);
    if (len < CMSG_HEADER || len > control.size() - pos) {
      return -EINVAL;
    }
    RawCmsg m;
    memcpy(&m.level, control.begin() + pos + 8, 4);
    memcpy(&m.type, control.begin() + pos + 12, 4);
    m.data = control.slice(pos + CMSG_HEADER, pos + len);
    out.add(m);
    pos += align8(len);
  }
  return 0;
}

size_t encodeCmsgs(capnp::List<proto::Cmsg>::Reader in, kj::ArrayPtr<kj::byte> out,
                   bool& ctrunc) {
  size_t pos = 0;
  for (auto m : in) {
    auto data = m.getData();
    if (pos + CMSG_HEADER > out.size()) {
      ctrunc = true;
      break;
    }
    size_t room = out.size() - pos - CMSG_HEADER;
    size_t n = kj::min(room, data.size());
    uint64_t len = CMSG_HEADER + n;
    int32_t level = m.getLevel(), type = m.getType();
    memcpy(out.begin() + pos, &len, 8);
    memcpy(out.begin() + pos + 8, &level, 4);
    memcpy(out.begin() + pos + 12, &type, 4);
    memcpy(out.begin() + pos + CMSG_HEADER, data.begin(), n);
    if (n < data.size()) {
      ctrunc = true;
      pos += len;
      break;
    }
    pos = kj::min(pos + cmsgSpace(n), out.size());
  }
  return pos;
}

}  // namespace sb::x86_64
