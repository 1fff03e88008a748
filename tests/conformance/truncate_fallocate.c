/* truncate and ftruncate grow with zeros and shrink; fallocate allocates, keeps size, punches. */
#include "util.h"
#include <linux/falloc.h>

static long long size_of(const char *p) {
  struct stat st;
  test_assert(stat(p, &st) == 0);
  return (long long)st.st_size;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "truncate_fallocate");
  write_file(P("f"), "abcdefghij", 0644);
  check_ok(truncate(P("f"), 4));
  test_assert(size_of(P("f")) == 4);
  check_ok(truncate(P("f"), 8));
  char buf[16];
  test_assert(read_file(P("f"), buf, sizeof buf) == 8);
  test_assert(memcmp(buf, "abcd\0\0\0\0", 8) == 0);
  obs("truncate shrink then grow: zeros after 4");
  check_err("truncate negative", truncate(P("f"), -1), EINVAL);
  int fd = check_ok(open(P("f"), O_RDWR));
  check_ok(ftruncate(fd, 2));
  test_assert(size_of(P("f")) == 2);
  check_err("ftruncate negative", ftruncate(fd, -5), EINVAL);
  int rc = fallocate(fd, 0, 0, 65536);
  if (rc == -1 && errno == EOPNOTSUPP) {
    obs("fallocate: not supported here");
  } else {
    test_assert(rc == 0);
    obs("fallocate mode 0 to 64 KiB: size %lld", size_of(P("f")));
    test_assert(size_of(P("f")) == 65536);
    check_ok(fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536));
    test_assert(size_of(P("f")) == 65536);
    test_assert(pwrite(fd, "xxxxxxxx", 8, 100) == 8);
    observe("punch hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    test_assert(pread(fd, buf, 8, 100) == 8);
    obs("after punch: first byte at 100 is %d", buf[0]);
    check_err("fallocate zero length", fallocate(fd, 0, 0, 0), EINVAL);
  }
  check_ok(close(fd));
  fd = check_ok(open(P("f"), O_RDONLY));
  check_err("ftruncate O_RDONLY", ftruncate(fd, 0), EINVAL);
  check_err("fallocate O_RDONLY", fallocate(fd, 0, 0, 10), EBADF);
  check_ok(close(fd));
  /* O_TRUNC empties. */
  fd = check_ok(open(P("f"), O_WRONLY | O_TRUNC));
  test_assert(size_of(P("f")) == 0);
  check_ok(close(fd));
  test_done();
}
