/* Lease breaks (issue 16): a lease B grants is the program's, and so is its break. The program
 * takes a lease, a process on B opens the file (a child's `sh -c` here: under sbrun a child's
 * exec runs on B, DESIGN D7), and the program gets the signal B's kernel raises for the break:
 * SIGIO without F_SETSIG (si_code SI_KERNEL), or the F_SETSIG signal with si_code POLL_MSG,
 * si_band and si_fd = the fd the lease was set through. F_GETLEASE during the break answers
 * the type it is broken to; the program's F_SETLEASE answer lets the opener go on at once,
 * long before lease-break-time (45 s by default). Also F_GETSIG and F_GETOWN as the lease left
 * them, and a read lease broken by a writer. */
#include "util.h"

#include <time.h>

static volatile sig_atomic_t got_signo, got_code, got_fd;
static volatile long got_band;

static void on_signal(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  got_signo = sig;
  got_code = si->si_code;
  got_fd = si->si_fd;
  got_band = si->si_band;
}

static void catch_with_info(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  test_assert(sigaction(sig, &sa, NULL) == 0);
}

static double now(void) {
  struct timespec ts;
  test_assert(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *lease_name(int t) {
  return t == F_RDLCK ? "F_RDLCK" : t == F_WRLCK ? "F_WRLCK" : t == F_UNLCK ? "F_UNLCK" : "?";
}

static const char *code_name(int code) {
  return code == SI_KERNEL ? "SI_KERNEL" : code == POLL_MSG ? "POLL_MSG"
         : code == SI_QUEUE ? "SI_QUEUE" : code == SI_USER ? "SI_USER" : "other";
}

/* The program holds a `lease` on an fd opened with `flags`, signalled as `sig` (0: no F_SETSIG);
 * `sh -c breaker` opens the file; the program answers with `answer`. */
static void lease_break(const char *label, int flags, int lease, int sig, const char *breaker,
                        int answer) {
  int fd = check_ok(open(P("f"), flags | O_CLOEXEC));
  if (sig != 0) check_ok(fcntl(fd, F_SETSIG, sig));
  check_ok(fcntl(fd, F_SETLEASE, lease));
  obs("%s: F_GETLEASE -> %s, F_GETSIG -> %s, F_GETOWN is this process: %s", label,
      lease_name(check_ok(fcntl(fd, F_GETLEASE))), fcntl(fd, F_GETSIG) == sig ? "as set" : "?",
      fcntl(fd, F_GETOWN) == getpid() ? "yes" : "no");
  got_signo = 0;
  double start = now();
  fflush(stdout);
  pid_t opener = check_ok(fork());
  if (opener == 0) {
    execl("/bin/sh", "sh", "-c", breaker, (char *)NULL);
    _exit(127);
  }
  while (got_signo == 0 && now() - start < 30) usleep(10000);
  test_assert(got_signo != 0);
  int expect = sig != 0 ? sig : SIGIO;
  obs("%s: got %s, si_code %s", label, got_signo == expect ? "the expected signal" : "another signal",
      code_name(got_code));
  if (sig != 0) {
    obs("%s: si_fd is the lease's fd: %s, si_band %#lx", label, got_fd == fd ? "yes" : "no",
        (long)got_band);
  }
  obs("%s: F_GETLEASE during the break -> %s", label, lease_name(check_ok(fcntl(fd, F_GETLEASE))));
  /* The opener waits for the answer. */
  test_assert(waitpid(opener, NULL, WNOHANG) == 0);
  check_ok(fcntl(fd, F_SETLEASE, answer));
  int code = wait_code(opener);
  double took = now() - start;
  obs("%s: the opener exited %d, promptly: %s", label, code, took < 15 ? "yes" : "no");
  obs("%s: F_GETLEASE after the answer -> %s", label, lease_name(check_ok(fcntl(fd, F_GETLEASE))));
  close(fd);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "lease_break");
  test_maybe_drop(argc, argv);
  write_file(P("f"), "0123456789\n", 0644);
  catch_with_info(SIGIO);
  catch_with_info(SIGRTMIN + 1);
  char reader[PATH_MAX + 32], writer[PATH_MAX + 32];
  snprintf(reader, sizeof reader, "exec 3< '%s'", P("f"));
  snprintf(writer, sizeof writer, "exec 3>> '%s'", P("f"));

  lease_break("write lease, SIGIO, a reader", O_RDWR, F_WRLCK, 0, reader, F_UNLCK);
  lease_break("write lease, F_SETSIG, a reader", O_RDONLY, F_WRLCK, SIGRTMIN + 1, reader, F_RDLCK);
  lease_break("read lease, F_SETSIG, a writer", O_RDONLY, F_RDLCK, SIGRTMIN + 1, writer, F_UNLCK);

  /* F_SETSIG's checks, and F_SETOWN read back; still the same on a file without a lease. */
  int fd = check_ok(open(P("f"), O_RDONLY));
  check_err("F_SETSIG 65", fcntl(fd, F_SETSIG, 65), EINVAL);
  check_ok(fcntl(fd, F_SETSIG, 0));
  obs("F_GETSIG after 0 -> %d", (int)check_ok(fcntl(fd, F_GETSIG)));
  check_ok(fcntl(fd, F_SETOWN, getpid()));
  obs("F_GETOWN after F_SETOWN getpid -> %s", fcntl(fd, F_GETOWN) == getpid() ? "getpid" : "?");
  struct f_owner_ex ex;
  check_ok(fcntl(fd, F_GETOWN_EX, &ex));
  obs("F_GETOWN_EX -> type %s", ex.type == F_OWNER_PID ? "F_OWNER_PID" : "?");
  ex.type = 7;
  check_err("F_SETOWN_EX of an unknown type", fcntl(fd, F_SETOWN_EX, &ex), EINVAL);
  close(fd);
  test_done();
}
