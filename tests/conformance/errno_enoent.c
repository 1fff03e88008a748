/* ENOENT from every path call on a missing name, and O_CREAT without a parent. */
#include "util.h"
#include <sys/statfs.h>
#include <sys/xattr.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_enoent");
  struct stat st;
  char buf[64];
  check_err("open missing", open(P("missing"), O_RDONLY), ENOENT);
  check_err("open O_CREAT in missing dir", open(P("nodir/f"), O_WRONLY | O_CREAT, 0644), ENOENT);
  check_err("stat missing", stat(P("missing"), &st), ENOENT);
  check_err("lstat missing", lstat(P("missing"), &st), ENOENT);
  check_err("access missing", access(P("missing"), F_OK), ENOENT);
  check_err("unlink missing", unlink(P("missing")), ENOENT);
  check_err("rmdir missing", rmdir(P("missing")), ENOENT);
  check_err("rename missing", rename(P("missing"), P("other")), ENOENT);
  check_err("readlink missing", readlink(P("missing"), buf, sizeof buf), ENOENT);
  check_err("chmod missing", chmod(P("missing"), 0644), ENOENT);
  check_err("truncate missing", truncate(P("missing"), 0), ENOENT);
  check_err("mkdir in missing dir", mkdir(P("nodir/sub"), 0755), ENOENT);
  check_err("chdir missing", chdir(P("missing")), ENOENT);
  check_err("opendir missing", opendir(P("missing")) == NULL ? -1 : 0, ENOENT);
  struct statfs sfs;
  check_err("statfs missing", statfs(P("missing"), &sfs), ENOENT);
  check_err("getxattr missing", getxattr(P("missing"), "user.x", buf, sizeof buf), ENOENT);
  check_err("empty path", open("", O_RDONLY), ENOENT);
  /* A dangling symlink: lstat works, stat and open fail. */
  check_ok(symlink("nowhere", P("dangling")));
  check_ok(lstat(P("dangling"), &st));
  test_assert(S_ISLNK(st.st_mode));
  check_err("stat dangling", stat(P("dangling"), &st), ENOENT);
  check_err("open dangling", open(P("dangling"), O_RDONLY), ENOENT);
  /* O_CREAT through a dangling symlink creates the target. */
  int fd = check_ok(open(P("dangling"), O_WRONLY | O_CREAT, 0644));
  check_ok(close(fd));
  check_ok(stat(P("nowhere"), &st));
  obs("created through dangling symlink: %s", S_ISREG(st.st_mode) ? "regular" : "other");
  test_done();
}
