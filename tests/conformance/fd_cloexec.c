/* O_CLOEXEC and FD_CLOEXEC are visible through F_GETFD, and exec honours them: a child shell
 * reads the inherited remote fd and cannot read the close-on-exec one. */
#include "util.h"
#include <sys/wait.h>

static void run_child(int fd) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "cat <&%d", fd);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    dup2(1, 2); /* the shell's error message goes to stdout, in order */
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  obs("child status: %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int main(int argc, char **argv) {
  test_init(argc, argv, "fd_cloexec");
  write_file(P("inherit"), "inherited-content\n", 0644);
  write_file(P("cloexec"), "must-not-be-seen\n", 0644);
  int a = check_ok(open(P("inherit"), O_RDONLY));
  int b = check_ok(open(P("cloexec"), O_RDONLY | O_CLOEXEC));
  obs("F_GETFD without O_CLOEXEC: %d", fcntl(a, F_GETFD));
  obs("F_GETFD with O_CLOEXEC: %d", fcntl(b, F_GETFD));
  test_assert(fcntl(a, F_GETFD) == 0 && fcntl(b, F_GETFD) == FD_CLOEXEC);
  check_ok(fcntl(a, F_SETFD, FD_CLOEXEC));
  test_assert(fcntl(a, F_GETFD) == FD_CLOEXEC);
  check_ok(fcntl(a, F_SETFD, 0));
  test_assert(fcntl(a, F_GETFD) == 0);
  /* FD_CLOEXEC belongs to the fd, not the open file description. */
  int b2 = check_ok(dup(b));
  test_assert(fcntl(b2, F_GETFD) == 0);
  check_ok(close(b2));
  obs("exec with inherited fd:");
  run_child(a);
  obs("exec with close-on-exec fd:");
  run_child(b);
  test_done();
}
