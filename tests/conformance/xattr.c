/* Extended attributes in the user namespace; prints a skip line where the file system has none. */
#include "util.h"
#include <sys/xattr.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "xattr");
  write_file(P("f"), "x", 0644);
  check_ok(symlink("f", P("s")));
  if (setxattr(P("f"), "user.first", "value-1", 7, 0) == -1) {
    test_assert(errno == EOPNOTSUPP);
    obs("xattr: not supported on this file system (%s), skipped", errname(errno));
    test_done();
  }
  char buf[128];
  ssize_t n = check_ok(getxattr(P("f"), "user.first", buf, sizeof buf));
  obs("getxattr: %.*s", (int)n, buf);
  test_assert(n == 7 && memcmp(buf, "value-1", 7) == 0);
  test_assert(getxattr(P("f"), "user.first", NULL, 0) == 7);
  check_err("getxattr small buffer", getxattr(P("f"), "user.first", buf, 3), ERANGE);
  check_err("getxattr missing", getxattr(P("f"), "user.none", buf, sizeof buf), ENODATA);
  check_err("XATTR_CREATE existing", setxattr(P("f"), "user.first", "v", 1, XATTR_CREATE), EEXIST);
  check_err("XATTR_REPLACE missing", setxattr(P("f"), "user.none", "v", 1, XATTR_REPLACE), ENODATA);
  check_ok(setxattr(P("f"), "user.first", "v2", 2, XATTR_REPLACE));
  check_ok(setxattr(P("f"), "user.empty", "", 0, 0));
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_ok(fsetxattr(fd, "user.second", "\0binary\xff", 8, 0));
  n = check_ok(fgetxattr(fd, "user.second", buf, sizeof buf));
  test_assert(n == 8 && memcmp(buf, "\0binary\xff", 8) == 0);
  /* Through the symlink (followed) and on the link itself (user.* not allowed). */
  n = check_ok(getxattr(P("s"), "user.first", buf, sizeof buf));
  test_assert(n == 2);
  check_err("lsetxattr user.* on symlink", lsetxattr(P("s"), "user.x", "v", 1, 0), EPERM);
  n = check_ok(listxattr(P("f"), buf, sizeof buf));
  /* The order of names is the file system's: sort them. */
  const char *names[8];
  int count = 0;
  for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) names[count++] = buf + off;
  for (int i = 0; i < count; i++)
    for (int j = i + 1; j < count; j++)
      if (strcmp(names[i], names[j]) > 0) { const char *t = names[i]; names[i] = names[j]; names[j] = t; }
  for (int i = 0; i < count; i++) if (strncmp(names[i], "user.", 5) == 0) obs("listxattr: %s", names[i]);
  test_assert(flistxattr(fd, NULL, 0) == n);
  check_err("listxattr small buffer", listxattr(P("f"), buf, 2), ERANGE);
  check_ok(removexattr(P("f"), "user.first"));
  check_err("removexattr again", removexattr(P("f"), "user.first"), ENODATA);
  check_ok(fremovexattr(fd, "user.second"));
  check_err("bad namespace", setxattr(P("f"), "nonamespace", "v", 1, 0), EOPNOTSUPP);
  check_ok(close(fd));
  test_done();
}
