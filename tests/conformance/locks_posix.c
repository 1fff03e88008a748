/* POSIX record locks within one process: set, query, upgrade, unlock, errors. */
#include "util.h"

static struct flock fl(short type, off_t start, off_t len) {
  struct flock f;
  memset(&f, 0, sizeof f);
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = start;
  f.l_len = len;
  return f;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_posix");
  write_file(P("f"), "0123456789", 0644);
  int fd = check_ok(open(P("f"), O_RDWR));
  struct flock f = fl(F_WRLCK, 0, 5);
  check_ok(fcntl(fd, F_SETLK, &f));
  f = fl(F_WRLCK, 0, 10);
  check_ok(fcntl(fd, F_GETLK, &f));
  obs("F_GETLK over own lock: %s", f.l_type == F_UNLCK ? "F_UNLCK" : "conflict");
  test_assert(f.l_type == F_UNLCK);
  f = fl(F_RDLCK, 2, 2);
  check_ok(fcntl(fd, F_SETLKW, &f)); /* downgrade part: own locks never block */
  f = fl(F_UNLCK, 0, 0);
  check_ok(fcntl(fd, F_SETLK, &f));
  int ro = check_ok(open(P("f"), O_RDONLY));
  f = fl(F_WRLCK, 0, 1);
  check_err("write lock on O_RDONLY fd", fcntl(ro, F_SETLK, &f), EBADF);
  f = fl(F_RDLCK, 0, 1);
  check_ok(fcntl(ro, F_SETLK, &f));
  f = fl(42, 0, 1);
  check_err("bad lock type", fcntl(fd, F_SETLK, &f), EINVAL);
  f = fl(F_RDLCK, -20, 1);
  check_err("negative start", fcntl(fd, F_SETLK, &f), EINVAL);
  check_err("null flock", fcntl(fd, F_SETLK, (struct flock *)1), EFAULT);
  check_ok(close(ro));
  check_ok(close(fd));
  test_done();
}
