/* lseek: SEEK_SET/CUR/END, errors, writing past the end makes a hole, SEEK_DATA/SEEK_HOLE. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "lseek");
  int fd = check_ok(open(P("f"), O_RDWR | O_CREAT, 0644));
  char block[4096];
  memset(block, 'd', sizeof block);
  test_assert(write(fd, block, sizeof block) == (ssize_t)sizeof block);
  test_assert(lseek(fd, 0, SEEK_CUR) == 4096);
  test_assert(lseek(fd, 10, SEEK_SET) == 10);
  test_assert(lseek(fd, 5, SEEK_CUR) == 15);
  test_assert(lseek(fd, -6, SEEK_END) == 4090);
  check_err("negative result", lseek(fd, -5000, SEEK_END), EINVAL);
  check_err("bad whence", lseek(fd, 0, 42), EINVAL);
  test_assert(lseek(fd, 0, SEEK_CUR) == 4090);
  /* Past the end, then write: a hole. */
  const off_t far = 1 << 20;
  test_assert(lseek(fd, far, SEEK_SET) == far);
  test_assert(write(fd, block, sizeof block) == (ssize_t)sizeof block);
  test_assert(lseek(fd, 0, SEEK_END) == far + 4096);
  char z[16];
  test_assert(pread(fd, z, sizeof z, 8192) == (ssize_t)sizeof z);
  for (size_t i = 0; i < sizeof z; i++) test_assert(z[i] == 0);
  /* SEEK_DATA/SEEK_HOLE granularity depends on the file system: observe. */
  off_t hole = lseek(fd, 0, SEEK_HOLE);
  off_t data = lseek(fd, 4096, SEEK_DATA);
  obs("SEEK_HOLE from 0: %lld, SEEK_DATA from 4096: %lld", (long long)hole, (long long)data);
  test_assert(hole >= 4096 && hole <= far + 4096);
  test_assert(data >= 4096 && data <= far);
  check_err("SEEK_DATA at EOF", lseek(fd, far + 4096, SEEK_DATA), ENXIO);
  check_err("SEEK_HOLE past EOF", lseek(fd, far + 8192, SEEK_HOLE), ENXIO);
  /* A directory fd can be sought to 0; a pipe cannot be sought. */
  int p[2];
  check_ok(pipe(p));
  check_err("lseek on pipe", lseek(p[0], 0, SEEK_SET), ESPIPE);
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  test_assert(lseek(dfd, 0, SEEK_SET) == 0);
  close(dfd);
  close(fd);
  test_done();
}
