/* Floor 1: the bare cost of a seccomp trap round trip through a ptrace tracer, and of moving
 * bytes with process_vm_readv/writev. No splitbrain code is involved.
 *
 *   bench_trap N
 *
 * The child (tracee) times getppid() with no filter, stops itself, installs a minimal seccomp
 * filter that returns SECCOMP_RET_TRACE for getppid(1) only (a marker in the first argument) and
 * lets everything else run, times getppid(0) again (now through the filter but never stopped:
 * the price of having a filter at all), then calls getppid(1) N times.
 * The parent (tracer) PTRACE_SEIZEs it with PTRACE_O_TRACESECCOMP and answers each
 * PTRACE_EVENT_SECCOMP stop:
 *   - pass 1 ("trap"): PTRACE_CONT only — the syscall then runs in the kernel;
 *   - pass 2 ("emulate"): PTRACE_GETREGS, skip the syscall (orig_rax = -1) with a made-up
 *     result in rax, PTRACE_SETREGS, PTRACE_CONT — what a tracer that completes a call itself
 *     must do at least.
 * Then, with the child stopped, the parent times process_vm_readv and process_vm_writev of 64 B
 * and 1 MiB on a buffer of the child's (the same address in both: it was mapped before fork).
 *
 * Prints "bare_ns .. filtered_ns .. trap_us X emulate_us Y pvr64_us .. pvw64_us .. pvr1m_us ..
 * pvw1m_us ..". */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static char *shared_buf; /* mapped before fork: same address in tracer and tracee */
static double *untrapped;  /* MAP_SHARED: the tracee's own timings, ns per getppid(0) */

static double time_getppid(long n) {
  double a = now();
  for (long i = 0; i < n; i++) {
    syscall(SYS_getppid, 0);
  }
  return (now() - a) * 1e9 / (double)n;
}

static void tracee(long n) {
  untrapped[0] = time_getppid(n * 10);
  raise(SIGSTOP); /* wait for the seize */
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    die("no_new_privs");
  }
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    die("seccomp");
  }
  untrapped[1] = time_getppid(n * 10);
  for (int pass = 0; pass < 2; pass++) {
    for (long i = 0; i < n; i++) {
      syscall(SYS_getppid, 1);
    }
  }
  raise(SIGSTOP); /* hold still for the process_vm_* measurements */
  _exit(0);
}

/* Waits for the next stop of `pid`; returns the event (0 for a signal stop), -1 on exit. */
static int next_stop(pid_t pid, int *sig) {
  int status;
  if (waitpid(pid, &status, __WALL) < 0) {
    die("waitpid");
  }
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    return -1;
  }
  *sig = WSTOPSIG(status);
  return status >> 16;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000;
  shared_buf = malloc(MIB);
  if (!shared_buf) {
    die("malloc");
  }
  memset(shared_buf, 'x', MIB);
  untrapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (untrapped == MAP_FAILED) {
    die("mmap");
  }

  pid_t pid = fork();
  if (pid < 0) {
    die("fork");
  }
  if (pid == 0) {
    tracee(n);
  }

  int status;
  if (waitpid(pid, &status, WUNTRACED) < 0) {
    die("waitpid");
  }
  if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL) != 0) {
    die("PTRACE_SEIZE");
  }
  kill(pid, SIGCONT);

  double t[2] = {0, 0};
  int sig = 0;
  for (int pass = 0; pass < 2; pass++) {
    long seen = 0;
    double start = 0;
    while (seen < n) {
      int ev = next_stop(pid, &sig);
      if (ev < 0) {
        fprintf(stderr, "bench_trap: tracee exited early\n");
        return 1;
      }
      if (ev == PTRACE_EVENT_SECCOMP) {
        if (seen == 0) {
          start = now();
        }
        if (pass == 1) {
          struct user_regs_struct regs;
          if (ptrace(PTRACE_GETREGS, pid, 0, &regs) != 0) {
            die("GETREGS");
          }
          regs.orig_rax = (unsigned long long)-1; /* skip it ... */
          regs.rax = 4242;                        /* ... with this result */
          if (ptrace(PTRACE_SETREGS, pid, 0, &regs) != 0) {
            die("SETREGS");
          }
        }
        seen++;
        if (ptrace(PTRACE_CONT, pid, 0, 0) != 0) {
          die("PTRACE_CONT");
        }
      } else {
        /* group stop or signal: pass the signal on (SIGCONT/SIGSTOP during start-up) */
        int deliver = (ev == PTRACE_EVENT_STOP || sig == SIGSTOP || sig == SIGTRAP) ? 0 : sig;
        if (ptrace(PTRACE_CONT, pid, 0, deliver) != 0) {
          die("PTRACE_CONT");
        }
      }
    }
    /* n stops, timed from the first to the last: n-1 full round trips */
    t[pass] = (now() - start) / (double)(n - 1);
  }

  /* Wait for the final SIGSTOP (signal-delivery stop) and time process_vm_* meanwhile. */
  for (;;) {
    int ev = next_stop(pid, &sig);
    if (ev < 0) {
      die("tracee gone");
    }
    if (ev == 0 && sig == SIGSTOP) {
      break;
    }
    if (ptrace(PTRACE_CONT, pid, 0, 0) != 0) {
      die("PTRACE_CONT");
    }
  }
  static char local[MIB];
  memset(local, 'y', sizeof(local));
  double pv[4];
  size_t sizes[2] = {64, MIB};
  for (int s = 0; s < 2; s++) {
    long reps = s == 0 ? 20000 : 500;
    for (int dir = 0; dir < 2; dir++) {
      struct iovec l = {local, sizes[s]}, r = {shared_buf, sizes[s]};
      double start = now();
      for (long i = 0; i < reps; i++) {
        ssize_t got = dir == 0 ? process_vm_readv(pid, &l, 1, &r, 1, 0)
                               : process_vm_writev(pid, &l, 1, &r, 1, 0);
        if (got != (ssize_t)sizes[s]) {
          die("process_vm_*");
        }
      }
      pv[s * 2 + dir] = (now() - start) * 1e6 / (double)reps;
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, __WALL);
  printf("bare_ns %.1f filtered_ns %.1f trap_us %.3f emulate_us %.3f pvr64_us %.3f pvw64_us %.3f "
         "pvr1m_us %.3f pvw1m_us %.3f\n",
         untrapped[0], untrapped[1], t[0] * 1e6, t[1] * 1e6, pv[0], pv[1], pv[2], pv[3]);
  return 0;
}
