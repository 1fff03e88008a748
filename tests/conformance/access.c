/* access, faccessat and faccessat2 for existence and permission bits. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "access");
  write_file(P("rw"), "x", 0644);
  write_file(P("exe"), "#!/bin/sh\n", 0755);
  check_ok(symlink("missing", P("dangling")));
  check_ok(access(P("rw"), F_OK));
  check_ok(access(P("rw"), R_OK | W_OK));
  check_ok(access(P("exe"), X_OK));
  check_ok(access(test_dir, X_OK | R_OK));
  check_err("X_OK on 0644", access(P("rw"), X_OK), EACCES);
  check_err("F_OK missing", access(P("missing"), F_OK), ENOENT);
  check_err("F_OK dangling", access(P("dangling"), F_OK), ENOENT);
  check_err("bad mode", access(P("rw"), 0x40), EINVAL);
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  check_ok(faccessat(dfd, "rw", R_OK, 0));
  check_ok(syscall(SYS_faccessat2, dfd, "dangling", F_OK, AT_SYMLINK_NOFOLLOW));
  check_ok(syscall(SYS_faccessat2, dfd, "exe", X_OK, AT_EACCESS));
  int fd = check_ok(open(P("exe"), O_RDONLY));
  check_ok(syscall(SYS_faccessat2, fd, "", X_OK, AT_EMPTY_PATH));
  check_err("faccessat2 bad flags", syscall(SYS_faccessat2, dfd, "rw", F_OK, 0x1), EINVAL);
  close(fd);
  close(dfd);
  obs("all access checks as expected");
  test_done();
}
