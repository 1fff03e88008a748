/* mkdir and rmdir, the umask, and the errors of removing directories. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "mkdir_rmdir");
  struct stat st;
  check_ok(mkdir(P("d"), 0777));
  check_ok(stat(P("d"), &st));
  obs("mkdir 0777 with umask 022: %o", st.st_mode & 07777);
  test_assert((st.st_mode & 07777) == 0755 && S_ISDIR(st.st_mode));
  umask(027);
  check_ok(mkdir(P("e"), 0777));
  check_ok(stat(P("e"), &st));
  obs("mkdir 0777 with umask 027: %o", st.st_mode & 07777);
  test_assert((st.st_mode & 07777) == 0750);
  int fd = check_ok(open(P("e/f"), O_WRONLY | O_CREAT, 0666));
  check_ok(close(fd));
  check_ok(stat(P("e/f"), &st));
  obs("open O_CREAT 0666 with umask 027: %o", st.st_mode & 07777);
  test_assert((st.st_mode & 07777) == 0640);
  umask(0);
  check_ok(mkdir(P("sticky"), 01777));
  check_ok(stat(P("sticky"), &st));
  obs("mkdir 01777 with umask 0: %o", st.st_mode & 07777);
  umask(022);
  int dfd = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  check_ok(mkdirat(dfd, "sub", 0700));
  check_ok(stat(P("d/sub"), &st));
  test_assert((st.st_mode & 07777) == 0700);
  check_ok(stat(P("d"), &st));
  obs("nlink of dir with one subdir: %lu", (unsigned long)st.st_nlink);
  check_err("rmdir non-empty", rmdir(P("d")), ENOTEMPTY);
  check_err("rmdir dot", rmdir(P("d/sub/.")), EINVAL);
  check_err("rmdir dotdot", rmdir(P("d/sub/..")), ENOTEMPTY);
  check_err("unlink dir", unlink(P("d/sub")), EISDIR);
  check_err("mkdir missing parent", mkdir(P("nope/x"), 0755), ENOENT);
  check_ok(unlinkat(dfd, "sub", AT_REMOVEDIR));
  check_ok(rmdir(P("d")));
  check_err("rmdir again", rmdir(P("d")), ENOENT);
  /* The open fd of a removed directory: creating in it fails. */
  check_err("mkdirat in removed dir", mkdirat(dfd, "x", 0755), ENOENT);
  check_ok(close(dfd));
  check_ok(mkdir(P("trailing/"), 0755));
  check_ok(stat(P("trailing"), &st));
  test_assert(S_ISDIR(st.st_mode));
  test_done();
}
