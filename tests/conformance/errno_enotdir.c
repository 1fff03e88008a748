/* ENOTDIR: a regular file used as a directory. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_enotdir");
  write_file(P("f"), "x", 0644);
  check_ok(mkdir(P("d"), 0755));
  struct stat st;
  check_err("open file/x", open(P("f/x"), O_RDONLY), ENOTDIR);
  check_err("open file O_DIRECTORY", open(P("f"), O_RDONLY | O_DIRECTORY), ENOTDIR);
  check_err("stat file/x", stat(P("f/x"), &st), ENOTDIR);
  check_err("mkdir file/x", mkdir(P("f/x"), 0755), ENOTDIR);
  check_err("rmdir file", rmdir(P("f")), ENOTDIR);
  check_err("chdir file", chdir(P("f")), ENOTDIR);
  check_err("rename dir over file", rename(P("d"), P("f")), ENOTDIR);
  check_err("stat trailing slash on file", stat(P("f/"), &st), ENOTDIR);
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_err("openat relative to file fd", openat(fd, "x", O_RDONLY), ENOTDIR);
  check_err("fchdir file fd", fchdir(fd), ENOTDIR);
  check_ok(close(fd));
  test_done();
}
