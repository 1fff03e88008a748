/* EBADF: closed fds and fds opened without the needed access. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_ebadf");
  write_file(P("f"), "hello", 0644);
  char buf[16];
  struct stat st;
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_ok(close(fd));
  check_err("read closed", read(fd, buf, sizeof buf), EBADF);
  check_err("write closed", write(fd, "x", 1), EBADF);
  check_err("fstat closed", fstat(fd, &st), EBADF);
  check_err("lseek closed", lseek(fd, 0, SEEK_SET), EBADF);
  check_err("close closed", close(fd), EBADF);
  check_err("dup closed", dup(fd), EBADF);
  check_err("dup2 closed", dup2(fd, 100), EBADF);
  check_err("fcntl closed", fcntl(fd, F_GETFD), EBADF);
  check_err("fchdir closed", fchdir(fd), EBADF);
  check_err("openat closed dirfd relative", openat(fd, "f", O_RDONLY), EBADF);
  check_err("fsync closed", fsync(fd), EBADF);
  /* An absolute path ignores the dirfd, even a bad one. */
  int fd2 = check_ok(openat(fd, P("f"), O_RDONLY));
  check_ok(close(fd2));

  int ro = check_ok(open(P("f"), O_RDONLY));
  check_err("write on O_RDONLY", write(ro, "x", 1), EBADF);
  check_err("pwrite on O_RDONLY", pwrite(ro, "x", 1, 0), EBADF);
  check_err("ftruncate on O_RDONLY", ftruncate(ro, 0), EINVAL);
  check_ok(close(ro));
  int wo = check_ok(open(P("f"), O_WRONLY));
  check_err("read on O_WRONLY", read(wo, buf, sizeof buf), EBADF);
  check_err("pread on O_WRONLY", pread(wo, buf, sizeof buf, 0), EBADF);
  check_ok(close(wo));
  int pathfd = check_ok(open(P("f"), O_PATH));
  check_err("read on O_PATH", read(pathfd, buf, sizeof buf), EBADF);
  check_ok(fstat(pathfd, &st));
  test_assert(st.st_size == 5);
  check_ok(close(pathfd));
  check_err("read fd -1", read(-1, buf, 1), EBADF);
  check_err("read fd 100000", read(100000, buf, 1), EBADF);
  /* The file was not modified. */
  test_assert(read_file(P("f"), buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0);
  test_done();
}
