/* close_range closes (or marks close-on-exec) every fd in a range, remote or local. */
#include "util.h"
#include <linux/close_range.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "fd_close_range");
  write_file(P("f"), "x", 0644);
  int fds[6];
  for (int i = 0; i < 6; i++) fds[i] = check_ok(open(P("f"), O_RDONLY));
  int p[2];
  check_ok(pipe(p));
  check_ok(syscall(SYS_close_range, fds[3], fds[3], CLOSE_RANGE_CLOEXEC));
  test_assert(fcntl(fds[3], F_GETFD) == FD_CLOEXEC && fcntl(fds[2], F_GETFD) == 0);
  check_ok(syscall(SYS_close_range, fds[1], fds[2], 0));
  check_err("closed by close_range", fcntl(fds[1], F_GETFD), EBADF);
  check_err("closed by close_range", fcntl(fds[2], F_GETFD), EBADF);
  test_assert(fcntl(fds[0], F_GETFD) == 0 && fcntl(fds[3], F_GETFD) == FD_CLOEXEC);
  int again = check_ok(open(P("f"), O_RDONLY));
  test_assert(again == fds[1]);
  /* Everything from fds[3] up, including the pipe. */
  check_ok(syscall(SYS_close_range, fds[3], ~0U, 0));
  for (int i = 3; i < 6; i++) check_err("closed by open-ended close_range", fcntl(fds[i], F_GETFD), EBADF);
  check_err("pipe closed", fcntl(p[0], F_GETFD), EBADF);
  test_assert(fcntl(fds[0], F_GETFD) == 0 && fcntl(again, F_GETFD) == 0);
  check_err("first > last", syscall(SYS_close_range, 10, 5, 0), EINVAL);
  int next = check_ok(open(P("f"), O_RDONLY));
  test_assert(next == fds[2]);
  obs("reopened at the lowest free fd");
  char c;
  test_assert(read(fds[0], &c, 1) == 1 && c == 'x');
  test_done();
}
