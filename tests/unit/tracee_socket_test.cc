#include <doctest.h>

#include <arpa/inet.h>
#include <capnp/message.h>
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tracee_socket.h"

namespace net = sb::x86_64;
using sb::proto::SockAddr;

namespace {

kj::ArrayPtr<const kj::byte> bytesOf(const void* p, size_t n) {
  return kj::arrayPtr(static_cast<const kj::byte*>(p), n);
}

// Decodes `raw`, encodes the result again: the round trip the tracer makes for an address the
// kernel reports back.
kj::Array<kj::byte> roundTrip(kj::ArrayPtr<const kj::byte> raw, int64_t& err) {
  capnp::MallocMessageBuilder m;
  auto addr = m.initRoot<SockAddr>();
  err = net::decodeSockAddr(raw, addr);
  kj::byte out[net::MAX_SOCKADDR];
  size_t n = err < 0 ? 0 : net::encodeSockAddr(addr.asReader(), out);
  return kj::heapArray<kj::byte>(kj::arrayPtr(out, n));
}

}  // namespace

TEST_SUITE("tracee_socket") {
  TEST_CASE("inet and inet6 addresses keep every field across the wire") {
    struct sockaddr_in in = {};
    in.sin_family = AF_INET;
    in.sin_port = htons(8080);
    in.sin_addr.s_addr = htonl(0x0a4d0001);
    capnp::MallocMessageBuilder m;
    auto addr = m.initRoot<SockAddr>();
    REQUIRE(net::decodeSockAddr(bytesOf(&in, sizeof in), addr) == 0);
    CHECK(addr.isInet());
    CHECK(addr.getInet().getPort() == 8080);          // host values on the wire
    CHECK(addr.getInet().getAddr() == 0x0a4d0001u);
    CHECK(addr.getLength() == sizeof in);
    int64_t err;
    auto back = roundTrip(bytesOf(&in, sizeof in), err);
    REQUIRE(back.size() == sizeof in);
    CHECK(memcmp(back.begin(), &in, sizeof in) == 0);

    struct sockaddr_in6 in6 = {};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    in6.sin6_flowinfo = htonl(0x12345);
    in6.sin6_addr = in6addr_loopback;
    in6.sin6_scope_id = 7;
    back = roundTrip(bytesOf(&in6, sizeof in6), err);
    REQUIRE(back.size() == sizeof in6);
    CHECK(memcmp(back.begin(), &in6, sizeof in6) == 0);
  }

  TEST_CASE("unix addresses: paths end at their NUL, abstract names keep every byte") {
    struct sockaddr_un un = {};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/run/x.sock");
    capnp::MallocMessageBuilder m;
    auto addr = m.initRoot<SockAddr>();
    // The program passes the whole struct: the path still ends at its NUL.
    REQUIRE(net::decodeSockAddr(bytesOf(&un, sizeof un), addr) == 0);
    REQUIRE(addr.isUnixPath());
    CHECK(kj::str(addr.getUnixPath().asChars()) == "/run/x.sock");
    kj::byte out[net::MAX_SOCKADDR];
    // The kernel reports a path's length with its NUL (unix_getname).
    CHECK(net::encodeSockAddr(addr.asReader(), out) == offsetof(struct sockaddr_un, sun_path) + 12);

    struct sockaddr_un ab = {};
    ab.sun_family = AF_UNIX;
    memcpy(ab.sun_path + 1, "a\0b", 3);
    size_t len = offsetof(struct sockaddr_un, sun_path) + 4;
    int64_t err;
    auto back = roundTrip(bytesOf(&ab, len), err);
    REQUIRE(err == 0);
    REQUIRE(back.size() == len);
    CHECK(memcmp(back.begin(), &ab, len) == 0);

    // Only the family: unnamed (autobind in bind).
    REQUIRE(net::decodeSockAddr(bytesOf(&un, sizeof(sa_family_t)), addr) == 0);
    CHECK(addr.isUnixUnnamed());
    // Longer than sockaddr_un, or shorter than a family: EINVAL, as the kernel says.
    kj::byte big[net::MAX_SOCKADDR] = {AF_UNIX, 0};
    CHECK(net::decodeSockAddr(kj::arrayPtr(big, sizeof(struct sockaddr_un) + 1), addr) == -EINVAL);
    CHECK(net::decodeSockAddr(kj::arrayPtr(big, 1), addr) == -EINVAL);
  }

  TEST_CASE("netlink, AF_UNSPEC and families the wire does not name") {
    struct sockaddr_nl nl = {};
    nl.nl_family = AF_NETLINK;
    nl.nl_pid = 4242;
    nl.nl_groups = 5;
    int64_t err;
    auto back = roundTrip(bytesOf(&nl, sizeof nl), err);
    REQUIRE(back.size() == sizeof nl);
    CHECK(memcmp(back.begin(), &nl, sizeof nl) == 0);

    struct sockaddr unspec = {};
    capnp::MallocMessageBuilder m;
    auto addr = m.initRoot<SockAddr>();
    REQUIRE(net::decodeSockAddr(bytesOf(&unspec, sizeof unspec), addr) == 0);
    CHECK(addr.isUnspec());
    struct sockaddr packet = {};
    packet.sa_family = AF_PACKET;
    REQUIRE(net::decodeSockAddr(bytesOf(&packet, sizeof packet), addr) == 0);
    CHECK(addr.getOther() == AF_PACKET);
  }

  TEST_CASE("a short inet address keeps its length for the agent's kernel to refuse") {
    struct sockaddr_in in = {};
    in.sin_family = AF_INET;
    capnp::MallocMessageBuilder m;
    auto addr = m.initRoot<SockAddr>();
    REQUIRE(net::decodeSockAddr(bytesOf(&in, 8), addr) == 0);
    CHECK(addr.getLength() == 8);
  }

  TEST_CASE("socket types and flags") {
    net::SocketType t;
    REQUIRE(net::decodeSocketType(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, t) == 0);
    CHECK(t.type == sb::proto::SockType::STREAM);
    CHECK(t.nonBlock);
    CHECK(t.cloexec);
    REQUIRE(net::decodeSocketType(SOCK_SEQPACKET, t) == 0);
    CHECK(t.type == sb::proto::SockType::SEQPACKET);
    CHECK(!t.nonBlock);
    CHECK(net::decodeSocketType(SOCK_STREAM | 0x100000, t) == -EINVAL);
    CHECK(net::decodeSocketType(15, t) == -EINVAL);        // beyond SOCK_MAX
    CHECK(net::decodeSocketType(7, t) == -ESOCKTNOSUPPORT);  // in range, no such type
    CHECK(net::decodeFamily(AF_INET6) != nullptr);
    CHECK(net::decodeFamily(AF_PACKET) == nullptr);
    CHECK(net::encodeFamily(sb::proto::SockFamily::NETLINK) == AF_NETLINK);
  }

  TEST_CASE("MSG_* flags map one by one, unknown bits are reported") {
    capnp::MallocMessageBuilder m;
    auto f = m.initRoot<sb::proto::MsgFlags>();
    uint32_t unknown;
    uint32_t in = MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_NOSIGNAL | MSG_TRUNC | MSG_MORE;
    net::decodeMsgFlags(in, f, unknown);
    CHECK(unknown == 0);
    CHECK(f.getPeek());
    CHECK(f.getNoSignal());
    CHECK(!f.getOob());
    CHECK(net::encodeMsgFlags(f.asReader()) == in);
    net::decodeMsgFlags(MSG_CMSG_CLOEXEC | 0x80000000u, f, unknown);
    CHECK(unknown == 0x80000000u);  // MSG_CMSG_CLOEXEC is known (and ignored)
  }

  TEST_CASE("control messages: decoded as the kernel walks them, encoded with MSG_CTRUNC") {
    alignas(8) kj::byte buf[CMSG_SPACE(4) + CMSG_SPACE(12)] = {};
    struct msghdr mh = {};
    mh.msg_control = buf;
    mh.msg_controllen = sizeof buf;
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(4);
    c = CMSG_NXTHDR(&mh, c);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(12);
    kj::Vector<net::RawCmsg> out;
    REQUIRE(net::decodeCmsgs(kj::arrayPtr(buf, sizeof buf), out) == 0);
    REQUIRE(out.size() == 2);
    CHECK(out[0].type == IP_TTL);
    CHECK(out[1].data.size() == 12);
    // A length past the buffer is EINVAL, as sendmsg says.
    CMSG_FIRSTHDR(&mh)->cmsg_len = sizeof buf + 1;
    kj::Vector<net::RawCmsg> bad;
    CHECK(net::decodeCmsgs(kj::arrayPtr(buf, sizeof buf), bad) == -EINVAL);

    capnp::MallocMessageBuilder m;
    auto results = m.initRoot<sb::proto::Node::RecvMsgResults>();
    auto list = results.initControl(2);
    list[0].setLevel(IPPROTO_IP);
    list[0].setType(IP_TTL);
    list[0].initData(4);
    list[1].setLevel(SOL_SOCKET);
    list[1].setType(SCM_CREDENTIALS);
    list[1].initData(12);
    alignas(8) kj::byte room[sizeof buf] = {};
    bool ctrunc = false;
    CHECK(net::encodeCmsgs(results.asReader().getControl(), room, ctrunc) == sizeof buf);
    CHECK(!ctrunc);
    CHECK(memcmp(room + 8, buf + 8, 8) == 0);  // level and type of the first, as the kernel lays out
    // Room for the first and part of the second: cut short, MSG_CTRUNC.
    size_t used = net::encodeCmsgs(results.asReader().getControl(),
                                   kj::arrayPtr(room, CMSG_SPACE(4) + 20), ctrunc);
    CHECK(ctrunc);
    CHECK(used == CMSG_SPACE(4) + 20);
    ctrunc = false;
    CHECK(net::encodeCmsgs(results.asReader().getControl(), kj::arrayPtr(room, 8), ctrunc) == 0);
    CHECK(ctrunc);
  }
}
