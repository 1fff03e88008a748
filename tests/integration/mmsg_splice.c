// The calls trace-decode-like-strace compares with strace's lines that Python cannot make:
// sendmmsg and recvmmsg on a datagram socketpair, splice of a file into a pipe, tee,
// copy_file_range and sendfile between files. Usage: mmsg_splice DIR (a directory to write in).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void must(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "mmsg_splice: %s: %s\n", what, strerror(errno));
    exit(1);
  }
}

static struct mmsghdr message(struct iovec* iov, size_t n) {
  struct mmsghdr m;
  memset(&m, 0, sizeof(m));
  m.msg_hdr.msg_iov = iov;
  m.msg_hdr.msg_iovlen = n;
  return m;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: mmsg_splice DIR\n");
    return 2;
  }
  int sv[2];
  must(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0, "socketpair");
  char one[] = "one", two[] = "two", three[] = "three";
  struct iovec w0[2] = {{one, 3}, {two, 3}}, w1[1] = {{three, 5}};
  struct mmsghdr w[2] = {message(w0, 2), message(w1, 1)};
  must(sendmmsg(sv[0], w, 2, MSG_NOSIGNAL) == 2, "sendmmsg");
  char r0[8], r1[4], r2[4];
  struct iovec ri0[1] = {{r0, sizeof(r0)}}, ri1[2] = {{r1, sizeof(r1)}, {r2, sizeof(r2)}};
  struct mmsghdr r[3] = {message(ri0, 1), message(ri1, 2), message(ri0, 1)};
  struct timespec ts = {1, 0};
  must(recvmmsg(sv[1], r, 3, MSG_DONTWAIT, &ts) == 2, "recvmmsg");

  char a[4096], b[4096];
  snprintf(a, sizeof(a), "%s/splice-a.txt", argv[1]);
  snprintf(b, sizeof(b), "%s/splice-b.txt", argv[1]);
  int fa = open(a, O_RDWR | O_CREAT | O_TRUNC, 0644);
  must(fa >= 0, "open a");
  must(write(fa, "0123456789", 10) == 10, "write");
  int p[2], q[2];
  must(pipe(p) == 0 && pipe(q) == 0, "pipe");
  loff_t off = 2;
  must(splice(fa, &off, p[1], NULL, 5, SPLICE_F_MOVE) == 5, "splice");
  must(tee(p[0], q[1], 5, SPLICE_F_NONBLOCK) == 5, "tee");
  char buf[5];
  must(read(p[0], buf, 5) == 5, "read");
  int fb = open(b, O_RDWR | O_CREAT | O_TRUNC, 0644);
  must(fb >= 0, "open b");
  loff_t in = 1;
  must(copy_file_range(fa, &in, fb, NULL, 4, 0) == 4, "copy_file_range");
  off_t from = 6;
  must(sendfile(fb, fa, &from, 3) == 3, "sendfile");
  must(unlink(a) == 0 && unlink(b) == 0, "unlink");
  return 0;
}
