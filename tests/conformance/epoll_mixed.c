/* epoll on a FIFO in the work directory (remote under sbrun) and a local pipe in one instance:
 * epoll_ctl's errnos, level-triggered readiness each way, data round trip, EPOLLONESHOT and its
 * re-arming, EPOLLOUT on the FIFO's write end, EPOLLET after a drain, maxevents, a closed fd
 * leaving the set (but not while a dup keeps its file open), a dup'ed epoll fd and a forked
 * child sharing the instance, epoll_pwait's EINTR and its temporary mask.
 */
#include "util.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/time.h>

static volatile sig_atomic_t handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static void alarm_in_ms(int ms) {
  struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  test_assert(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static int cmp_data(const void *a, const void *b) {
  const struct epoll_event *x = a, *y = b;
  return x->data.u64 < y->data.u64 ? -1 : x->data.u64 > y->data.u64;
}

/* epoll_wait; prints the events sorted by data (the order between sides is not specified). */
static int wait_print(int ep, const char *label, int maxevents, int timeout) {
  struct epoll_event ev[8];
  int n = epoll_wait(ep, ev, maxevents, timeout);
  if (n < 0) {
    obs("%s -> -1 %s", label, errname(errno));
    return n;
  }
  qsort(ev, n, sizeof ev[0], cmp_data);
  char line[256] = "";
  for (int i = 0; i < n; i++) {
    char one[48];
    snprintf(one, sizeof one, " %llu:%#x", (unsigned long long)ev[i].data.u64, ev[i].events);
    strncat(line, one, sizeof line - strlen(line) - 1);
  }
  obs("%s -> %d%s", label, n, line);
  return n;
}

static int add(int ep, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data) {
  struct epoll_event ev = {.events = events, .data.u64 = data};
  return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void drain(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0) {}
}

int main(int argc, char **argv) {
  test_init(argc, argv, "epoll_mixed");
  check_ok(mkfifo(P("fifo"), 0644));
  int fr = check_ok(open(P("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  int fw = check_ok(open(P("fifo"), O_WRONLY | O_CLOEXEC));
  int p[2];
  check_ok(pipe2(p, O_NONBLOCK | O_CLOEXEC));
  write_file(P("plain"), "x", 0644);
  int reg = check_ok(open(P("plain"), O_RDONLY | O_CLOEXEC));
  int ep = check_ok(epoll_create1(EPOLL_CLOEXEC));
  int other = check_ok(epoll_create1(EPOLL_CLOEXEC));
  int n;

  /* epoll_ctl errnos. */
  check_ok(add(ep, fr, EPOLLIN, 1));
  check_ok(add(ep, p[0], EPOLLIN, 2));
  check_err("ADD the fifo again", add(ep, fr, EPOLLIN, 1), EEXIST);
  check_err("MOD the fifo's write end, never added", mod(ep, fw, EPOLLOUT, 9), ENOENT);
  check_err("DEL the fifo's write end, never added", epoll_ctl(ep, EPOLL_CTL_DEL, fw, NULL),
            ENOENT);
  check_err("ADD a regular file", add(ep, reg, EPOLLIN, 9), EPERM);
  check_err("ADD the fifo to a regular file's fd", add(reg, fr, EPOLLIN, 9), EINVAL);
  int closed = check_ok(dup(ep));
  check_ok(close(closed));
  check_err("ADD the fifo to a closed epfd", add(closed, fr, EPOLLIN, 9), EBADF);
  check_err("MOD the fifo with EPOLLEXCLUSIVE", mod(ep, fr, EPOLLIN | EPOLLEXCLUSIVE, 1), EINVAL);
  check_err("ADD with EPOLLEXCLUSIVE and EPOLLONESHOT",
            add(other, fr, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 9), EINVAL);
  check_err("ADD with a NULL event", epoll_ctl(other, EPOLL_CTL_ADD, fr, NULL), EFAULT);
  struct epoll_event dummy = {.events = EPOLLIN};
  check_err("op 99", epoll_ctl(other, 99, fr, &dummy), EINVAL);
  check_err("wait with maxevents 0", epoll_wait(ep, &dummy, 0, 0), EINVAL);

  /* Level-triggered, each way, both; data comes back as registered. */
  test_assert(wait_print(ep, "nothing ready, timeout 0", 8, 0) == 0);
  test_assert(write(fw, "R", 1) == 1);
  test_assert(wait_print(ep, "fifo written", 8, -1) == 1);
  test_assert(wait_print(ep, "again, not read (level-triggered)", 8, 0) == 1);
  test_assert(write(p[1], "L", 1) == 1);
  test_assert(wait_print(ep, "both ready", 8, 1000) == 2);
  /* Which of the two comes first is the kernel's ready-list order: print the count only. */
  n = epoll_wait(ep, &dummy, 1, 1000);
  obs("both ready, maxevents 1 -> %d", n);
  test_assert(n == 1);
  drain(fr);
  drain(p[0]);
  test_assert(wait_print(ep, "drained, timeout 100", 8, 100) == 0);
  /* A write during the wait, from a child. */
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(150 * 1000);
    _exit(write(fw, "late", 4) == 4 ? 0 : 1);
  }
  test_assert(wait_print(ep, "fifo written during the wait", 8, -1) == 1);
  int status;
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(fr);

  /* EPOLLONESHOT: one event, then nothing until MOD re-arms it. */
  check_ok(mod(ep, fr, EPOLLIN | EPOLLONESHOT, 3));
  test_assert(write(fw, "R", 1) == 1);
  test_assert(wait_print(ep, "oneshot, first", 8, 1000) == 1);
  test_assert(wait_print(ep, "oneshot, after its event", 8, 100) == 0);
  check_ok(mod(ep, fr, EPOLLIN | EPOLLONESHOT, 4));
  test_assert(wait_print(ep, "oneshot, re-armed", 8, 1000) == 1);
  drain(fr);
  check_ok(mod(ep, fr, EPOLLIN, 1));

  /* EPOLLET: an edge after a drain. */
  check_ok(mod(ep, fr, EPOLLIN | EPOLLET, 5));
  test_assert(write(fw, "ab", 2) == 2);
  test_assert(wait_print(ep, "edge-triggered, written", 8, 1000) == 1);
  test_assert(wait_print(ep, "edge-triggered, no new edge", 8, 100) == 0);
  drain(fr);
  test_assert(write(fw, "c", 1) == 1);
  test_assert(wait_print(ep, "edge-triggered, written after a drain", 8, 1000) == 1);
  drain(fr);
  check_ok(mod(ep, fr, EPOLLIN, 1));

  /* EPOLLOUT on the FIFO's write end; closing its only fd removes it; a dup keeps it. */
  int w2 = check_ok(open(P("fifo"), O_WRONLY | O_CLOEXEC));
  check_ok(add(ep, w2, EPOLLOUT, 6));
  test_assert(wait_print(ep, "fifo write end", 8, 1000) == 1);
  int w3 = check_ok(dup(w2));
  check_ok(close(w2));
  test_assert(wait_print(ep, "its fd closed, a dup still open", 8, 1000) == 1);
  check_ok(close(w3));
  test_assert(wait_print(ep, "the last fd of the write end closed", 8, 100) == 0);

  /* A dup of the epoll fd and a forked child share the instance. */
  int ep2 = check_ok(dup(ep));
  test_assert(write(fw, "R", 1) == 1);
  test_assert(wait_print(ep2, "through a dup of the epoll fd", 8, 1000) == 1);
  check_err("ADD the fifo through the dup", add(ep2, fr, EPOLLIN, 1), EEXIST);
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 1000);
    _exit(n == 1 && ev[0].data.u64 == 1 ? 0 : 30);
  }
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("a forked child's epoll_wait: %s", wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  drain(fr);
  check_ok(epoll_ctl(ep2, EPOLL_CTL_DEL, fr, NULL));
  check_err("DEL it again", epoll_ctl(ep, EPOLL_CTL_DEL, fr, NULL), ENOENT);
  check_ok(add(ep, fr, EPOLLIN, 1));

  /* epoll_pwait: EINTR from a handler (with SA_RESTART too); a mask that blocks the signal. */
  set_signal_handler(SIGALRM, on_alarm, SA_RESTART);
  handled = 0;
  alarm_in_ms(150);
  struct epoll_event ev[4];
  errno = 0;
  n = epoll_pwait(ep, ev, 4, -1, NULL);
  obs("epoll_pwait with an SA_RESTART handler -> %d %s, handler ran %d", n, errname(errno),
      (int)handled);
  test_assert(n == -1 && errno == EINTR && handled == 1);
  handled = 0;
  alarm_in_ms(150);
  errno = 0;
  n = epoll_wait(ep, ev, 4, 5000);
  obs("epoll_wait with an SA_RESTART handler -> %d %s, handler ran %d", n, errname(errno),
      (int)handled);
  test_assert(n == -1 && errno == EINTR && handled == 1);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  handled = 0;
  alarm_in_ms(100);
  n = epoll_pwait(ep, ev, 4, 400, &block);
  obs("epoll_pwait with SIGALRM blocked by its mask -> %d, handler ran after it: %d", n,
      (int)handled);
  test_assert(n == 0 && handled == 1);

  check_ok(close(ep2));
  check_ok(close(ep));
  check_ok(close(other));
  check_ok(close(fr));
  check_ok(close(fw));
  check_ok(close(reg));
  check_ok(unlink(P("fifo")));
  check_ok(unlink(P("plain")));
  test_done();
}
