/* fds 0-2 redirected to files (what a shell does for `prog < in > out`): calls on them act on
 * the files. Under sbrun stdio calls run untrapped while fds 0-2 are local, so this checks that
 * making them remote brings every call on them back to the target. */
#include "util.h"
#include <sys/uio.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "stdio_redirect");
  write_file(P("in"), "line from the input file\n", 0644);
  int saved_out = check_ok(dup(1));
  int saved_in = check_ok(dup(0));

  int out = check_ok(open(P("out"), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  check_ok(dup2(out, 1));
  check_ok(close(out));
  test_assert(write(1, "written to fd 1\n", 16) == 16);
  struct iovec iov[2] = {{"via ", 4}, {"writev\n", 7}};
  test_assert(writev(1, iov, 2) == 11);
  struct stat st;
  check_ok(fstat(1, &st));
  off_t pos = lseek(1, 0, SEEK_CUR);
  int flags = fcntl(1, F_GETFL);
  check_ok(dup2(saved_out, 1));
  obs("fd 1 was a regular file of %lld bytes at offset %lld, O_WRONLY %s", (long long)st.st_size,
      (long long)pos, (flags & O_ACCMODE) == O_WRONLY ? "yes" : "no");
  char buf[128] = {0};
  test_assert(read_file(P("out"), buf, sizeof buf - 1) == 27);
  obs("out holds: %s", buf);

  int in = check_ok(open(P("in"), O_RDONLY));
  check_ok(dup2(in, 0));
  check_ok(close(in));
  memset(buf, 0, sizeof buf);
  ssize_t n = read(0, buf, sizeof buf - 1);
  check_ok(dup2(saved_in, 0));
  obs("read %zd bytes from fd 0: %s", n, buf);
  test_assert(n == 25);
  test_done();
}
