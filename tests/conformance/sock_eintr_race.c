/* A signal that races with the data a blocking recv waits for (under sbrun: the remote recv is
 * in flight on the agent when the signal comes). In each round a child sends a few bytes and, at
 * the same moment, signals the parent blocked in recv, alternating the order and the delay, and
 * the handler's SA_RESTART. Whatever the outcome of each recv (the bytes, or EINTR and the bytes
 * read after it), no byte is ever lost: the kernel never drops what a recv already dequeued, and
 * the handler runs after the recv returned it. A lost byte makes the parent wait forever; the
 * watchdog (SIGALRM) then reports how much arrived.
 *
 * Then a signal interrupts one thread's recv while another thread (which blocks the signal)
 * waits in recv on the same socket: only the first sees EINTR; the other goes on waiting and
 * gets the byte sent afterwards.
 */
#include "util.h"
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#define ROUNDS 200
#define CHUNK 7

static volatile sig_atomic_t handled;
static volatile long received;

static void on_signal(int sig) {
  (void)sig;
  handled++;
}

static void on_watchdog(int sig) {
  (void)sig;
  char msg[128];
  int n = snprintf(msg, sizeof msg, "sock_eintr_race: FAILED: stuck after %ld of %d bytes\n",
                   (long)received, ROUNDS * CHUNK);
  (void)!write(2, msg, n);
  _exit(1);
}

static void set_handler(int flags) {
  set_signal_handler(SIGUSR1, on_signal, flags);
}

static int other_fd;
static ssize_t other_result;
static int other_errno;

static void *other_thread(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  char c;
  other_result = recv(other_fd, &c, 1, 0);
  other_errno = errno;
  if (other_result == 1 && c != 'z') {
    other_result = -2;
  }
  return NULL;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_eintr_race");
  int sv[2];
  check_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  int go[2];
  check_ok(pipe(go));
  set_handler(0);
  set_signal_handler(SIGALRM, on_watchdog, 0);

  pid_t parent = getpid();
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(go[1]);
    char data[CHUNK];
    for (int round = 0; round < ROUNDS; round++) {
      char g;
      if (read(go[0], &g, 1) != 1) {
        _exit(20);
      }
      memset(data, 'a' + round % 26, sizeof data);
      usleep((round % 5) * 800);  /* before, around and after the tracer parks the recv */
      if (round % 2 == 0) {
        if (send(sv[1], data, CHUNK, 0) != CHUNK) _exit(21);
        kill(parent, SIGUSR1);
      } else {
        kill(parent, SIGUSR1);
        if (send(sv[1], data, CHUNK, 0) != CHUNK) _exit(21);
      }
    }
    _exit(0);
  }
  close(go[0]);

  for (int round = 0; round < ROUNDS; round++) {
    alarm(10);
    set_handler(round % 4 < 2 ? 0 : SA_RESTART);
    test_assert(write(go[1], "g", 1) == 1);
    int got = 0;
    while (got < CHUNK) {
      char buf[CHUNK];
      ssize_t n = recv(sv[0], buf, CHUNK - got, 0);
      if (n < 0) {
        test_assert(errno == EINTR);
        continue;
      }
      test_assert(n > 0);
      for (ssize_t i = 0; i < n; i++) {
        test_assert(buf[i] == 'a' + round % 26);
      }
      got += n;
      received += n;
    }
    /* The signal of this round is handled before the next one starts. */
    while (handled < round + 1) {
      usleep(100);
    }
  }
  alarm(0);
  test_assert(handled == ROUNDS);
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  obs("%d rounds: %ld bytes received of %d, %d signals handled", ROUNDS, (long)received,
      ROUNDS * CHUNK, (int)handled);
  /* How many recvs were interrupted depends on timing: not printed. */

  /* Two threads wait on one socket; the signal is for one of them. */
  set_handler(0);
  handled = 0;
  other_fd = sv[0];
  pthread_t t;
  test_assert(pthread_create(&t, NULL, other_thread, NULL) == 0);
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(200 * 1000);
    kill(parent, SIGUSR1);
    _exit(0);
  }
  alarm(10);
  char buf[4];
  usleep(50 * 1000);
  check_err("recv in the signalled thread", recv(sv[0], buf, sizeof buf, 0), EINTR);
  test_assert(handled == 1);
  test_assert(waitpid(pid, &status, 0) == pid);
  usleep(50 * 1000);
  check_ok(send(sv[1], "z", 1, 0));
  test_assert(pthread_join(t, NULL) == 0);
  alarm(0);
  obs("the other thread's recv -> %zd (%s)", other_result,
      other_result < 0 ? errname(other_errno) : "OK");
  test_assert(other_result == 1);
  check_ok(close(sv[0]));
  check_ok(close(sv[1]));
  test_done();
}
