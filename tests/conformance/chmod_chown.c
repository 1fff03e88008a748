/* chmod, fchmod, fchmodat, chown, fchown, lchown, fchownat. Changing the owner needs
 * privilege, so those results are printed, not asserted. */
#include "util.h"

static unsigned perm(const char *p) {
  struct stat st;
  test_assert(lstat(p, &st) == 0);
  return st.st_mode & 07777;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "chmod_chown");
  write_file(P("f"), "x", 0644);
  check_ok(symlink("f", P("s")));
  check_ok(chmod(P("f"), 0600));
  test_assert(perm(P("f")) == 0600);
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_ok(fchmod(fd, 0640));
  test_assert(perm(P("f")) == 0640);
  check_ok(fchmodat(AT_FDCWD, P("s"), 0604, 0)); /* follows the link */
  test_assert(perm(P("f")) == 0604);
  check_err("fchmodat AT_SYMLINK_NOFOLLOW", fchmodat(AT_FDCWD, P("s"), 0600, AT_SYMLINK_NOFOLLOW), EOPNOTSUPP);
  check_ok(chmod(P("f"), 04755));
  obs("setuid bit kept by chmod: %o", perm(P("f")));
  check_ok(chmod(P("f"), 0644));
  struct stat st;
  check_ok(stat(P("f"), &st));
  uid_t uid = st.st_uid;
  gid_t gid = st.st_gid;
  check_ok(chown(P("f"), (uid_t)-1, (gid_t)-1));
  check_ok(fchown(fd, uid, gid));
  observe("chown to 65534", chown(P("f"), 65534, 65534));
  check_ok(stat(P("f"), &st));
  obs("owner now %u:%u", st.st_uid, st.st_gid);
  observe("lchown link to 65534", lchown(P("s"), 65534, (gid_t)-1));
  check_ok(lstat(P("s"), &st));
  obs("link owner now %u", st.st_uid);
  observe("fchownat back", fchownat(AT_FDCWD, P("f"), uid, gid, 0));
  check_err("chmod missing", chmod(P("missing"), 0644), ENOENT);
  check_ok(close(fd));
  test_done();
}
