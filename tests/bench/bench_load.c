/* Benchmark workloads that sbrun launches directly (so the measured program is traced on this
 * machine, never exec'd on the agent). Each times its own loop only, with CLOCK_MONOTONIC, so
 * process start-up and sbrun's connection are not counted, and prints one line of
 * "key value" pairs that bench.py parses:
 *
 *   bench_load getppid N                 N getppid() calls (never redirected)
 *   bench_load write1 N                  N 1-byte write()s to fd 1
 *   bench_load stat DIR N                stat() of DIR/dXXX/fYYY for the first N files of the
 *                                        tree bench.py builds (100 files per directory)
 *   bench_load orc FILE N                N cycles of open / read 64 bytes / close on FILE
 *   bench_load pread64 FILE N            N pread()s of 64 bytes at offset 0 of FILE, opened once
 *   bench_load read FILE CHUNK           read FILE to its end in CHUNK-byte read()s
 *   bench_load write FILE BYTES CHUNK    create FILE, write BYTES in CHUNK-byte write()s, fsync,
 *                                        close (all timed)
 *
 * Output: "us_per_op X" for the per-call workloads, "MB_per_s X" for the bulk ones (MB = 1e6
 * bytes), both with "seconds X". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int usage(void) {
  fprintf(stderr,
          "usage: bench_load getppid N | write1 N | stat DIR N | orc FILE N | pread64 FILE N |"
          " read FILE CHUNK | write FILE BYTES CHUNK\n");
  return 2;
}

static void per_op(const char *what, long n, double s) {
  printf("%s ops %ld seconds %.6f us_per_op %.3f\n", what, n, s, s * 1e6 / (double)n);
}

static void bulk(const char *what, long long bytes, long calls, double s) {
  printf("%s bytes %lld calls %ld seconds %.6f MB_per_s %.1f\n", what, bytes, calls, s,
         (double)bytes / 1e6 / s);
}

static char *alloc_touched(size_t size) {
  char *buf = malloc(size);
  if (!buf) {
    perror("malloc");
    exit(1);
  }
  memset(buf, 'x', size); /* fault the pages in before timing */
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    return usage();
  }
  const char *cmd = argv[1];
  double a, b;

  if (!strcmp(cmd, "getppid")) {
    long n = atol(argv[2]);
    a = now();
    for (long i = 0; i < n; i++) { /* not cached by libc */
      syscall(SYS_getppid);
    }
    b = now();
    per_op(cmd, n, b - a);
  } else if (!strcmp(cmd, "write1")) {
    long n = atol(argv[2]);
    a = now();
    for (long i = 0; i < n; i++) {
      if (write(1, "x", 1) != 1) {
        perror("write");
        return 1;
      }
    }
    b = now();
    fprintf(stderr, "write1 ops %ld seconds %.6f us_per_op %.3f\n", n, b - a,
            (b - a) * 1e6 / (double)n);
  } else if (!strcmp(cmd, "stat")) {
    if (argc < 4) {
      return usage();
    }
    long n = atol(argv[3]);
    char path[4096];
    struct stat st;
    a = now();
    for (long i = 0; i < n; i++) {
      snprintf(path, sizeof(path), "%s/d%03ld/f%03ld", argv[2], i / 100, i % 100);
      if (stat(path, &st) != 0) {
        perror(path);
        return 1;
      }
    }
    b = now();
    per_op(cmd, n, b - a);
  } else if (!strcmp(cmd, "orc")) {
    if (argc < 4) {
      return usage();
    }
    long n = atol(argv[3]);
    char buf[64];
    a = now();
    for (long i = 0; i < n; i++) {
      int fd = open(argv[2], O_RDONLY);
      if (fd < 0 || read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
        perror(argv[2]);
        return 1;
      }
      close(fd);
    }
    b = now();
    per_op(cmd, n, b - a);
  } else if (!strcmp(cmd, "pread64")) {
    if (argc < 4) {
      return usage();
    }
    long n = atol(argv[3]);
    char buf[64];
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
      perror(argv[2]);
      return 1;
    }
    a = now();
    for (long i = 0; i < n; i++) {
      if (pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        perror("pread");
        return 1;
      }
    }
    b = now();
    close(fd);
    per_op(cmd, n, b - a);
  } else if (!strcmp(cmd, "read")) {
    if (argc < 4) {
      return usage();
    }
    size_t chunk = (size_t)atol(argv[3]);
    char *buf = alloc_touched(chunk);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
      perror(argv[2]);
      return 1;
    }
    long long total = 0;
    long calls = 0;
    ssize_t r;
    a = now();
    while ((r = read(fd, buf, chunk)) > 0) {
      total += r;
      calls++;
    }
    b = now();
    if (r < 0) {
      perror("read");
      return 1;
    }
    close(fd);
    bulk(cmd, total, calls, b - a);
  } else if (!strcmp(cmd, "write")) {
    if (argc < 5) {
      return usage();
    }
    long long bytes = atoll(argv[3]);
    size_t chunk = (size_t)atol(argv[4]);
    char *buf = alloc_touched(chunk);
    long calls = 0;
    a = now();
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      perror(argv[2]);
      return 1;
    }
    for (long long done = 0; done < bytes;) {
      size_t want = bytes - done < (long long)chunk ? (size_t)(bytes - done) : chunk;
      ssize_t w = write(fd, buf, want);
      if (w <= 0) {
        perror("write");
        return 1;
      }
      done += w;
      calls++;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
      perror("fsync/close");
      return 1;
    }
    b = now();
    bulk(cmd, bytes, calls, b - a);
  } else {
    return usage();
  }
  return 0;
}
