/* Passing fds over AF_UNIX sockets (SCM_RIGHTS; under sbrun: remote fds over a remote socket,
 * crossing as the target's own fds): a regular file shares its offset and inode with the fd it
 * came from; an O_PATH fd stays one (fchmod, fchown and read answer EBADF); three fds (file,
 * directory, FIFO) in one message; a socket passed and used; the new numbers are the lowest free
 * ones; MSG_CMSG_CLOEXEC; a control buffer too small (MSG_CTRUNC,
 * only the fds that fit, nothing leaked); no fd number left (RLIMIT_NOFILE: those installed,
 * MSG_CTRUNC); an fd per datagram through recvmmsg; and EBADF for a bad fd number.
 */
#include "util.h"
#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define MAX_FDS 8

/* Sends one byte with `n` fds in one SCM_RIGHTS message. */
static long send_fds(int sock, const int *fds, int n) {
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {"F", 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  m.msg_control = u.buf;
  m.msg_controllen = CMSG_SPACE(n * sizeof(int));
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  return sendmsg(sock, &m, 0);
}

/* Receives one message with a control buffer of `controllen` bytes; the fds it brought go to
 * `fds` (their count is returned), msg_flags and msg_controllen to the out parameters. */
static int recv_fds(int sock, int flags, size_t controllen, int *fds, int *mflags,
                    size_t *used) {
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  test_assert(controllen <= sizeof u.buf);
  char data[16];
  struct iovec iov = {data, sizeof data};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  m.msg_control = controllen > 0 ? u.buf : NULL;
  m.msg_controllen = controllen;
  ssize_t r = check_ok(recvmsg(sock, &m, flags));
  test_assert(r == 1 && data[0] == 'F');
  *mflags = m.msg_flags;
  *used = m.msg_controllen;
  int n = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    test_assert(c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS);
    int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds + n, CMSG_DATA(c), k * sizeof(int));
    n += k;
  }
  return n;
}

static const char *kind(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errname(errno);
  return S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory"
       : S_ISFIFO(st.st_mode) ? "fifo" : S_ISSOCK(st.st_mode) ? "socket" : "other";
}

/* The number the next open gets: shows which fds are open. */
static int next_free(void) {
  int fd = check_ok(open(P("data"), O_RDONLY | O_CLOEXEC));
  check_ok(close(fd));
  return fd;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_scm_rights");
  write_file(P("data"), "hello, passed file\n", 0644);
  check_ok(mkdir(P("dir"), 0755));
  check_ok(mkfifo(P("fifo"), 0644));
  int sv[2];
  check_ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  int got[MAX_FDS], flags;
  size_t used;
  char buf[64];

  /* A regular file: the received fd is the same open file description. */
  int file = check_ok(open(P("data"), O_RDONLY | O_CLOEXEC));
  check_ok(lseek(file, 7, SEEK_SET));
  obs("send one file fd -> %ld", send_fds(sv[0], &file, 1));
  int n = recv_fds(sv[1], 0, CMSG_SPACE(sizeof(int)), got, &flags, &used);
  obs("received %d fd(s) as fd %d, controllen %zu, ctrunc %d", n, got[0], used,
      (flags & MSG_CTRUNC) != 0);
  test_assert(n == 1 && got[0] != file);
  obs("offset through it %ld", (long)lseek(got[0], 0, SEEK_CUR));
  ssize_t r = check_ok(read(got[0], buf, 6));
  obs("read %.*s; offset of the original now %ld", (int)r, buf, (long)lseek(file, 0, SEEK_CUR));
  check_ok(lseek(got[0], 0, SEEK_SET));
  r = check_ok(read(file, buf, 5));
  obs("read %.*s through the original after a seek through the copy", (int)r, buf);
  struct stat a, b;
  check_ok(fstat(file, &a));
  check_ok(fstat(got[0], &b));
  obs("fstat: %s, size %lld, same inode %d, same size %d", kind(got[0]), (long long)b.st_size,
      a.st_ino == b.st_ino && a.st_dev == b.st_dev, a.st_size == b.st_size);
  obs("FD_CLOEXEC without MSG_CMSG_CLOEXEC: %d", (int)(check_ok(fcntl(got[0], F_GETFD)) & FD_CLOEXEC));
  check_ok(close(got[0]));
  obs("after closing the copy the original reads on: %zd", read(file, buf, 3));

  /* An O_PATH fd: what needs a real open file fails with EBADF through the copy too. */
  int opath = check_ok(open(P("data"), O_PATH | O_CLOEXEC));
  obs("send an O_PATH fd -> %ld", send_fds(sv[0], &opath, 1));
  n = recv_fds(sv[1], 0, CMSG_SPACE(sizeof(int)), got, &flags, &used);
  test_assert(n == 1);
  obs("received O_PATH fd: F_GETFL has O_PATH %d",
      (check_ok(fcntl(got[0], F_GETFL)) & O_PATH) != 0);
  check_err("fchmod through the received O_PATH fd", fchmod(got[0], 0600), EBADF);
  check_err("fchown through the received O_PATH fd", fchown(got[0], -1, -1), EBADF);
  check_err("read through the received O_PATH fd", read(got[0], buf, 1), EBADF);
  check_ok(close(got[0]));
  check_ok(close(opath));

  /* Three fds in one message. */
  int dir = check_ok(open(P("dir"), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int fifo = check_ok(open(P("fifo"), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  int three[3] = {file, dir, fifo};
  obs("send three fds -> %ld", send_fds(sv[0], three, 3));
  n = recv_fds(sv[1], 0, CMSG_SPACE(3 * sizeof(int)), got, &flags, &used);
  obs("received %d fd(s), controllen %zu, ctrunc %d", n, used, (flags & MSG_CTRUNC) != 0);
  test_assert(n == 3);
  for (int i = 0; i < n; i++) obs("  fd %d: %s", got[i], kind(got[i]));
  test_assert(write(got[2], "pipe", 4) == 4);
  r = check_ok(read(fifo, buf, sizeof buf));
  obs("written through the passed fifo, read through the original: %.*s", (int)r, buf);
  for (int i = 0; i < n; i++) check_ok(close(got[i]));

  /* A socket: the received end sends for its owner. */
  int sp[2];
  check_ok(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp));
  obs("send a socket fd -> %ld", send_fds(sv[0], &sp[0], 1));
  n = recv_fds(sv[1], 0, CMSG_SPACE(sizeof(int)), got, &flags, &used);
  test_assert(n == 1);
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  check_ok(getsockopt(got[0], SOL_SOCKET, SO_TYPE, &type, &len));
  len = sizeof domain;
  check_ok(getsockopt(got[0], SOL_SOCKET, SO_DOMAIN, &domain, &len));
  obs("received socket fd %d: %s, unix %d, dgram %d", got[0], kind(got[0]), domain == AF_UNIX,
      type == SOCK_DGRAM);
  test_assert(send(got[0], "via passed", 10, 0) == 10);
  r = check_ok(recv(sp[1], buf, sizeof buf, 0));
  obs("its peer got: %.*s", (int)r, buf);
  test_assert(send(sp[1], "back", 4, 0) == 4);
  r = check_ok(recv(got[0], buf, sizeof buf, 0));
  obs("and answered through it: %.*s", (int)r, buf);
  check_ok(close(got[0]));

  /* MSG_CMSG_CLOEXEC. */
  obs("send one file fd -> %ld", send_fds(sv[0], &file, 1));
  n = recv_fds(sv[1], MSG_CMSG_CLOEXEC, CMSG_SPACE(sizeof(int)), got, &flags, &used);
  test_assert(n == 1);
  obs("FD_CLOEXEC with MSG_CMSG_CLOEXEC: %d", (int)(check_ok(fcntl(got[0], F_GETFD)) & FD_CLOEXEC));
  check_ok(close(got[0]));

  /* A control buffer too small: the fds that fit, MSG_CTRUNC, the rest never installed. */
  int before = next_free();
  obs("next free fd %d", before);
  obs("send three fds -> %ld", send_fds(sv[0], three, 3));
  n = recv_fds(sv[1], 0, CMSG_SPACE(sizeof(int)), got, &flags, &used);
  obs("room for %zu bytes of fds: received %d fd(s), controllen %zu, ctrunc %d",
      CMSG_SPACE(sizeof(int)) - CMSG_LEN(0), n, used, (flags & MSG_CTRUNC) != 0);
  for (int i = 0; i < n; i++) obs("  fd %d: %s", got[i], kind(got[i]));
  for (int i = 0; i < n; i++) check_ok(close(got[i]));
  obs("send three fds -> %ld", send_fds(sv[0], three, 3));
  n = recv_fds(sv[1], 0, CMSG_LEN(0), got, &flags, &used);
  obs("room for a header only: received %d fd(s), controllen %zu, ctrunc %d", n, used,
      (flags & MSG_CTRUNC) != 0);
  obs("send one file fd -> %ld", send_fds(sv[0], &file, 1));
  n = recv_fds(sv[1], 0, 0, got, &flags, &used);
  obs("no control buffer: received %d fd(s), ctrunc %d", n, (flags & MSG_CTRUNC) != 0);
  obs("next free fd %d (nothing leaked: %d)", next_free(), next_free() == before);

  /* Room in the buffer but no fd number left for all (RLIMIT_NOFILE): those installed before
   * the first that fails, MSG_CTRUNC. */
  struct rlimit old, low;
  check_ok(getrlimit(RLIMIT_NOFILE, &old));
  low.rlim_cur = before + 1;
  low.rlim_max = old.rlim_max;
  obs("send three fds -> %ld", send_fds(sv[0], three, 3));
  check_ok(setrlimit(RLIMIT_NOFILE, &low));
  n = recv_fds(sv[1], 0, CMSG_SPACE(3 * sizeof(int)), got, &flags, &used);
  check_ok(setrlimit(RLIMIT_NOFILE, &old));
  obs("one fd number free: received %d fd(s), controllen %zu, ctrunc %d", n, used,
      (flags & MSG_CTRUNC) != 0);
  for (int i = 0; i < n; i++) obs("  fd %d: %s", got[i], kind(got[i]));
  for (int i = 0; i < n; i++) check_ok(close(got[i]));
  obs("next free fd %d", next_free());

  /* One fd per datagram, two datagrams through recvmmsg. */
  int dp[2];
  check_ok(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dp));
  obs("send a file fd -> %ld", send_fds(dp[0], &file, 1));
  obs("send a directory fd -> %ld", send_fds(dp[0], &dir, 1));
  {
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } ctl[2];
    char data[2][4];
    struct iovec iov[2] = {{data[0], 4}, {data[1], 4}};
    struct mmsghdr mm[2];
    memset(mm, 0, sizeof mm);
    memset(ctl, 0, sizeof ctl);
    for (int i = 0; i < 2; i++) {
      mm[i].msg_hdr.msg_iov = &iov[i];
      mm[i].msg_hdr.msg_iovlen = 1;
      mm[i].msg_hdr.msg_control = ctl[i].buf;
      mm[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
    }
    int k = check_ok(recvmmsg(dp[1], mm, 2, MSG_CMSG_CLOEXEC, NULL));
    obs("recvmmsg -> %d message(s)", k);
    for (int i = 0; i < k; i++) {
      struct cmsghdr *c = CMSG_FIRSTHDR(&mm[i].msg_hdr);
      test_assert(c != NULL && c->cmsg_type == SCM_RIGHTS);
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
      obs("  message %d: %u byte(s), controllen %zu, fd %d: %s, cloexec %d", i, mm[i].msg_len,
          (size_t)mm[i].msg_hdr.msg_controllen, fd, kind(fd),
          (int)(check_ok(fcntl(fd, F_GETFD)) & FD_CLOEXEC));
      check_ok(close(fd));
    }
  }

  /* Bad fd numbers: EBADF, and nothing is sent. */
  int bad[2] = {file, 99};
  check_err("sendmsg passing a closed fd number", send_fds(sv[0], &bad[1], 1), EBADF);
  check_err("sendmsg passing a good fd and a closed one", send_fds(sv[0], bad, 2), EBADF);
  int neg = -1;
  check_err("sendmsg passing fd -1", send_fds(sv[0], &neg, 1), EBADF);
  check_err("recv finds nothing sent", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

  check_ok(close(file));
  check_ok(close(dir));
  check_ok(close(fifo));
  check_ok(close(sp[0]));
  check_ok(close(sp[1]));
  check_ok(close(dp[0]));
  check_ok(close(dp[1]));
  check_ok(close(sv[0]));
  check_ok(close(sv[1]));
  check_ok(unlink(P("fifo")));
  test_done();
}
