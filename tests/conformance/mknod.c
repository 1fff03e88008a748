/* mknod/mknodat make FIFOs and empty regular files; device nodes need privilege (printed). */
#include "util.h"
#include <sys/sysmacros.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "mknod");
  struct stat st;
  check_ok(mknod(P("fifo"), S_IFIFO | 0640, 0));
  check_ok(lstat(P("fifo"), &st));
  test_assert(S_ISFIFO(st.st_mode) && (st.st_mode & 07777) == 0640);
  int dfd = check_ok(open(test_dir, O_RDONLY | O_DIRECTORY));
  check_ok(mknodat(dfd, "reg", S_IFREG | 0600, 0));
  check_ok(lstat(P("reg"), &st));
  test_assert(S_ISREG(st.st_mode) && st.st_size == 0);
  check_ok(mknodat(dfd, "plain", 0644, 0)); /* type 0 means regular */
  check_ok(lstat(P("plain"), &st));
  test_assert(S_ISREG(st.st_mode));
  check_err("mknod directory type", mknod(P("dir"), S_IFDIR | 0755, 0), EPERM);
  check_err("mknod existing", mknod(P("fifo"), S_IFIFO | 0600, 0), EEXIST);
  observe("mknod char device 1:3", mknod(P("null"), S_IFCHR | 0666, makedev(1, 3)));
  if (lstat(P("null"), &st) == 0)
    obs("device: char %s, %u:%u", S_ISCHR(st.st_mode) ? "yes" : "no", major(st.st_rdev), minor(st.st_rdev));
  check_ok(close(dfd));
  test_done();
}
