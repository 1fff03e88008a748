/* Signals against open(2) (under sbrun, a remote call that may take a while to answer).
 *
 * The open of a regular file never fails with EINTR, however often a handler without SA_RESTART
 * runs meanwhile: it does not wait in the kernel. Under sbrun a slow answer (a loaded machine, a
 * far target; the integration suite also runs this with --link-fault=delay) parks the thread, so
 * that a signal can end a call that waits; it must still not end this one. The open of a FIFO
 * with no writer does wait: a handler without SA_RESTART makes it fail with EINTR; with
 * SA_RESTART it goes on until a writer comes. A query of a terminal (TCGETS, TIOCGWINSZ) does
 * not wait either (the case conformance-open_signal-remote-pty has the pty on B).
 */
#include "util.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>

static volatile sig_atomic_t handled;

static void on_signal(int sig) {
  (void)sig;
  handled++;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "open_signal");
  write_file(P("plain"), "plain file\n", 0644);
  check_ok(mkfifo(P("fifo"), 0644));

  /* 1. A timer every millisecond, no SA_RESTART: every open of a regular file succeeds, and so
   * do the stat and the read that follow it. */
  set_signal_handler(SIGALRM, on_signal, 0);
  handled = 0;
  struct itimerval every = {{0, 1000}, {0, 1000}};
  test_assert(setitimer(ITIMER_REAL, &every, NULL) == 0);
  int failures = 0, first_errno = 0;
  const char *first_call = "";
  for (int i = 0; (i < 60 || handled < 5) && i < 1000000; i++) {
    struct stat st;
    char buf[32];
    errno = 0;
    int fd = open(P("plain"), O_RDONLY | O_CLOEXEC);
    const char *call = fd < 0 ? "open" : fstat(fd, &st) != 0 ? "fstat"
                       : read(fd, buf, sizeof buf) != 11 ? "read" : NULL;
    if (call != NULL && failures++ == 0) {
      first_errno = errno;
      first_call = call;
    }
    if (fd >= 0) close(fd);
  }
  struct itimerval stop = {{0, 0}, {0, 0}};
  test_assert(setitimer(ITIMER_REAL, &stop, NULL) == 0);
  obs("opens under a 1 ms timer (60, and until 5 signals came): %d failed%s%s%s%s", failures,
      failures ? ", the first in " : "", first_call, failures ? " with " : "",
      failures ? errname(first_errno) : "");
  test_assert(failures == 0);
  test_assert(handled >= 5);

  /* 2. The same for the queries of a terminal (a pty pair from /dev/ptmx). */
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  test_assert(m >= 0);
  handled = 0;
  failures = 0;
  test_assert(setitimer(ITIMER_REAL, &every, NULL) == 0);
  for (int i = 0; (i < 60 || handled < 5) && i < 1000000; i++) {
    struct termios t;
    struct winsize ws;
    if (tcgetattr(m, &t) != 0 || ioctl(m, TIOCGWINSZ, &ws) != 0) {
      if (failures++ == 0) first_errno = errno;
    }
  }
  test_assert(setitimer(ITIMER_REAL, &stop, NULL) == 0);
  obs("terminal queries under a 1 ms timer (as many): %d failed%s%s", failures,
      failures ? ", the first with " : "", failures ? errname(first_errno) : "");
  test_assert(failures == 0);
  test_assert(handled >= 5);
  check_ok(close(m));

  /* 3. No SA_RESTART: the open of a FIFO that waits for a writer fails with EINTR. */
  handled = 0;
  alarm(1);
  check_err("open(fifo, O_RDONLY) interrupted without SA_RESTART",
            open(P("fifo"), O_RDONLY | O_CLOEXEC), EINTR);
  obs("handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);

  /* 4. SA_RESTART: the handler runs, the open goes on and succeeds once a child opens the FIFO
   * for writing (after the signal). */
  set_signal_handler(SIGALRM, on_signal, SA_RESTART);
  handled = 0;
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    usleep(1500 * 1000);
    int w = open(P("fifo"), O_WRONLY | O_CLOEXEC);
    _exit(w >= 0 && write(w, "x", 1) == 1 ? 0 : 10);
  }
  alarm(1);
  int r = check_ok(open(P("fifo"), O_RDONLY | O_CLOEXEC));
  obs("open(fifo, O_RDONLY) with SA_RESTART: OK, handler ran %d time(s)", (int)handled);
  test_assert(handled == 1);
  char c;
  test_assert(read(r, &c, 1) == 1 && c == 'x');
  check_ok(close(r));
  test_assert(wait_code(pid) == 0);
  test_done();
}
