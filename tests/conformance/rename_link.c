/* rename (also over files and with renameat2 flags), link, unlink, symlink, readlink. */
#include "util.h"
#include <linux/fs.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "rename_link");
  char buf[64];
  struct stat st;
  write_file(P("a"), "content-a", 0644);
  write_file(P("b"), "content-b", 0644);
  check_ok(rename(P("a"), P("a2")));
  check_err("old name gone", stat(P("a"), &st), ENOENT);
  check_ok(rename(P("a2"), P("b")));
  read_file(P("b"), buf, sizeof buf);
  obs("rename over existing: b = %s", buf);
  test_assert(strcmp(buf, "content-a") == 0);
  check_ok(rename(P("b"), P("b")));
  write_file(P("c"), "content-c", 0644);
  check_ok(syscall(SYS_renameat2, AT_FDCWD, P("b"), AT_FDCWD, P("c"), RENAME_EXCHANGE));
  read_file(P("c"), buf, sizeof buf);
  obs("after RENAME_EXCHANGE: c = %s", buf);
  test_assert(strcmp(buf, "content-a") == 0);
  check_err("RENAME_EXCHANGE with missing", syscall(SYS_renameat2, AT_FDCWD, P("b"), AT_FDCWD, P("zz"), RENAME_EXCHANGE), ENOENT);
  check_ok(mkdir(P("d1"), 0755));
  check_ok(mkdir(P("d2"), 0755));
  write_file(P("d2/x"), "x", 0644);
  check_err("rename dir over non-empty dir", rename(P("d1"), P("d2")), ENOTEMPTY);
  check_err("rename dir into itself", rename(P("d1"), P("d1/sub")), EINVAL);
  check_ok(rename(P("d2"), P("d3")));
  check_ok(stat(P("d3/x"), &st));
  /* Relative renameat across two directory fds. */
  int d3 = check_ok(open(P("d3"), O_RDONLY | O_DIRECTORY));
  int d1 = check_ok(open(P("d1"), O_RDONLY | O_DIRECTORY));
  check_ok(renameat(d3, "x", d1, "moved"));
  check_ok(stat(P("d1/moved"), &st));

  /* Hard links. */
  check_ok(link(P("c"), P("c-link")));
  check_ok(stat(P("c"), &st));
  obs("nlink after link: %lu", (unsigned long)st.st_nlink);
  test_assert(st.st_nlink == 2);
  check_ok(linkat(d1, "moved", d3, "back", 0));
  check_ok(unlink(P("c")));
  check_ok(stat(P("c-link"), &st));
  test_assert(st.st_nlink == 1);
  check_err("link to a dir", link(P("d1"), P("d1-link")), EPERM);

  /* Symlinks and readlink. */
  check_ok(symlink("c-link", P("s")));
  check_ok(symlink("/an/absolute/target/that/does/not/exist", P("abs")));
  check_ok(symlinkat("../c-link", d1, "rel"));
  ssize_t n = check_ok(readlink(P("s"), buf, sizeof buf));
  obs("readlink s: %.*s (%zd)", (int)n, buf, n);
  n = check_ok(readlink(P("abs"), buf, sizeof buf));
  obs("readlink abs: %.*s (%zd)", (int)n, buf, n);
  n = check_ok(readlinkat(d1, "rel", buf, sizeof buf));
  obs("readlinkat rel: %.*s", (int)n, buf);
  memset(buf, '#', sizeof buf);
  n = check_ok(readlink(P("abs"), buf, 5));
  obs("readlink truncated: %zd %.6s", n, buf);
  test_assert(n == 5 && buf[5] == '#');
  check_err("readlink on a file", readlink(P("c-link"), buf, sizeof buf), EINVAL);
  check_err("readlink size 0", readlink(P("s"), buf, 0), EINVAL);
  read_file(P("d1/rel"), buf, sizeof buf);
  obs("through relative symlink: %s", buf);
  /* linkat with AT_SYMLINK_FOLLOW links the target, without it the symlink itself. */
  check_ok(linkat(AT_FDCWD, P("s"), AT_FDCWD, P("hard-to-target"), AT_SYMLINK_FOLLOW));
  check_ok(linkat(AT_FDCWD, P("s"), AT_FDCWD, P("hard-to-link"), 0));
  check_ok(lstat(P("hard-to-target"), &st));
  test_assert(S_ISREG(st.st_mode));
  check_ok(lstat(P("hard-to-link"), &st));
  test_assert(S_ISLNK(st.st_mode));
  check_ok(unlinkat(d1, "rel", 0));
  check_err("unlinkat AT_REMOVEDIR on file", unlinkat(d1, "moved", AT_REMOVEDIR), ENOTDIR);
  check_ok(unlinkat(AT_FDCWD, P("d3/back"), 0));
  check_ok(unlinkat(AT_FDCWD, P("d3"), AT_REMOVEDIR));
  close(d1);
  close(d3);
  test_done();
}
