/* EEXIST: O_CREAT|O_EXCL, mkdir, link, symlink, mknod, rename RENAME_NOREPLACE. */
#include "util.h"
#include <linux/fs.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_eexist");
  write_file(P("f"), "x", 0644);
  check_ok(mkdir(P("d"), 0755));
  write_file(P("g"), "y", 0644);
  check_err("open O_CREAT|O_EXCL existing file", open(P("f"), O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
  check_err("open O_CREAT|O_EXCL existing dir", open(P("d"), O_RDONLY | O_CREAT | O_EXCL, 0644), EEXIST);
  check_err("mkdir existing dir", mkdir(P("d"), 0755), EEXIST);
  check_err("mkdir existing file", mkdir(P("f"), 0755), EEXIST);
  check_err("link to existing", link(P("f"), P("g")), EEXIST);
  check_err("symlink to existing", symlink("target", P("f")), EEXIST);
  check_err("mkfifo existing", mkfifo(P("f"), 0644), EEXIST);
  check_err("renameat2 NOREPLACE", syscall(SYS_renameat2, AT_FDCWD, P("f"), AT_FDCWD, P("g"), RENAME_NOREPLACE), EEXIST);
  /* O_CREAT|O_EXCL on a symlink fails even when it dangles. */
  check_ok(symlink("nowhere", P("dangling")));
  check_err("O_EXCL on dangling symlink", open(P("dangling"), O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
  struct stat st;
  check_err("target not created", lstat(P("nowhere"), &st), ENOENT);
  /* Nothing was changed. */
  char buf[8];
  test_assert(read_file(P("g"), buf, sizeof buf) == 1 && buf[0] == 'y');
  test_done();
}
