/* The lowest free fd is allocated, whatever mix of remote files and local pipes is open. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "fd_lowest");
  write_file(P("f"), "x", 0644);
  int base = check_ok(dup(0));
  check_ok(close(base));
  obs("base fd is %s", base == 3 ? "3" : "not 3");
  int a = check_ok(open(P("f"), O_RDONLY));
  int b = check_ok(open(P("f"), O_RDONLY));
  int c = check_ok(open(P("f"), O_RDONLY));
  obs("three opens: base+%d base+%d base+%d", a - base, b - base, c - base);
  test_assert(a == base && b == base + 1 && c == base + 2);
  check_ok(close(b));
  int d = check_ok(open(P("f"), O_RDONLY));
  test_assert(d == b);
  int p[2];
  check_ok(close(a));
  check_ok(pipe(p));
  obs("pipe after closing the first: base+%d base+%d", p[0] - base, p[1] - base);
  test_assert(p[0] == a && p[1] == c + 1);
  check_ok(close(p[0]));
  int e = check_ok(open(P("f"), O_RDONLY));
  test_assert(e == p[0]);
  int dir = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  test_assert(dir == c + 2);
  int f = check_ok(openat(dir, "f", O_RDONLY));
  test_assert(f == c + 3);
  for (int fd = base; fd <= f; fd++) close(fd);
  int g = check_ok(open(P("f"), O_RDONLY));
  test_assert(g == base);
  check_ok(close(g));
  /* Many opens: no gaps, no collisions. */
  int fds[200];
  for (int i = 0; i < 200; i++) {
    fds[i] = check_ok(open(P("f"), O_RDONLY));
    test_assert(fds[i] == base + i);
  }
  for (int i = 0; i < 200; i += 2) check_ok(close(fds[i]));
  for (int i = 0; i < 200; i += 2) test_assert(check_ok(open(P("f"), O_RDONLY)) == fds[i]);
  obs("200 opens are dense");
  test_done();
}
