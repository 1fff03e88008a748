#include <doctest.h>

#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "sockopt_table.h"

using sb::planSockopt;
using sb::SockoptKind;

TEST_SUITE("sockopt_table") {
  TEST_CASE("plain options pass with the most the kernel copies") {
    auto reuse = planSockopt(SOL_SOCKET, SO_REUSEADDR);
    CHECK(reuse.kind == SockoptKind::VALUE);
    CHECK(reuse.size == sizeof(int));
    CHECK(planSockopt(SOL_SOCKET, SO_LINGER).size == sizeof(struct linger));
    CHECK(planSockopt(IPPROTO_TCP, TCP_NODELAY).kind == SockoptKind::VALUE);
    CHECK(planSockopt(IPPROTO_IP, IP_ADD_MEMBERSHIP).size == sizeof(struct ip_mreqn));
    CHECK(planSockopt(IPPROTO_IPV6, IPV6_V6ONLY).kind == SockoptKind::VALUE);
    CHECK(planSockopt(SOL_NETLINK, NETLINK_EXT_ACK).kind == SockoptKind::VALUE);
    CHECK(planSockopt(IPPROTO_TCP, TCP_INFO).size >= sizeof(struct tcp_info));
  }

  TEST_CASE("options carrying pointers or fds are refused") {
    CHECK(planSockopt(SOL_SOCKET, SO_ATTACH_FILTER).kind == SockoptKind::REFUSE);
    CHECK(planSockopt(SOL_SOCKET, SO_ATTACH_BPF).kind == SockoptKind::REFUSE);
    CHECK(planSockopt(IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE).kind == SockoptKind::REFUSE);
    CHECK(planSockopt(SOL_NETLINK, NETLINK_RX_RING).kind == SockoptKind::REFUSE);
    CHECK(planSockopt(SOL_SOCKET, SO_ATTACH_FILTER).err == EINVAL);
  }

  TEST_CASE("unknown options are not guessed, and the timeouts are recognised") {
    CHECK(planSockopt(SOL_SOCKET, 9999).kind == SockoptKind::UNKNOWN);
    CHECK(planSockopt(282 /* SOL_TLS */, 1).kind == SockoptKind::UNKNOWN);
    CHECK(planSockopt(SOL_SOCKET, SO_RCVTIMEO).timeout == sb::SockoptTimeout::RECEIVE);
    CHECK(planSockopt(SOL_SOCKET, SO_SNDTIMEO).timeout == sb::SockoptTimeout::SEND);
    CHECK(sb::sockoptName(SOL_SOCKET, SO_REUSEADDR) == "SOL_SOCKET/SO_REUSEADDR");
    CHECK(sb::sockoptName(5, 6) == "level 5 option 6");
  }
}
