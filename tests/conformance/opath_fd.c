/* An O_PATH fd (remote under sbrun) refuses what needs a real open file with EBADF: fchmod,
 * fchown, fgetxattr, read, write and ioctl; fstat and fchdir of an O_PATH directory work. */
#include "util.h"

#include <sys/ioctl.h>
#include <sys/xattr.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "opath_fd");
  test_maybe_drop(argc, argv);
  write_file(P("f"), "data", 0644);
  int fd = check_ok(open(P("f"), O_PATH));
  char buf[8];
  int n;
  check_err("fchmod", fchmod(fd, 0600), EBADF);
  check_err("fchown", fchown(fd, -1, -1), EBADF);
  check_err("fgetxattr", fgetxattr(fd, "user.x", buf, sizeof buf), EBADF);
  check_err("read", read(fd, buf, sizeof buf), EBADF);
  check_err("write", write(fd, "x", 1), EBADF);
  check_err("ioctl FIONREAD", ioctl(fd, FIONREAD, &n), EBADF);
  struct stat st;
  check_ok(fstat(fd, &st));
  obs("fstat: size %ld mode %04o", (long)st.st_size, (unsigned)(st.st_mode & 07777));
  close(fd);
  test_done();
}
