/* Small sequential reads of a file opened read-only: what the program sees must not depend on
 * how they are answered.
 *
 * Under sbrun the third consecutive small read() of such a file fetches a larger window of it
 * and the following reads are answered from there (read-ahead). None of that may show: the
 * bytes, the file offset (lseek SEEK_CUR, a forked child and a shell that share the open file
 * description), what a write through another fd changes, a file that grows between reads, and
 * EOF (0 only at the end, and again when asked again) must be what they are natively.
 */
#include "util.h"
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define SIZE (1024 * 1024 + 1234)
#define CHUNK 4096

/* The byte at offset `off` of the test file: no period that a misplaced window could hide. */
static unsigned char byte_at(long off) {
  uint32_t x = (uint32_t)off * 2654435761u;
  return (unsigned char)((x >> 13) ^ (off >> 9));
}

static void make_file(const char *path, long size) { make_pattern_file(path, size, byte_at); }

/* Reads `n` bytes with one read() and checks them against the file's bytes at `off`. */
static void read_at_expect(int fd, long off, size_t n) {
  unsigned char buf[CHUNK];
  test_assert(n <= sizeof buf);
  ssize_t r = read(fd, buf, n);
  if (r != (ssize_t)n) {
    fprintf(stderr, "read of %zu at %ld gave %zd\n", n, off, r);
    test_fail("short read", __FILE__, __LINE__);
  }
  for (size_t i = 0; i < n; i++) {
    if (buf[i] != byte_at(off + i)) {
      fprintf(stderr, "byte %ld differs\n", off + (long)i);
      test_fail("wrong byte", __FILE__, __LINE__);
    }
  }
}

int main(int argc, char **argv) {
  test_init(argc, argv, "read_ahead");
  make_file(P("big"), SIZE);

  /* 1. The whole file in 4 KiB reads: every byte, the sizes of the reads, EOF once at the end
   * and again when asked again. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    unsigned char buf[CHUNK];
    uint64_t sum = 1469598103934665603ull; /* FNV-1a */
    long total = 0, reads = 0, shorts = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
      for (ssize_t i = 0; i < r; i++) {
        if (buf[i] != byte_at(total + i)) {
          fprintf(stderr, "byte %ld differs\n", total + (long)i);
          test_fail("wrong byte in the sequential read", __FILE__, __LINE__);
        }
        sum = (sum ^ buf[i]) * 1099511628211ull;
      }
      if (r != CHUNK) shorts++;
      total += r;
      reads++;
    }
    test_assert(r == 0);
    obs("sequential: %ld bytes in %ld reads (%ld short), fnv %016llx", total, reads, shorts,
        (unsigned long long)sum);
    test_assert(total == SIZE);
    test_assert(shorts == 1);
    test_assert(read(fd, buf, sizeof buf) == 0);
    test_assert(lseek(fd, 0, SEEK_CUR) == SIZE);
    test_assert(close(fd) == 0);
  }

  /* 2. The offset after some reads, seen with lseek(SEEK_CUR), and moved with it. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < 5; i++) read_at_expect(fd, (long)i * CHUNK, CHUNK);
    obs("after 5 reads: offset %ld", (long)lseek(fd, 0, SEEK_CUR));
    read_at_expect(fd, 5 * CHUNK, CHUNK);
    obs("back 100: %ld", (long)lseek(fd, -100, SEEK_CUR));
    read_at_expect(fd, 6 * CHUNK - 100, 100);
    for (int i = 0; i < 4; i++) read_at_expect(fd, 6 * CHUNK + (long)i * CHUNK, CHUNK);
    obs("forward 50000: %ld", (long)lseek(fd, 50000, SEEK_CUR));
    long off = 10 * CHUNK + 50000;
    for (int i = 0; i < 4; i++) read_at_expect(fd, off + (long)i * CHUNK, CHUNK);
    obs("set 7: %ld", (long)lseek(fd, 7, SEEK_SET));
    for (int i = 0; i < 4; i++) read_at_expect(fd, 7 + (long)i * CHUNK, CHUNK);
    obs("end -10: %ld", (long)lseek(fd, -10, SEEK_END));
    read_at_expect(fd, SIZE - 10, 10);
    test_assert(close(fd) == 0);
  }

  /* 3. readv and 1-byte reads, pread in between (it leaves the offset alone). */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < 3; i++) read_at_expect(fd, (long)i * CHUNK, CHUNK);
    unsigned char a[1000], b[3000];
    struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
    test_assert(readv(fd, iov, 2) == 4000);
    for (int i = 0; i < 1000; i++) test_assert(a[i] == byte_at(3 * CHUNK + i));
    for (int i = 0; i < 3000; i++) test_assert(b[i] == byte_at(3 * CHUNK + 1000 + i));
    long off = 3 * CHUNK + 4000;
    for (int i = 0; i < 2000; i++) read_at_expect(fd, off + i, 1);
    off += 2000;
    unsigned char p[64];
    test_assert(pread(fd, p, sizeof p, 100) == sizeof p);
    for (int i = 0; i < 64; i++) test_assert(p[i] == byte_at(100 + i));
    obs("after readv, 2000 one-byte reads and a pread: offset %ld", (long)lseek(fd, 0, SEEK_CUR));
    for (int i = 0; i < 4; i++) read_at_expect(fd, off + (long)i * CHUNK, CHUNK);
    test_assert(close(fd) == 0);
  }

  /* 4. The program writes the file through another fd: the reader sees the new bytes. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < 4; i++) read_at_expect(fd, (long)i * CHUNK, CHUNK);
    int w = check_ok(open(P("big"), O_WRONLY | O_CLOEXEC));
    test_assert(pwrite(w, "NEW BYTES", 9, 5 * CHUNK + 10) == 9);
    char buf[CHUNK];
    read_at_expect(fd, 4 * CHUNK, CHUNK);
    test_assert(read(fd, buf, CHUNK) == CHUNK);
    obs("after the write: '%.9s'", buf + 10);
    test_assert(memcmp(buf + 10, "NEW BYTES", 9) == 0);
    /* Put the old bytes back (the later parts read them). */
    unsigned char old[9];
    for (int i = 0; i < 9; i++) old[i] = byte_at(5 * CHUNK + 10 + i);
    test_assert(pwrite(w, old, 9, 5 * CHUNK + 10) == 9);
    test_assert(read(fd, buf, CHUNK) == CHUNK);
    test_assert(lseek(fd, 5 * CHUNK, SEEK_SET) == 5 * CHUNK);
    read_at_expect(fd, 5 * CHUNK, CHUNK);
    test_assert(close(w) == 0);
    test_assert(close(fd) == 0);
  }

  /* 5. fork: the child goes on from where the parent stopped, the parent from where the child
   * stopped (one open file description, one offset); then a shell reads 10 bytes from it. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < 4; i++) read_at_expect(fd, (long)i * CHUNK, CHUNK);
    fflush(stdout);
    pid_t pid = fork();
    test_assert(pid >= 0);
    if (pid == 0) {
      if (lseek(fd, 0, SEEK_CUR) != 4 * CHUNK) _exit(10);
      for (int i = 0; i < 3; i++) read_at_expect(fd, (long)(4 + i) * CHUNK, CHUNK);
      read_at_expect(fd, 7 * CHUNK, 123);
      _exit(0);
    }
    obs("child: %d", wait_code(pid));
    obs("parent's offset after the child: %ld", (long)lseek(fd, 0, SEEK_CUR));
    read_at_expect(fd, 7 * CHUNK + 123, CHUNK);
    read_at_expect(fd, 8 * CHUNK + 123, CHUNK);
    /* A program run with the fd (on the agent, under sbrun) reads from the same offset. */
    int fd3 = check_ok(fcntl(fd, F_DUPFD, 7));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "dd bs=10 count=1 status=none <&%d | od -An -tx1", fd3);
    obs("shell: %d", run_sh(cmd));
    obs("offset after the shell: %ld", (long)lseek(fd, 0, SEEK_CUR));
    read_at_expect(fd, 9 * CHUNK + 133, CHUNK);
    test_assert(close(fd3) == 0);
    test_assert(close(fd) == 0);
  }

  /* 6. A file that grows between reads: EOF is 0 once per end, appended bytes are read. */
  {
    make_file(P("grow"), 10000);
    int fd = check_ok(open(P("grow"), O_RDONLY | O_CLOEXEC));
    char buf[CHUNK];
    ssize_t r1 = read(fd, buf, CHUNK), r2 = read(fd, buf, CHUNK), r3 = read(fd, buf, CHUNK);
    ssize_t r4 = read(fd, buf, CHUNK);
    obs("grow: %zd %zd %zd %zd", r1, r2, r3, r4);
    int w = check_ok(open(P("grow"), O_WRONLY | O_APPEND | O_CLOEXEC));
    test_assert(write(w, "appended by the program\n", 24) == 24);
    ssize_t r5 = read(fd, buf, CHUNK);
    obs("after an append: %zd '%.*s'", r5, (int)(r5 > 0 ? r5 - 1 : 0), buf);
    obs("then: %zd", read(fd, buf, CHUNK));
    /* A process on the file's machine appends (under sbrun: not through the program's fds). */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "printf 'appended by a shell\\n' >> '%s'", P("grow"));
    obs("shell: %d", run_sh(cmd));
    ssize_t r6 = read(fd, buf, CHUNK);
    obs("after the shell: %zd '%.*s'", r6, (int)(r6 > 0 ? r6 - 1 : 0), buf);
    obs("then: %zd", read(fd, buf, CHUNK));
    test_assert(close(w) == 0);
    test_assert(close(fd) == 0);
  }

  /* 7. A read whose buffer ends in an unmapped page: the bytes before it, and the offset moves
   * only by them. */
  {
    int fd = check_ok(open(P("big"), O_RDONLY | O_CLOEXEC));
    for (int i = 0; i < 4; i++) read_at_expect(fd, (long)i * CHUNK, CHUNK);
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    test_assert(m != MAP_FAILED);
    test_assert(munmap(m + page, page) == 0);
    ssize_t r = read(fd, m + page - 100, CHUNK);
    obs("read into a short buffer: %zd, offset %ld", r, (long)lseek(fd, 0, SEEK_CUR));
    test_assert(munmap(m, page) == 0);
    test_assert(close(fd) == 0);
  }

  test_done();
}
