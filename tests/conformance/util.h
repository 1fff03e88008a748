/* Shared helpers for the conformance programs (rr style: one behaviour per program).
 *
 * Every program takes a working directory as argv[1] and does everything under
 * argv[1]/<program name>, which it creates fresh. It asserts what is universal on Linux
 * (test_assert, check_err) and prints what may depend on the environment (file system, uid,
 * kernel) with obs(), deterministically, so that the differential runner can compare the
 * output of a native run on the agent's machine with a run under sbrun. The last line of a
 * successful run is EXIT-SUCCESS.
 *
 * Paths printed are relative to the working directory; inode numbers, times and pids are never
 * printed, because they legitimately differ between two runs.
 */
#ifndef SB_CONFORMANCE_UTIL_H
#define SB_CONFORMANCE_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#ifdef NDEBUG
#error "conformance tests rely on test_assert: do not build them with NDEBUG"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/types.h>
#include <unistd.h>

static const char *test_name = "?";
static char test_dir[PATH_MAX]; /* argv[1]/<name>, absolute */

static inline const char *errname(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
    E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
    E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC)
    E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK)
    E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENODATA) E(EOVERFLOW) E(EOPNOTSUPP) E(ENOTSOCK)
    E(ESTALE) E(EDQUOT) E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EADDRINUSE)
    E(EADDRNOTAVAIL) E(EAFNOSUPPORT) E(EINPROGRESS) E(EALREADY) E(EISCONN) E(EMSGSIZE)
    E(EDESTADDRREQ) E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(ECONNRESET)
    E(EPROTOTYPE)
#undef E
    case 0: return "OK";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", e);
      return buf;
    }
  }
}

__attribute__((noreturn)) static void test_fail(const char *what, const char *file, int line) {
  int e = errno;
  fflush(stdout);
  fprintf(stderr, "%s: FAILED: %s at %s:%d (errno now %s)\n", test_name, what, file, line,
          errname(e));
  _exit(1);
}

/* Never compiled out (see the NDEBUG check above). */
#define test_assert(cond) ((cond) ? (void)0 : test_fail(#cond, __FILE__, __LINE__))

/* Observation printed for the differential comparison. */
__attribute__((format(printf, 1, 2))) static inline void obs(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* `expr` must fail with errno `e`; prints "label -> ENAME". */
#define check_err(label, expr, e)                                                      \
  do {                                                                                 \
    errno = 0;                                                                         \
    long check_ret_ = (long)(expr);                                                    \
    int check_errno_ = errno;                                                          \
    obs("%s -> %ld %s", label, check_ret_, check_ret_ == -1 ? errname(check_errno_) : "OK"); \
    if (check_ret_ != -1 || check_errno_ != (e)) {                                     \
      errno = check_errno_;                                                            \
      test_fail(#expr " should fail with " #e, __FILE__, __LINE__);                    \
    }                                                                                  \
  } while (0)

/* `expr` must succeed (not return -1); returns its value. */
#define check_ok(expr)                                                                 \
  ({                                                                                   \
    errno = 0;                                                                         \
    long check_ret_ = (long)(expr);                                                    \
    if (check_ret_ == -1) test_fail(#expr " should succeed", __FILE__, __LINE__);       \
    check_ret_;                                                                        \
  })

/* Prints the result of an environment-dependent call without asserting it. */
#define observe(label, expr)                                                           \
  do {                                                                                 \
    errno = 0;                                                                         \
    long observe_ret_ = (long)(expr);                                                  \
    int observe_errno_ = errno;                                                        \
    obs("%s -> %ld %s", label, observe_ret_,                                           \
        observe_ret_ == -1 ? errname(observe_errno_) : "OK");                          \
  } while (0)

/* Installs `fn` for `sig` with `flags` (SA_RESTART or 0) and an empty mask: the signal tests'
 * handlers. */
static inline void set_signal_handler(int sig, void (*fn)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  test_assert(sigaction(sig, &sa, NULL) == 0);
}

/* Waits for child `pid`: its exit code, or 128 + the signal that killed it. */
static inline int wait_code(pid_t pid) {
  int status;
  test_assert(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Waits for child `pid`, which must have exited 0 (the signal tests' helper children). */
static inline void reap(pid_t pid) { test_assert(wait_code(pid) == 0); }

/* Runs `sh -c CMD` in a child; returns its wait_code(). (Its stderr is not compared.) */
static inline int run_sh(const char *cmd) {
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  return wait_code(pid);
}

/* Creates PATH with SIZE bytes, byte i being pattern(i): the read tests check every byte. */
static inline void make_pattern_file(const char *path, long size, unsigned char (*pattern)(long)) {
  unsigned char *buf = malloc(size);
  test_assert(buf != NULL);
  for (long i = 0; i < size; i++) buf[i] = pattern(i);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  test_assert(fd >= 0);
  test_assert(write(fd, buf, size) == size);
  test_assert(close(fd) == 0);
  free(buf);
}

/* A waitpid status in words, for obs(): "exited 3", "killed by signal 15" ... */
static inline const char *wait_status_text(int status) {
  static char buf[64];
  if (WIFEXITED(status))
    snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(status));
  else if (WIFSTOPPED(status))
    snprintf(buf, sizeof buf, "stopped by signal %d", WSTOPSIG(status));
  else if (WIFCONTINUED(status))
    snprintf(buf, sizeof buf, "continued");
  else
    snprintf(buf, sizeof buf, "status %#x", status);
  return buf;
}

/* Absolute path of NAME inside the test directory (rotating static buffers). */
static inline const char *P(const char *name) {
  static char bufs[8][PATH_MAX];
  static int next;
  char *b = bufs[next++ % 8];
  int n = snprintf(b, PATH_MAX, "%s/%s", test_dir, name);
  if (n < 0 || n >= PATH_MAX) test_fail("path too long for P()", __FILE__, __LINE__);
  return b;
}

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Writes the whole string; asserts. */
static inline void write_file(const char *path, const char *content, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  test_assert(fd >= 0);
  size_t len = strlen(content);
  test_assert(write(fd, content, len) == (ssize_t)len);
  test_assert(close(fd) == 0);
}

/* Reads up to size-1 bytes into buf, NUL-terminated; returns the length. */
static inline ssize_t read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  test_assert(fd >= 0);
  ssize_t n = 0, r;
  while ((r = read(fd, buf + n, size - 1 - n)) > 0) n += r;
  test_assert(r == 0);
  buf[n] = '\0';
  test_assert(close(fd) == 0);
  return n;
}

/* Checks argv, creates argv[1]/NAME fresh (removing a previous run's) and prints a header. */
static inline void test_init(int argc, char **argv, const char *name) {
  test_name = name;
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* Start from fds 0-2 only, so that fd numbers are the same in every run. */
  syscall(SYS_close_range, 3, ~0U, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: %s WORKDIR [ARGS...]\n", argv[0]);
    exit(2);
  }
  int n = snprintf(test_dir, sizeof test_dir, "%s/%s", argv[1], name);
  test_assert(n > 0 && n < (int)sizeof test_dir);
  struct stat st;
  if (lstat(test_dir, &st) == 0) test_assert(nftw(test_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
  test_assert(mkdir(test_dir, 0755) == 0);
  umask(022);
  obs("test %s", name);
}

/* With "as-nobody" as argv[2] (and run as root): the program goes on as nobody (uid and gid
 * 65534, no supplementary groups), in a test directory it may write; the same checks then hold
 * for an unprivileged program (issue 16: a program's credentials follow it to B). */
static inline void test_maybe_drop(int argc, char **argv) {
  if (argc < 3 || strcmp(argv[2], "as-nobody") != 0) return;
  test_assert(geteuid() == 0);
  test_assert(chmod(test_dir, 0777) == 0);
  test_assert(syscall(SYS_setgroups, 0, NULL) == 0);
  test_assert(setgid(65534) == 0);
  test_assert(setuid(65534) == 0);
  obs("as nobody");
}

static inline void test_done(void) {
  obs("EXIT-SUCCESS");
  exit(0);
}

#endif
