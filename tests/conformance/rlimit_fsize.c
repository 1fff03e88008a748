/* RLIMIT_FSIZE holds for remote files as for local ones: a write that would cross the limit is
 * cut short, one that starts at or past it fails with EFBIG and raises SIGXFSZ (caught here),
 * for write, pwrite and an O_APPEND write. */
#include "util.h"

#include <sys/resource.h>

#define LIMIT 4096

static volatile sig_atomic_t xfsz;
static void on_xfsz(int sig) {
  (void)sig;
  xfsz++;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "rlimit_fsize");
  test_maybe_drop(argc, argv);
  set_signal_handler(SIGXFSZ, on_xfsz, 0);
  static char buf[3000];
  memset(buf, 'x', sizeof buf);
  int fd = check_ok(open(P("f"), O_CREAT | O_WRONLY | O_TRUNC, 0644));
  struct rlimit lim;
  check_ok(getrlimit(RLIMIT_FSIZE, &lim));
  lim.rlim_cur = LIMIT;
  check_ok(setrlimit(RLIMIT_FSIZE, &lim));
  obs("write 3000 -> %ld", (long)write(fd, buf, 3000));
  obs("write 3000 across the limit -> %ld", (long)write(fd, buf, 3000));
  check_err("write at the limit", write(fd, buf, 10), EFBIG);
  check_err("pwrite past the limit", pwrite(fd, buf, 10, 10000), EFBIG);
  obs("pwrite 200 at 4000 -> %ld", (long)pwrite(fd, buf, 200, 4000));
  obs("write 0 at the limit -> %ld", (long)write(fd, buf, 0));
  int afd = check_ok(open(P("f"), O_WRONLY | O_APPEND));
  check_err("append at the limit", write(afd, buf, 1), EFBIG);
  struct stat st;
  check_ok(fstat(fd, &st));
  obs("size %ld, SIGXFSZ raised %d times", (long)st.st_size, (int)xfsz);
  lim.rlim_cur = RLIM_INFINITY;
  check_ok(setrlimit(RLIMIT_FSIZE, &lim));
  obs("write without a limit -> %ld", (long)write(fd, buf, 10));
  close(afd);
  close(fd);
  test_done();
}
