/* A call that blocks on B for longer than the link's heartbeat is not a dead agent: a FIFO open
 * that waits 8 s for its writer and an F_SETLKW that waits 8 s for another process's lock both
 * complete, and the calls after them work (no EIO, no "no answer for 4.0 s"). No timing is
 * asserted: the program only checks what each call answered. */
#include "util.h"

#define HELD_SECONDS 8

int main(int argc, char **argv) {
  test_init(argc, argv, "slow_call");
  check_ok(mkfifo(P("fifo"), 0644));
  write_file(P("lockfile"), "0123456789", 0644);
  int lfd = check_ok(open(P("lockfile"), O_RDWR));
  struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  check_ok(fcntl(lfd, F_SETLK, &lk));

  pid_t reader = check_ok(fork());
  if (reader == 0) {
    int fd = open(P("fifo"), O_RDONLY); /* waits for the writer */
    if (fd < 0) _exit(10 + errno % 100);
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    _exit(n == 5 && strcmp(buf, "hello") == 0 ? 0 : 2);
  }
  pid_t locker = check_ok(fork());
  if (locker == 0) {
    int fd = open(P("lockfile"), O_RDWR);
    if (fd < 0) _exit(3);
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLKW, &w) < 0) _exit(10 + errno % 100); /* waits for the parent */
    struct stat st;
    _exit(fstat(fd, &st) == 0 ? 0 : 4);
  }

  sleep(HELD_SECONDS);
  lk.l_type = F_UNLCK;
  check_ok(fcntl(lfd, F_SETLK, &lk));
  int wfd = check_ok(open(P("fifo"), O_WRONLY));
  check_ok(write(wfd, "hello", 5));
  close(wfd);

  int status;
  check_ok(waitpid(reader, &status, 0));
  obs("fifo open held %d s: %s", HELD_SECONDS, wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  check_ok(waitpid(locker, &status, 0));
  obs("F_SETLKW held %d s: %s", HELD_SECONDS, wait_status_text(status));
  test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat st;
  check_ok(stat(P("lockfile"), &st));
  obs("a call after them: OK");
  close(lfd);
  test_done();
}
