/* Signals against lock waits (under sbrun: the wait runs on the agent). A handler without
 * SA_RESTART ends a blocked flock or F_OFD_SETLKW with EINTR, and the lock is not taken; with
 * SA_RESTART the wait goes on and takes the lock once the holder lets go.
 */
#include "util.h"
#include <signal.h>
#include <sys/file.h>

static volatile sig_atomic_t handled;

static void on_signal(int sig) {
  (void)sig;
  handled++;
}

static void set_handler(int flags) {
  set_signal_handler(SIGALRM, on_signal, flags);
  handled = 0;
}

static struct flock whole(short type) {
  struct flock l;
  memset(&l, 0, sizeof l);
  l.l_type = type;
  l.l_whence = SEEK_SET;
  return l;
}

/* A child that, after 1.5 s, unlocks `fd` (a description it shares with the parent). */
static pid_t unlock_later(int fd, int ofd) {
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(1500 * 1000);
    if (ofd) {
      struct flock l = whole(F_UNLCK);
      _exit(fcntl(fd, F_OFD_SETLK, &l) == 0 ? 0 : 20);
    }
    _exit(flock(fd, LOCK_UN) == 0 ? 0 : 21);
  }
  return pid;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_eintr");
  write_file(P("f"), "data", 0644);
  int a = check_ok(open(P("f"), O_RDWR));
  int b = check_ok(open(P("f"), O_RDWR));

  check_ok(flock(a, LOCK_EX));
  set_handler(0);
  alarm(1);
  check_err("flock wait interrupted without SA_RESTART", flock(b, LOCK_EX), EINTR);
  test_assert(handled == 1);
  check_err("the lock was not taken", flock(b, LOCK_EX | LOCK_NB), EAGAIN);
  set_handler(SA_RESTART);
  alarm(1);
  pid_t pid = unlock_later(a, 0);
  check_ok(flock(b, LOCK_EX));
  obs("flock with SA_RESTART took the lock, handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  reap(pid);
  check_ok(flock(b, LOCK_UN));

  struct flock l = whole(F_WRLCK);
  check_ok(fcntl(a, F_OFD_SETLK, &l));
  set_handler(0);
  alarm(1);
  l = whole(F_WRLCK);
  check_err("F_OFD_SETLKW interrupted without SA_RESTART", fcntl(b, F_OFD_SETLKW, &l), EINTR);
  test_assert(handled == 1);
  l = whole(F_WRLCK);
  check_err("the lock was not taken", fcntl(b, F_OFD_SETLK, &l), EAGAIN);
  set_handler(SA_RESTART);
  alarm(1);
  pid = unlock_later(a, 1);
  l = whole(F_WRLCK);
  check_ok(fcntl(b, F_OFD_SETLKW, &l));
  obs("F_OFD_SETLKW with SA_RESTART took the lock, handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  reap(pid);
  check_ok(close(a));
  check_ok(close(b));
  test_done();
}
