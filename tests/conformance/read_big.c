/* Big reads of a regular file: what the program sees must not depend on how they are answered.
 *
 * Under sbrun a read of 256 KiB or more of a remote regular file goes to the agent as several
 * chunks sent at once (pipelined, consecutive reads at the file position, preads at an offset),
 * each copied into the program's buffer as it arrives. None of that may show: the bytes, the
 * counts, the file offset after each call (read, readv, pread, preadv, on O_RDONLY and O_RDWR
 * descriptions), a read crossing the end of the file, a buffer that runs into an unmapped page,
 * a file that grows while it is read (a process appending on the file's machine), two threads
 * reading one description at once (each read is one contiguous range, none overlaps: the
 * kernel's position lock), and a signal arriving meanwhile (reads of regular files are not
 * interrupted).
 */
#include "util.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/uio.h>

#define KiB 1024L
#define MiB (1024L * 1024)
#define SIZE (5 * MiB + 1234)
#define BUF (2 * MiB)

/* The file is 8-byte words, each one its own offset tagged: a read placed at the wrong offset
 * shows, and a read of 8 aligned bytes says where it was read. */
static uint64_t word_at(long off8) { return (uint64_t)off8 ^ 0xa5c3000000000000ull; }
static unsigned char byte_at(long off) {
  return (unsigned char)(word_at(off & ~7L) >> (8 * (off & 7)));
}

static void make_file(const char *path, long size) { make_pattern_file(path, size, byte_at); }

static void expect_bytes(const unsigned char *buf, long off, long n, int line) {
  for (long i = 0; i < n; i++) {
    if (buf[i] != byte_at(off + i)) {
      fprintf(stderr, "byte %ld (file offset %ld) differs\n", i, off + i);
      test_fail("wrong byte", __FILE__, line);
    }
  }
}

static long offset_of(int fd) { return (long)lseek(fd, 0, SEEK_CUR); }

static unsigned char *buf;

/* One read() of `n`: it must return `expect` bytes, the file's from `off`, and leave the offset
 * at off + expect. */
static void read_expect(int fd, long off, long n, long expect, int line) {
  ssize_t r = read(fd, buf, n);
  if (r != expect) {
    fprintf(stderr, "read of %ld at %ld gave %zd, expected %ld\n", n, off, r, expect);
    test_fail("read count", __FILE__, line);
  }
  expect_bytes(buf, off, r, line);
  if (offset_of(fd) != off + expect) test_fail("offset after the read", __FILE__, line);
}

/* --- A process on the file's machine appends records while the program reads. --- */
#define RECORDS 40000
#define RECORD 16

static void record_text(long idx, char out[32]) { snprintf(out, 32, "%015ld\n", idx); }

static void appended_while_read(void) {
  make_file(P("grow"), 100 * KiB);
  int fd = check_ok(open(P("grow"), O_RDONLY | O_CLOEXEC));
  read_expect(fd, 0, MiB, 100 * KiB, __LINE__);
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd,
           "i=0; while [ $i -lt %d ]; do printf '%%015d\\n' $i; i=$((i+1)); done >> '%s'",
           RECORDS, P("grow"));
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  long total = 100 * KiB, reads = 0;
  int exited = 0, status = 0;
  for (;;) {
    /* Looked at before the read: a read of 0 after the appender ended is the real end. */
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) exited = 1;
    ssize_t r = read(fd, buf, MiB);
    test_assert(r >= 0);
    reads++;
    for (ssize_t i = 0; i < r; i++) {
      long at = total + i - 100 * KiB;
      char rec[32];
      record_text(at / RECORD, rec);
      if (buf[i] != (unsigned char)rec[at % RECORD]) {
        fprintf(stderr, "appended byte at %ld differs after %ld reads\n", total + i, reads);
        test_fail("wrong appended byte", __FILE__, __LINE__);
      }
    }
    total += r;
    if (offset_of(fd) != total) test_fail("offset while the file grows", __FILE__, __LINE__);
    if (r == 0 && exited) break;
  }
  obs("appender: %s; %ld bytes read in order", wait_status_text(status), total);
  test_assert(total == 100 * KiB + (long)RECORDS * RECORD);
  test_assert(close(fd) == 0);
}

/* --- Two threads read one description at once. --- */
#define THREAD_READS 64
struct range {
  long off, len;
};
struct reader {
  int fd;
  long size;
  int n;
  struct range got[THREAD_READS];
};

static void *read_until_eof(void *arg) {
  struct reader *rd = arg;
  unsigned char *b = malloc(MiB);
  test_assert(b != NULL);
  for (;;) {
    ssize_t r = read(rd->fd, b, rd->size);
    test_assert(r >= 0 && r % 8 == 0);
    if (r == 0) break;
    uint64_t w;
    memcpy(&w, b, 8);
    long off = (long)(w ^ word_at(0));
    expect_bytes(b, off, r, __LINE__);
    test_assert(rd->n < THREAD_READS);
    rd->got[rd->n++] = (struct range){off, r};
  }
  free(b);
  return NULL;
}

static int by_offset(const void *a, const void *b) {
  long x = ((const struct range *)a)->off, y = ((const struct range *)b)->off;
  return (x > y) - (x < y);
}

static void threads_share_offset(void) {
  long size = 8 * MiB;
  make_file(P("shared"), size);
  int fd = check_ok(open(P("shared"), O_RDONLY | O_CLOEXEC));
  struct reader rd[2] = {{fd, 512 * KiB, 0, {{0}}}, {fd, 768 * KiB + 8, 0, {{0}}}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) test_assert(pthread_create(&t[i], NULL, read_until_eof, &rd[i]) == 0);
  for (int i = 0; i < 2; i++) test_assert(pthread_join(t[i], NULL) == 0);
  struct range all[2 * THREAD_READS];
  int n = 0;
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < rd[i].n; k++) all[n++] = rd[i].got[k];
  qsort(all, n, sizeof all[0], by_offset);
  long next = 0;
  for (int k = 0; k < n; k++) {
    if (all[k].off != next) {
      fprintf(stderr, "read %d starts at %ld, expected %ld\n", k, all[k].off, next);
      test_fail("the threads' reads overlap or leave a gap", __FILE__, __LINE__);
    }
    next += all[k].len;
  }
  test_assert(next == size);
  test_assert(offset_of(fd) == size);
  obs("two threads: every byte read once");
  test_assert(close(fd) == 0);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "read_big");
  make_file(P("big"), SIZE);
  buf = malloc(BUF);
  test_assert(buf != NULL);

  /* 1. The whole file in 1 MiB reads, then in reads of an odd size: counts, offsets, checksum. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    uint64_t sum = 1469598103934665603ull; /* FNV-1a */
    long total = 0, reads = 0;
    ssize_t r;
    while ((r = read(fd, buf, MiB)) > 0) {
      expect_bytes(buf, total, r, __LINE__);
      for (ssize_t i = 0; i < r; i++) sum = (sum ^ buf[i]) * 1099511628211ull;
      total += r;
      reads++;
      test_assert(offset_of(fd) == total);
    }
    test_assert(r == 0);
    obs("1 MiB reads: %ld bytes in %ld reads, last %ld, fnv %016llx", total, reads,
        total - (reads - 1) * MiB, (unsigned long long)sum);
    test_assert(total == SIZE);
    test_assert(read(fd, buf, MiB) == 0);
    test_assert(offset_of(fd) == SIZE);
    test_assert(lseek(fd, 0, SEEK_SET) == 0);
    long odd = 300 * KiB + 17;
    for (total = 0; total + odd <= SIZE; total += odd) read_expect(fd, total, odd, odd, __LINE__);
    read_expect(fd, total, odd, SIZE - total, __LINE__);
    obs("reads of %ld: offset %ld", odd, offset_of(fd));
    test_assert(close(fd) == 0);
  }

  /* 2. A read crossing the end of the file is short; the next one is 0. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    test_assert(lseek(fd, SIZE - 1000, SEEK_SET) == SIZE - 1000);
    read_expect(fd, SIZE - 1000, MiB, 1000, __LINE__);
    read_expect(fd, SIZE, MiB, 0, __LINE__);
    test_assert(lseek(fd, SIZE - 300 * KiB, SEEK_SET) == SIZE - 300 * KiB);
    read_expect(fd, SIZE - 300 * KiB, 2 * MiB, 300 * KiB, __LINE__);
    test_assert(lseek(fd, SIZE + 5, SEEK_SET) == SIZE + 5);
    ssize_t r = read(fd, buf, MiB);
    obs("past the end: %zd, offset %ld", r, offset_of(fd));
    test_assert(close(fd) == 0);
  }

  /* 3. pread and preadv of big counts at offsets: the bytes, and the offset stays. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    test_assert(lseek(fd, 777, SEEK_SET) == 777);
    ssize_t r = pread(fd, buf, MiB + 3, 12345);
    test_assert(r == MiB + 3);
    expect_bytes(buf, 12345, r, __LINE__);
    r = pread(fd, buf, MiB, SIZE - 5000);
    test_assert(r == 5000);
    expect_bytes(buf, SIZE - 5000, r, __LINE__);
    test_assert(pread(fd, buf, MiB, SIZE) == 0);
    test_assert(pread(fd, buf, MiB, SIZE + MiB) == 0);
    struct iovec iov[3] = {{buf, 100 * KiB}, {buf + 200 * KiB, 1}, {buf + 300 * KiB, 600 * KiB}};
    r = preadv(fd, iov, 3, 99);
    test_assert(r == 700 * KiB + 1);
    expect_bytes(buf, 99, 100 * KiB, __LINE__);
    expect_bytes(buf + 200 * KiB, 99 + 100 * KiB, 1, __LINE__);
    expect_bytes(buf + 300 * KiB, 99 + 100 * KiB + 1, 600 * KiB, __LINE__);
    r = preadv(fd, iov, 3, SIZE - 150 * KiB);
    obs("preadv crossing the end: %zd", r);
    test_assert(r == 150 * KiB);
    expect_bytes(buf, SIZE - 150 * KiB, 100 * KiB, __LINE__);
    expect_bytes(buf + 300 * KiB, SIZE - 50 * KiB + 1, 50 * KiB - 1, __LINE__);
    obs("offset after the preads: %ld", offset_of(fd));
    test_assert(offset_of(fd) == 777);
    read_expect(fd, 777, 400 * KiB, 400 * KiB, __LINE__);
    test_assert(close(fd) == 0);
  }

  /* 4. readv of a big total at the file position. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    test_assert(lseek(fd, 5, SEEK_SET) == 5);
    struct iovec iov[4] = {{buf, 200 * KiB}, {buf + 300 * KiB, 3}, {buf + 400 * KiB, 500 * KiB},
                           {buf + MiB, 400 * KiB}};
    ssize_t r = readv(fd, iov, 4);
    test_assert(r == 1100 * KiB + 3);
    expect_bytes(buf, 5, 200 * KiB, __LINE__);
    expect_bytes(buf + 300 * KiB, 5 + 200 * KiB, 3, __LINE__);
    expect_bytes(buf + 400 * KiB, 5 + 200 * KiB + 3, 500 * KiB, __LINE__);
    expect_bytes(buf + MiB, 5 + 700 * KiB + 3, 400 * KiB, __LINE__);
    obs("readv: %zd, offset %ld", r, offset_of(fd));
    test_assert(close(fd) == 0);
  }

  /* 5. Read and write on one O_RDWR description: a write after a big read lands where the read
   * ended, a read after a write goes on from there. */
  {
    make_file(P("rw"), 2 * MiB);
    int fd = check_ok(open(P("rw"), O_RDWR | O_CLOEXEC));
    read_expect(fd, 0, MiB, MiB, __LINE__);
    test_assert(write(fd, "0123456789", 10) == 10);
    test_assert(offset_of(fd) == MiB + 10);
    read_expect(fd, MiB + 10, 512 * KiB, 512 * KiB, __LINE__);
    test_assert(pread(fd, buf, 10, MiB) == 10 && memcmp(buf, "0123456789", 10) == 0);
    read_expect(fd, MiB + 10 + 512 * KiB, MiB, 512 * KiB - 10, __LINE__);
    test_assert(write(fd, "end", 3) == 3);
    obs("O_RDWR: offset %ld, size %ld", offset_of(fd), (long)lseek(fd, 0, SEEK_END));
    test_assert(close(fd) == 0);
  }

  /* 6. A buffer that runs into an unmapped page: the bytes before it, and the offset moves only
   * by them; a buffer unmapped from the start: EFAULT, the offset stays. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    long page = sysconf(_SC_PAGESIZE);
    long pages = 100;
    unsigned char *m = mmap(NULL, pages * page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    test_assert(m != MAP_FAILED);
    test_assert(munmap(m + 70 * page, page) == 0); /* ~280 KiB into the buffer */
    test_assert(lseek(fd, 3, SEEK_SET) == 3);
    ssize_t r = read(fd, m + 100, MiB);
    obs("read into a buffer with a hole: %zd, offset %ld", r, offset_of(fd));
    test_assert(r > 0);
    expect_bytes(m + 100, 3, r, __LINE__);
    long before = offset_of(fd);
    errno = 0;
    r = read(fd, m + 70 * page, 512 * KiB);
    obs("read into the hole: %zd %s, offset moved %ld", r, r < 0 ? errname(errno) : "OK",
        offset_of(fd) - before);
    r = pread(fd, m + 60 * page, 512 * KiB, 1000);
    obs("pread into a buffer with a hole: %zd, offset %ld", r, offset_of(fd));
    test_assert(r > 0);
    expect_bytes(m + 60 * page, 1000, r, __LINE__);
    struct iovec iov[2] = {{m, 64 * KiB}, {m + 70 * page, 512 * KiB}};
    r = readv(fd, iov, 2);
    obs("readv whose second iovec is unmapped: %zd, offset %ld", r, offset_of(fd));
    test_assert(munmap(m, 70 * page) == 0);
    test_assert(munmap(m + 71 * page, (pages - 71) * page) == 0);
    test_assert(close(fd) == 0);
  }

  /* 7. A file that grows between reads: the end is a short read, then the appended bytes. */
  {
    make_file(P("grow2"), 400 * KiB);
    int fd = check_ok(open(P("grow2"), O_RDONLY | O_CLOEXEC));
    read_expect(fd, 0, MiB, 400 * KiB, __LINE__);
    read_expect(fd, 400 * KiB, MiB, 0, __LINE__);
    int w = check_ok(open(P("grow2"), O_WRONLY | O_APPEND | O_CLOEXEC));
    unsigned char *more = malloc(300 * KiB);
    test_assert(more != NULL);
    for (long i = 0; i < 300 * KiB; i++) more[i] = byte_at(400 * KiB + i);
    test_assert(write(w, more, 300 * KiB) == 300 * KiB);
    free(more);
    read_expect(fd, 400 * KiB, MiB, 300 * KiB, __LINE__);
    read_expect(fd, 700 * KiB, MiB, 0, __LINE__);
    obs("grown: offset %ld", offset_of(fd));
    test_assert(close(w) == 0);
    test_assert(close(fd) == 0);
  }

  /* 8. A process on the file's machine appends while the program reads it in big reads. */
  appended_while_read();

  /* 9. Two threads read one description at once. */
  threads_share_offset();

  /* 10. A timer signal every 200 us, no SA_RESTART: big reads of a regular file are never
   * interrupted. */
  {
    set_signal_handler(SIGALRM, on_alarm, 0);
    struct itimerval it = {{0, 200}, {0, 200}};
    test_assert(setitimer(ITIMER_REAL, &it, NULL) == 0);
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int round = 0; round < 3; round++) {
      test_assert(lseek(fd, 0, SEEK_SET) == 0);
      for (long off = 0; off + MiB <= SIZE; off += MiB) read_expect(fd, off, MiB, MiB, __LINE__);
    }
    struct itimerval stop = {{0, 0}, {0, 0}};
    test_assert(setitimer(ITIMER_REAL, &stop, NULL) == 0);
    obs("under a timer: every read whole");
    test_assert(close(fd) == 0);
  }

  free(buf);
  test_done();
}
