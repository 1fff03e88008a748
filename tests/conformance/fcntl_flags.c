/* fcntl F_GETFL/F_SETFL: access mode, O_APPEND, O_NONBLOCK; the access mode cannot change. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "fcntl_flags");
  write_file(P("f"), "start", 0644);
  int fd = check_ok(open(P("f"), O_RDWR));
  int fl = check_ok(fcntl(fd, F_GETFL));
  obs("access mode O_RDWR: %s", (fl & O_ACCMODE) == O_RDWR ? "yes" : "no");
  test_assert((fl & O_ACCMODE) == O_RDWR && !(fl & O_APPEND));
  check_ok(fcntl(fd, F_SETFL, fl | O_APPEND | O_NONBLOCK));
  fl = check_ok(fcntl(fd, F_GETFL));
  test_assert((fl & O_APPEND) && (fl & O_NONBLOCK));
  test_assert(pwrite(fd, "", 0, 0) == 0);
  test_assert(lseek(fd, 0, SEEK_SET) == 0);
  test_assert(write(fd, "-end", 4) == 4);
  obs("position after append write: %ld", (long)lseek(fd, 0, SEEK_CUR));
  check_ok(fcntl(fd, F_SETFL, O_RDONLY));
  fl = check_ok(fcntl(fd, F_GETFL));
  obs("F_SETFL cannot change the access mode: %s", (fl & O_ACCMODE) == O_RDWR ? "yes" : "no");
  test_assert((fl & O_ACCMODE) == O_RDWR && !(fl & O_APPEND) && !(fl & O_NONBLOCK));
  /* Status flags belong to the open file description, shared by dup. */
  int d = check_ok(dup(fd));
  check_ok(fcntl(d, F_SETFL, O_APPEND));
  test_assert(fcntl(fd, F_GETFL) & O_APPEND);
  check_ok(close(d));
  check_ok(close(fd));
  fd = check_ok(open(P("f"), O_WRONLY | O_APPEND));
  fl = check_ok(fcntl(fd, F_GETFL));
  test_assert((fl & O_ACCMODE) == O_WRONLY && (fl & O_APPEND));
  check_ok(close(fd));
  fd = check_ok(open(P("f"), O_PATH));
  fl = check_ok(fcntl(fd, F_GETFL));
  obs("O_PATH visible in F_GETFL: %s", (fl & O_PATH) ? "yes" : "no");
  check_ok(close(fd));
  char buf[32];
  read_file(P("f"), buf, sizeof buf);
  obs("content: %s", buf);
  test_assert(strcmp(buf, "start-end") == 0);
  test_done();
}
