/* EDEADLK between processes (issue 16): a cycle of F_SETLKW waits between processes of the
 * program, two and three of them, is found by the kernel that holds the locks, and the process
 * whose wait would close the cycle gets EDEADLK at once while the others wait on. Once it lets
 * its lock go, the others get theirs one after the other.
 *
 * Process i holds a write lock on byte i, then waits for byte i+1 (the last one for byte 0).
 * Each starts its wait only once the one before it waits in the kernel: the waiters are counted
 * in /proc/locks ("->" lines of the file's inode), or after 3 s if that cannot be read. */
#include "util.h"

#include <poll.h>
#include <sys/sysmacros.h>

#define MAX_RING 3

static void on_alarm(int sig) { (void)sig; }

static int lock_byte(int fd, int cmd, short type, off_t at) {
  struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
  return fcntl(fd, cmd, &l);
}

/* The number of waits for locks on the file (dev, ino) in /proc/locks, or -1 if unreadable. */
static int waiters_on(dev_t dev, ino_t ino) {
  FILE *f = fopen("/proc/locks", "re");
  if (f == NULL) return -1;
  char want[64];
  snprintf(want, sizeof want, "%02x:%02x:%lu ", major(dev), minor(dev), (unsigned long)ino);
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "->") != NULL && strstr(line, want) != NULL) n++;
  fclose(f);
  return n;
}

static void wait_for_waiters(dev_t dev, ino_t ino, int n) {
  for (int i = 0; i < 300; i++) { /* 3 s at most */
    int w = waiters_on(dev, ino);
    if (w >= n) return;
    if (w < 0) break;
    usleep(10000);
  }
  usleep(500000); /* /proc/locks unreadable or silent: give the wait time to start */
}

static void ring(int n) {
  char name[32];
  snprintf(name, sizeof name, "ring%d", n);
  write_file(P(name), "0123456789", 0644);
  struct stat st;
  check_ok(stat(P(name), &st));
  int held[2], go[MAX_RING][2], told[MAX_RING][2];
  check_ok(pipe(held));
  pid_t pids[MAX_RING];
  for (int i = 0; i < n; i++) {
    check_ok(pipe(go[i]));
    check_ok(pipe(told[i]));
    pids[i] = check_ok(fork());
    if (pids[i] == 0) {
      int fd = open(P(name), O_RDWR);
      if (fd < 0 || lock_byte(fd, F_SETLK, F_WRLCK, i) < 0) _exit(1);
      char c = 'h';
      if (write(held[1], &c, 1) != 1 || read(go[i][0], &c, 1) != 1) _exit(2);
      /* A cycle nobody detects would wait forever: end the wait (EINTR) so the test fails. */
      set_signal_handler(SIGALRM, on_alarm, 0);
      alarm(20);
      int r = lock_byte(fd, F_SETLKW, F_WRLCK, (i + 1) % n);
      int e = r < 0 ? errno : 0;
      if (write(told[i][1], &e, sizeof e) != sizeof e) _exit(3);
      /* The one refused lets its own byte go, so the one waiting for it gets it; the others
       * keep theirs until they exit, which lets the next one in. */
      if (e == EDEADLK && lock_byte(fd, F_SETLK, F_UNLCK, i) < 0) _exit(4);
      _exit(0);
    }
  }
  char c;
  for (int i = 0; i < n; i++) test_assert(read(held[0], &c, 1) == 1);
  /* Every byte is held: a non-blocking try on another's byte conflicts. */
  int mine = check_ok(open(P(name), O_RDWR));
  check_err("F_SETLK on a held byte", lock_byte(mine, F_SETLK, F_WRLCK, 0), EAGAIN);
  for (int i = 0; i < n - 1; i++) {
    test_assert(write(go[i][1], "g", 1) == 1);
    wait_for_waiters(st.st_dev, st.st_ino, i + 1);
  }
  /* The last wait closes the cycle. */
  test_assert(write(go[n - 1][1], "g", 1) == 1);
  int e;
  test_assert(read(told[n - 1][0], &e, sizeof e) == sizeof e);
  obs("ring of %d: process %d (closing the cycle) -> %s", n, n - 1, errname(e));
  test_assert(e == EDEADLK);
  for (int i = n - 2; i >= 0; i--) {
    test_assert(read(told[i][0], &e, sizeof e) == sizeof e);
    obs("ring of %d: process %d -> %s", n, i, errname(e));
    test_assert(e == 0);
  }
  for (int i = 0; i < n; i++) {
    reap(pids[i]);
    close(go[i][0]);
    close(go[i][1]);
    close(told[i][0]);
    close(told[i][1]);
  }
  close(held[0]);
  close(held[1]);
  /* All gone: every byte is free again. */
  check_ok(lock_byte(mine, F_SETLK, F_WRLCK, 0));
  obs("ring of %d: all bytes free after the processes ended", n);
  close(mine);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_deadlock");
  test_maybe_drop(argc, argv);
  ring(2);
  ring(3);
  test_done();
}
