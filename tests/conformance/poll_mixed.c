/* poll, ppoll, select and pselect6 on a FIFO in the work directory (remote under sbrun) and a
 * local pipe at once: readiness from either side, POLLOUT, POLLHUP when the last writer goes,
 * POLLNVAL for a closed fd, timeouts 0 / finite / infinite, select's write-back of the time
 * left (and the raw ppoll/pselect6 syscalls' write-back, which glibc hides), EINTR from a
 * handler with and without SA_RESTART (these calls are never restarted), ignored signals and a
 * stop/continue that do not end the wait, and the temporary signal mask of ppoll and pselect.
 */
#include "util.h"
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static void set_handler(int flags) {
  set_signal_handler(SIGALRM, on_alarm, flags);
}

static void alarm_in_ms(int ms) {
  struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  test_assert(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fifo_r, fifo_w, pipe_r, pipe_w;

/* poll on both read ends; prints and returns the count, leaves revents in out[2]. */
static int poll_both(const char *label, int timeout, short out[2]) {
  struct pollfd p[2] = {{fifo_r, POLLIN, 0}, {pipe_r, POLLIN, 0}};
  int n = poll(p, 2, timeout);
  obs("%s -> %d fifo=%#x pipe=%#x", label, n, p[0].revents, p[1].revents);
  if (out) { out[0] = p[0].revents; out[1] = p[1].revents; }
  return n;
}

static void drain(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0) {}
}

static int select_both(const char *label, struct timeval *tv) {
  fd_set r;
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  FD_SET(pipe_r, &r);
  int nfds = (fifo_r > pipe_r ? fifo_r : pipe_r) + 1;
  int n = select(nfds, &r, NULL, NULL, tv);
  if (n < 0)
    obs("%s -> -1 %s", label, errname(errno));
  else
    obs("%s -> %d fifo=%d pipe=%d", label, n, FD_ISSET(fifo_r, &r) ? 1 : 0,
        FD_ISSET(pipe_r, &r) ? 1 : 0);
  return n;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "poll_mixed");
  check_ok(mkfifo(P("fifo"), 0644));
  fifo_r = check_ok(open(P("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  fifo_w = check_ok(open(P("fifo"), O_WRONLY | O_CLOEXEC));
  int p[2];
  check_ok(pipe2(p, O_NONBLOCK | O_CLOEXEC));
  pipe_r = p[0];
  pipe_w = p[1];
  short rev[2];

  /* Readiness each way, and both. */
  test_assert(poll_both("poll, nothing ready, timeout 0", 0, rev) == 0);
  test_assert(write(pipe_w, "L", 1) == 1);
  test_assert(poll_both("poll, pipe written", -1, rev) == 1 && rev[1] == POLLIN);
  drain(pipe_r);
  test_assert(write(fifo_w, "R", 1) == 1);
  test_assert(poll_both("poll, fifo written", 5000, rev) == 1 && rev[0] == POLLIN);
  test_assert(write(pipe_w, "L", 1) == 1);
  test_assert(poll_both("poll, both written", -1, rev) == 2);
  drain(pipe_r);
  drain(fifo_r);

  /* A finite timeout expires. */
  double t0 = now_ms();
  test_assert(poll_both("poll, nothing ready, timeout 150", 150, rev) == 0);
  test_assert(now_ms() - t0 >= 149);

  /* Data arriving during the wait: a child writes the FIFO after 150 ms. */
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(150 * 1000);
    _exit(write(fifo_w, "late", 4) == 4 ? 0 : 1);
  }
  test_assert(poll_both("poll, fifo written during the wait", -1, rev) == 1 && rev[0] == POLLIN);
  int status;
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(fifo_r);
  /* And the pipe during the wait, the FIFO being watched too. */
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(150 * 1000);
    _exit(write(pipe_w, "late", 4) == 4 ? 0 : 1);
  }
  test_assert(poll_both("poll, pipe written during the wait", 5000, rev) == 1 && rev[1] == POLLIN);
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(pipe_r);

  /* POLLOUT on both write ends; POLLNVAL for a closed fd; negative fds are skipped. */
  int closed = check_ok(dup(pipe_r));
  check_ok(close(closed));
  struct pollfd w[4] = {{fifo_w, POLLOUT, 0}, {pipe_w, POLLOUT, 0}, {closed, POLLIN, 0},
                        {-1, POLLIN, 0x7}};
  int n = poll(w, 4, -1);
  obs("poll write ends + closed fd + fd -1 -> %d: %#x %#x %#x %#x", n, w[0].revents, w[1].revents,
      w[2].revents, w[3].revents);
  test_assert(n == 3 && w[0].revents == POLLOUT && w[2].revents == POLLNVAL && w[3].revents == 0);

  /* ppoll: the raw syscall writes the time left back; glibc's wrapper hides it. */
  struct pollfd one = {fifo_w, POLLOUT, 0};
  struct timespec ts = {5, 0};
  n = syscall(SYS_ppoll, &one, 1, &ts, NULL, 8);
  obs("raw ppoll, ready at once -> %d, time left below 5 s: %d, above 4 s: %d", n,
      ts.tv_sec < 5, ts.tv_sec >= 4);
  test_assert(n == 1 && ts.tv_sec == 4);
  struct pollfd rd = {fifo_r, POLLIN, 0};
  ts.tv_sec = 0;
  ts.tv_nsec = 100 * 1000 * 1000;
  n = syscall(SYS_ppoll, &rd, 1, &ts, NULL, 8);
  obs("raw ppoll, timed out -> %d, time left %ld.%09ld", n, (long)ts.tv_sec, ts.tv_nsec);
  test_assert(n == 0 && ts.tv_sec == 0 && ts.tv_nsec == 0);
  ts.tv_sec = 0;
  ts.tv_nsec = 100 * 1000 * 1000;
  n = ppoll(&rd, 1, &ts, NULL);
  obs("glibc ppoll, timed out -> %d, its timespec untouched: %d", n, ts.tv_nsec == 100000000);
  struct timespec bad = {0, 1000000000};
  check_err("ppoll with tv_nsec 10^9", syscall(SYS_ppoll, &rd, 1, &bad, NULL, 8), EINVAL);
  sigset_t none;
  sigemptyset(&none);
  check_err("ppoll with sigsetsize 4", syscall(SYS_ppoll, &rd, 1, NULL, &none, 4), EINVAL);
  check_err("ppoll with a bad pollfd pointer", syscall(SYS_ppoll, (void *)8, 1, NULL, NULL, 8),
            EFAULT);

  /* select: each way, the timeval's time left, EBADF for a closed fd. */
  struct timeval tv = {0, 0};
  test_assert(select_both("select, nothing ready, timeout 0", &tv) == 0);
  test_assert(write(fifo_w, "R", 1) == 1);
  tv.tv_sec = 5;
  tv.tv_usec = 0;
  test_assert(select_both("select, fifo written", &tv) == 1);
  obs("select's timeval after an early return: below 5 s %d, at least 4 s %d", tv.tv_sec < 5,
      tv.tv_sec >= 4);
  test_assert(tv.tv_sec == 4);
  drain(fifo_r);
  test_assert(write(pipe_w, "L", 1) == 1);
  test_assert(select_both("select, pipe written, no timeout", NULL) == 1);
  drain(pipe_r);
  tv.tv_sec = 0;
  tv.tv_usec = 150 * 1000;
  test_assert(select_both("select, timeout 150 ms", &tv) == 0);
  obs("select's timeval after the timeout: %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
  test_assert(tv.tv_sec == 0 && tv.tv_usec == 0);
  fd_set r;
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  FD_SET(closed, &r);
  tv.tv_sec = 0;
  tv.tv_usec = 0;
  int maxfd = (fifo_r > closed ? fifo_r : closed) + 1;
  check_err("select with a closed fd", select(maxfd, &r, NULL, NULL, &tv), EBADF);
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  tv.tv_usec = 1000000;
  tv.tv_sec = -2;
  check_err("select with a negative timeval", select(fifo_r + 1, &r, NULL, NULL, &tv), EINVAL);
  /* pselect: glibc keeps the timespec; the raw call writes it back. */
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  FD_SET(pipe_r, &r);
  ts.tv_sec = 0;
  ts.tv_nsec = 100 * 1000 * 1000;
  n = pselect((fifo_r > pipe_r ? fifo_r : pipe_r) + 1, &r, NULL, NULL, &ts, NULL);
  obs("pselect, timed out -> %d, timespec untouched %d", n, ts.tv_nsec == 100000000);
  test_assert(n == 0);
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  FD_SET(pipe_r, &r);
  test_assert(write(fifo_w, "R", 1) == 1);
  ts.tv_sec = 5;
  ts.tv_nsec = 0;
  n = syscall(SYS_pselect6, (fifo_r > pipe_r ? fifo_r : pipe_r) + 1, &r, NULL, NULL, &ts, NULL);
  obs("raw pselect6, fifo ready -> %d fifo=%d pipe=%d, time left 4.x s: %d", n,
      FD_ISSET(fifo_r, &r) ? 1 : 0, FD_ISSET(pipe_r, &r) ? 1 : 0, ts.tv_sec == 4);
  test_assert(n == 1 && ts.tv_sec == 4);
  drain(fifo_r);

  /* POLLHUP when the FIFO's last writer goes. */
  int w2 = check_ok(open(P("fifo"), O_WRONLY | O_CLOEXEC));
  check_ok(close(fifo_w));
  struct pollfd h = {fifo_r, POLLIN, 0};
  test_assert(poll(&h, 1, 0) == 0);
  check_ok(close(w2));
  n = poll(&h, 1, 1000);
  obs("poll after the last writer closed -> %d revents %#x", n, h.revents);
  test_assert(n == 1 && h.revents == POLLHUP);
  check_ok(close(fifo_r));
  fifo_r = check_ok(open(P("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  fifo_w = check_ok(open(P("fifo"), O_WRONLY | O_CLOEXEC));

  /* EINTR: a handler ends poll, select and ppoll, with or without SA_RESTART. */
  for (int restart = 0; restart <= 1; ++restart) {
    set_handler(restart ? SA_RESTART : 0);
    const char *how = restart ? "with SA_RESTART" : "without SA_RESTART";
    handled = 0;
    alarm_in_ms(150);
    errno = 0;
    n = poll_both("poll, no timeout, SIGALRM handler", -1, rev);
    obs("  %s: errno %s, handler ran %d", how, errname(errno), (int)handled);
    test_assert(n == -1 && errno == EINTR && handled == 1);
    handled = 0;
    alarm_in_ms(150);
    tv.tv_sec = 5;
    tv.tv_usec = 0;
    n = select_both("select, 5 s, SIGALRM handler", &tv);
    obs("  %s: errno %s, handler ran %d, time left written back: %d", how, errname(errno),
        (int)handled, tv.tv_sec == 4);
    test_assert(n == -1 && errno == EINTR && handled == 1 && tv.tv_sec == 4);
    handled = 0;
    alarm_in_ms(150);
    struct pollfd both[2] = {{fifo_r, POLLIN, 0}, {pipe_r, POLLIN, 0}};
    n = ppoll(both, 2, NULL, NULL);
    obs("  ppoll %s -> %d %s, handler ran %d", how, n, errname(errno), (int)handled);
    test_assert(n == -1 && errno == EINTR && handled == 1);
  }

  /* ppoll's temporary mask blocks SIGALRM: the wait times out, and the signal is delivered
   * once the old mask is back. */
  set_handler(0);
  handled = 0;
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  alarm_in_ms(100);
  struct pollfd both[2] = {{fifo_r, POLLIN, 0}, {pipe_r, POLLIN, 0}};
  ts.tv_sec = 0;
  ts.tv_nsec = 400 * 1000 * 1000;
  n = ppoll(both, 2, &ts, &block);
  obs("ppoll with SIGALRM blocked by its mask -> %d, handler ran after it: %d", n, (int)handled);
  test_assert(n == 0 && handled == 1);
  /* pselect's purpose: a signal blocked before the call and let in by its mask ends it. */
  sigprocmask(SIG_BLOCK, &block, NULL);
  handled = 0;
  kill(getpid(), SIGALRM);
  test_assert(handled == 0);
  FD_ZERO(&r);
  FD_SET(fifo_r, &r);
  FD_SET(pipe_r, &r);
  ts.tv_sec = 5;
  ts.tv_nsec = 0;
  errno = 0;
  n = pselect((fifo_r > pipe_r ? fifo_r : pipe_r) + 1, &r, NULL, NULL, &ts, &none);
  obs("pselect letting in a pending SIGALRM -> %d %s, handler ran %d", n, errname(errno),
      (int)handled);
  test_assert(n == -1 && errno == EINTR && handled == 1);
  sigprocmask(SIG_UNBLOCK, &block, NULL);

  /* Ignored signals (SIG_IGN, and SIGWINCH by default) do not end a wait. */
  signal(SIGUSR1, SIG_IGN);
  signal(SIGWINCH, SIG_DFL);
  pid_t parent = getpid();
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(100 * 1000);
    kill(parent, SIGUSR1);
    kill(parent, SIGWINCH);
    usleep(200 * 1000);
    _exit(write(pipe_w, "x", 1) == 1 ? 0 : 1);
  }
  test_assert(poll_both("poll while ignored signals arrive", -1, rev) == 1 && rev[1] == POLLIN);
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(pipe_r);
  signal(SIGUSR1, SIG_DFL);

  /* Stop and continue a child blocked in poll: its poll carries on, with the time it had. */
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    struct pollfd c[2] = {{fifo_r, POLLIN, 0}, {pipe_r, POLLIN, 0}};
    double start = now_ms();
    int got = poll(c, 2, 600);
    double took = now_ms() - start;
    _exit(got == 0 && took >= 599 ? 0 : 20);
  }
  usleep(150 * 1000);
  check_ok(kill(pid, SIGSTOP));
  test_assert(waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status));
  check_ok(kill(pid, SIGCONT));
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("a poll stopped and continued: %s", wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  check_ok(close(fifo_r));
  check_ok(close(fifo_w));
  check_ok(unlink(P("fifo")));
  test_done();
}
