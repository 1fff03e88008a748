/* uname and gethostname tell which machine the program talks to. */
#include "util.h"
#include <sys/utsname.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "uname");
  struct utsname u;
  check_ok(uname(&u));
  char host[256];
  check_ok(gethostname(host, sizeof host));
  obs("sysname %s", u.sysname);
  obs("nodename %s", u.nodename);
  obs("release %s", u.release);
  obs("machine %s", u.machine);
  test_assert(strcmp(u.sysname, "Linux") == 0);
  test_assert(strcmp(host, u.nodename) == 0);
  check_err("uname into bad pointer", uname((struct utsname *)1), EFAULT);
  test_done();
}
