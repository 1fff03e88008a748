/* dup, dup2 (also over a remote fd), dup3, F_DUPFD: shared offsets, replaced files. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "fd_dup");
  write_file(P("a"), "AAAAAAAAAA", 0644);
  write_file(P("b"), "BBBBBBBBBB", 0644);
  char buf[16] = {0};
  int a = check_ok(open(P("a"), O_RDONLY));
  int b = check_ok(open(P("b"), O_RDONLY));
  int a2 = check_ok(dup(a));
  test_assert(read(a, buf, 3) == 3);
  obs("offset shared by dup: %ld", (long)lseek(a2, 0, SEEK_CUR));
  test_assert(lseek(a2, 0, SEEK_CUR) == 3);
  /* dup2 over a remote fd: b now reads a's file at a's offset. */
  test_assert(dup2(a, b) == b);
  memset(buf, 0, sizeof buf);
  test_assert(read(b, buf, 2) == 2);
  obs("dup2 over remote fd reads: %s", buf);
  test_assert(strcmp(buf, "AA") == 0 && lseek(a, 0, SEEK_CUR) == 5);
  test_assert(fcntl(b, F_GETFD) == 0);
  /* dup2 onto itself returns it; dup3 onto itself is EINVAL. */
  test_assert(dup2(a, a) == a);
  check_err("dup3 same fd", dup3(a, a, 0), EINVAL);
  check_err("dup3 bad flags", dup3(a, 50, 12345), EINVAL);
  int c = check_ok(dup3(a, 50, O_CLOEXEC));
  test_assert(c == 50 && fcntl(c, F_GETFD) == FD_CLOEXEC);
  int d = check_ok(fcntl(a, F_DUPFD, 60));
  test_assert(d == 60 && fcntl(d, F_GETFD) == 0);
  int e = check_ok(fcntl(a, F_DUPFD_CLOEXEC, 60));
  test_assert(e == 61 && fcntl(e, F_GETFD) == FD_CLOEXEC);
  /* A local pipe dup2'ed over a remote fd and back. */
  int p[2];
  check_ok(pipe(p));
  test_assert(dup2(p[1], a2) == a2);
  test_assert(write(a2, "via-pipe", 8) == 8);
  memset(buf, 0, sizeof buf);
  test_assert(read(p[0], buf, 8) == 8);
  obs("remote fd replaced by pipe: %s", buf);
  test_assert(dup2(c, p[1]) == p[1]);
  test_assert(lseek(p[1], 0, SEEK_SET) == 0);
  memset(buf, 0, sizeof buf);
  test_assert(read(p[1], buf, 10) == 10);
  obs("pipe fd replaced by remote: %s", buf);
  /* Closing one copy leaves the others working. */
  check_ok(close(a));
  check_ok(close(c));
  test_assert(lseek(d, 0, SEEK_SET) == 0 && read(d, buf, 1) == 1 && buf[0] == 'A');
  /* The file behind the original b is untouched. */
  test_assert(read_file(P("b"), buf, sizeof buf) == 10 && buf[0] == 'B');
  test_done();
}
