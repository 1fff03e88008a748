/* openat relative to directory fds, O_PATH fds, O_DIRECTORY, O_NOFOLLOW, O_TMPFILE, openat2. */
#include "util.h"
#include <linux/openat2.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "openat_dirfd");
  check_ok(mkdir(P("d"), 0755));
  write_file(P("d/f"), "in-d", 0644);
  check_ok(symlink("/", P("d/escape")));
  int d = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  char buf[32] = {0};
  int f = check_ok(openat(d, "f", O_RDONLY));
  test_assert(read(f, buf, sizeof buf) == 4);
  check_ok(close(f));
  int p = check_ok(open(P("d"), O_PATH));
  f = check_ok(openat(p, "f", O_RDONLY));
  check_ok(close(f));
  f = check_ok(openat(p, "..", O_RDONLY | O_DIRECTORY));
  struct stat a, b;
  check_ok(fstat(f, &a));
  check_ok(stat(test_dir, &b));
  test_assert(a.st_ino == b.st_ino);
  check_ok(close(f));
  /* O_TMPFILE: an unnamed file in the directory. */
  f = openat(d, ".", O_TMPFILE | O_RDWR, 0600);
  if (f == -1) {
    obs("O_TMPFILE: %s", errname(errno));
  } else {
    test_assert(write(f, "tmp", 3) == 3);
    check_ok(fstat(f, &a));
    obs("O_TMPFILE: nlink %lu size %lld", (unsigned long)a.st_nlink, (long long)a.st_size);
    test_assert(a.st_nlink == 0 && a.st_size == 3);
    check_ok(close(f));
  }
  /* openat2 with RESOLVE_BENEATH refuses to leave the directory. */
  struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_BENEATH};
  f = check_ok(syscall(SYS_openat2, d, "f", &how, sizeof how));
  check_ok(close(f));
  check_err("openat2 RESOLVE_BENEATH ..", syscall(SYS_openat2, d, "../d/f", &how, sizeof how), EXDEV);
  check_err("openat2 RESOLVE_BENEATH absolute symlink", syscall(SYS_openat2, d, "escape", &how, sizeof how), EXDEV);
  how.resolve = RESOLVE_NO_SYMLINKS;
  check_err("openat2 RESOLVE_NO_SYMLINKS", syscall(SYS_openat2, d, "escape", &how, sizeof how), ELOOP);
  how.resolve = 0;
  how.flags = O_RDONLY;
  how.mode = 0644;
  check_err("openat2 mode without O_CREAT", syscall(SYS_openat2, d, "f", &how, sizeof how), EINVAL);
  check_err("openat2 small size", syscall(SYS_openat2, d, "f", &how, 8), EINVAL);
  check_ok(close(p));
  check_ok(close(d));
  test_done();
}
