/* POSIX: closing ANY fd of a file drops every record lock the process holds on it, whichever way
 * the fd is closed: close, dup2 or dup3 over it, close_range, or exec's close-on-exec. Another
 * process (a child here) sees the lock go. An exec that closes nothing keeps the locks; a call
 * that fails (dup2 from a closed fd, close_range with first > last) closes nothing and drops
 * nothing.
 */
#include "util.h"
#include <sys/wait.h>

static struct flock fl(short type) {
  struct flock f;
  memset(&f, 0, sizeof f);
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = 0;
  f.l_len = 0;
  return f;
}

/* What another process (a fresh child) sees of the locks on the file. */
static const char *seen_by_other(void) {
  int p[2];
  test_assert(pipe(p) == 0);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    int fd = open(P("f"), O_RDWR | O_CLOEXEC);
    struct flock f = fl(F_WRLCK);
    char c = 'E';
    if (fd >= 0 && fcntl(fd, F_GETLK, &f) == 0) c = f.l_type == F_UNLCK ? 'U' : 'L';
    (void)!write(p[1], &c, 1);
    _exit(0);
  }
  close(p[1]);
  char c = '?';
  test_assert(read(p[0], &c, 1) == 1);
  close(p[0]);
  reap(pid);
  return c == 'U' ? "unlocked" : c == 'L' ? "locked" : "error";
}

static void lock_via(int fd) {
  struct flock f = fl(F_WRLCK);
  check_ok(fcntl(fd, F_SETLK, &f));
}

/* The image a child execs into: it holds on until its parent closes the pipe on fd `argv[3]`. */
static void hold(char **argv) {
  int fd = atoi(argv[3]);
  char c;
  while (read(fd, &c, 1) > 0) {
  }
  _exit(0);
}

/* A child locks through an fd (close-on-exec or not), execs, and the parent looks. */
static void exec_case(const char *label, int cloexec, const char *want, char *self) {
  int go[2], ready[2];
  test_assert(pipe(go) == 0 && pipe(ready) == 0);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(go[1]);
    close(ready[0]);
    int fd = open(P("f"), O_RDWR | (cloexec ? O_CLOEXEC : 0));
    struct flock f = fl(F_WRLCK);
    if (fd < 0 || fcntl(fd, F_SETLK, &f) != 0) _exit(10);
    char n[16];
    snprintf(n, sizeof n, "%d", go[0]);
    /* The locked state is announced by the exec'd image's readiness: the pipe's write end is
     * close-on-exec, so its EOF says the exec is done. */
    fcntl(ready[1], F_SETFD, FD_CLOEXEC);
    execl(self, self, "--hold", test_dir, n, (char *)NULL);
    _exit(11);
  }
  close(go[0]);
  close(ready[1]);
  char c;
  test_assert(read(ready[0], &c, 1) == 0); /* EOF: the child has exec'd */
  close(ready[0]);
  const char *seen = seen_by_other();
  obs("%s: another process sees the file %s", label, seen);
  test_assert(strcmp(seen, want) == 0);
  close(go[1]);
  reap(pid);
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "--hold") == 0) hold(argv);
  test_init(argc, argv, "locks_close_paths");
  test_maybe_drop(argc, argv);
  write_file(P("f"), "0123456789", 0644);
  int a = check_ok(open(P("f"), O_RDWR | O_CLOEXEC));
  int other = check_ok(open(P("other"), O_RDWR | O_CREAT | O_CLOEXEC, 0644));

  lock_via(a);
  obs("locked: another process sees the file %s", seen_by_other());

  /* close of a second fd of the file. */
  int b = check_ok(open(P("f"), O_RDONLY | O_CLOEXEC));
  check_ok(close(b));
  obs("after close of another fd: %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "unlocked") == 0);

  /* dup2 from a closed fd fails and closes nothing; then a dup2 over the fd closes it. */
  lock_via(a);
  b = check_ok(open(P("f"), O_RDONLY | O_CLOEXEC));
  check_err("dup2(closed fd, fd of the file)", dup2(100, b), EBADF);
  obs("after the failed dup2: %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "locked") == 0);
  check_ok(dup2(other, b));
  obs("after dup2 over another fd of the file: %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "unlocked") == 0);
  check_ok(close(b));

  /* dup3 over it. */
  lock_via(a);
  b = check_ok(open(P("f"), O_RDONLY | O_CLOEXEC));
  check_err("dup3 with bad flags", dup3(other, b, 0x4), EINVAL);
  test_assert(strcmp(seen_by_other(), "locked") == 0);
  check_ok(dup3(other, b, O_CLOEXEC));
  obs("after dup3 over another fd of the file: %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "unlocked") == 0);
  check_ok(close(b));

  /* close_range over it (and a failing one first). */
  lock_via(a);
  b = check_ok(open(P("f"), O_RDONLY | O_CLOEXEC));
  check_err("close_range(first > last)", syscall(SYS_close_range, b, b - 1, 0), EINVAL);
  test_assert(strcmp(seen_by_other(), "locked") == 0);
  check_ok(syscall(SYS_close_range, b, b, 0));
  obs("after close_range over another fd of the file: %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "unlocked") == 0);

  /* close_range with CLOSE_RANGE_CLOEXEC closes nothing. */
  lock_via(a);
  b = check_ok(open(P("f"), O_RDONLY));
  check_ok(syscall(SYS_close_range, b, b, 4 /* CLOSE_RANGE_CLOEXEC */));
  obs("after close_range(CLOSE_RANGE_CLOEXEC): %s", seen_by_other());
  test_assert(strcmp(seen_by_other(), "locked") == 0);
  check_ok(close(b));
  test_assert(strcmp(seen_by_other(), "unlocked") == 0);
  check_ok(close(a));

  /* exec: a close-on-exec fd closes (its locks go), another stays (its locks too). */
  exec_case("exec with the locked fd close-on-exec", 1, "unlocked", argv[0]);
  exec_case("exec with the locked fd kept", 0, "locked", argv[0]);

  check_ok(close(other));
  test_done();
}
