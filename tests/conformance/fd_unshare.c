/* unshare(CLONE_FILES) in a thread gives that thread its own fd table: its close must not close
 * the other threads' fd, and an fd it opens afterwards is its own. */
#include "util.h"
#include <pthread.h>
#include <sched.h>

static int shared_fd = -1;
static int thread_fd = -1;

static void *worker(void *arg) {
  (void)arg;
  test_assert(unshare(CLONE_FILES) == 0);
  test_assert(close(shared_fd) == 0);                 /* only in this thread's copy */
  thread_fd = open(P("thread.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  test_assert(thread_fd >= 0);
  test_assert(write(thread_fd, "from thread\n", 12) == 12);
  return NULL;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "fd_unshare");
  write_file(P("shared.txt"), "shared contents\n", 0644);
  shared_fd = check_ok(open(P("shared.txt"), O_RDONLY));
  pthread_t t;
  test_assert(pthread_create(&t, NULL, worker, NULL) == 0);
  test_assert(pthread_join(t, NULL) == 0);
  char buf[64] = {0};
  ssize_t n = read(shared_fd, buf, sizeof buf - 1);
  obs("read after the thread closed its copy: %zd %s", n, buf);
  test_assert(n == 16 && strcmp(buf, "shared contents\n") == 0);
  /* The thread's fd number is not open here unless it happens to equal one of ours. */
  if (thread_fd != shared_fd) {
    check_err("write to the thread's fd from main", write(thread_fd, "x", 1), EBADF);
  }
  check_ok(close(shared_fd));
  test_done();
}
