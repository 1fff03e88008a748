/* utimensat, futimens, utimes, utime: explicit times with nanoseconds, UTIME_OMIT, UTIME_NOW,
 * AT_SYMLINK_NOFOLLOW. */
#include "util.h"
#include <sys/time.h>
#include <utime.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "utimensat");
  write_file(P("f"), "x", 0644);
  check_ok(symlink("f", P("s")));
  struct stat st;
  struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
  check_ok(utimensat(AT_FDCWD, P("f"), ts, 0));
  check_ok(stat(P("f"), &st));
  obs("atime %lld.%09ld mtime %lld.%09ld", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  test_assert(st.st_mtim.tv_sec == 1100000000 && st.st_atim.tv_sec == 1000000000);
  struct timespec omit[2] = {{0, UTIME_OMIT}, {1200000000, 0}};
  check_ok(utimensat(AT_FDCWD, P("f"), omit, 0));
  check_ok(stat(P("f"), &st));
  test_assert(st.st_atim.tv_sec == 1000000000 && st.st_mtim.tv_sec == 1200000000);
  struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  check_ok(utimensat(AT_FDCWD, P("f"), now, 0));
  check_ok(stat(P("f"), &st));
  test_assert(st.st_atim.tv_sec > 1200000000 && st.st_mtim.tv_sec == 1200000000);
  obs("UTIME_NOW changed atime, UTIME_OMIT kept mtime");
  /* The link itself. */
  struct timespec lt[2] = {{1300000000, 0}, {1300000000, 0}};
  check_ok(utimensat(AT_FDCWD, P("s"), lt, AT_SYMLINK_NOFOLLOW));
  check_ok(lstat(P("s"), &st));
  test_assert(st.st_mtim.tv_sec == 1300000000);
  check_ok(stat(P("f"), &st));
  test_assert(st.st_mtim.tv_sec == 1200000000);
  int fd = check_ok(open(P("f"), O_RDONLY));
  struct timespec ft[2] = {{1400000000, 5}, {1400000000, 7}};
  check_ok(futimens(fd, ft));
  check_ok(fstat(fd, &st));
  test_assert(st.st_mtim.tv_sec == 1400000000 && st.st_mtim.tv_nsec == 7);
  check_ok(close(fd));
  struct timeval tv[2] = {{1500000000, 1}, {1500000000, 2}};
  check_ok(utimes(P("f"), tv));
  check_ok(stat(P("f"), &st));
  obs("utimes: mtime %lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  test_assert(st.st_mtim.tv_sec == 1500000000 && st.st_mtim.tv_nsec == 2000);
  struct utimbuf ub = {1600000000, 1600000001};
  check_ok(utime(P("f"), &ub));
  check_ok(stat(P("f"), &st));
  test_assert(st.st_mtim.tv_sec == 1600000001 && st.st_mtim.tv_nsec == 0);
  struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
  check_err("nsec out of range", utimensat(AT_FDCWD, P("f"), bad, 0), EINVAL);
  check_err("missing file", utimensat(AT_FDCWD, P("missing"), ts, 0), ENOENT);
  test_done();
}
