/* F_GETLK as B's kernel answers it, between three processes: with no conflict only l_type
 * changes (l_whence, l_start, l_len and l_pid stay as the program set them); with one, the
 * holder's range and its pid (the holder is another process of the program). */
#include "util.h"

static int getlk(int fd, short type, short whence, off_t start, off_t len, struct flock *out) {
  memset(out, 0, sizeof *out);
  out->l_type = type;
  out->l_whence = whence;
  out->l_start = start;
  out->l_len = len;
  out->l_pid = 12345; /* a sentinel the kernel leaves alone when nothing conflicts */
  return fcntl(fd, F_GETLK, out);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "locks_getlk");
  test_maybe_drop(argc, argv);
  write_file(P("f"), "0123456789abcdefghij0123456789", 0644);
  int fd = check_ok(open(P("f"), O_RDWR));
  struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
  check_ok(fcntl(fd, F_SETLK, &lk));
  pid_t holder = getpid();
  int ready[2];
  check_ok(pipe(ready));
  /* A second holder: a read lock on [20, 25). */
  pid_t second = check_ok(fork());
  if (second == 0) {
    int f2 = open(P("f"), O_RDWR);
    struct flock r = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 5};
    if (f2 < 0 || fcntl(f2, F_SETLK, &r) < 0) _exit(1);
    if (write(ready[1], "x", 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  char c;
  test_assert(read(ready[0], &c, 1) == 1);

  pid_t asker = check_ok(fork());
  if (asker == 0) {
    int f3 = open(P("f"), O_RDWR);
    test_assert(f3 >= 0);
    check_ok(lseek(f3, 12, SEEK_SET));
    struct flock q;
    check_ok(getlk(f3, F_WRLCK, SEEK_CUR, 0, 3, &q));
    obs("no conflict: type %s whence %d start %ld len %ld pid %s",
        q.l_type == F_UNLCK ? "UNLCK" : "?", q.l_whence, (long)q.l_start, (long)q.l_len, q.l_pid == 12345 ? "untouched" : "changed");
    check_ok(getlk(f3, F_RDLCK, SEEK_SET, 2, 3, &q));
    obs("read against the write lock: type %s start %ld len %ld pid %s",
        q.l_type == F_WRLCK ? "WRLCK" : "?", (long)q.l_start, (long)q.l_len,
        q.l_pid == holder ? "the holder's" : "another");
    check_ok(getlk(f3, F_RDLCK, SEEK_SET, 20, 5, &q));
    obs("read against the read lock: type %s", q.l_type == F_UNLCK ? "UNLCK" : "?");
    check_ok(getlk(f3, F_WRLCK, SEEK_SET, 22, 0, &q));
    obs("write against the read lock: type %s start %ld len %ld pid %s",
        q.l_type == F_RDLCK ? "RDLCK" : "?", (long)q.l_start, (long)q.l_len,
        q.l_pid == second ? "the second holder's" : "another");
    _exit(0);
  }
  reap(asker);
  kill(second, SIGTERM);
  int status;
  check_ok(waitpid(second, &status, 0));
  close(fd);
  test_done();
}
