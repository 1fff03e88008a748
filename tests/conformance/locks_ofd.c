/* Open-file-description locks conflict between two descriptions in the same process. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_ofd");
  write_file(P("f"), "0123456789", 0644);
  int a = check_ok(open(P("f"), O_RDWR));
  int b = check_ok(open(P("f"), O_RDWR));
  struct flock f = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4, .l_pid = 0};
  check_ok(fcntl(a, F_OFD_SETLK, &f));
  struct flock g = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1, .l_pid = 0};
  check_err("conflicting OFD lock", fcntl(b, F_OFD_SETLK, &g), EAGAIN);
  g.l_type = F_WRLCK;
  g.l_start = 0;
  g.l_len = 0;
  check_ok(fcntl(b, F_OFD_GETLK, &g));
  obs("F_OFD_GETLK: type %s start %lld len %lld pid %d", g.l_type == F_WRLCK ? "F_WRLCK" : "other",
      (long long)g.l_start, (long long)g.l_len, (int)g.l_pid);
  test_assert(g.l_type == F_WRLCK && g.l_start == 0 && g.l_len == 4 && g.l_pid == -1);
  struct flock bad = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 7};
  check_err("OFD lock with l_pid set", fcntl(b, F_OFD_SETLK, &bad), EINVAL);
  f.l_type = F_UNLCK;
  check_ok(fcntl(a, F_OFD_SETLK, &f));
  g.l_type = F_WRLCK;
  g.l_start = 0;
  g.l_len = 4;
  g.l_pid = 0; /* F_OFD_GETLK set it to -1; OFD requests need 0 */
  check_ok(fcntl(b, F_OFD_SETLKW, &g));
  obs("granted after unlock");
  check_ok(close(a));
  check_ok(close(b));
  test_done();
}
