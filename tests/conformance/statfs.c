/* statfs and fstatfs describe the file system the files live on. */
#include "util.h"
#include <sys/statfs.h>
#include <sys/statvfs.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "statfs");
  write_file(P("f"), "x", 0644);
  struct statfs a, b;
  check_ok(statfs(P("f"), &a));
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_ok(fstatfs(fd, &b));
  obs("f_type 0x%lx namelen %ld bsize %ld", (long)a.f_type, (long)a.f_namelen, (long)a.f_bsize);
  test_assert(a.f_type == b.f_type && a.f_bsize == b.f_bsize && a.f_namelen == b.f_namelen);
  test_assert(memcmp(&a.f_fsid, &b.f_fsid, sizeof a.f_fsid) == 0);
  struct statvfs v;
  check_ok(statvfs(P("f"), &v));
  obs("statvfs read-only flag: %s", (v.f_flag & ST_RDONLY) ? "yes" : "no");
  check_ok(close(fd));
  test_done();
}
