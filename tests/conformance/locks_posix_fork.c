/* POSIX record locks conflict between processes, and F_GETLK names the holder's pid. The agent
 * must keep one lock owner per tracee process for this to pass (PITFALLS 18). */
#include "util.h"
#include <sys/wait.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_posix_fork");
  write_file(P("f"), "0123456789", 0644);
  int fd = check_ok(open(P("f"), O_RDWR));
  struct flock f = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 5};
  check_ok(fcntl(fd, F_SETLK, &f));
  pid_t parent = getpid();
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    int c = open(P("f"), O_RDWR);
    struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
    int code = 0;
    if (fcntl(c, F_SETLK, &g) == -1 && (errno == EAGAIN || errno == EACCES)) code |= 1;
    g.l_type = F_WRLCK;
    g.l_start = 0;
    g.l_len = 10;
    if (fcntl(c, F_GETLK, &g) == 0 && g.l_type == F_WRLCK) code |= 2;
    if (g.l_pid == parent) code |= 4;
    g.l_type = F_WRLCK;
    g.l_start = 5;
    g.l_len = 5;
    if (fcntl(c, F_SETLK, &g) == 0) code |= 8; /* the rest of the file is free */
    _exit(code);
  }
  int status;
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  int code = WEXITSTATUS(status);
  obs("child F_SETLK on held range refused: %s", code & 1 ? "yes" : "no");
  obs("child F_GETLK reports a write lock: %s", code & 2 ? "yes" : "no");
  obs("child F_GETLK names the parent's pid: %s", code & 4 ? "yes" : "no");
  obs("child may lock the free range: %s", code & 8 ? "yes" : "no");
  test_assert(code == 15);
  /* Closing any fd of the file drops this process's locks. */
  int other = check_ok(open(P("f"), O_RDONLY));
  check_ok(close(other));
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    int c = open(P("f"), O_RDWR);
    struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 5};
    _exit(fcntl(c, F_SETLK, &g) == 0 ? 0 : 1);
  }
  test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  obs("lock released by closing another fd: %s", WEXITSTATUS(status) == 0 ? "yes" : "no");
  test_assert(WEXITSTATUS(status) == 0);
  check_ok(close(fd));
  test_done();
}
