/* Helper of the reconnect cases (run.py): what a program sees when its target goes away and
 * comes back (docs/failure-semantics.md). One subcommand per case; "SYNC TAG" lines wait for the
 * harness to act (it answers "go" on stdin). Times are CLOCK_MONOTONIC seconds, the clock of the
 * harness's time.monotonic(), so the two can be compared.
 *
 *   counter FILE N        write 1..N to FILE, one line each, fsync after each; print "synced I
 *                         TIME BEGAN" once I is on disk (BEGAN: when its write began). On an error: print it, close the fd (which must
 *                         succeed), open again and write I again. Exit 0 after N.
 *   loop FILE             the same without end, until stdin closes (the cycles case).
 *   stale FILE NEW        the fail-mode walk: old fd EIO, opens EIO while away, opens work
 *                         after, old fd EIO until closed, close 0, relative paths resolve.
 *   block FILE            open FILE (a FIFO, O_RDWR), then one read that blocks: print how it
 *                         ended and when.
 *   preads FILE           pread FILE in a loop until a read fails: print how and when.
 *   bigreads FILE         read FILE in 1 MiB reads (pipelined chunks under sbrun), from the
 *                         start again at its end, until a read fails: print how and when; a
 *                         short read before the failure is printed too.
 *   eintr FILE            while the target is away (wait mode): a call interrupted by a signal
 *                         without SA_RESTART fails with EINTR; with SA_RESTART it restarts and
 *                         succeeds once the target is back; past the timeout: ETIMEDOUT.
 *   held HELD FILE N      the partition case (wait mode): open HELD and keep it, then `counter
 *                         FILE N`; at the end, HELD (opened before the outage) must fail with EIO
 *                         for pread and fstat, close with 0, and open again with a read that works.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *err_name(int e) {
  switch (e) {
    case EIO: return "EIO";
    case EINTR: return "EINTR";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    default: return strerror(e);
  }
}

static void sync_point(const char *tag) {
  char line[64];
  printf("SYNC %s\n", tag);
  fflush(stdout);
  if (fgets(line, sizeof line, stdin) == NULL) {
    exit(9);
  }
}

static int fails(const char *what, long r, int want) {
  int e = errno;
  if (r >= 0 || e != want) {
    printf("FAIL %s: %ld (%s), expected %s\n", what, r, r < 0 ? err_name(e) : "no error",
           err_name(want));
    return 1;
  }
  printf("%s: %s\n", what, err_name(e));
  return 0;
}

static int works(const char *what, long r) {
  if (r < 0) {
    printf("FAIL %s: %s\n", what, err_name(errno));
    return 1;
  }
  printf("%s: ok\n", what);
  return 0;
}

/* Appends I to FILE through fd (reopened after any error) until it is fsynced. */
static int counter(const char *file, long n, int forever) {
  int fd = -1;
  for (long i = 1; forever || i <= n;) {
    if (forever) {
      fd_set in;
      struct timeval tv = {0, 0};
      FD_ZERO(&in);
      FD_SET(0, &in);
      if (select(1, &in, NULL, NULL, &tv) > 0) {
        char c;
        if (read(0, &c, 1) <= 0) {
          break;
        }
      }
    }
    if (fd < 0) {
      fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);
      if (fd < 0) {
        printf("error %ld open %s %.3f\n", i, err_name(errno), now());
        usleep(20000);
        continue;
      }
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", i);
    double began = now();
    if (write(fd, line, len) != len) {
      printf("error %ld write %s %.3f\n", i, err_name(errno), now());
    } else if (fsync(fd) != 0) {
      printf("error %ld fsync %s %.3f\n", i, err_name(errno), now());
    } else {
      /* When it was done, and when the write began: a write that began after an agent's restart
       * went to the new agent (a descheduled program can take its "done" time long after). */
      printf("synced %ld %.3f %.3f\n", i, now(), began);
      i++;
      usleep(5000);
      continue;
    }
    /* The fd is stale (its session is gone): closing it must succeed. */
    if (close(fd) != 0) {
      printf("FAIL close of a stale fd: %s\n", err_name(errno));
      return 1;
    }
    fd = -1;
  }
  if (fd >= 0 && close(fd) != 0) {
    printf("FAIL final close: %s\n", err_name(errno));
    return 1;
  }
  printf("done\n");
  return 0;
}

static int stale(const char *file, const char *fresh) {
  int bad = 0;
  char buf[64];
  int old = open(file, O_RDONLY);
  if (old < 0) {
    printf("FAIL open %s: %s\n", file, err_name(errno));
    return 1;
  }
  bad |= works("read before", read(old, buf, sizeof buf));
  sync_point("opened"); /* the harness kills the agent */
  bad |= fails("pread old fd while away", pread(old, buf, sizeof buf, 0), EIO);
  bad |= fails("open while away", open(file, O_RDONLY), EIO);
  bad |= fails("stat while away", stat(file, &(struct stat){0}), EIO);
  sync_point("away"); /* the harness restarts the agent on the same socket */
  int fd = open(fresh, O_RDONLY);
  bad |= works("open after restart", fd);
  bad |= works("read new fd", read(fd, buf, sizeof buf));
  bad |= fails("pread old fd after restart", pread(old, buf, sizeof buf, 0), EIO);
  bad |= fails("fstat old fd after restart", fstat(old, &(struct stat){0}), EIO);
  bad |= fails("lseek old fd after restart", lseek(old, 0, SEEK_SET), EIO);
  bad |= fails("write old fd after restart", write(old, "x", 1), EIO);
  int dup = fcntl(old, F_DUPFD_CLOEXEC, 0);
  bad |= works("dup old fd", dup);
  bad |= fails("read dup of old fd", read(dup, buf, sizeof buf), EIO);
  bad |= works("close dup of old fd", close(dup));
  bad |= works("close old fd", close(old));
  bad |= fails("read closed old fd", read(old, buf, sizeof buf), EBADF);
  /* Relative paths: the cwd is found again on the new session by its path. */
  int rel = open("hello.txt", O_RDONLY);
  bad |= works("open relative after restart", rel);
  ssize_t n = read(rel, buf, sizeof buf - 1);
  bad |= works("read relative", n);
  if (n > 0) {
    buf[n] = 0;
    printf("relative content: %s", buf);
  }
  char cwd[256];
  if (getcwd(cwd, sizeof cwd) == NULL) {
    printf("FAIL getcwd: %s\n", err_name(errno));
    bad = 1;
  } else {
    printf("cwd: %s\n", cwd);
  }
  close(rel);
  close(fd);
  printf(bad ? "FAILED\n" : "ALL OK\n");
  return bad;
}

static int block(const char *file) {
  char buf[16];
  int fd = open(file, O_RDWR);
  if (fd < 0) {
    printf("FAIL open %s: %s\n", file, err_name(errno));
    return 1;
  }
  printf("reading %.3f\n", now());
  fflush(stdout);
  ssize_t n = read(fd, buf, sizeof buf);
  printf("read %s %.3f\n", n < 0 ? err_name(errno) : "returned data", now());
  return n < 0 && errno == EIO ? 0 : 1;
}

static int preads(const char *file) {
  char buf[64];
  int fd = open(file, O_RDONLY);
  if (fd < 0) {
    printf("FAIL open %s: %s\n", file, err_name(errno));
    return 1;
  }
  printf("reading %.3f\n", now());
  fflush(stdout);
  for (long i = 0;; i++) {
    if (pread(fd, buf, sizeof buf, 0) < 0) {
      printf("pread %s after %ld reads %.3f\n", err_name(errno), i, now());
      return errno == EIO ? 0 : 1;
    }
    usleep(2000);
  }
}

static int bigreads(const char *file) {
  static char buf[1 << 20];
  int fd = open(file, O_RDONLY);
  if (fd < 0) {
    printf("FAIL open %s: %s\n", file, err_name(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    printf("FAIL fstat: %s\n", err_name(errno));
    return 1;
  }
  printf("reading %.3f\n", now());
  fflush(stdout);
  long left = st.st_size;
  for (long i = 0;; i++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      printf("read %s after %ld reads %.3f\n", err_name(errno), i, now());
      return errno == EIO ? 0 : 1;
    }
    if (n != (left < (long)sizeof buf ? left : (long)sizeof buf)) {
      printf("short read %zd with %ld left\n", n, left);
    }
    left -= n;
    if (left <= 0) {
      lseek(fd, 0, SEEK_SET);
      left = st.st_size;
    }
  }
}

static int held(const char *path, const char *file, long n) {
  char buf[64];
  int bad = 0;
  int old = open(path, O_RDONLY);
  if (old < 0) {
    printf("FAIL open %s: %s\n", path, err_name(errno));
    return 1;
  }
  bad |= works("held read before", read(old, buf, sizeof buf));
  if (counter(file, n, 0) != 0) {
    return 1;
  }
  bad |= fails("held pread after the outage", pread(old, buf, sizeof buf, 0), EIO);
  bad |= fails("held fstat after the outage", fstat(old, &(struct stat){0}), EIO);
  bad |= works("held close", close(old));
  int fd = open(path, O_RDONLY);
  bad |= works("held reopen", fd);
  bad |= works("held read after reopen", read(fd, buf, sizeof buf));
  close(fd);
  printf(bad ? "FAILED\n" : "ALL OK\n");
  return bad;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static int eintr(const char *file) {
  int bad = 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
  sync_point("ready");           /* the harness kills the agent */
  double t0 = now();
  alarm(1);
  int fd = open(file, O_RDONLY);
  int e = errno;
  printf("no SA_RESTART: open %s after %.2f s, %d alarm\n", fd < 0 ? err_name(e) : "succeeded",
         now() - t0, (int)alarms);
  bad |= !(fd < 0 && e == EINTR && alarms == 1);

  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  sync_point("restart"); /* the harness restarts the agent 2 s after its answer */
  t0 = now();
  alarm(1);
  fd = open(file, O_RDONLY);
  e = errno;
  printf("SA_RESTART: open %s after %.2f s, %d alarms\n", fd < 0 ? err_name(e) : "succeeded",
         now() - t0, (int)alarms);
  bad |= !(fd >= 0 && alarms == 2);
  if (fd >= 0) {
    close(fd);
  }

  sync_point("timeout"); /* the harness kills the agent for good */
  t0 = now();
  fd = open(file, O_RDONLY);
  e = errno;
  printf("past the timeout: open %s after %.2f s\n", fd < 0 ? err_name(e) : "succeeded",
         now() - t0);
  bad |= !(fd < 0 && e == ETIMEDOUT);
  fd = open(file, O_RDONLY);
  e = errno;
  printf("again: open %s\n", fd < 0 ? err_name(e) : "succeeded");
  bad |= !(fd < 0 && e == ETIMEDOUT);
  printf(bad ? "FAILED\n" : "ALL OK\n");
  return bad;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && strcmp(argv[1], "counter") == 0) {
    return counter(argv[2], atol(argv[3]), 0);
  }
  if (argc >= 3 && strcmp(argv[1], "loop") == 0) {
    return counter(argv[2], 0, 1);
  }
  if (argc >= 4 && strcmp(argv[1], "stale") == 0) {
    return stale(argv[2], argv[3]);
  }
  if (argc >= 3 && strcmp(argv[1], "block") == 0) {
    return block(argv[2]);
  }
  if (argc >= 3 && strcmp(argv[1], "preads") == 0) {
    return preads(argv[2]);
  }
  if (argc >= 3 && strcmp(argv[1], "bigreads") == 0) {
    return bigreads(argv[2]);
  }
  if (argc >= 3 && strcmp(argv[1], "eintr") == 0) {
    return eintr(argv[2]);
  }
  if (argc >= 5 && strcmp(argv[1], "held") == 0) {
    return held(argv[2], argv[3], atol(argv[4]));
  }
  fprintf(stderr, "usage: reconnect_probe counter FILE N | loop FILE | stale FILE NEW | "
                  "block FIFO | preads FILE | bigreads FILE | eintr FILE | held HELD FILE N\n");
  return 2;
}
