/* mmap of a file: private and read-only shared maps see the file's bytes, private writes stay
 * private, MAP_FIXED windows at offsets, mapping past the end (SIGBUS), and the kernel's file
 * checks (EACCES for the access mode, ENODEV for a directory, EBADF for O_PATH, EINVAL for bad
 * offsets and lengths). Writable shared maps are not here: sbrun refuses those on remote files
 * (ENODEV, documented), so they differ by design. */
#include "util.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

static sigjmp_buf jump;
static void on_bus(int sig) {
  (void)sig;
  siglongjmp(jump, 1);
}

static unsigned long sum(const unsigned char *p, size_t n) {
  unsigned long s = 0;
  for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
  return s;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "mmap_file");
  long page = sysconf(_SC_PAGESIZE);
  size_t size = (size_t)page * 40 + 123; /* several fetch blocks, a partial last page */
  unsigned char *want = malloc(size);
  test_assert(want != NULL);
  for (size_t i = 0; i < size; i++) want[i] = (unsigned char)(i * 7 + i / 4096);
  int fd = check_ok(open(P("data"), O_RDWR | O_CREAT, 0644));
  test_assert(write(fd, want, size) == (ssize_t)size);
  check_ok(close(fd));

  /* Whole file, read-only private. */
  fd = check_ok(open(P("data"), O_RDONLY));
  unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  test_assert(m != MAP_FAILED);
  test_assert(memcmp(m, want, size) == 0);
  obs("private map: %zu bytes, sum %lu", size, sum(m, size));
  /* The fd can go; the map stays. */
  check_ok(close(fd));
  test_assert(m[size - 1] == want[size - 1]);

  /* Private writable map: writes stay in memory. */
  fd = check_ok(open(P("data"), O_RDONLY));
  unsigned char *w = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
                          page * 3);
  test_assert(w != MAP_FAILED);
  test_assert(memcmp(w, want + page * 3, (size_t)page * 2) == 0);
  memcpy(w, "private", 7);
  unsigned char back[8];
  test_assert(pread(fd, back, 7, page * 3) == 7 && memcmp(back, want + page * 3, 7) == 0);
  obs("private write not in file: ok");

  /* MAP_FIXED windows over a reservation, as the dynamic loader does. */
  unsigned char *r = mmap(NULL, (size_t)page * 8, PROT_READ, MAP_PRIVATE, fd, 0);
  test_assert(r != MAP_FAILED);
  unsigned char *f = mmap(r + page * 2, (size_t)page * 3, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd,
                          page * 10);
  test_assert(f == r + page * 2);
  test_assert(memcmp(r, want, (size_t)page * 2) == 0);
  test_assert(memcmp(f, want + page * 10, (size_t)page * 3) == 0);
  obs("fixed window: ok");

  /* Shared read-only. */
  unsigned char *s = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  test_assert(s != MAP_FAILED);
  test_assert(memcmp(s, want, size) == 0);
  obs("shared read-only map: ok");

  /* Past the end of the file: the partial page reads zeros, the next page is SIGBUS. */
  unsigned char *tail = mmap(NULL, (size_t)page * 42, PROT_READ, MAP_PRIVATE, fd, 0);
  test_assert(tail != MAP_FAILED);
  test_assert(tail[size] == 0 && tail[(size_t)page * 41 - 1] == 0);
  struct sigaction sa = {0};
  sa.sa_handler = on_bus;
  check_ok(sigaction(SIGBUS, &sa, NULL));
  volatile int bus = 0;
  if (sigsetjmp(jump, 1) == 0) {
    volatile unsigned char c = tail[(size_t)page * 41];
    (void)c;
  } else {
    bus = 1;
  }
  obs("read past the last page: %s", bus ? "SIGBUS" : "no signal");

  /* The kernel's checks. */
  errno = 0;
  test_assert(mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 100) == MAP_FAILED);
  obs("unaligned offset: %s", errname(errno));
  errno = 0;
  test_assert(mmap(NULL, 0, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED);
  obs("zero length: %s", errname(errno));
  errno = 0;
  test_assert(mmap(NULL, size, PROT_READ, 0, fd, 0) == MAP_FAILED);
  obs("no map type: %s", errname(errno));
  errno = 0;
  test_assert(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  obs("writable shared map of a read-only fd: %s", errname(errno));
  check_ok(close(fd));
  int wfd = check_ok(open(P("data"), O_WRONLY));
  errno = 0;
  test_assert(mmap(NULL, size, PROT_READ, MAP_PRIVATE, wfd, 0) == MAP_FAILED);
  obs("map of a write-only fd: %s", errname(errno));
  check_ok(close(wfd));
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  errno = 0;
  test_assert(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, dfd, 0) == MAP_FAILED);
  obs("map of a directory: %s", errname(errno));
  check_ok(close(dfd));
  int pfd = check_ok(open(P("data"), O_PATH));
  errno = 0;
  test_assert(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, pfd, 0) == MAP_FAILED);
  obs("map of an O_PATH fd: %s", errname(errno));
  check_ok(close(pfd));
  errno = 0;
  test_assert(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 999, 0) == MAP_FAILED);
  obs("map of a closed fd: %s", errname(errno));
  /* Anonymous maps ignore the fd. */
  void *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  test_assert(anon != MAP_FAILED);

  /* A changed file maps its new bytes (a new version, not the old copy). */
  fd = check_ok(open(P("data"), O_RDWR));
  test_assert(pwrite(fd, "CHANGED", 7, 0) == 7);
  unsigned char *n = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
  test_assert(n != MAP_FAILED && memcmp(n, "CHANGED", 7) == 0);
  obs("map after a write: %.7s", n);
  check_ok(close(fd));

  /* Empty file: a map succeeds; touching it is SIGBUS. */
  int efd = check_ok(open(P("empty"), O_RDWR | O_CREAT, 0644));
  void *e = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, efd, 0);
  obs("map of an empty file: %s", e == MAP_FAILED ? errname(errno) : "mapped");
  check_ok(close(efd));
  test_done();
}
