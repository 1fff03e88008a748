/* fd tables across fork, clone(CLONE_FILES) and exec.
 *
 * fork copies the fd table, but the copies share one open file description (and its offset):
 * a child that closes its inherited fd leaves the parent's open; a parent that closes its copy
 * leaves the child's open; a read in the child moves the parent's offset. clone(CLONE_FILES)
 * shares the table itself, so the child's close closes the parent's fd too. Across exec an
 * inherited fd stays in place with its offset (a program run with `sh -c 'cat <&3'` reads from
 * where the parent stopped, and `echo >&4` appends to the parent's file), and a close-on-exec
 * one is gone. Under sbrun the files are remote and the exec'd shell runs on the remote: the
 * remote fds must be handed over in place, sharing the description with the parent's.
 */
#include "util.h"
#include <sched.h>
#include <sys/wait.h>

#define CONTENT "0123456789abcdefghijklmnopqrstuvwxyz\n"

static void read_exact(int fd, size_t n, char *out) {
  ssize_t r = read(fd, out, n);
  test_assert(r == (ssize_t)n);
  out[n] = '\0';
}

int main(int argc, char **argv) {
  test_init(argc, argv, "fork_fd");
  write_file(P("data"), CONTENT, 0644);
  char buf[64];

  /* 1. The child reads 4 bytes (moving the shared offset), closes its copy and exits. */
  int fd = check_ok(open(P("data"), O_RDONLY));
  obs("opened data as fd %d", fd);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    char b[8];
    if (read(fd, b, 4) != 4 || memcmp(b, "0123", 4) != 0) _exit(10);
    if (close(fd) != 0) _exit(11);
    if (read(fd, b, 1) != -1 || errno != EBADF) _exit(12);
    _exit(0);
  }
  int code = wait_code(pid);
  obs("child read 4 bytes and closed its copy: status %d", code);
  test_assert(code == 0);
  read_exact(fd, 4, buf);
  obs("parent reads after the child's close: %s (offset now %lld)", buf,
      (long long)lseek(fd, 0, SEEK_CUR));
  test_assert(strcmp(buf, "4567") == 0);

  /* 2. A child that exits without closing leaves the parent's fd alone too. */
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) _exit(0);
  test_assert(wait_code(pid) == 0);
  read_exact(fd, 2, buf);
  obs("parent reads after a child exited holding the fd: %s", buf);
  test_assert(strcmp(buf, "89") == 0);

  /* 3. The parent closes its copy; the child's copy still reads (pipe = "parent has closed"). */
  int sync[2];
  check_ok(pipe(sync));
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(sync[1]);
    char c;
    if (read(sync[0], &c, 1) != 1) _exit(20);
    char b[8];
    if (read(fd, b, 3) != 3 || memcmp(b, "abc", 3) != 0) _exit(21);
    if (close(fd) != 0) _exit(22);
    _exit(0);
  }
  check_ok(close(sync[0]));
  check_ok(close(fd));
  check_err("parent reads its closed fd", read(fd, buf, 1), EBADF);
  test_assert(write(sync[1], "x", 1) == 1);
  check_ok(close(sync[1]));
  code = wait_code(pid);
  obs("child reads 'abc' after the parent closed its copy: status %d", code);
  test_assert(code == 0);

  /* 4. dup in the child: closing the original keeps the dup; the parent's fd is untouched. */
  fd = check_ok(open(P("data"), O_RDONLY));
  fflush(stdout);
  pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    if (dup2(fd, 7) != 7) _exit(30);
    if (close(fd) != 0) _exit(31);
    char b[8];
    if (read(7, b, 2) != 2 || memcmp(b, "01", 2) != 0) _exit(32);
    _exit(0);
  }
  code = wait_code(pid);
  obs("child dup2 to 7, closes the original, reads 7: status %d", code);
  test_assert(code == 0);
  check_err("fd 7 is not open in the parent", fcntl(7, F_GETFD), EBADF);
  read_exact(fd, 2, buf);
  obs("parent continues at the shared offset: %s", buf);
  test_assert(strcmp(buf, "23") == 0);

  /* 5. clone(CLONE_FILES): one table, so the child's close is the parent's close. */
  int fd2 = check_ok(open(P("data"), O_RDONLY));
  fflush(stdout);
  long cpid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
  test_assert(cpid >= 0);
  if (cpid == 0) {
    if (close(fd2) != 0) syscall(SYS_exit_group, 40);
    int nfd = open(P("data"), O_RDONLY); /* lands in the shared table */
    syscall(SYS_exit_group, nfd == fd2 ? 0 : 41);
  }
  code = wait_code((pid_t)cpid);
  obs("CLONE_FILES child closed fd %d and opened it again as the same number: status %d", fd2,
      code);
  test_assert(code == 0);
  read_exact(fd2, 5, buf); /* the child's new open file: offset 0 */
  obs("parent reads the child's new open file at fd %d: %s", fd2, buf);
  test_assert(strcmp(buf, "01234") == 0);
  check_ok(close(fd2));
  fflush(stdout);
  cpid = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
  test_assert(cpid >= 0);
  if (cpid == 0) syscall(SYS_exit_group, close(fd) == 0 ? 0 : 42);
  code = wait_code((pid_t)cpid);
  obs("CLONE_FILES child closed fd %d: status %d", fd, code);
  test_assert(code == 0);
  check_err("parent reads the fd its CLONE_FILES child closed", read(fd, buf, 1), EBADF);

  /* 6. exec: an inherited fd stays in place with the shared offset; a close-on-exec one is gone.
   * fds 3 and 4 are free again here, so the numbers are fixed. */
  int in = check_ok(open(P("data"), O_RDONLY));
  int out = check_ok(open(P("log"), O_WRONLY | O_CREAT | O_APPEND, 0644));
  int hidden = check_ok(open(P("data"), O_RDONLY | O_CLOEXEC));
  obs("fds for exec: in %d out %d cloexec %d", in, out, hidden);
  test_assert(in == 3 && out == 4 && hidden == 5);
  test_assert(write(out, "parent line\n", 12) == 12);
  read_exact(in, 10, buf);
  obs("parent read %s before the exec", buf);
  obs("child: cat <&3");
  code = run_sh("cat <&3");
  obs("status %d", code);
  test_assert(code == 0);
  ssize_t r = read(in, buf, sizeof buf); /* the child read to the end of the shared description */
  obs("parent reads after the child's cat: %zd", r);
  test_assert(r == 0);
  obs("child: echo >&4");
  code = run_sh("echo child line >&4");
  obs("status %d", code);
  test_assert(code == 0);
  test_assert(write(out, "parent again\n", 13) == 13);
  obs("child: cat <&5 (close-on-exec)");
  code = run_sh("if cat <&5; then echo fd5-readable; else echo fd5-not-readable; fi");
  obs("status %d", code);
  obs("child: fds 3 and 4 are open, 5 is not");
  code = run_sh("for n in 3 4 5; do if { true <&$n; } 2>/dev/null; then echo fd$n open; "
                "else echo fd$n closed; fi; done");
  obs("status %d", code);
  test_assert(code == 0);
  check_ok(close(in));
  check_ok(close(out));
  check_ok(close(hidden));
  char logbuf[128];
  read_file(P("log"), logbuf, sizeof logbuf);
  test_assert(strcmp(logbuf, "parent line\nchild line\nparent again\n") == 0);
  for (char *line = strtok(logbuf, "\n"); line; line = strtok(NULL, "\n")) obs("log: %s", line);
  test_done();
}
