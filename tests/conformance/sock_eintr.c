/* Signals against blocking socket calls (under sbrun: remote calls in flight on the agent).
 * Without SA_RESTART a blocked recv and accept fail with EINTR; with SA_RESTART they go on and
 * complete when the peer acts; with SO_RCVTIMEO set a signal gives EINTR even under SA_RESTART
 * (socket(7)); and the timeout alone gives EAGAIN.
 */
#include "util.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

static volatile sig_atomic_t handled;

static void on_signal(int sig) {
  (void)sig;
  handled++;
}

static void set_handler(int flags) {
  set_signal_handler(SIGALRM, on_signal, flags);
  handled = 0;
}

/* A child that, after `delay_ms`, either writes `msg` to fd or connects to `addr`. */
static pid_t later(int delay_ms, int fd, const char *msg, const struct sockaddr_in *addr) {
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(delay_ms * 1000);
    if (addr) {
      int c = socket(AF_INET, SOCK_STREAM, 0);
      _exit(c >= 0 && connect(c, (const struct sockaddr *)addr, sizeof *addr) == 0 ? 0 : 20);
    }
    _exit(send(fd, msg, strlen(msg), 0) == (ssize_t)strlen(msg) ? 0 : 21);
  }
  return pid;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_eintr");
  int sv[2];
  check_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  char buf[64];

  set_handler(0);
  alarm(1);
  check_err("recv interrupted without SA_RESTART", recv(sv[0], buf, sizeof buf, 0), EINTR);
  obs("handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  /* The interrupted recv consumed nothing. */
  test_assert(send(sv[1], "kept", 4, 0) == 4);
  ssize_t n = check_ok(recv(sv[0], buf, sizeof buf, 0));
  obs("recv after the EINTR -> %zd '%.*s'", n, (int)n, buf);

  set_handler(SA_RESTART);
  alarm(1);
  pid_t pid = later(1500, sv[1], "restarted", NULL);
  n = check_ok(recv(sv[0], buf, sizeof buf, 0));
  obs("recv with SA_RESTART -> %zd '%.*s', handler ran %d time(s)", n, (int)n, buf, (int)handled);
  test_assert(handled == 1 && n == 9);
  reap(pid);

  struct timeval tv = {5, 0};
  check_ok(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
  set_handler(SA_RESTART);
  alarm(1);
  check_err("recv with SO_RCVTIMEO interrupted under SA_RESTART", recv(sv[0], buf, sizeof buf, 0), EINTR);
  test_assert(handled == 1);
  tv.tv_sec = 0;
  tv.tv_usec = 200 * 1000;
  check_ok(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
  check_err("recv after SO_RCVTIMEO expires", recv(sv[0], buf, sizeof buf, 0), EAGAIN);

  int s = check_ok(socket(AF_INET, SOCK_STREAM, 0));
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check_ok(bind(s, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof a;
  check_ok(getsockname(s, (struct sockaddr *)&a, &len));
  check_ok(listen(s, 4));
  set_handler(0);
  alarm(1);
  check_err("accept interrupted without SA_RESTART", accept(s, NULL, NULL), EINTR);
  test_assert(handled == 1);

  set_handler(SA_RESTART);
  alarm(1);
  pid = later(1500, -1, NULL, &a);
  int c = check_ok(accept(s, NULL, NULL));
  obs("accept with SA_RESTART returned a connection, handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  reap(pid);
  check_ok(close(c));
  check_ok(close(s));
  check_ok(close(sv[0]));
  check_ok(close(sv[1]));
  test_done();
}
