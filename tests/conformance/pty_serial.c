/* A serial line on the machine that owns it: a pty pair opened through /dev/ptmx, configured with
 * termios, data both ways, window size, modem-ish queries, and the ioctl errnos a program sees.
 * The integration case pty-remote runs it with /dev/ptmx and /dev/pts on the agent (ioctl
 * marshalling); the plain conformance case runs it with both local. */
#include "util.h"
#include <sys/ioctl.h>
#include <termios.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "pty_serial");
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  test_assert(m >= 0);
  check_ok(grantpt(m));
  check_ok(unlockpt(m));
  const char *name = ptsname(m);
  test_assert(name != NULL && strncmp(name, "/dev/pts/", 9) == 0);
  int s = open(name, O_RDWR | O_NOCTTY);
  test_assert(s >= 0);
  obs("isatty master %d slave %d", isatty(m), isatty(s));

  struct termios t;
  check_ok(tcgetattr(s, &t));
  cfmakeraw(&t);
  cfsetispeed(&t, B115200);
  cfsetospeed(&t, B115200);
  check_ok(tcsetattr(s, TCSANOW, &t));
  struct termios back;
  check_ok(tcgetattr(s, &back));
  obs("raw: icanon %d echo %d, speed %s", !!(back.c_lflag & ICANON), !!(back.c_lflag & ECHO),
      cfgetospeed(&back) == B115200 ? "115200" : "other");

  struct winsize ws = {.ws_row = 42, .ws_col = 132};
  check_ok(ioctl(m, TIOCSWINSZ, &ws));
  struct winsize got = {0};
  check_ok(ioctl(s, TIOCGWINSZ, &got));
  obs("winsize %dx%d", got.ws_row, got.ws_col);

  test_assert(write(m, "hello\n", 6) == 6);
  char buf[64];
  ssize_t n = read(s, buf, sizeof buf);
  obs("slave read %zd '%.*s'", n, (int)(n > 0 ? n - 1 : 0), buf);
  test_assert(write(s, "world", 5) == 5);
  usleep(100000);
  int queued = -1;
  check_ok(ioctl(m, FIONREAD, &queued));
  obs("master FIONREAD %d", queued);
  n = read(m, buf, sizeof buf);
  obs("master read %zd '%.*s'", n, (int)(n > 0 ? n : 0), buf);

  int pending = -1;
  check_ok(ioctl(s, TIOCOUTQ, &pending));
  obs("slave TIOCOUTQ %d", pending);
  check_ok(tcflush(s, TCIOFLUSH));
  int nb = 1;
  check_ok(ioctl(m, FIONBIO, &nb));
  check_err("read empty nonblocking master", read(m, buf, sizeof buf), EAGAIN);

  pid_t pgrp;
  check_err("TIOCGPGRP on a tty that is not ours", ioctl(s, TIOCGPGRP, &pgrp), ENOTTY);
  write_file(P("plain"), "x", 0644);
  int f = open(P("plain"), O_RDONLY);
  test_assert(f >= 0);
  obs("isatty file %d", isatty(f));
  check_err("TCGETS on a file", tcgetattr(f, &t), ENOTTY);
  check_err("an unknown request on a file", ioctl(f, 0x4008AE99, &pgrp), ENOTTY);
  check_err("tcgetattr into a bad pointer", ioctl(s, TCGETS, (void *)1), EFAULT);
  close(f);
  close(s);
  close(m);
  test_done();
}
