/* ELOOP: symlink loops, O_NOFOLLOW on a symlink, too many levels. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_eloop");
  write_file(P("f"), "x", 0644);
  check_ok(symlink("b", P("a")));
  check_ok(symlink("a", P("b")));
  check_ok(symlink("f", P("tof")));
  check_ok(symlink("self", P("self")));
  struct stat st;
  check_err("open loop", open(P("a"), O_RDONLY), ELOOP);
  check_err("stat loop", stat(P("a"), &st), ELOOP);
  check_err("stat self loop", stat(P("self"), &st), ELOOP);
  check_err("open loop/x", open(P("a/x"), O_RDONLY), ELOOP);
  check_ok(lstat(P("a"), &st));
  test_assert(S_ISLNK(st.st_mode));
  check_err("O_NOFOLLOW on symlink", open(P("tof"), O_RDONLY | O_NOFOLLOW), ELOOP);
  int fd = check_ok(open(P("tof"), O_PATH | O_NOFOLLOW));
  check_ok(fstat(fd, &st));
  obs("O_PATH|O_NOFOLLOW gives the link itself: %s", S_ISLNK(st.st_mode) ? "yes" : "no");
  check_ok(close(fd));
  /* A chain of 41 links exceeds the kernel's 40. */
  char name[32], target[32];
  for (int i = 0; i < 41; i++) {
    snprintf(name, sizeof name, "c%d", i);
    if (i == 40) snprintf(target, sizeof target, "f");
    else snprintf(target, sizeof target, "c%d", i + 1);
    check_ok(symlink(target, P(name)));
  }
  check_err("41-link chain", open(P("c0"), O_RDONLY), ELOOP);
  fd = check_ok(open(P("c1"), O_RDONLY));
  check_ok(close(fd));
  obs("40-link chain opens");
  test_done();
}
