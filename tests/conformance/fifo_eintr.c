/* Signals against a blocking read on a FIFO (under sbrun, a remote call in flight on the agent).
 *
 * A handler installed without SA_RESTART makes the read fail with EINTR, and the data written
 * afterwards is still there for the next read (the cancelled read must not have eaten it). With
 * SA_RESTART the handler runs and the read goes on until a writer sends data. A signal whose
 * action is to ignore it does not interrupt the read. A default action (SIGALRM terminates)
 * kills a process blocked in the read. A stop and a continue leave the read blocked, and it
 * completes afterwards. And waitpid, too, is interrupted by a handler without SA_RESTART.
 */
#include "util.h"
#include <signal.h>
#include <sys/wait.h>

static volatile sig_atomic_t handled;
static int notify_fd = -1;

static void on_signal(int sig) {
  (void)sig;
  handled++;
  if (notify_fd >= 0) {
    char c = 'h';
    (void)!write(notify_fd, &c, 1);
  }
}

/* Opens the FIFO for writing (a reader holds it open, so this does not block) and writes. */
static int write_fifo(const char *msg) {
  int w = open(P("fifo"), O_WRONLY | O_CLOEXEC);
  if (w < 0) return -1;
  ssize_t n = write(w, msg, strlen(msg));
  close(w);
  return n == (ssize_t)strlen(msg) ? 0 : -1;
}

static void read_expect(int fd, const char *label, const char *want) {
  char buf[64] = {0};
  errno = 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int e = errno;
  if (n < 0)
    obs("%s -> %zd %s", label, n, errname(e));
  else
    obs("%s -> %zd '%.*s'", label, n, (int)strcspn(buf, "\n"), buf);
  test_assert(n == (ssize_t)strlen(want) && strcmp(buf, want) == 0);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "fifo_eintr");
  check_ok(mkfifo(P("fifo"), 0644));
  /* O_RDWR: this fd is a reader and a writer, so a read blocks (no EOF) until data arrives. */
  int fd = check_ok(open(P("fifo"), O_RDWR | O_CLOEXEC));
  char buf[64];

  /* 1. No SA_RESTART: the blocked read fails with EINTR after the handler ran. */
  set_signal_handler(SIGALRM, on_signal, 0);
  handled = 0;
  alarm(1);
  check_err("read interrupted by SIGALRM without SA_RESTART", read(fd, buf, sizeof buf), EINTR);
  obs("handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  /* The interrupted read consumed nothing: what is written now is read whole. */
  test_assert(write_fifo("after eintr\n") == 0);
  read_expect(fd, "read after the EINTR", "after eintr\n");

  /* 2. SA_RESTART: the handler runs (it tells a child so), the read goes on, and it returns the
   * data the child writes afterwards. */
  int sync[2];
  check_ok(pipe(sync));
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(sync[1]);
    char c;
    if (read(sync[0], &c, 1) != 1) _exit(10); /* the parent's handler ran */
    usleep(300 * 1000);                      /* and its read is blocked again */
    _exit(write_fifo("late data\n") == 0 ? 0 : 11);
  }
  check_ok(close(sync[0]));
  notify_fd = sync[1];
  set_signal_handler(SIGALRM, on_signal, SA_RESTART);
  handled = 0;
  alarm(1);
  read_expect(fd, "read with SA_RESTART", "late data\n");
  obs("handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  notify_fd = -1;
  check_ok(close(sync[1]));
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("writer: %s", wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* 3. Ignored signals (SIG_IGN, and SIGWINCH whose default is to ignore) do not interrupt. */
  signal(SIGUSR1, SIG_IGN);
  signal(SIGWINCH, SIG_DFL);
  pid_t parent = getpid();
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(300 * 1000);
    kill(parent, SIGUSR1);
    kill(parent, SIGWINCH);
    usleep(300 * 1000);
    _exit(write_fifo("not interrupted\n") == 0 ? 0 : 12);
  }
  read_expect(fd, "read while ignored signals arrive", "not interrupted\n");
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  signal(SIGUSR1, SIG_DFL);

  /* 4. Default action: SIGALRM terminates a child blocked in the read. */
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    signal(SIGALRM, SIG_DFL);
    alarm(1);
    char b[8];
    (void)!read(fd, b, sizeof b);
    _exit(13); /* not reached */
  }
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("child blocked in the read when SIGALRM (default action) came: %s", wait_status_text(status));
  test_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM);

  /* 5. Stop and continue a child blocked in the read: the read carries on and completes. */
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    char b[64] = {0};
    ssize_t n = read(fd, b, sizeof b - 1);
    _exit(n == 14 && strcmp(b, "after SIGCONT\n") == 0 ? 0 : 14);
  }
  usleep(200 * 1000);
  check_ok(kill(pid, SIGSTOP));
  test_assert(waitpid(pid, &status, WUNTRACED) == pid);
  obs("reader after SIGSTOP: %s", wait_status_text(status));
  test_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
  check_ok(kill(pid, SIGCONT));
  test_assert(waitpid(pid, &status, WCONTINUED) == pid);
  obs("reader after SIGCONT: %s", wait_status_text(status));
  test_assert(WIFCONTINUED(status));
  usleep(200 * 1000);
  test_assert(write_fifo("after SIGCONT\n") == 0);
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("reader that was stopped and continued: %s", wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* 6. waitpid is interrupted by a handler without SA_RESTART too. */
  check_ok(pipe(sync));
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(sync[1]);
    char c;
    _exit(read(sync[0], &c, 1) == 0 ? 5 : 15);
  }
  check_ok(close(sync[0]));
  set_signal_handler(SIGALRM, on_signal, 0);
  handled = 0;
  alarm(1);
  check_err("waitpid interrupted by SIGALRM", waitpid(pid, &status, 0), EINTR);
  test_assert(handled == 1);
  check_ok(close(sync[1]));
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("child after the interrupted waitpid: %s", wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5);

  check_ok(close(fd));
  check_ok(unlink(P("fifo")));
  test_done();
}
