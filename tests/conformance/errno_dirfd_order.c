/* linkat and renameat check each side's dirfd before they compare file systems: a dirfd that
 * is not open gives EBADF and one that is not a directory ENOTDIR, not EXDEV, whatever side of
 * sbrun the other path lives on (/proc/self is local under sbrun, the test directory remote). */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_dirfd_order");
  test_maybe_drop(argc, argv);
  write_file(P("f"), "x", 0644);
  int notdir = check_ok(open("/proc/self/status", O_RDONLY));
  int closed = 99;
  close(closed);
  check_err("linkat to a closed dirfd", linkat(AT_FDCWD, P("f"), closed, "x", 0), EBADF);
  check_err("linkat to a file dirfd", linkat(AT_FDCWD, P("f"), notdir, "x", 0), ENOTDIR);
  check_err("linkat from a closed dirfd", linkat(closed, "x", AT_FDCWD, P("g"), 0), EBADF);
  check_err("renameat to a closed dirfd", renameat(AT_FDCWD, P("f"), closed, "x"), EBADF);
  check_err("renameat to a file dirfd", renameat(AT_FDCWD, P("f"), notdir, "x"), ENOTDIR);
  check_err("renameat from a file dirfd", renameat(notdir, "x", AT_FDCWD, P("g")), ENOTDIR);
  close(notdir);
  test_done();
}
