/* RLIMIT_FSIZE for the calls that set a file's size (issue 16): truncate, ftruncate and
 * fallocate that would grow a regular file past the limit fail with EFBIG and raise SIGXFSZ
 * (inode_newsize_ok); growing up to the limit and shrinking whatever the size are not limited
 * (a fallocate with FALLOC_FL_KEEP_SIZE depends on the file system: tmpfs limits it, ext4 does
 * not; it is printed); the calls' earlier checks (an fd not open for
 * writing, a directory, no write permission) answer first, without a signal. */
#include "util.h"

#include <sys/resource.h>

#define LIMIT 4096

static volatile sig_atomic_t xfsz;
static void on_xfsz(int sig) {
  (void)sig;
  xfsz++;
}

static long size_of(int fd) {
  struct stat st;
  check_ok(fstat(fd, &st));
  return (long)st.st_size;
}

/* Prints the call's result, its size afterwards and the signals it raised. */
#define step(label, expr, fd)                                                            \
  do {                                                                                 \
    xfsz = 0;                                                                          \
    errno = 0;                                                                         \
    long r_ = (long)(expr);                                                            \
    int e_ = errno;                                                                    \
    obs("%s -> %s, size %ld, SIGXFSZ %d", label, r_ == -1 ? errname(e_) : "OK", size_of(fd), \
        (int)xfsz);                                                                    \
  } while (0)

int main(int argc, char **argv) {
  test_init(argc, argv, "rlimit_fsize_size");
  write_file(P("theirs"), "not yours\n", 0644);
  test_maybe_drop(argc, argv);
  set_signal_handler(SIGXFSZ, on_xfsz, 0);
  int fd = check_ok(open(P("f"), O_CREAT | O_RDWR | O_TRUNC, 0644));
  int ro = check_ok(open(P("f"), O_RDONLY));
  check_ok(mkdir(P("d"), 0755));
  struct rlimit lim;
  check_ok(getrlimit(RLIMIT_FSIZE, &lim));
  lim.rlim_cur = LIMIT;
  check_ok(setrlimit(RLIMIT_FSIZE, &lim));

  step("ftruncate to the limit", ftruncate(fd, LIMIT), fd);
  step("ftruncate past the limit", ftruncate(fd, LIMIT + 1), fd);
  step("ftruncate on a read-only fd past the limit", ftruncate(ro, LIMIT * 2), fd);
  step("truncate past the limit", truncate(P("f"), LIMIT * 3), fd);
  step("truncate of a directory past the limit", truncate(P("d"), LIMIT * 3), fd);
  step("fallocate past the limit", fallocate(fd, 0, 0, LIMIT + 100), fd);
  step("fallocate KEEP_SIZE past the limit", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, LIMIT * 2), fd);
  step("fallocate on a read-only fd past the limit", fallocate(ro, 0, 0, LIMIT * 2), fd);
  step("fallocate within the limit", fallocate(fd, 0, 100, 100), fd);
  if (geteuid() != 0) {
    int theirs = check_ok(open(P("theirs"), O_RDONLY));
    step("truncate of a file not writable past the limit", truncate(P("theirs"), LIMIT * 3),
         theirs);
    close(theirs);
  }

  /* Over the limit already (made without one): shrinking is never limited, growing is. */
  lim.rlim_cur = RLIM_INFINITY;
  check_ok(setrlimit(RLIMIT_FSIZE, &lim));
  check_ok(ftruncate(fd, LIMIT * 4));
  lim.rlim_cur = LIMIT;
  check_ok(setrlimit(RLIMIT_FSIZE, &lim));
  step("ftruncate shrinking above the limit", ftruncate(fd, LIMIT * 2), fd);
  step("truncate growing above the limit", truncate(P("f"), LIMIT * 3), fd);
  step("truncate shrinking below the limit", truncate(P("f"), 10), fd);
  close(ro);
  close(fd);
  test_done();
}
