/* Leases (F_SETLEASE/F_GETLEASE) as B's kernel refuses them (issue 16): its checks and their
 * order (EBADF on an O_PATH fd, EINVAL for an unknown type or a directory, EACCES for a file the
 * caller does not own without CAP_LEASE, EAGAIN for a lease that conflicts with an open, or an
 * unlock with no lease), and F_GETLEASE of a description without one. Leases B grants, and
 * their breaks: lease_break.c. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "leases");
  write_file(P("theirs"), "owned by whoever ran the test first\n", 0644);
  test_maybe_drop(argc, argv);
  write_file(P("f"), "0123456789\n", 0644);
  check_ok(mkdir(P("d"), 0755));

  int rw = check_ok(open(P("f"), O_RDWR));
  obs("F_GETLEASE without a lease -> %s",
      check_ok(fcntl(rw, F_GETLEASE)) == F_UNLCK ? "F_UNLCK" : "?");
  check_err("F_SETLEASE F_UNLCK without a lease", fcntl(rw, F_SETLEASE, F_UNLCK), EAGAIN);
  check_err("F_SETLEASE F_RDLCK on an fd open for writing", fcntl(rw, F_SETLEASE, F_RDLCK),
            EAGAIN);
  int ro = check_ok(open(P("f"), O_RDONLY));
  check_err("F_SETLEASE F_WRLCK with another open", fcntl(ro, F_SETLEASE, F_WRLCK), EAGAIN);
  check_err("F_SETLEASE of an unknown type", fcntl(ro, F_SETLEASE, 7), EINVAL);

  int dir = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  check_err("F_SETLEASE F_RDLCK on a directory", fcntl(dir, F_SETLEASE, F_RDLCK), EINVAL);

  int path = check_ok(open(P("f"), O_PATH));
  check_err("F_GETLEASE on O_PATH", fcntl(path, F_GETLEASE), EBADF);
  check_err("F_SETLEASE F_RDLCK on O_PATH", fcntl(path, F_SETLEASE, F_RDLCK), EBADF);
  check_err("F_SETLEASE of an unknown type on O_PATH", fcntl(path, F_SETLEASE, 7), EBADF);

  if (geteuid() != 0) {
    /* Root has CAP_LEASE, and would be granted this one. */
    int other = check_ok(open(P("theirs"), O_RDONLY));
    check_err("F_SETLEASE F_RDLCK on a file of another user", fcntl(other, F_SETLEASE, F_RDLCK),
              EACCES);
    check_err("F_SETLEASE F_UNLCK on a file of another user", fcntl(other, F_SETLEASE, F_UNLCK),
              EACCES);
    close(other);
  }
  close(path);
  close(dir);
  close(ro);
  close(rw);
  test_done();
}
