/* Threads of one process open, use and close their own fds at the same time (issue 21).
 *
 * Each fd a thread gets from open() is its own: no other thread may close it or take its number
 * while it is open, so every call on it must succeed, whatever the other threads do with theirs.
 * Under sbrun the race is between one thread's remote fd appearing (its placeholder number, its
 * entry in the fd table, the guard that makes calls on its block of numbers trap) and another
 * thread's fd of a neighbouring number being made or released.
 *
 * ROUNDS children, each a fresh process (no remote fd before it, so its fd blocks are new to
 * the tracer), run with their threads spread over the CPUs, while one more thread is blocked
 * opening a FIFO (a remote call in flight the whole time):
 *   files:  16 threads x open(O_CREAT|O_TRUNC) / write / fstat / pread / close of their own file,
 *           every 3rd close done with close_range(fd, fd, 0); every 5th iteration also dup2s
 *           the fd to a number of the thread's own, F_DUPFD_CLOEXECs that to the next one, and
 *           closes both with one close_range;
 *   locks:  6 threads x open / fcntl(F_SETLK) / write / unlock / close of their own file.
 * Output depends only on the counts, so it is the same natively and under sbrun.
 */
#include "util.h"
#include <linux/close_range.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define ROUNDS 6
#define FILE_THREADS 16
#define FILE_ITER 120
#define LOCK_THREADS 6
#define LOCK_ITER 60
/* Numbers each file thread may dup2 onto: high, apart from what lowest-free hands out. */
#define PRIVATE_BASE 200

static int ncpu = 1;

static void pin(int i) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(i % ncpu, &set);
  /* Best effort: a restricted CPU set (a container) still runs the test. */
  (void)sched_setaffinity(0, sizeof set, &set);
}

static void own_path(char *buf, size_t size, const char *kind, long t) {
  int n = snprintf(buf, size, "%s/%s%ld", test_dir, kind, t);
  test_assert(n > 0 && (size_t)n < size);
}

static pthread_barrier_t start;

/* What went wrong in a thread, for the message: the step and errno. */
static void fail_at(const char *what, long t, int i, int err) {
  fprintf(stderr, "thread %ld iteration %d: %s: %s\n", t, i, what, errname(err));
  fflush(stderr);
  _exit(1);
}

static void *file_worker(void *arg) {
  long t = (long)arg;
  pin((int)t);
  char p[PATH_MAX], buf[64];
  own_path(p, sizeof p, "t", t);
  pthread_barrier_wait(&start);
  for (int i = 0; i < FILE_ITER; i++) {
    int fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) fail_at("open", t, i, errno);
    int n = snprintf(buf, sizeof buf, "%ld-%d", t, i);
    if (write(fd, buf, (size_t)n) != n) fail_at("write", t, i, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) fail_at("fstat", t, i, errno);
    if (st.st_size != n) fail_at("fstat size", t, i, 0);
    char back[64];
    if (pread(fd, back, sizeof back, 0) != n) fail_at("pread", t, i, errno);
    if (memcmp(back, buf, (size_t)n) != 0) fail_at("pread content", t, i, 0);
    if (i % 5 == 4) {
      int mine = PRIVATE_BASE + (int)t * 2;
      if (dup2(fd, mine) != mine) fail_at("dup2", t, i, errno);
      if (pread(mine, back, sizeof back, 0) != n) fail_at("pread of the dup", t, i, errno);
      int copy = fcntl(mine, F_DUPFD_CLOEXEC, PRIVATE_BASE + (int)t * 2 + 1);
      if (copy != PRIVATE_BASE + (int)t * 2 + 1) fail_at("F_DUPFD_CLOEXEC", t, i, errno);
      if (syscall(SYS_close_range, mine, copy, 0) != 0) fail_at("close_range", t, i, errno);
      if (fcntl(mine, F_GETFD) != -1 || errno != EBADF) fail_at("closed by close_range", t, i, 0);
    }
    if (i % 3 == 2) {
      if (syscall(SYS_close_range, fd, fd, 0) != 0) fail_at("close_range(fd, fd)", t, i, errno);
    } else if (close(fd) != 0) {
      fail_at("close", t, i, errno);
    }
  }
  return NULL;
}

static void *lock_worker(void *arg) {
  long t = (long)arg;
  pin((int)t);
  char p[PATH_MAX];
  own_path(p, sizeof p, "l", t);
  pthread_barrier_wait(&start);
  for (int i = 0; i < LOCK_ITER; i++) {
    int fd = open(p, O_CREAT | O_RDWR, 0644);
    if (fd < 0) fail_at("open", t, i, errno);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl) != 0) fail_at("F_SETLK", t, i, errno);
    if (write(fd, "l", 1) != 1) fail_at("write", t, i, errno);
    fl.l_type = F_UNLCK;
    if (fcntl(fd, F_SETLK, &fl) != 0) fail_at("F_SETLK unlock", t, i, errno);
    if (close(fd) != 0) fail_at("close", t, i, errno);
  }
  return NULL;
}

static char fifo[PATH_MAX];

/* Blocks in a remote open of the FIFO until the round is over. */
static void *fifo_waiter(void *arg) {
  (void)arg;
  int fd = open(fifo, O_RDONLY);
  if (fd < 0) fail_at("open fifo", -1, 0, errno);
  char c;
  if (read(fd, &c, 1) != 1) fail_at("read fifo", -1, 0, errno);
  close(fd);
  return NULL;
}

static int round_child(void) {
  pthread_t waiter, th[FILE_THREADS + LOCK_THREADS];
  if (pthread_create(&waiter, NULL, fifo_waiter, NULL) != 0) return 1;
  pthread_barrier_init(&start, NULL, FILE_THREADS + LOCK_THREADS);
  for (long t = 0; t < FILE_THREADS; t++) {
    test_assert(pthread_create(&th[t], NULL, file_worker, (void *)t) == 0);
  }
  for (long t = 0; t < LOCK_THREADS; t++) {
    test_assert(pthread_create(&th[FILE_THREADS + t], NULL, lock_worker, (void *)t) == 0);
  }
  for (int t = 0; t < FILE_THREADS + LOCK_THREADS; t++) test_assert(pthread_join(th[t], NULL) == 0);
  /* Every file holds what its thread wrote last. */
  for (long t = 0; t < FILE_THREADS; t++) {
    char p[PATH_MAX], want[64], got[64];
    own_path(p, sizeof p, "t", t);
    int n = snprintf(want, sizeof want, "%ld-%d", t, FILE_ITER - 1);
    test_assert(read_file(p, got, sizeof got) == n && memcmp(got, want, (size_t)n) == 0);
  }
  int w = open(fifo, O_WRONLY);
  test_assert(w >= 0 && write(w, "x", 1) == 1);
  close(w);
  test_assert(pthread_join(waiter, NULL) == 0);
  return 0;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "threads_fds");
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  ncpu = n > 0 ? (int)n : 1;
  test_assert(snprintf(fifo, sizeof fifo, "%s/fifo", test_dir) < (int)sizeof fifo);
  check_ok(mkfifo(fifo, 0600));
  for (int r = 0; r < ROUNDS; r++) {
    pid_t pid = fork();
    test_assert(pid >= 0);
    if (pid == 0) _exit(round_child());
    int code = wait_code(pid);
    if (code != 0) {
      fprintf(stderr, "round %d failed: exit code %d\n", r, code);
      test_assert(code == 0);
    }
  }
  obs("%d rounds of %d file threads x %d and %d lock threads x %d: every call succeeded", ROUNDS,
      FILE_THREADS, FILE_ITER, LOCK_THREADS, LOCK_ITER);
  test_done();
}
