/* Signals a program ignores (SIG_IGN, or a default action of ignore: SIGCHLD, SIGURG,
 * SIGWINCH) never interrupt a blocking call: the kernel discards them before they wake it.
 * Under sbrun the call waits on the agent; such a signal must leave the remote call alone.
 * (It used to cancel and restart it, and an answer already on its way back was lost:
 * sock_eintr hung when the child that sent the data exited, SIGCHLD, as the data arrived.)
 * Rounds of "a child sends, then exits at once" make that race likely; a lost answer shows
 * as this program's own alarm.
 */
#include "util.h"
#include <signal.h>
#include <sys/socket.h>

#define ROUNDS 40

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "sig_ignored: a blocking call never returned (lost answer?)\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
    _exit(4);  /* nowhere to say it */
  }
  _exit(3);
}

/* A child that sends the ignored signals to its parent, then `msg` to fd. */
static pid_t signal_then_send(int fd, const char *msg) {
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    static const int sigs[] = {SIGWINCH, SIGURG, SIGUSR1, SIGCHLD};
    for (int round = 0; round < 3; round++) {
      for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        usleep(20 * 1000);
        kill(getppid(), sigs[i]);
      }
    }
    usleep(20 * 1000);
    _exit(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg) ? 0 : 21);
  }
  return pid;
}

/* A child that writes one byte to fd and exits at once (its SIGCHLD meets the answer). */
static pid_t send_and_exit(int fd) {
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    _exit(write(fd, "x", 1) == 1 ? 0 : 21);
  }
  return pid;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sig_ignored");
  signal(SIGALRM, on_alarm);
  signal(SIGUSR1, SIG_IGN);
  alarm(60);
  char buf[64];

  int sv[2];
  check_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  pid_t pid = signal_then_send(sv[1], "data");
  ssize_t n = check_ok(recv(sv[0], buf, sizeof buf, 0));
  obs("recv through 12 ignored signals -> %zd '%.*s'", n, (int)n, buf);
  reap(pid);

  int got = 0;
  for (int i = 0; i < ROUNDS; i++) {
    pid = send_and_exit(sv[1]);
    got += check_ok(recv(sv[0], buf, 1, 0)) == 1 && buf[0] == 'x';
    reap(pid);
  }
  obs("socket: %d of %d bytes sent by exiting children received", got, ROUNDS);
  test_assert(got == ROUNDS);

  check_ok(mkfifo(P("fifo"), 0600));
  int rd = check_ok(open(P("fifo"), O_RDWR));
  pid = signal_then_send(rd, "fifo");
  n = check_ok(read(rd, buf, sizeof buf));
  obs("fifo read through 12 ignored signals -> %zd '%.*s'", n, (int)n, buf);
  reap(pid);
  got = 0;
  for (int i = 0; i < ROUNDS; i++) {
    pid = send_and_exit(rd);
    got += check_ok(read(rd, buf, 1)) == 1 && buf[0] == 'x';
    reap(pid);
  }
  obs("fifo: %d of %d bytes written by exiting children read", got, ROUNDS);
  test_assert(got == ROUNDS);

  check_ok(close(rd));
  check_ok(close(sv[0]));
  check_ok(close(sv[1]));
  test_done();
}
