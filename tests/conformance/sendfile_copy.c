/* sendfile and copy_file_range between two files, with and without explicit offsets. */
#include "util.h"
#include <sys/sendfile.h>

static unsigned long sum(const char *p) {
  static char buf[300000];
  ssize_t n = read_file(p, buf, sizeof buf);
  unsigned long h = 5381;
  for (ssize_t i = 0; i < n; i++) h = h * 33 + (unsigned char)buf[i];
  return h ^ (unsigned long)n;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sendfile_copy");
  int src = check_ok(open(P("src"), O_RDWR | O_CREAT, 0644));
  static char data[200000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + (i * 7 + i / 13) % 26);
  test_assert(write(src, data, sizeof data) == (ssize_t)sizeof data);
  test_assert(lseek(src, 0, SEEK_SET) == 0);

  int dst = check_ok(open(P("dst-sendfile"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  size_t done = 0;
  while (done < sizeof data) {
    ssize_t n = sendfile(dst, src, NULL, sizeof data - done);
    test_assert(n > 0);
    done += (size_t)n;
  }
  test_assert(lseek(src, 0, SEEK_CUR) == (off_t)sizeof data);
  test_assert(sendfile(dst, src, NULL, 100) == 0);
  off_t off = 1000;
  ssize_t n = sendfile(dst, src, &off, 500);
  obs("sendfile with offset: %zd bytes, offset now %lld, position still end: %s", n, (long long)off,
      lseek(src, 0, SEEK_CUR) == (off_t)sizeof data ? "yes" : "no");
  test_assert(n == 500 && off == 1500 && lseek(src, 0, SEEK_CUR) == (off_t)sizeof data);
  check_ok(close(dst));
  obs("dst-sendfile hash %lx", sum(P("dst-sendfile")));

  dst = check_ok(open(P("dst-cfr"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  loff_t in = 0, out = 0;
  done = 0;
  while (done < sizeof data) {
    n = copy_file_range(src, &in, dst, &out, sizeof data - done, 0);
    test_assert(n > 0);
    done += (size_t)n;
  }
  test_assert(in == (loff_t)sizeof data && out == (loff_t)sizeof data);
  test_assert(lseek(dst, 0, SEEK_CUR) == 0);
  /* Without offsets the positions are used and advanced. */
  test_assert(lseek(src, 10, SEEK_SET) == 10);
  n = copy_file_range(src, NULL, dst, NULL, 20, 0);
  test_assert(n == 20 && lseek(src, 0, SEEK_CUR) == 30 && lseek(dst, 0, SEEK_CUR) == 20);
  check_err("copy_file_range bad flags", copy_file_range(src, NULL, dst, NULL, 1, 1), EINVAL);
  in = 0;
  out = 10;
  check_err("overlapping range in one file", copy_file_range(src, &in, src, &out, 100, 0), EINVAL);
  int ro = check_ok(open(P("src"), O_RDONLY));
  check_err("copy_file_range to O_RDONLY", copy_file_range(src, NULL, ro, NULL, 1, 0), EBADF);
  check_ok(close(ro));
  check_ok(close(dst));
  obs("dst-cfr hash %lx", sum(P("dst-cfr")));
  obs("src hash %lx", sum(P("src")));
  check_ok(close(src));
  test_done();
}
