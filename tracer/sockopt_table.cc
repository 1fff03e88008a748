#include "sockopt_table.h"

#include <errno.h>

namespace sb {

namespace {

struct SockoptRow {
  int level;
  int name;
  const char* text;
  uint16_t size;
  int err;  // non-zero: refused with this errno
};

// x86-64 levels and option numbers (asm-generic/socket.h, linux/in.h, in6.h, tcp.h, udp.h,
// netlink.h). Sizes are what the kernel copies at most; an int option is 4.
constexpr int SOL_SOCKET_ = 1, IP = 0, TCP = 6, UDP = 17, IPV6 = 41, NETLINK = 270;
constexpr uint16_t INT = 4;
constexpr uint16_t TIMEVAL = 16;       // struct timeval / __kernel_sock_timeval on x86-64
constexpr uint16_t IFNAME = 16;        // IFNAMSIZ
constexpr uint16_t BIG = 1024;         // variable-length answers (TCP_INFO, SO_PEERSEC ...)

constexpr SockoptRow SOCKOPT_ROWS[] = {
    {SOL_SOCKET_, 1, "SO_DEBUG", INT, 0},
    {SOL_SOCKET_, 2, "SO_REUSEADDR", INT, 0},
    {SOL_SOCKET_, 3, "SO_TYPE", INT, 0},
    {SOL_SOCKET_, 4, "SO_ERROR", INT, 0},
    {SOL_SOCKET_, 5, "SO_DONTROUTE", INT, 0},
    {SOL_SOCKET_, 6, "SO_BROADCAST", INT, 0},
    {SOL_SOCKET_, 7, "SO_SNDBUF", INT, 0},
    {SOL_SOCKET_, 8, "SO_RCVBUF", INT, 0},
    {SOL_SOCKET_, 9, "SO_KEEPALIVE", INT, 0},
    {SOL_SOCKET_, 10, "SO_OOBINLINE", INT, 0},
    {SOL_SOCKET_, 11, "SO_NO_CHECK", INT, 0},
    {SOL_SOCKET_, 12, "SO_PRIORITY", INT, 0},
    {SOL_SOCKET_, 13, "SO_LINGER", 8, 0},
    {SOL_SOCKET_, 14, "SO_BSDCOMPAT", INT, 0},
    {SOL_SOCKET_, 15, "SO_REUSEPORT", INT, 0},
    {SOL_SOCKET_, 16, "SO_PASSCRED", INT, 0},
    {SOL_SOCKET_, 17, "SO_PEERCRED", 12, 0},  // the peer's pid/uid/gid on the target
    {SOL_SOCKET_, 18, "SO_RCVLOWAT", INT, 0},
    {SOL_SOCKET_, 19, "SO_SNDLOWAT", INT, 0},
    {SOL_SOCKET_, 20, "SO_RCVTIMEO_OLD", TIMEVAL, 0},
    {SOL_SOCKET_, 21, "SO_SNDTIMEO_OLD", TIMEVAL, 0},
    {SOL_SOCKET_, 25, "SO_BINDTODEVICE", IFNAME, 0},
    {SOL_SOCKET_, 26, "SO_ATTACH_FILTER", 0, EINVAL},  // sock_fprog points at the program
    {SOL_SOCKET_, 27, "SO_DETACH_FILTER", INT, 0},
    {SOL_SOCKET_, 28, "SO_PEERNAME", 128, 0},
    {SOL_SOCKET_, 29, "SO_TIMESTAMP_OLD", INT, 0},
    {SOL_SOCKET_, 30, "SO_ACCEPTCONN", INT, 0},
    {SOL_SOCKET_, 31, "SO_PEERSEC", BIG, 0},
    {SOL_SOCKET_, 32, "SO_SNDBUFFORCE", INT, 0},
    {SOL_SOCKET_, 33, "SO_RCVBUFFORCE", INT, 0},
    {SOL_SOCKET_, 34, "SO_PASSSEC", INT, 0},
    {SOL_SOCKET_, 35, "SO_TIMESTAMPNS_OLD", INT, 0},
    {SOL_SOCKET_, 36, "SO_MARK", INT, 0},
    {SOL_SOCKET_, 37, "SO_TIMESTAMPING_OLD", 8, 0},
    {SOL_SOCKET_, 38, "SO_PROTOCOL", INT, 0},
    {SOL_SOCKET_, 39, "SO_DOMAIN", INT, 0},
    {SOL_SOCKET_, 40, "SO_RXQ_OVFL", INT, 0},
    {SOL_SOCKET_, 41, "SO_WIFI_STATUS", INT, 0},
    {SOL_SOCKET_, 42, "SO_PEEK_OFF", INT, 0},
    {SOL_SOCKET_, 43, "SO_NOFCS", INT, 0},
    {SOL_SOCKET_, 44, "SO_LOCK_FILTER", INT, 0},
    {SOL_SOCKET_, 45, "SO_SELECT_ERR_QUEUE", INT, 0},
    {SOL_SOCKET_, 46, "SO_BUSY_POLL", INT, 0},
    {SOL_SOCKET_, 47, "SO_MAX_PACING_RATE", 8, 0},
    {SOL_SOCKET_, 48, "SO_BPF_EXTENSIONS", INT, 0},
    {SOL_SOCKET_, 49, "SO_INCOMING_CPU", INT, 0},
    {SOL_SOCKET_, 50, "SO_ATTACH_BPF", 0, EINVAL},              // names an fd of this machine
    {SOL_SOCKET_, 51, "SO_ATTACH_REUSEPORT_CBPF", 0, EINVAL},   // points at the program
    {SOL_SOCKET_, 52, "SO_ATTACH_REUSEPORT_EBPF", 0, EINVAL},   // names an fd
    {SOL_SOCKET_, 53, "SO_CNX_ADVICE", INT, 0},
    {SOL_SOCKET_, 55, "SO_MEMINFO", 36, 0},
    {SOL_SOCKET_, 56, "SO_INCOMING_NAPI_ID", INT, 0},
    {SOL_SOCKET_, 57, "SO_COOKIE", 8, 0},
    {SOL_SOCKET_, 59, "SO_PEERGROUPS", BIG, 0},
    {SOL_SOCKET_, 60, "SO_ZEROCOPY", INT, 0},
    {SOL_SOCKET_, 61, "SO_TXTIME", 8, 0},
    {SOL_SOCKET_, 62, "SO_BINDTOIFINDEX", INT, 0},
    {SOL_SOCKET_, 63, "SO_TIMESTAMP_NEW", INT, 0},
    {SOL_SOCKET_, 64, "SO_TIMESTAMPNS_NEW", INT, 0},
    {SOL_SOCKET_, 65, "SO_TIMESTAMPING_NEW", 8, 0},
    {SOL_SOCKET_, 66, "SO_RCVTIMEO_NEW", TIMEVAL, 0},
    {SOL_SOCKET_, 67, "SO_SNDTIMEO_NEW", TIMEVAL, 0},
    {SOL_SOCKET_, 68, "SO_DETACH_REUSEPORT_BPF", INT, 0},
    {SOL_SOCKET_, 69, "SO_PREFER_BUSY_POLL", INT, 0},
    {SOL_SOCKET_, 70, "SO_BUSY_POLL_BUDGET", INT, 0},
    {SOL_SOCKET_, 71, "SO_NETNS_COOKIE", 8, 0},
    {SOL_SOCKET_, 72, "SO_BUF_LOCK", INT, 0},
    {SOL_SOCKET_, 73, "SO_RESERVE_MEM", INT, 0},
    {SOL_SOCKET_, 74, "SO_TXREHASH", INT, 0},
    {SOL_SOCKET_, 75, "SO_RCVMARK", INT, 0},
    {SOL_SOCKET_, 76, "SO_PASSPIDFD", 0, ENOPROTOOPT},  // would deliver pidfds (fds)
    {SOL_SOCKET_, 77, "SO_PEERPIDFD", 0, ENOPROTOOPT},  // answers an fd

    {TCP, 1, "TCP_NODELAY", INT, 0},
    {TCP, 2, "TCP_MAXSEG", INT, 0},
    {TCP, 3, "TCP_CORK", INT, 0},
    {TCP, 4, "TCP_KEEPIDLE", INT, 0},
    {TCP, 5, "TCP_KEEPINTVL", INT, 0},
    {TCP, 6, "TCP_KEEPCNT", INT, 0},
    {TCP, 7, "TCP_SYNCNT", INT, 0},
    {TCP, 8, "TCP_LINGER2", INT, 0},
    {TCP, 9, "TCP_DEFER_ACCEPT", INT, 0},
    {TCP, 10, "TCP_WINDOW_CLAMP", INT, 0},
    {TCP, 11, "TCP_INFO", BIG, 0},
    {TCP, 12, "TCP_QUICKACK", INT, 0},
    {TCP, 13, "TCP_CONGESTION", IFNAME, 0},
    {TCP, 14, "TCP_MD5SIG", 216, 0},
    {TCP, 16, "TCP_THIN_LINEAR_TIMEOUTS", INT, 0},
    {TCP, 17, "TCP_THIN_DUPACK", INT, 0},
    {TCP, 18, "TCP_USER_TIMEOUT", INT, 0},
    {TCP, 23, "TCP_FASTOPEN", INT, 0},
    {TCP, 24, "TCP_TIMESTAMP", INT, 0},
    {TCP, 25, "TCP_NOTSENT_LOWAT", INT, 0},
    {TCP, 26, "TCP_CC_INFO", BIG, 0},
    {TCP, 27, "TCP_SAVE_SYN", INT, 0},
    {TCP, 28, "TCP_SAVED_SYN", BIG, 0},
    {TCP, 30, "TCP_FASTOPEN_CONNECT", INT, 0},
    {TCP, 31, "TCP_ULP", IFNAME, 0},
    {TCP, 32, "TCP_MD5SIG_EXT", 216, 0},
    {TCP, 33, "TCP_FASTOPEN_KEY", 32, 0},
    {TCP, 34, "TCP_FASTOPEN_NO_COOKIE", INT, 0},
    {TCP, 35, "TCP_ZEROCOPY_RECEIVE", 0, EOPNOTSUPP},  // holds addresses of this machine
    {TCP, 36, "TCP_INQ", INT, 0},
    {TCP, 37, "TCP_TX_DELAY", INT, 0},

    {UDP, 1, "UDP_CORK", INT, 0},
    {UDP, 100, "UDP_ENCAP", INT, 0},
    {UDP, 101, "UDP_NO_CHECK6_TX", INT, 0},
    {UDP, 102, "UDP_NO_CHECK6_RX", INT, 0},
    {UDP, 103, "UDP_SEGMENT", INT, 0},
    {UDP, 104, "UDP_GRO", INT, 0},

    {IP, 1, "IP_TOS", INT, 0},
    {IP, 2, "IP_TTL", INT, 0},
    {IP, 3, "IP_HDRINCL", INT, 0},
    {IP, 4, "IP_OPTIONS", 40, 0},
    {IP, 6, "IP_RECVOPTS", INT, 0},
    {IP, 7, "IP_RETOPTS", INT, 0},
    {IP, 8, "IP_PKTINFO", INT, 0},
    {IP, 10, "IP_MTU_DISCOVER", INT, 0},
    {IP, 11, "IP_RECVERR", INT, 0},
    {IP, 12, "IP_RECVTTL", INT, 0},
    {IP, 13, "IP_RECVTOS", INT, 0},
    {IP, 14, "IP_MTU", INT, 0},
    {IP, 15, "IP_FREEBIND", INT, 0},
    {IP, 18, "IP_PASSSEC", INT, 0},
    {IP, 19, "IP_TRANSPARENT", INT, 0},
    {IP, 20, "IP_RECVORIGDSTADDR", INT, 0},
    {IP, 21, "IP_MINTTL", INT, 0},
    {IP, 22, "IP_NODEFRAG", INT, 0},
    {IP, 23, "IP_CHECKSUM", INT, 0},
    {IP, 24, "IP_BIND_ADDRESS_NO_PORT", INT, 0},
    {IP, 25, "IP_RECVFRAGSIZE", INT, 0},
    {IP, 26, "IP_RECVERR_RFC4884", INT, 0},
    {IP, 32, "IP_MULTICAST_IF", 12, 0},
    {IP, 33, "IP_MULTICAST_TTL", INT, 0},
    {IP, 34, "IP_MULTICAST_LOOP", INT, 0},
    {IP, 35, "IP_ADD_MEMBERSHIP", 12, 0},
    {IP, 36, "IP_DROP_MEMBERSHIP", 12, 0},
    {IP, 37, "IP_UNBLOCK_SOURCE", 12, 0},
    {IP, 38, "IP_BLOCK_SOURCE", 12, 0},
    {IP, 39, "IP_ADD_SOURCE_MEMBERSHIP", 12, 0},
    {IP, 40, "IP_DROP_SOURCE_MEMBERSHIP", 12, 0},
    {IP, 42, "MCAST_JOIN_GROUP", 136, 0},
    {IP, 45, "MCAST_LEAVE_GROUP", 136, 0},
    {IP, 49, "IP_MULTICAST_ALL", INT, 0},
    {IP, 50, "IP_UNICAST_IF", INT, 0},
    {IP, 51, "IP_LOCAL_PORT_RANGE", INT, 0},

    {IPV6, 1, "IPV6_ADDRFORM", INT, 0},
    {IPV6, 16, "IPV6_UNICAST_HOPS", INT, 0},
    {IPV6, 17, "IPV6_MULTICAST_IF", INT, 0},
    {IPV6, 18, "IPV6_MULTICAST_HOPS", INT, 0},
    {IPV6, 19, "IPV6_MULTICAST_LOOP", INT, 0},
    {IPV6, 20, "IPV6_ADD_MEMBERSHIP", 20, 0},
    {IPV6, 21, "IPV6_DROP_MEMBERSHIP", 20, 0},
    {IPV6, 22, "IPV6_ROUTER_ALERT", INT, 0},
    {IPV6, 23, "IPV6_MTU_DISCOVER", INT, 0},
    {IPV6, 24, "IPV6_MTU", INT, 0},
    {IPV6, 25, "IPV6_RECVERR", INT, 0},
    {IPV6, 26, "IPV6_V6ONLY", INT, 0},
    {IPV6, 27, "IPV6_JOIN_ANYCAST", 20, 0},
    {IPV6, 28, "IPV6_LEAVE_ANYCAST", 20, 0},
    {IPV6, 42, "MCAST_JOIN_GROUP", 136, 0},
    {IPV6, 45, "MCAST_LEAVE_GROUP", 136, 0},
    {IPV6, 49, "IPV6_RECVPKTINFO", INT, 0},
    {IPV6, 50, "IPV6_PKTINFO", 20, 0},
    {IPV6, 51, "IPV6_RECVHOPLIMIT", INT, 0},
    {IPV6, 52, "IPV6_HOPLIMIT", INT, 0},
    {IPV6, 60, "IPV6_RECVPATHMTU", INT, 0},
    {IPV6, 62, "IPV6_DONTFRAG", INT, 0},
    {IPV6, 66, "IPV6_RECVTCLASS", INT, 0},
    {IPV6, 67, "IPV6_TCLASS", INT, 0},
    {IPV6, 70, "IPV6_AUTOFLOWLABEL", INT, 0},
    {IPV6, 74, "IPV6_RECVORIGDSTADDR", INT, 0},
    {IPV6, 75, "IPV6_TRANSPARENT", INT, 0},
    {IPV6, 76, "IPV6_UNICAST_IF", INT, 0},
    {IPV6, 80, "IPV6_MULTICAST_ALL", INT, 0},

    {NETLINK, 1, "NETLINK_ADD_MEMBERSHIP", INT, 0},
    {NETLINK, 2, "NETLINK_DROP_MEMBERSHIP", INT, 0},
    {NETLINK, 3, "NETLINK_PKTINFO", INT, 0},
    {NETLINK, 4, "NETLINK_BROADCAST_ERROR", INT, 0},
    {NETLINK, 5, "NETLINK_NO_ENOBUFS", INT, 0},
    {NETLINK, 6, "NETLINK_RX_RING", 0, ENOPROTOOPT},  // a ring mapped into this machine's memory
    {NETLINK, 7, "NETLINK_TX_RING", 0, ENOPROTOOPT},
    {NETLINK, 8, "NETLINK_LISTEN_ALL_NSID", INT, 0},
    {NETLINK, 9, "NETLINK_LIST_MEMBERSHIPS", BIG, 0},
    {NETLINK, 10, "NETLINK_CAP_ACK", INT, 0},
    {NETLINK, 11, "NETLINK_EXT_ACK", INT, 0},
    {NETLINK, 12, "NETLINK_GET_STRICT_CHK", INT, 0},
};

const char* levelName(int level) {
  switch (level) {
    case SOL_SOCKET_: return "SOL_SOCKET";
    case IP: return "IPPROTO_IP";
    case TCP: return "IPPROTO_TCP";
    case UDP: return "IPPROTO_UDP";
    case IPV6: return "IPPROTO_IPV6";
    case NETLINK: return "SOL_NETLINK";
    default: return nullptr;
  }
}

}  // namespace

SockoptPlan planSockopt(int level, int name) {
  for (auto& row : SOCKOPT_ROWS) {
    if (row.level == level && row.name == name) {
      if (row.err != 0) {
        return SockoptPlan{SockoptKind::REFUSE, 0, row.err, row.text};
      }
      auto timeout = SockoptTimeout::NONE;
      if (level == SOL_SOCKET_ && (name == 20 || name == 66)) timeout = SockoptTimeout::RECEIVE;
      if (level == SOL_SOCKET_ && (name == 21 || name == 67)) timeout = SockoptTimeout::SEND;
      return SockoptPlan{SockoptKind::VALUE, row.size, 0, row.text, timeout};
    }
  }
  return SockoptPlan{SockoptKind::UNKNOWN};
}

kj::String sockoptName(int level, int name) {
  auto plan = planSockopt(level, name);
  const char* l = levelName(level);
  if (plan.name != nullptr && l != nullptr) {
    return kj::str(l, "/", plan.name);
  }
  return kj::str("level ", level, " option ", name);
}

}  // namespace sb
