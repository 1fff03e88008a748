/* stat, fstat, lstat, fstatat and statx agree and report size, type, mode, nlink. */
#include "util.h"

static void show(const char *label, const struct stat *st) {
  const char *t = S_ISREG(st->st_mode) ? "regular" : S_ISDIR(st->st_mode) ? "directory"
                : S_ISLNK(st->st_mode) ? "symlink" : S_ISFIFO(st->st_mode) ? "fifo" : "other";
  /* st_size of a directory and st_blocks depend on the file system: printed, not asserted. */
  obs("%s: %s mode %o nlink %lu size %lld blocks %lld blksize %ld uid %u gid %u", label, t,
      st->st_mode & 07777, (unsigned long)st->st_nlink, (long long)st->st_size,
      (long long)st->st_blocks, (long)st->st_blksize, st->st_uid, st->st_gid);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "stat_fields");
  write_file(P("f"), "twelve bytes", 0640);
  check_ok(link(P("f"), P("f2")));
  check_ok(symlink("f", P("s")));
  check_ok(mkdir(P("d"), 0751));
  check_ok(mkfifo(P("p"), 0600));
  struct stat a, b, c, d;
  check_ok(stat(P("f"), &a));
  show("stat f", &a);
  test_assert(S_ISREG(a.st_mode) && a.st_size == 12 && (a.st_mode & 07777) == 0640 && a.st_nlink == 2);
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_ok(fstat(fd, &b));
  test_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size && a.st_mode == b.st_mode);
  check_ok(lstat(P("s"), &c));
  show("lstat s", &c);
  test_assert(S_ISLNK(c.st_mode) && c.st_size == 1 && c.st_ino != a.st_ino);
  check_ok(stat(P("s"), &c));
  test_assert(c.st_ino == a.st_ino);
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  check_ok(fstatat(dfd, "s", &d, AT_SYMLINK_NOFOLLOW));
  test_assert(S_ISLNK(d.st_mode));
  check_ok(fstatat(fd, "", &d, AT_EMPTY_PATH));
  test_assert(d.st_ino == a.st_ino);
  check_err("fstatat empty path without AT_EMPTY_PATH", fstatat(fd, "", &d, 0), ENOENT);
  check_ok(stat(P("d"), &d));
  show("stat d", &d);
  test_assert(S_ISDIR(d.st_mode) && (d.st_mode & 07777) == 0751 && d.st_nlink == 2);
  check_ok(stat(P("p"), &d));
  show("stat p", &d);
  test_assert(S_ISFIFO(d.st_mode));
  /* After a write through the fd the size follows. */
  int w = check_ok(open(P("f"), O_WRONLY | O_APPEND));
  test_assert(write(w, "+more", 5) == 5);
  check_ok(fstat(fd, &b));
  test_assert(b.st_size == 17);
  check_ok(close(w));

  struct statx sx;
  check_ok(statx(dfd, "f", 0, STATX_BASIC_STATS, &sx));
  obs("statx f: mask has basic stats %s, size %llu, mode %o, nlink %u", (sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS ? "yes" : "no",
      (unsigned long long)sx.stx_size, sx.stx_mode & 07777, sx.stx_nlink);
  test_assert(sx.stx_size == 17 && sx.stx_ino == a.st_ino && S_ISREG(sx.stx_mode));
  check_ok(statx(dfd, "s", AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_SIZE, &sx));
  test_assert(S_ISLNK(sx.stx_mode) && sx.stx_size == 1);
  check_ok(statx(fd, "", AT_EMPTY_PATH, STATX_INO, &sx));
  test_assert(sx.stx_ino == a.st_ino);
  check_err("statx invalid flags", statx(dfd, "f", 0x7fff0000, STATX_BASIC_STATS, &sx), EINVAL);
  close(fd);
  close(dfd);
  test_done();
}
