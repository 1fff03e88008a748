/* sb-stub: stands in, on this machine, for a program that sbrun runs on the remote (DESIGN D7).
 *
 * Its parent forked and exec'd a program inside a remote scope; sbrun ran that program on the
 * agent and exec'd this stub instead, so the parent's vfork/posix_spawn/waitpid/kill keep
 * working on a real local process. The stub pumps its local stdio to and from the remote
 * process's pipes (sbrun hands them over as remote fds), waits for the remote process, and then
 * ends the way it ended: the same exit code, or death by the same signal. sbrun forwards signals
 * sent to the stub to the remote process while it runs.
 *
 * When its stdin is a terminal here, the remote process has a pseudo-terminal there instead of
 * pipes (as `ssh -t` gives one): the stub pumps the terminal to and from its master, puts the
 * local terminal in raw mode while it does (so ^C, ^Z and the rest reach B's line discipline,
 * which signals the remote foreground group), and copies the window size on SIGWINCH. */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "stub_protocol.h"

/* Which end a pump closes when it is done. */
enum close_end {
  CLOSE_FROM, /* a drained remote output */
  CLOSE_TO,   /* the remote stdin: the remote process sees EOF */
  CLOSE_NONE, /* the terminal's master, which the other pump still uses */
};

struct pump {
  int from;
  int to;
  enum close_end closes;
  pthread_t thread;
  /* Bytes read from `from` and written to `to` so far, and a request to stop (stdin's pump,
   * after the remote process ended: see give_back_stdin). */
  _Atomic long long nread, nwritten;
  _Atomic int stop;
};

static void* run_pump(void* arg) {
  struct pump* p = arg;
  static __thread char buf[65536];
  for (;;) {
    if (p->stop) {
      return NULL;
    }
    ssize_t n = read(p->from, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    p->nread += n;
    for (ssize_t off = 0; off < n;) {
      if (p->stop) {
        return NULL;
      }
      ssize_t w = write(p->to, buf + off, (size_t)(n - off));
      if (w > 0) {
        p->nwritten += w;
      }
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        /* The reader went away (EPIPE): stop reading, so the remote writer meets a closed pipe
         * as it would have met ours. */
        goto out;
      }
      off += w;
    }
  }
out:
  /* Close the remote end: the remote stdin (the remote process sees EOF), or a drained output. */
  if (p->closes != CLOSE_NONE) {
    close(p->closes == CLOSE_TO ? p->to : p->from);
  }
  return NULL;
}

static int start_pump(struct pump* p, int from, int to, enum close_end closes) {
  p->from = from;
  p->to = to;
  p->closes = closes;
  p->nread = 0;
  p->nwritten = 0;
  p->stop = 0;
  return pthread_create(&p->thread, NULL, run_pump, p);
}

static void wake_pump(int sig) { (void)sig; /* being delivered ends a blocked write: EINTR */ }

/* Stdin is a regular file here: the pump read ahead of the remote process, which may have taken
 * little or nothing of it (`while read l; do remote-cmd; done < list`). Once the process has
 * ended, stop the pump and put the file position back after what the process consumed: what
 * the pump read, less what it wrote, plus what the process left unread in its pipe (the agent
 * counts it). As natively, where a program that does not read its stdin leaves it in place. */
static void give_back_stdin(struct pump* p) {
  struct stat st;
  if (fstat(0, &st) != 0 || !S_ISREG(st.st_mode)) {
    return;
  }
  struct sigaction wake;
  memset(&wake, 0, sizeof(wake));
  wake.sa_handler = wake_pump; /* no SA_RESTART */
  sigaction(SIGUSR2, &wake, NULL);
  p->stop = 1;
  pthread_kill(p->thread, SIGUSR2);
  pthread_join(p->thread, NULL);
  long unread = syscall(SB_STUB_SYSCALL, SB_STUB_STDIN_UNREAD);
  if (unread < 0) {
    return; /* not counted (an older agent): the pump's read-ahead is gone, as before */
  }
  long long back = p->nread - p->nwritten + unread;
  if (back > 0) {
    lseek(0, -(off_t)back, SEEK_CUR);
  }
}

/* The remote pseudo-terminal's master, and the local terminal's modes to give back. */
static int terminal_master = -1;
static struct termios saved_modes;
static int raw_mode = 0;

/* The window size of the local terminal, onto the remote one (B's kernel then sends SIGWINCH to
 * its foreground group). Async-signal-safe: two ioctls. */
static void copy_window_size(int sig) {
  (void)sig;
  int saved = errno;
  struct winsize size;
  if (ioctl(0, TIOCGWINSZ, &size) == 0) {
    ioctl(terminal_master, TIOCSWINSZ, &size);
  }
  errno = saved;
}

static void restore_terminal(void) {
  if (raw_mode) {
    tcsetattr(0, TCSADRAIN, &saved_modes);
    raw_mode = 0;
  }
}

/* Raw mode, as ssh -t sets it: every byte goes to the remote line discipline as typed. Only for
 * the terminal's foreground job: a background one must not change the terminal under the shell. */
static void start_terminal(void) {
  struct sigaction winch;
  memset(&winch, 0, sizeof(winch));
  winch.sa_handler = copy_window_size;
  winch.sa_flags = SA_RESTART;
  sigaction(SIGWINCH, &winch, NULL);
  if (tcgetpgrp(0) == getpgrp() && tcgetattr(0, &saved_modes) == 0) {
    struct termios raw = saved_modes;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSADRAIN, &raw) == 0) {
      raw_mode = 1;
    }
  }
}

int main(void) {
  /* A write to a closed local pipe must fail with EPIPE here, not kill the stub: the remote
   * process decides how it ends. */
  signal(SIGPIPE, SIG_IGN);

  long master = syscall(SB_STUB_SYSCALL, SB_STUB_TERMINAL);
  if (master < 0 && errno == ENOSYS) {
    fprintf(stderr, "sb-stub: this program is run by sbrun in place of a remote one; "
                    "it does nothing on its own\n");
    return 127;
  }
  long fds[3];
  for (int i = 0; i < 3; ++i) {
    fds[i] = syscall(SB_STUB_SYSCALL, SB_STUB_FD, i);
  }
  struct pump pumps[3];
  int started[3] = {0, 0, 0};
  struct pump terminal_in, terminal_out;
  int terminal_started = 0;
  if (master >= 0) {
    terminal_master = (int)master;
    start_terminal();
    /* The window may have changed between sbrun's look and the handler's installation. */
    copy_window_size(SIGWINCH);
    /* Input: like stdin below, detached in effect. At its EOF the master stays open: closing it
     * would hang up the remote terminal. */
    start_pump(&terminal_in, 0, terminal_master, CLOSE_NONE);
    /* The terminal's output (the program's stdout and stderr when they are on it, echo, and
     * writes to /dev/tty) goes to this terminal: fd 1 or 2 when one of them is it, else fd 0. */
    int out = isatty(1) ? 1 : isatty(2) ? 2 : 0;
    terminal_started = start_pump(&terminal_out, terminal_master, out, CLOSE_NONE) == 0;
    if (!terminal_started) {
      fprintf(stderr, "sb-stub: cannot start a thread for the terminal: %s\n", strerror(errno));
    }
  }
  if (fds[0] >= 0) {
    /* Detached in effect: a read of a terminal may never return; exit ends it (a regular file's
     * pump is stopped and its read-ahead given back: give_back_stdin). */
    started[0] = start_pump(&pumps[0], 0, (int)fds[0], CLOSE_TO) == 0;
  }
  for (int i = 1; i < 3; ++i) {
    if (fds[i] >= 0) {
      started[i] = start_pump(&pumps[i], (int)fds[i], i, CLOSE_FROM) == 0;
      if (!started[i]) {
        fprintf(stderr, "sb-stub: cannot start a thread for fd %d: %s\n", i, strerror(errno));
      }
    }
  }

  long status;
  do {
    status = syscall(SB_STUB_SYSCALL, SB_STUB_WAIT);
  } while (status < 0 && errno == EINTR);
  if (status < 0) {
    restore_terminal();
    fprintf(stderr, "sb-stub: lost the remote process: %s\n", strerror(errno));
    _exit(127);
  }
  if (started[0]) {
    give_back_stdin(&pumps[0]);
  }
  /* The remote output pipes (and the terminal's output) end once it has exited and they are
   * drained. */
  for (int i = 1; i < 3; ++i) {
    if (started[i]) {
      pthread_join(pumps[i].thread, NULL);
    }
  }
  if (terminal_started) {
    pthread_join(terminal_out.thread, NULL);
  }
  restore_terminal();
  if (WIFEXITED(status)) {
    _exit(WEXITSTATUS(status));
  }
  int sig = WTERMSIG(status);
  /* Die by the same signal; no local core file for a process that dumped on the remote. */
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  _exit(128 + sig);
}
