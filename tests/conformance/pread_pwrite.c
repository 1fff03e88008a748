/* pread/pwrite use explicit offsets and leave the file position alone. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "pread_pwrite");
  int fd = check_ok(open(P("f"), O_RDWR | O_CREAT, 0644));
  test_assert(write(fd, "0123456789", 10) == 10);
  test_assert(lseek(fd, 2, SEEK_SET) == 2);
  char buf[32] = {0};
  test_assert(pread(fd, buf, 4, 5) == 4 && memcmp(buf, "5678", 4) == 0);
  test_assert(pwrite(fd, "AB", 2, 8) == 2);
  test_assert(lseek(fd, 0, SEEK_CUR) == 2);
  test_assert(pwrite(fd, "Z", 1, 15) == 1);
  memset(buf, 0, sizeof buf);
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  obs("pread whole file: %zd bytes", n);
  test_assert(n == 16);
  for (ssize_t i = 0; i < n; i++) if (buf[i] == 0) buf[i] = '.';
  obs("content: %.*s", (int)n, buf);
  test_assert(memcmp(buf, "01234567AB.....Z", 16) == 0);
  test_assert(pread(fd, buf, 4, 16) == 0);
  test_assert(pread(fd, buf, 4, 1000) == 0);
  test_assert(pread(fd, buf, 0, 0) == 0);
  check_err("pread negative offset", pread(fd, buf, 4, -1), EINVAL);
  check_err("pwrite negative offset", pwrite(fd, "x", 1, -1), EINVAL);
  test_assert(read(fd, buf, 3) == 3 && memcmp(buf, "234", 3) == 0);
  check_ok(close(fd));
  /* Linux: pwrite on an O_APPEND fd appends, whatever the offset (pwrite(2) BUGS). */
  fd = check_ok(open(P("f"), O_WRONLY | O_APPEND));
  test_assert(pwrite(fd, "app", 3, 0) == 3);
  check_ok(close(fd));
  n = read_file(P("f"), buf, sizeof buf);
  for (ssize_t i = 0; i < n; i++) if (buf[i] == 0) buf[i] = '.';
  obs("after pwrite on O_APPEND: %s", buf);
  int p[2];
  check_ok(pipe(p));
  check_err("pread on pipe", pread(p[0], buf, 1, 0), ESPIPE);
  test_done();
}
