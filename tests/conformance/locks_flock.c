/* flock: exclusive and shared locks conflict between open file descriptions, also across a
 * fork; unlock releases. */
#include "util.h"
#include <sys/file.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_flock");
  write_file(P("f"), "x", 0644);
  int a = check_ok(open(P("f"), O_RDWR));
  int b = check_ok(open(P("f"), O_RDWR));
  check_ok(flock(a, LOCK_EX));
  check_err("second description LOCK_EX|LOCK_NB", flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK);
  check_err("second description LOCK_SH|LOCK_NB", flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  int a2 = check_ok(dup(a));
  check_ok(flock(a2, LOCK_EX | LOCK_NB)); /* same description: no conflict */
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    int c = open(P("f"), O_RDWR);
    int r = flock(c, LOCK_EX | LOCK_NB);
    _exit(r == -1 && errno == EWOULDBLOCK ? 10 : 11);
  }
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("child's flock while parent holds it: %s", WEXITSTATUS(status) == 10 ? "EWOULDBLOCK" : "granted");
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 10);
  check_ok(flock(a, LOCK_UN));
  check_ok(flock(b, LOCK_SH | LOCK_NB));
  check_ok(flock(a, LOCK_SH | LOCK_NB));
  check_err("LOCK_EX while shared elsewhere", flock(a, LOCK_EX | LOCK_NB), EWOULDBLOCK);
  check_err("bad operation", flock(a, 0), EINVAL);
  /* Closing the last fd of a description releases its lock. */
  check_ok(close(b));
  check_ok(flock(a, LOCK_EX | LOCK_NB));
  check_ok(close(a));
  check_ok(close(a2));
  obs("flock semantics as expected");
  test_done();
}
