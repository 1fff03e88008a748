/* readv/writev/preadv/pwritev/preadv2/pwritev2 scatter and gather in order. */
#include "util.h"
#include <sys/uio.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "readv_writev");
  int fd = check_ok(open(P("f"), O_RDWR | O_CREAT, 0644));
  struct iovec w[3] = {{"one-", 4}, {"", 0}, {"two-three", 9}};
  test_assert(writev(fd, w, 3) == 13);
  test_assert(lseek(fd, 0, SEEK_CUR) == 13);
  char a[3], b[5], c[20];
  memset(c, 0, sizeof c);
  struct iovec r[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
  test_assert(lseek(fd, 0, SEEK_SET) == 0);
  ssize_t n = readv(fd, r, 3);
  obs("readv: %zd [%.3s][%.5s][%s]", n, a, b, c);
  test_assert(n == 13 && memcmp(a, "one", 3) == 0 && memcmp(b, "-two-", 5) == 0 && strcmp(c, "three") == 0);
  struct iovec pw[2] = {{"XY", 2}, {"Z", 1}};
  test_assert(pwritev(fd, pw, 2, 4) == 3);
  test_assert(lseek(fd, 0, SEEK_CUR) == 13);
  memset(c, 0, sizeof c);
  struct iovec pr[2] = {{a, 2}, {c, 6}};
  test_assert(preadv(fd, pr, 2, 3) == 8);
  obs("preadv: [%.2s][%s]", a, c);
  test_assert(memcmp(a, "-X", 2) == 0 && strcmp(c, "YZ-thr") == 0);
  /* preadv2 with offset -1 uses and advances the file position. */
  test_assert(lseek(fd, 8, SEEK_SET) == 8);
  memset(c, 0, sizeof c);
  struct iovec p2[1] = {{c, 4}};
  test_assert(preadv2(fd, p2, 1, -1, 0) == 4);
  test_assert(lseek(fd, 0, SEEK_CUR) == 12);
  obs("preadv2 at current position: %s", c);
  struct iovec w2[1] = {{"!", 1}};
  test_assert(pwritev2(fd, w2, 1, 0, RWF_APPEND) == 1);
  check_err("preadv2 bad flags", preadv2(fd, p2, 1, 0, 0x40000000), EOPNOTSUPP);
  volatile int bad_count = -1; /* volatile: keep the compiler from diagnosing the deliberate misuse */
  check_err("readv iovcnt -1", readv(fd, r, bad_count), EINVAL);
  bad_count = IOV_MAX + 1;
  check_err("readv iovcnt > IOV_MAX", readv(fd, r, bad_count), EINVAL);
  test_assert(readv(fd, r, 0) == 0);
  check_ok(close(fd));
  read_file(P("f"), c, sizeof c);
  obs("final: %s", c);
  test_assert(strcmp(c, "one-XYZ-three!") == 0);
  test_done();
}
