#include "socket_wire.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include <cerrno>

#include "host_wire.h"

namespace sb {

namespace {

struct MsgRow {
  int host;
  bool (*get)(proto::MsgFlags::Reader);
  void (*set)(proto::MsgFlags::Builder, bool);
};
#define MSG_ROW(host, Name)                                                  \
  MsgRow {                                                                   \
    host, [](proto::MsgFlags::Reader r) { return r.get##Name(); },           \
        [](proto::MsgFlags::Builder b, bool v) { b.set##Name(v); }           \
  }
const MsgRow MSG_ROWS[] = {
    MSG_ROW(MSG_OOB, Oob),         MSG_ROW(MSG_PEEK, Peek),         MSG_ROW(MSG_DONTROUTE, DontRoute),
    MSG_ROW(MSG_CTRUNC, Ctrunc),   MSG_ROW(MSG_TRUNC, Trunc),       MSG_ROW(MSG_DONTWAIT, DontWait),
    MSG_ROW(MSG_EOR, Eor),         MSG_ROW(MSG_WAITALL, WaitAll),   MSG_ROW(MSG_CONFIRM, Confirm),
    MSG_ROW(MSG_ERRQUEUE, ErrQueue), MSG_ROW(MSG_MORE, More),       MSG_ROW(MSG_WAITFORONE, WaitForOne),
    MSG_ROW(MSG_BATCH, Batch),     MSG_ROW(MSG_ZEROCOPY, ZeroCopy), MSG_ROW(MSG_FASTOPEN, FastOpen),
};
#undef MSG_ROW

}  // namespace

int64_t sockFamilyToHost(proto::SockFamily family) {
  switch (family) {
    case proto::SockFamily::UNIX: return AF_UNIX;
    case proto::SockFamily::INET: return AF_INET;
    case proto::SockFamily::INET6: return AF_INET6;
    case proto::SockFamily::NETLINK: return AF_NETLINK;
  }
  return -EINVAL;
}

int64_t sockTypeToHost(proto::SockType type) {
  switch (type) {
    case proto::SockType::STREAM: return SOCK_STREAM;
    case proto::SockType::DGRAM: return SOCK_DGRAM;
    case proto::SockType::RAW: return SOCK_RAW;
    case proto::SockType::RDM: return SOCK_RDM;
    case proto::SockType::SEQPACKET: return SOCK_SEQPACKET;
    case proto::SockType::DCCP: return SOCK_DCCP;
    case proto::SockType::PACKET: return SOCK_PACKET;
  }
  return -EINVAL;
}

kj::Maybe<proto::SockFamily> sockFamilyFromHost(int domain) {
  switch (domain) {
    case AF_UNIX: return proto::SockFamily::UNIX;
    case AF_INET: return proto::SockFamily::INET;
    case AF_INET6: return proto::SockFamily::INET6;
    case AF_NETLINK: return proto::SockFamily::NETLINK;
  }
  return nullptr;
}

kj::Maybe<proto::SockType> sockTypeFromHost(int type) {
  switch (type) {
    case SOCK_STREAM: return proto::SockType::STREAM;
    case SOCK_DGRAM: return proto::SockType::DGRAM;
    case SOCK_RAW: return proto::SockType::RAW;
    case SOCK_RDM: return proto::SockType::RDM;
    case SOCK_SEQPACKET: return proto::SockType::SEQPACKET;
    case SOCK_DCCP: return proto::SockType::DCCP;
    case SOCK_PACKET: return proto::SockType::PACKET;
  }
  return nullptr;
}

int msgFlagsToHost(proto::MsgFlags::Reader flags) {
  int f = 0;
  for (auto& row : MSG_ROWS) {
    if (row.get(flags)) {
      f |= row.host;
    }
  }
  return f;
}

void msgFlagsFromHost(int flags, proto::MsgFlags::Builder out) {
  for (auto& row : MSG_ROWS) {
    row.set(out, flags & row.host);
  }
}

int64_t sockAddrToHost(proto::SockAddr::Reader in, struct sockaddr_storage& out, socklen_t& len) {
  memset(&out, 0, sizeof(out));
  len = in.getLength() > sizeof(out) ? sizeof(out) : in.getLength();
  switch (in.which()) {
    case proto::SockAddr::UNSPEC:
      out.ss_family = AF_UNSPEC;
      return 0;
    case proto::SockAddr::INET: {
      auto a = in.getInet();
      auto* sin = reinterpret_cast<struct sockaddr_in*>(&out);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(a.getPort());
      sin->sin_addr.s_addr = htonl(a.getAddr());
      return 0;
    }
    case proto::SockAddr::INET6: {
      auto a = in.getInet6();
      auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&out);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(a.getPort());
      sin6->sin6_flowinfo = htonl(a.getFlowInfo());
      auto addr = a.getAddr();
      if (addr.size() != 16) {
        return -EINVAL;
      }
      memcpy(&sin6->sin6_addr, addr.begin(), 16);
      sin6->sin6_scope_id = a.getScopeId();
      return 0;
    }
    case proto::SockAddr::UNIX_ABSTRACT: {
      auto name = in.getUnixAbstract();
      auto* sun = reinterpret_cast<struct sockaddr_un*>(&out);
      if (name.size() > sizeof(sun->sun_path) - 1) {
        return -EINVAL;
      }
      sun->sun_family = AF_UNIX;
      copyBytes(sun->sun_path + 1, name.begin(), name.size());
      len = offsetof(struct sockaddr_un, sun_path) + 1 + name.size();
      return 0;
    }
    case proto::SockAddr::UNIX_UNNAMED:
      out.ss_family = AF_UNIX;
      len = sizeof(sa_family_t);
      return 0;
    case proto::SockAddr::NETLINK: {
      auto a = in.getNetlink();
      auto* nl = reinterpret_cast<struct sockaddr_nl*>(&out);
      nl->nl_family = AF_NETLINK;
      nl->nl_pid = a.getPortId();
      nl->nl_groups = a.getGroups();
      return 0;
    }
    case proto::SockAddr::OTHER:
      out.ss_family = in.getOther();
      return 0;
    case proto::SockAddr::UNIX_PATH:
      break;
  }
  return -EINVAL;
}

void sockAddrFromHost(const struct sockaddr_storage& in, socklen_t len,
                      proto::SockAddr::Builder out) {
  if (len < sizeof(sa_family_t)) {
    out.setUnspec();
    return;
  }
  switch (in.ss_family) {
    case AF_UNSPEC:
      out.setUnspec();
      return;
    case AF_INET: {
      auto* sin = reinterpret_cast<const struct sockaddr_in*>(&in);
      auto a = out.initInet();
      a.setPort(ntohs(sin->sin_port));
      a.setAddr(ntohl(sin->sin_addr.s_addr));
      return;
    }
    case AF_INET6: {
      auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&in);
      auto a = out.initInet6();
      a.setPort(ntohs(sin6->sin6_port));
      a.setFlowInfo(ntohl(sin6->sin6_flowinfo));
      a.setAddr(kj::arrayPtr(reinterpret_cast<const kj::byte*>(&sin6->sin6_addr), 16));
      a.setScopeId(sin6->sin6_scope_id);
      return;
    }
    case AF_UNIX: {
      auto* sun = reinterpret_cast<const struct sockaddr_un*>(&in);
      size_t n = len - offsetof(struct sockaddr_un, sun_path);
      auto* path = reinterpret_cast<const kj::byte*>(sun->sun_path);
      if (n == 0) {
        out.setUnixUnnamed();
      } else if (path[0] == 0) {
        out.setUnixAbstract(kj::arrayPtr(path + 1, n - 1));
      } else {
        out.setUnixPath(kj::arrayPtr(path, strnlen(sun->sun_path, n)));
      }
      return;
    }
    case AF_NETLINK: {
      auto* nl = reinterpret_cast<const struct sockaddr_nl*>(&in);
      auto a = out.initNetlink();
      a.setPortId(nl->nl_pid);
      a.setGroups(nl->nl_groups);
      return;
    }
    default:
      out.setOther(in.ss_family);
      return;
  }
}

}  // namespace sb
