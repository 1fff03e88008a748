/* open/read/write/close round trips: O_TRUNC, O_APPEND, creat, short reads at EOF, a 3 MiB
 * write and read (chunking), fsync and fdatasync. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "rw_basic");
  int fd = check_ok(open(P("f"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  test_assert(write(fd, "hello, ", 7) == 7);
  test_assert(write(fd, "world\n", 6) == 6);
  test_assert(write(fd, "", 0) == 0);
  check_ok(fsync(fd));
  check_ok(fdatasync(fd));
  check_ok(close(fd));
  char buf[64];
  fd = check_ok(open(P("f"), O_RDONLY));
  test_assert(read(fd, buf, 5) == 5);
  ssize_t n = read(fd, buf, sizeof buf);
  obs("second read returns the rest: %zd", n);
  test_assert(n == 8 && memcmp(buf, ", world\n", 8) == 0);
  test_assert(read(fd, buf, sizeof buf) == 0);
  test_assert(read(fd, buf, 0) == 0);
  check_ok(close(fd));
  fd = check_ok(open(P("f"), O_WRONLY | O_APPEND));
  test_assert(write(fd, "again\n", 6) == 6);
  check_ok(close(fd));
  fd = check_ok(creat(P("g"), 0600));
  test_assert(write(fd, "created\n", 8) == 8);
  check_err("read on creat fd", read(fd, buf, 1), EBADF);
  check_ok(close(fd));
  read_file(P("f"), buf, sizeof buf);
  obs("f: %s", buf);
  test_assert(strcmp(buf, "hello, world\nagain\n") == 0);
  fd = check_ok(open(P("f"), O_RDWR | O_TRUNC));
  struct stat st;
  check_ok(fstat(fd, &st));
  test_assert(st.st_size == 0);
  /* 3 MiB with a pattern, written and read in odd sizes. */
  size_t big = 3 << 20;
  unsigned char *w = malloc(big), *r = malloc(big);
  test_assert(w && r);
  for (size_t i = 0; i < big; i++) w[i] = (unsigned char)(i * 2654435761u >> 13);
  test_assert(write(fd, w, big) == (ssize_t)big);
  test_assert(lseek(fd, 0, SEEK_SET) == 0);
  size_t got = 0;
  while (got < big) {
    size_t want = big - got < 777777 ? big - got : 777777;
    ssize_t k = read(fd, r + got, want);
    test_assert(k > 0);
    got += (size_t)k;
  }
  test_assert(memcmp(w, r, big) == 0);
  obs("3 MiB round trip ok");
  check_ok(close(fd));
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  check_ok(fsync(dfd));
  check_ok(close(dfd));
  free(w);
  free(r);
  test_done();
}
