/* TCP over loopback (under sbrun: the target's network stack): listen on 127.0.0.1:0, connect,
 * accept, send/recv (MSG_PEEK), read/write and readv/writev on sockets, shutdown, names, socket
 * options, SIGPIPE with EPIPE (and MSG_NOSIGNAL), and the errnos of the common mistakes:
 * ECONNREFUSED, EADDRINUSE, ENOTCONN, EINVAL, EBADF, ENOTSOCK, EFAULT, EAFNOSUPPORT, EISCONN.
 */
#include "util.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>

static volatile sig_atomic_t pipes;
static void on_pipe(int sig) { (void)sig; pipes++; }

static struct sockaddr_in loopback(uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int int_opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  test_assert(getsockopt(fd, level, name, &v, &len) == 0 && len == sizeof v);
  return v;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_tcp");
  int s = check_ok(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  check_ok(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  obs("SO_REUSEADDR %d SO_TYPE %d SO_DOMAIN %d SO_PROTOCOL %d", int_opt(s, SOL_SOCKET, SO_REUSEADDR),
      int_opt(s, SOL_SOCKET, SO_TYPE), int_opt(s, SOL_SOCKET, SO_DOMAIN),
      int_opt(s, SOL_SOCKET, SO_PROTOCOL));
  check_err("setsockopt int option with optlen 2", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, 2), EINVAL);
  check_err("getpeername with NULL pointers before connect", getpeername(s, NULL, NULL), ENOTCONN);

  struct sockaddr_in any = loopback(0);
  check_err("bind with a short address", bind(s, (struct sockaddr *)&any, 8), EINVAL);
  struct sockaddr_in6 six;
  memset(&six, 0, sizeof six);
  six.sin6_family = AF_INET6;
  check_err("bind inet socket to an AF_INET6 address", bind(s, (struct sockaddr *)&six, sizeof any), EAFNOSUPPORT);
  check_ok(bind(s, (struct sockaddr *)&any, sizeof any));
  check_err("bind twice", bind(s, (struct sockaddr *)&any, sizeof any), EINVAL);
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  check_ok(getsockname(s, (struct sockaddr *)&local, &len));
  obs("getsockname: len %u family %d addr %s port-nonzero %d", len, local.sin_family,
      inet_ntoa(local.sin_addr), local.sin_port != 0);
  test_assert(len == sizeof local && local.sin_port != 0);
  socklen_t small = 4;
  struct sockaddr_in cut;
  memset(&cut, 0xee, sizeof cut);
  check_ok(getsockname(s, (struct sockaddr *)&cut, &small));
  obs("getsockname into 4 bytes: len %u, byte 4 untouched %d", small, ((unsigned char *)&cut)[4] == 0xee);
  test_assert(small == sizeof local && ((unsigned char *)&cut)[4] == 0xee);
  {
    struct sockaddr_in name;
    socklen_t n = sizeof name;
    check_err("getpeername on a listener-to-be", getpeername(s, (struct sockaddr *)&name, &n), ENOTCONN);
  }
  check_ok(listen(s, 4));
  obs("SO_ACCEPTCONN %d", int_opt(s, SOL_SOCKET, SO_ACCEPTCONN));

  int taken = check_ok(socket(AF_INET, SOCK_STREAM, 0));
  check_err("bind to the listener's address", bind(taken, (struct sockaddr *)&local, sizeof local), EADDRINUSE);
  check_ok(close(taken));

  int c = check_ok(socket(AF_INET, SOCK_STREAM, 0));
  check_err("recv on an unconnected socket", recv(c, &one, 1, 0), ENOTCONN);
  {
    /* (A separate socket: the kernel records the shutdown even as it says ENOTCONN.) */
    int u = check_ok(socket(AF_INET, SOCK_STREAM, 0));
    check_err("shutdown of an unconnected socket", shutdown(u, SHUT_RDWR), ENOTCONN);
    check_ok(close(u));
  }
  check_err("connect with a NULL address", connect(c, NULL, sizeof local), EFAULT);
  check_ok(connect(c, (struct sockaddr *)&local, sizeof local));
  check_err("connect again", connect(c, (struct sockaddr *)&local, sizeof local), EISCONN);
  struct sockaddr_in peer, mine;
  len = sizeof peer;
  check_ok(getpeername(c, (struct sockaddr *)&peer, &len));
  test_assert(peer.sin_port == local.sin_port && peer.sin_addr.s_addr == local.sin_addr.s_addr);
  len = sizeof mine;
  check_ok(getsockname(c, (struct sockaddr *)&mine, &len));
  obs("client: peer is the listener %d, own addr %s", peer.sin_port == local.sin_port,
      inet_ntoa(mine.sin_addr));

  struct sockaddr_in from;
  len = sizeof from;
  int a = check_ok(accept4(s, (struct sockaddr *)&from, &len, SOCK_CLOEXEC));
  obs("accepted: len %u peer is the client %d, FD_CLOEXEC %d", len, from.sin_port == mine.sin_port,
      (fcntl(a, F_GETFD) & FD_CLOEXEC) != 0);
  test_assert(from.sin_port == mine.sin_port);
  check_err("accept4 with bad flags", accept4(s, NULL, NULL, 0x40000000), EINVAL);

  check_ok(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  obs("TCP_NODELAY %d", int_opt(c, IPPROTO_TCP, TCP_NODELAY) != 0);
  test_assert(int_opt(c, SOL_SOCKET, SO_RCVBUF) > 0);
  obs("SO_ERROR %d", int_opt(c, SOL_SOCKET, SO_ERROR));

  char buf[64];
  test_assert(send(c, "hello", 5, 0) == 5);
  ssize_t n = check_ok(recv(a, buf, sizeof buf, MSG_PEEK));
  obs("MSG_PEEK -> %zd '%.*s'", n, (int)n, buf);
  n = check_ok(recv(a, buf, sizeof buf, 0));
  obs("recv -> %zd '%.*s'", n, (int)n, buf);
  test_assert(n == 5 && memcmp(buf, "hello", 5) == 0);

  test_assert(write(a, "via write", 9) == 9);
  n = check_ok(read(c, buf, sizeof buf));
  obs("read -> %zd '%.*s'", n, (int)n, buf);
  struct iovec out[3] = {{"one ", 4}, {"two ", 4}, {"three", 5}};
  test_assert(writev(c, out, 3) == 13);
  char p1[6] = {0}, p2[16] = {0};
  struct iovec in[2] = {{p1, 5}, {p2, 15}};
  size_t got = 0;
  while (got < 13) {
    n = check_ok(readv(a, in, 2));
    got += n;
    in[0].iov_len = got >= 5 ? 0 : 5 - got;
    in[0].iov_base = p1 + (got < 5 ? got : 5);
    in[1].iov_base = p2 + (got > 5 ? got - 5 : 0);
    in[1].iov_len = 15 - (got > 5 ? got - 5 : 0);
  }
  obs("readv -> '%s' + '%s'", p1, p2);

  /* Half close: the other side reads EOF, and can still send back. */
  check_ok(shutdown(c, SHUT_WR));
  obs("recv after the peer's SHUT_WR -> %zd", recv(a, buf, sizeof buf, 0));
  test_assert(send(a, "bye", 3, 0) == 3);
  check_ok(shutdown(a, SHUT_WR)); /* so MSG_WAITALL ends at the end of file */
  n = check_ok(recv(c, buf, sizeof buf, MSG_WAITALL));
  obs("recv MSG_WAITALL after shutdown -> %zd '%.*s'", n, (int)n, buf);
  check_err("shutdown with a bad how", shutdown(c, 7), EINVAL);

  /* Sending after SHUT_WR: EPIPE, with SIGPIPE unless MSG_NOSIGNAL. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_pipe;
  sigemptyset(&sa.sa_mask);
  check_ok(sigaction(SIGPIPE, &sa, NULL));
  check_err("send MSG_NOSIGNAL after SHUT_WR", send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
  obs("SIGPIPE handled %d time(s)", (int)pipes);
  test_assert(pipes == 0);
  check_err("send after SHUT_WR", send(c, "x", 1, 0), EPIPE);
  obs("SIGPIPE handled %d time(s)", (int)pipes);
  test_assert(pipes == 1);
  check_err("write after SHUT_WR", write(c, "x", 1), EPIPE);
  test_assert(pipes == 2);
  signal(SIGPIPE, SIG_DFL);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    (void)!send(c, "x", 1, 0);
    _exit(0);
  }
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("a child sending on it with SIGPIPE's default action: %s", wait_status_text(status));
  test_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);

  check_ok(close(a));
  check_ok(close(c));

  /* Nothing listens on a bound but not listening port. */
  int quiet = check_ok(socket(AF_INET, SOCK_STREAM, 0));
  check_ok(bind(quiet, (struct sockaddr *)&any, sizeof any));
  struct sockaddr_in qa;
  len = sizeof qa;
  check_ok(getsockname(quiet, (struct sockaddr *)&qa, &len));
  int r = check_ok(socket(AF_INET, SOCK_STREAM, 0));
  check_err("connect to a port nobody listens on", connect(r, (struct sockaddr *)&qa, sizeof qa), ECONNREFUSED);
  check_ok(close(r));
  check_ok(close(quiet));
  check_ok(close(s));

  /* Wrong fds. */
  check_err("connect on a closed fd", connect(s, (struct sockaddr *)&local, sizeof local), EBADF);
  check_err("listen on fd -1", listen(-1, 1), EBADF);
  int file = check_ok(open(P("plain"), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  check_err("connect on a regular file", connect(file, (struct sockaddr *)&local, sizeof local), ENOTSOCK);
  len = sizeof local;
  check_err("getsockname on a regular file", getsockname(file, (struct sockaddr *)&local, &len), ENOTSOCK);
  check_err("send on a regular file", send(file, "x", 1, 0), ENOTSOCK);
  check_ok(close(file));
  check_err("socket of an unknown family", socket(200, SOCK_STREAM, 0), EAFNOSUPPORT);
  check_err("socket with unknown type flags", socket(AF_INET, SOCK_STREAM | 0x100000, 0), EINVAL);
  check_err("socket with a type out of range", socket(AF_INET, 15, 0), EINVAL);
  check_err("socketpair of inet sockets", socketpair(AF_INET, SOCK_STREAM, 0, (int[2]){0, 0}), EOPNOTSUPP);
  test_done();
}
