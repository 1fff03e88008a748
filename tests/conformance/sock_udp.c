/* UDP over loopback (under sbrun: the target's network stack): sendto/recvfrom with addresses,
 * connected datagrams, MSG_PEEK and MSG_TRUNC, zero-length datagrams, IP_PKTINFO control
 * messages through recvmsg, sendmmsg/recvmmsg, EMSGSIZE, dissolving an association with
 * AF_UNSPEC (EDESTADDRREQ after), and IPv6 on ::1 where the machine has it.
 */
#include "util.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

static int bound_udp(struct sockaddr_in *out) {
  int fd = check_ok(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check_ok(bind(fd, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof *out;
  check_ok(getsockname(fd, (struct sockaddr *)out, &len));
  return fd;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_udp");
  struct sockaddr_in aa, ba, from;
  int a = bound_udp(&aa), b = bound_udp(&ba);
  char buf[128];
  socklen_t len;

  test_assert(sendto(a, "ping", 4, 0, (struct sockaddr *)&ba, sizeof ba) == 4);
  len = sizeof from;
  ssize_t n = check_ok(recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len));
  obs("recvfrom -> %zd '%.*s' from the sender %d (len %u)", n, (int)n, buf,
      from.sin_port == aa.sin_port && from.sin_addr.s_addr == aa.sin_addr.s_addr, len);
  test_assert(from.sin_port == aa.sin_port);

  check_err("send without a destination", send(a, "x", 1, 0), EDESTADDRREQ);
  check_ok(connect(a, (struct sockaddr *)&ba, sizeof ba));
  test_assert(send(a, "0123456789", 10, 0) == 10);
  n = check_ok(recv(b, buf, 4, MSG_PEEK));
  obs("MSG_PEEK 4 -> %zd", n);
  n = check_ok(recv(b, buf, 4, MSG_TRUNC));
  obs("recv 4 with MSG_TRUNC -> %zd '%.*s'", n, 4, buf);
  test_assert(send(a, "", 0, 0) == 0);
  n = check_ok(recv(b, buf, sizeof buf, 0));
  obs("zero-length datagram -> %zd", n);

  int on = 1;
  check_ok(setsockopt(b, IPPROTO_IP, IP_PKTINFO, &on, sizeof on));
  test_assert(send(a, "with pktinfo", 12, 0) == 12);
  union {
    char space[CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
    struct cmsghdr align;
  } control;
  struct iovec iov = {buf, sizeof buf};
  struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                     .msg_iovlen = 1, .msg_control = control.space,
                     .msg_controllen = sizeof control.space};
  n = check_ok(recvmsg(b, &m, 0));
  int pktinfo = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      obs("IP_PKTINFO: destination %s", inet_ntoa(info.ipi_addr));
      pktinfo++;
    }
  }
  obs("recvmsg -> %zd, %d IP_PKTINFO message(s), msg_flags %#x, namelen %u", n, pktinfo,
      m.msg_flags, m.msg_namelen);
  test_assert(pktinfo == 1);
  /* A control buffer too small for the message: MSG_CTRUNC. */
  test_assert(send(a, "cut", 3, 0) == 3);
  m.msg_controllen = 4;
  m.msg_namelen = sizeof from;
  n = check_ok(recvmsg(b, &m, 0));
  obs("recvmsg with 4 control bytes -> %zd, MSG_CTRUNC %d, controllen %zu", n,
      (m.msg_flags & MSG_CTRUNC) != 0, (size_t)m.msg_controllen);
  on = 0;
  check_ok(setsockopt(b, IPPROTO_IP, IP_PKTINFO, &on, sizeof on));

  /* Batches. */
  struct mmsghdr msgs[3];
  struct iovec parts[3] = {{"first", 5}, {"second", 6}, {"third!!", 7}};
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < 3; i++) {
    msgs[i].msg_hdr.msg_iov = &parts[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = check_ok(sendmmsg(a, msgs, 3, 0));
  obs("sendmmsg -> %d, lengths %u %u %u", sent, msgs[0].msg_len, msgs[1].msg_len, msgs[2].msg_len);
  char r[3][16];
  struct iovec rparts[3] = {{r[0], 16}, {r[1], 16}, {r[2], 16}};
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < 3; i++) {
    msgs[i].msg_hdr.msg_iov = &rparts[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int rec = check_ok(recvmmsg(b, msgs, 3, MSG_WAITFORONE, NULL));
  obs("recvmmsg -> %d, lengths %u %u %u", rec, msgs[0].msg_len, msgs[1].msg_len, msgs[2].msg_len);
  test_assert(rec == 3 && memcmp(r[2], "third!!", 7) == 0);

  static char big[70000];
  check_err("a datagram over 64 KiB", send(a, big, sizeof big, 0), EMSGSIZE);

  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  check_ok(connect(a, &unspec, sizeof unspec));
  check_err("send after dissolving the association", send(a, "x", 1, 0), EDESTADDRREQ);
  check_ok(close(a));
  check_ok(close(b));

  /* IPv6, where the machine has ::1. */
  int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
  struct sockaddr_in6 a6;
  memset(&a6, 0, sizeof a6);
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  if (s6 < 0 || bind(s6, (struct sockaddr *)&a6, sizeof a6) < 0) {
    obs("no IPv6 loopback here (%s)", errname(errno));
  } else {
    len = sizeof a6;
    check_ok(getsockname(s6, (struct sockaddr *)&a6, &len));
    test_assert(sendto(s6, "six", 3, 0, (struct sockaddr *)&a6, sizeof a6) == 3);
    struct sockaddr_in6 f6;
    len = sizeof f6;
    n = check_ok(recvfrom(s6, buf, sizeof buf, 0, (struct sockaddr *)&f6, &len));
    char text[64];
    inet_ntop(AF_INET6, &f6.sin6_addr, text, sizeof text);
    obs("IPv6: recvfrom -> %zd from %s (len %u, family %d)", n, text, len, f6.sin6_family);
  }
  if (s6 >= 0) check_ok(close(s6));
  test_done();
}
