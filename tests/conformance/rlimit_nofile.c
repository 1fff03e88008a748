/* RLIMIT_NOFILE holds for remote files as for local ones: the program opens files (remote under
 * sbrun) up to its own limit, set above the old hidden cap of 4096 here, then gets EMFILE; and
 * F_DUPFD at the top of a full table says EMFILE too. */
#include "util.h"

#include <sys/resource.h>

#define LIMIT 5000

int main(int argc, char **argv) {
  test_init(argc, argv, "rlimit_nofile");
  test_maybe_drop(argc, argv);
  struct rlimit lim;
  check_ok(getrlimit(RLIMIT_NOFILE, &lim));
  if (lim.rlim_max < LIMIT) {
    obs("hard limit below %d: skipped", LIMIT);
    test_done();
  }
  lim.rlim_cur = LIMIT;
  check_ok(setrlimit(RLIMIT_NOFILE, &lim));
  write_file(P("f"), "x", 0644);
  int opened = 0, last = -1, err = 0;
  for (;;) {
    int fd = open(P("f"), O_RDONLY);
    if (fd < 0) {
      err = errno;
      break;
    }
    last = fd;
    ++opened;
  }
  obs("opened %d files (limit %d, fds 0-2 already open): then %s; highest fd %d", opened, LIMIT,
      errname(err), last);
  test_assert(err == EMFILE);
  check_err("F_DUPFD on a full table", fcntl(3, F_DUPFD, 0), EMFILE);
  check_ok(close(LIMIT - 1));
  check_ok(fcntl(3, F_DUPFD, 100) == LIMIT - 1 ? 0 : -1);
  for (int fd = 3; fd < LIMIT; ++fd) close(fd);
  test_done();
}
