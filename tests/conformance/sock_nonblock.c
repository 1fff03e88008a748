/* Non-blocking sockets (under sbrun: the target's): EAGAIN from accept and recv, EINPROGRESS
 * from connect and SO_ERROR once it completed, EALREADY/EISCONN, MSG_DONTWAIT on a blocking
 * socket, O_NONBLOCK through fcntl, SOCK_NONBLOCK inherited by accept4, a full send buffer.
 */
#include "util.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_nonblock");
  int s = check_ok(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check_ok(bind(s, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof a;
  check_ok(getsockname(s, (struct sockaddr *)&a, &len));
  check_ok(listen(s, 4));
  obs("listener O_NONBLOCK %d", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
  check_err("accept with nobody connecting", accept(s, NULL, NULL), EAGAIN);

  int c = check_ok(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  errno = 0;
  int r = connect(c, (struct sockaddr *)&a, sizeof a);
  obs("non-blocking connect -> %d %s", r, r < 0 ? errname(errno) : "OK");
  test_assert(r == 0 || errno == EINPROGRESS);
  usleep(200 * 1000);
  int err = -1;
  len = sizeof err;
  check_ok(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
  obs("SO_ERROR after the handshake: %d", err);
  /* The first connect after the handshake completes it for the socket layer; then EISCONN. */
  observe("connect after the handshake", connect(c, (struct sockaddr *)&a, sizeof a));
  check_err("connect once connected", connect(c, (struct sockaddr *)&a, sizeof a), EISCONN);

  int x = check_ok(accept4(s, NULL, NULL, SOCK_NONBLOCK));
  obs("accept4(SOCK_NONBLOCK): O_NONBLOCK %d", (fcntl(x, F_GETFL) & O_NONBLOCK) != 0);
  char buf[64];
  check_err("recv with nothing sent", recv(x, buf, sizeof buf, 0), EAGAIN);
  check_err("read with nothing sent", read(x, buf, sizeof buf), EAGAIN);
  check_ok(fcntl(x, F_SETFL, 0));
  obs("after F_SETFL 0: O_NONBLOCK %d", (fcntl(x, F_GETFL) & O_NONBLOCK) != 0);
  check_err("recv MSG_DONTWAIT on the now blocking socket", recv(x, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
  test_assert(send(c, "now", 3, 0) == 3);
  usleep(50 * 1000);
  ssize_t n = check_ok(recv(x, buf, sizeof buf, MSG_DONTWAIT));
  obs("recv MSG_DONTWAIT with data -> %zd", n);

  /* Fill the buffers: a non-blocking send ends with EAGAIN (the count depends on the kernel). */
  int small = 4096;
  check_ok(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small));
  static char chunk[65536];
  long total = 0;
  for (int i = 0; i < 10000; i++) {
    ssize_t w = send(c, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (w < 0) {
      obs("filling the buffers ends with %s", errname(errno));
      test_assert(errno == EAGAIN);
      break;
    }
    total += w;
  }
  test_assert(total > 0);

  /* Datagrams. */
  int u = check_ok(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
  check_err("UDP recv with nothing sent", recv(u, buf, sizeof buf, 0), EAGAIN);
  check_ok(close(u));
  check_ok(close(x));
  check_ok(close(c));
  check_ok(close(s));
  test_done();
}
