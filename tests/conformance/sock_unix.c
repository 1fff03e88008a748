/* AF_UNIX sockets (under sbrun: made on the target, paths resolved there): a path socket bound by
 * absolute and connected by relative name, names and peer names, abstract and autobound names,
 * socketpairs of the three types with their message boundaries, MSG_TRUNC, sendmsg/recvmsg with
 * several iovecs, datagrams to a path, and ENOENT, ECONNREFUSED, EADDRINUSE, EPROTOTYPE, EINVAL.
 */
#include "util.h"
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

static socklen_t unix_addr(struct sockaddr_un *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  test_assert(strlen(path) < sizeof a->sun_path);
  strcpy(a->sun_path, path);
  return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

/* Prints an address as the kernel gave it: its length and kind, and a path relative to test_dir. */
static void show(const char *label, struct sockaddr_un *a, socklen_t len) {
  size_t dirlen = strlen(test_dir);
  if (len == sizeof(sa_family_t)) {
    obs("%s: len %u unnamed", label, len);
  } else if (a->sun_path[0] == 0) {
    obs("%s: len %u abstract", label, len);
  } else if (strncmp(a->sun_path, test_dir, dirlen) == 0) {
    obs("%s: len %u path <dir>%s", label, len, a->sun_path + dirlen);
  } else {
    obs("%s: len %u path %s", label, len, a->sun_path);
  }
}

static void pair_messages(int type, const char *name) {
  int sv[2];
  check_ok(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv));
  test_assert(send(sv[0], "abc", 3, 0) == 3);
  test_assert(send(sv[0], "defgh", 5, 0) == 5);
  char buf[64];
  ssize_t a = check_ok(recv(sv[1], buf, sizeof buf, 0));
  ssize_t b = type == SOCK_STREAM ? 0 : check_ok(recv(sv[1], buf, sizeof buf, 0));
  obs("%s pair: two sends read as %zd then %zd byte(s)", name, a, b);
  test_assert(write(sv[1], "back", 4) == 4);
  test_assert(read(sv[0], buf, sizeof buf) == 4);
  struct sockaddr_un peer;
  socklen_t len = sizeof peer;
  check_ok(getpeername(sv[0], (struct sockaddr *)&peer, &len));
  show("socketpair peer", &peer, len);
  if (type != SOCK_STREAM) {
    test_assert(send(sv[0], "0123456789", 10, 0) == 10);
    ssize_t t = check_ok(recv(sv[1], buf, 4, MSG_TRUNC));
    obs("%s: recv 4 of 10 with MSG_TRUNC -> %zd", name, t);
    test_assert(send(sv[0], "0123456789", 10, 0) == 10);
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t r = check_ok(recvmsg(sv[1], &m, 0));
    obs("%s: recvmsg 4 of 10 -> %zd msg_flags MSG_TRUNC %d", name, r, (m.msg_flags & MSG_TRUNC) != 0);
  }
  check_ok(shutdown(sv[1], SHUT_RD));
  check_ok(close(sv[1]));
  /* A datagram has nobody to go to; a stream or sequence is broken. */
  check_err("send on a pair whose other end is closed", send(sv[0], "x", 1, MSG_NOSIGNAL),
            type == SOCK_DGRAM ? ECONNREFUSED : EPIPE);
  check_ok(close(sv[0]));
}

int main(int argc, char **argv) {
  test_init(argc, argv, "sock_unix");
  struct sockaddr_un addr, got;
  socklen_t len;

  /* A path socket: bound by its absolute name, reached by a relative one. */
  int s = check_ok(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  socklen_t alen = unix_addr(&addr, P("sock"));
  check_ok(bind(s, (struct sockaddr *)&addr, alen));
  struct stat st;
  check_ok(stat(P("sock"), &st));
  obs("bound: the name is a socket %d", S_ISSOCK(st.st_mode));
  len = sizeof got;
  check_ok(getsockname(s, (struct sockaddr *)&got, &len));
  show("getsockname", &got, len);
  {
    struct sockaddr_un again;
    check_err("bind a bound socket to another name",
              bind(s, (struct sockaddr *)&again, unix_addr(&again, P("sock2"))), EINVAL);
    obs("the other name exists afterwards: %d", access(P("sock2"), F_OK) == 0);
  }
  int other = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  check_err("bind to an existing name", bind(other, (struct sockaddr *)&addr, alen), EADDRINUSE);
  check_ok(close(other));
  check_ok(listen(s, 4));

  check_ok(chdir(test_dir));
  int c = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  struct sockaddr_un rel;
  check_ok(connect(c, (struct sockaddr *)&rel, unix_addr(&rel, "sock")));
  len = sizeof got;
  check_ok(getpeername(c, (struct sockaddr *)&got, &len));
  show("client's peer", &got, len);
  len = sizeof got;
  int a = check_ok(accept(s, (struct sockaddr *)&got, &len));
  show("accepted peer", &got, len);
  test_assert(send(c, "over a path", 11, 0) == 11);
  char buf[64];
  ssize_t n = check_ok(recv(a, buf, sizeof buf, 0));
  obs("recv -> %zd '%.*s'", n, (int)n, buf);
  check_ok(close(a));
  check_ok(close(c));

  c = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  check_err("connect to a missing name", connect(c, (struct sockaddr *)&rel, unix_addr(&rel, "missing")), ENOENT);
  write_file(P("file"), "not a socket\n", 0644);
  check_err("connect to a regular file", connect(c, (struct sockaddr *)&rel, unix_addr(&rel, "file")), ECONNREFUSED);
  check_err("connect with only a family", connect(c, (struct sockaddr *)&rel, sizeof(sa_family_t)), EINVAL);
  check_err("connect with a too long address", connect(c, (struct sockaddr *)&rel, sizeof rel + 1), EINVAL);
  int d = check_ok(socket(AF_UNIX, SOCK_DGRAM, 0));
  check_err("datagram connect to a stream socket", connect(d, (struct sockaddr *)&rel, unix_addr(&rel, "sock")), EPROTOTYPE);
  check_ok(close(d));
  check_ok(close(c));
  check_ok(close(s));
  check_ok(unlink(P("sock")));

  /* Abstract names live in the network namespace, not the file system. */
  char abstract[64];
  snprintf(abstract, sizeof abstract, "sbtest-sock-unix-%d", (int)getpid());
  s = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, abstract, strlen(abstract));
  alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract);
  check_ok(bind(s, (struct sockaddr *)&addr, alen));
  check_ok(listen(s, 1));
  len = sizeof got;
  check_ok(getsockname(s, (struct sockaddr *)&got, &len));
  show("abstract getsockname", &got, len);
  test_assert(len == alen && memcmp(got.sun_path + 1, abstract, strlen(abstract)) == 0);
  c = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  check_ok(connect(c, (struct sockaddr *)&addr, alen));
  a = check_ok(accept(s, NULL, NULL));
  test_assert(send(a, "abstract", 8, 0) == 8);
  n = check_ok(recv(c, buf, sizeof buf, 0));
  obs("abstract recv -> %zd", n);
  check_ok(close(a));
  check_ok(close(c));
  check_ok(close(s));

  /* Autobind: bind with only the family gives an abstract name of 5 hex digits. */
  s = check_ok(socket(AF_UNIX, SOCK_DGRAM, 0));
  check_ok(bind(s, (struct sockaddr *)&addr, sizeof(sa_family_t)));
  len = sizeof got;
  check_ok(getsockname(s, (struct sockaddr *)&got, &len));
  show("autobind", &got, len);
  check_ok(close(s));

  /* Datagrams to a path, scattered and gathered. */
  s = check_ok(socket(AF_UNIX, SOCK_DGRAM, 0));
  alen = unix_addr(&addr, P("dgram"));
  check_ok(bind(s, (struct sockaddr *)&addr, alen));
  d = check_ok(socket(AF_UNIX, SOCK_DGRAM, 0));
  struct iovec out[3] = {{"gath", 4}, {"ered ", 5}, {"bytes", 5}};
  struct msghdr m = {.msg_name = &addr, .msg_namelen = alen, .msg_iov = out, .msg_iovlen = 3};
  test_assert(sendmsg(d, &m, 0) == 14);
  test_assert(sendto(d, "to a path", 9, 0, (struct sockaddr *)&addr, alen) == 9);
  char p1[5] = {0}, p2[32] = {0};
  struct iovec in[2] = {{p1, 4}, {p2, 31}};
  struct sockaddr_un from;
  memset(&from, 0xee, sizeof from);
  struct msghdr r = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = in, .msg_iovlen = 2};
  n = check_ok(recvmsg(s, &r, 0));
  obs("recvmsg -> %zd '%s' + '%s', sender name len %u", n, p1, p2, r.msg_namelen);
  len = sizeof from;
  n = check_ok(recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len));
  obs("recvfrom -> %zd '%.*s', sender name len %u", n, (int)n, buf, len);
  check_ok(close(d));
  check_ok(close(s));
  check_ok(unlink(P("dgram")));

  pair_messages(SOCK_STREAM, "stream");
  pair_messages(SOCK_DGRAM, "dgram");
  pair_messages(SOCK_SEQPACKET, "seqpacket");
  check_err("socketpair with unknown flags", socketpair(AF_UNIX, SOCK_STREAM | 0x100000, 0, (int[2]){0, 0}), EINVAL);
  check_err("socketpair into a NULL array", socketpair(AF_UNIX, SOCK_STREAM, 0, NULL), EFAULT);
  test_done();
}
