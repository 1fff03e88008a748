/* sb-stub: stands in, on this machine, for a program that sbrun runs on the remote (DESIGN D7).
 *
 * Its parent forked and exec'd a program inside a remote scope; sbrun ran that program on the
 * agent and exec'd this stub instead, so the parent's vfork/posix_spawn/waitpid/kill keep
 * working on a real local process. The stub pumps its local stdio to and from the remote
 * process's pipes (sbrun hands them over as remote fds), waits for the remote process, and then
 * ends the way it ended: the same exit code, or death by the same signal. sbrun forwards signals
 * sent to the stub to the remote process while it runs. */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stub_protocol.h"

struct pump {
  int from;
  int to;
  int closeTo; /* `to` is the remote end (stdin); otherwise `from` is */
  pthread_t thread;
};

static void* run_pump(void* arg) {
  struct pump* p = arg;
  static __thread char buf[65536];
  for (;;) {
    ssize_t n = read(p->from, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(p->to, buf + off, (size_t)(n - off));
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
  close(p->closeTo ? p->to : p->from);
  return NULL;
}

static int start_pump(struct pump* p, int from, int to, int closeTo) {
  p->from = from;
  p->to = to;
  p->closeTo = closeTo;
  return pthread_create(&p->thread, NULL, run_pump, p);
}

int main(void) {
  /* A write to a closed local pipe must fail with EPIPE here, not kill the stub: the remote
   * process decides how it ends. */
  signal(SIGPIPE, SIG_IGN);

  long fds[3];
  for (int i = 0; i < 3; ++i) {
    fds[i] = syscall(SB_STUB_SYSCALL, SB_STUB_FD, i);
    if (fds[i] < 0 && errno == ENOSYS) {
      fprintf(stderr, "sb-stub: this program is run by sbrun in place of a remote one; "
                      "it does nothing on its own\n");
      return 127;
    }
  }
  struct pump pumps[3];
  int started[3] = {0, 0, 0};
  if (fds[0] >= 0) {
    /* Detached in effect: a read of a terminal may never return; exit ends it. */
    started[0] = start_pump(&pumps[0], 0, (int)fds[0], 1) == 0;
  }
  for (int i = 1; i < 3; ++i) {
    if (fds[i] >= 0) {
      started[i] = start_pump(&pumps[i], (int)fds[i], i, 0) == 0;
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
    fprintf(stderr, "sb-stub: lost the remote process: %s\n", strerror(errno));
    _exit(127);
  }
  /* The remote output pipes end once it has exited and they are drained. */
  for (int i = 1; i < 3; ++i) {
    if (started[i]) {
      pthread_join(pumps[i].thread, NULL);
    }
  }
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
