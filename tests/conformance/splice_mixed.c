/* splice(2) between a file and a pipe, both ways (under sbrun the file is on B and the pipe
 * here): the bytes, the file position or the offset pointer, partial transfers, the pipe's end,
 * non-blocking answers, a wait for a writer, a signal during that wait, a reader that is gone,
 * an O_APPEND file (opened so, set with F_SETFL, or received over a socket), and the errnos in the kernel's order (CPython's test_os splice tests do the first three).
 */
#define _GNU_SOURCE
#include "util.h"
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void on_alarm(int sig) { (void)sig; }

/* `fd` passed through a socketpair (SCM_RIGHTS): a new fd of the same description. */
static int passed_through_socket(int fd) {
  int sv[2];
  check_ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {"F", 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                     .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  test_assert(sendmsg(sv[0], &m, 0) == 1);
  char byte;
  struct iovec riov = {&byte, 1};
  memset(&u, 0, sizeof u);
  struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = u.buf,
                     .msg_controllen = sizeof u.buf};
  test_assert(recvmsg(sv[1], &r, MSG_CMSG_CLOEXEC) == 1);
  c = CMSG_FIRSTHDR(&r);
  test_assert(c != NULL && c->cmsg_type == SCM_RIGHTS);
  int got;
  memcpy(&got, CMSG_DATA(c), sizeof got);
  check_ok(close(sv[0]));
  check_ok(close(sv[1]));
  return got;
}

static void read_pipe_expect(int r, const char *want) {
  char buf[64] = {0};
  ssize_t n = read(r, buf, sizeof buf - 1);
  obs("pipe holds '%s'", n > 0 ? buf : "");
  test_assert(n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "splice_mixed");
  test_maybe_drop(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  write_file(P("in"), "0123456789", 0644);
  int in = check_ok(open(P("in"), O_RDONLY | O_CLOEXEC));
  int p[2];
  check_ok(pipe2(p, O_CLOEXEC));

  /* 1. File to pipe at the file position, then at an offset (the position stays). */
  obs("splice(in, NULL, pipe, NULL, 5) = %ld", (long)splice(in, NULL, p[1], NULL, 5, 0));
  read_pipe_expect(p[0], "01234");
  obs("file position %ld", (long)lseek(in, 0, SEEK_CUR));
  loff_t off = 3;
  long moved = splice(in, &off, p[1], NULL, 4, 0);
  obs("splice(in, &3, pipe, NULL, 4) = %ld, offset now %ld", moved, (long)off);
  read_pipe_expect(p[0], "3456");
  obs("file position %ld", (long)lseek(in, 0, SEEK_CUR));
  /* Past the end: 0. More than is left: what is left. */
  off = 100;
  obs("splice at offset 100 = %ld", (long)splice(in, &off, p[1], NULL, 4, 0));
  obs("splice of 100 at the position = %ld", (long)splice(in, NULL, p[1], NULL, 100, 0));
  read_pipe_expect(p[0], "56789");

  /* 2. Pipe to file: at an offset, then at the position; only what the pipe holds. */
  int out = check_ok(open(P("out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  test_assert(write(p[1], "abcdef", 6) == 6);
  off = 2;
  moved = splice(p[0], NULL, out, &off, 100, 0);
  obs("splice(pipe, NULL, out, &2, 100) = %ld, offset now %ld", moved, (long)off);
  test_assert(write(p[1], "XYZ", 3) == 3);
  obs("splice(pipe, NULL, out, NULL, 2) = %ld", (long)splice(p[0], NULL, out, NULL, 2, 0));
  obs("file position of out %ld", (long)lseek(out, 0, SEEK_CUR));
  read_pipe_expect(p[0], "Z");
  char buf[64] = {0};
  ssize_t n = read_file(P("out"), buf, sizeof buf);
  obs("out holds %zd bytes: '%c%c%s'", n, buf[0] ? buf[0] : '.', buf[1] ? buf[1] : '.', buf + 2);

  /* 3. Non-blocking: an empty pipe with a writer, a full pipe. */
  check_err("splice from an empty pipe, SPLICE_F_NONBLOCK",
            splice(p[0], NULL, out, NULL, 10, SPLICE_F_NONBLOCK), EAGAIN);
  int small[2];
  check_ok(pipe2(small, O_CLOEXEC));
  int size = check_ok(fcntl(small[1], F_SETPIPE_SZ, 4096));
  char fill[65536];
  memset(fill, 'f', sizeof fill);
  test_assert(write(small[1], fill, size) == size);
  check_err("splice into a full pipe, SPLICE_F_NONBLOCK",
            splice(in, NULL, small[1], NULL, 10, SPLICE_F_NONBLOCK), EAGAIN);
  check_ok(close(small[0]));
  check_ok(close(small[1]));

  /* 4. A wait for a writer: a child writes after 300 ms. */
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(300 * 1000);
    _exit(write(p[1], "late", 4) == 4 ? 0 : 10);
  }
  obs("splice waiting for a writer = %ld", (long)splice(p[0], NULL, out, NULL, 100, 0));
  reap(pid);

  /* 5. A signal during the wait (no SA_RESTART): EINTR, nothing moved. */
  set_signal_handler(SIGALRM, on_alarm, 0);
  alarm(1);
  check_err("splice from an empty pipe interrupted", splice(p[0], NULL, out, NULL, 10, 0), EINTR);

  /* 6. Errors, in the kernel's order. */
  off = 0;
  check_err("offset on the pipe end", splice(p[0], &off, out, NULL, 10, 0), ESPIPE);
  check_err("offset on the pipe end (out)", splice(in, NULL, p[1], &off, 10, 0), ESPIPE);
  check_err("bad offset pointer", splice(in, (loff_t *)8, p[1], NULL, 10, 0), EFAULT);
  check_err("bad flags", splice(in, NULL, p[1], NULL, 10, 0x100), EINVAL);
  obs("zero length = %ld", (long)splice(in, NULL, p[1], NULL, 0, 0));
  check_err("the pipe's write end as input", splice(p[1], NULL, out, NULL, 10, 0), EBADF);
  check_err("the pipe's read end as output", splice(in, NULL, p[0], NULL, 10, 0), EBADF);
  check_err("into a file opened read-only", splice(p[0], NULL, in, NULL, 10, 0), EBADF);
  check_err("file to file", splice(in, NULL, out, NULL, 10, 0), EINVAL);
  off = -1;
  check_err("negative offset", splice(in, &off, p[1], NULL, 10, 0), EINVAL);
  /* Into an O_APPEND file: EINVAL, whether opened so or set with F_SETFL; the bytes stay. */
  int app = check_ok(open(P("append"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
  test_assert(write(p[1], "ap", 2) == 2);
  check_err("into an O_APPEND file", splice(p[0], NULL, app, NULL, 10, 0), EINVAL);
  check_err("into an O_APPEND file at an offset", splice(p[0], NULL, app, &(loff_t){0}, 10, 0),
            EINVAL);
  check_ok(fcntl(app, F_SETFL, 0));
  obs("once F_SETFL cleared O_APPEND = %ld", (long)splice(p[0], NULL, app, NULL, 10, 0));
  check_ok(fcntl(app, F_SETFL, O_APPEND));
  test_assert(write(p[1], "pa", 2) == 2);
  check_err("once F_SETFL set O_APPEND again", splice(p[0], NULL, app, NULL, 10, 0), EINVAL);
  /* The same description, received over a socket. */
  int got = passed_through_socket(app);
  check_err("into an O_APPEND file received over a socket",
            splice(p[0], NULL, got, NULL, 10, 0), EINVAL);
  check_ok(fcntl(got, F_SETFL, 0));
  obs("once F_SETFL cleared it there = %ld", (long)splice(p[0], NULL, app, NULL, 10, 0));
  check_ok(close(got));
  check_ok(close(app));

  /* 7. The pipe's end (no writer left): 0. A pipe with no reader: EPIPE. */
  check_ok(close(p[1]));
  obs("splice from a pipe with no writer = %ld", (long)splice(p[0], NULL, out, NULL, 10, 0));
  int q[2];
  check_ok(pipe2(q, O_CLOEXEC));
  check_ok(close(q[0]));
  check_err("splice into a pipe with no reader", splice(in, &(loff_t){0}, q[1], NULL, 4, 0), EPIPE);
  check_ok(close(q[1]));
  check_ok(close(p[0]));
  check_ok(close(out));
  check_ok(close(in));
  test_done();
}
