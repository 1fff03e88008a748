/* Many threads do file IO at the same time while one more thread is blocked reading a FIFO.
 *
 * 16 worker threads x 1000 iterations of stat/open/fstat/read/close over 16 files (plus a stat
 * of a missing name every 10th iteration), each thread folding what it read into a checksum; the
 * results depend only on the files' contents, so they are the same in every run. Meanwhile a
 * reader thread sits in a blocking read on a FIFO that nobody writes to until every worker has
 * finished: under sbrun that read is a remote call in flight the whole time, and it must delay
 * neither the other threads' remote calls nor their local work (if it did, the workers would
 * never finish, the FIFO would never be written, and the program would hang). Then the main
 * thread writes a message into the FIFO and closes it; the reader prints what it got and EOF.
 */
#include "util.h"
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#define N_THREADS 16
#define N_ITER 1000
#define N_FILES 16
#define FIFO_MSG "message through the fifo after the workers finished\n"

struct result {
  long opens, stats, bytes, enoent;
  uint64_t checksum;
};

static struct result results[N_THREADS];
static size_t file_size[N_FILES];
static atomic_int workers_done;
static sem_t reader_ready;
static char fifo_got[256];
static ssize_t fifo_len;
static int fifo_data_after_workers = -1;
static int fifo_eof;

static size_t size_of(int i) { return 100 + (size_t)i * 377; }

static unsigned char byte_of(int i, size_t k) {
  return (unsigned char)((i * 31 + k * 7 + k / 253) % 251);
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* P() is not thread-safe (shared rotating buffers): threads make their own paths. */
static void path_of(char *buf, size_t size, const char *fmt, int i) {
  char name[32];
  snprintf(name, sizeof name, fmt, i);
  int n = snprintf(buf, size, "%s/%s", test_dir, name);
  test_assert(n > 0 && (size_t)n < size);
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  struct result *r = &results[t];
  r->checksum = 1469598103934665603ULL;
  unsigned char buf[4096];
  char path[PATH_MAX];
  for (int j = 0; j < N_ITER; j++) {
    int i = (t + j) % N_FILES;
    path_of(path, sizeof path, "f%02d", i);
    struct stat st;
    test_assert(stat(path, &st) == 0);
    test_assert(S_ISREG(st.st_mode) && (size_t)st.st_size == file_size[i]);
    r->stats++;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    test_assert(fd >= 0);
    r->opens++;
    struct stat fst;
    test_assert(fstat(fd, &fst) == 0 && fst.st_size == st.st_size);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      r->checksum = fnv(r->checksum, buf, (size_t)n);
      got += (size_t)n;
    }
    test_assert(n == 0 && got == file_size[i]);
    r->bytes += (long)got;
    test_assert(close(fd) == 0);
    if (j % 10 == 9) {
      path_of(path, sizeof path, "missing-%02d", t);
      errno = 0;
      test_assert(stat(path, &st) == -1 && errno == ENOENT);
      r->enoent++;
    }
  }
  return NULL;
}

static void *fifo_reader(void *arg) {
  (void)arg;
  /* A writer (the main thread's O_RDWR fd) exists already, so this open does not block. */
  char path[PATH_MAX];
  path_of(path, sizeof path, "fifo", 0);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  test_assert(fd >= 0);
  test_assert(sem_post(&reader_ready) == 0);
  ssize_t n;
  while ((n = read(fd, fifo_got + fifo_len, sizeof fifo_got - 1 - (size_t)fifo_len)) > 0) {
    if (fifo_data_after_workers < 0) fifo_data_after_workers = atomic_load(&workers_done);
    fifo_len += n;
  }
  test_assert(n == 0);
  fifo_eof = 1;
  test_assert(close(fd) == 0);
  return NULL;
}

int main(int argc, char **argv) {
  test_init(argc, argv, "threads_stat");
  uint64_t expect = 0;
  for (int i = 0; i < N_FILES; i++) {
    file_size[i] = size_of(i);
    unsigned char *data = malloc(file_size[i]);
    test_assert(data != NULL);
    for (size_t k = 0; k < file_size[i]; k++) data[k] = byte_of(i, k);
    char name[32];
    snprintf(name, sizeof name, "f%02d", i);
    int fd = check_ok(open(P(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    test_assert(write(fd, data, file_size[i]) == (ssize_t)file_size[i]);
    check_ok(close(fd));
    expect += file_size[i];
    free(data);
  }
  obs("%d files, %llu bytes in all", N_FILES, (unsigned long long)expect);

  check_ok(mkfifo(P("fifo"), 0644));
  int keep = check_ok(open(P("fifo"), O_RDWR | O_CLOEXEC));
  test_assert(sem_init(&reader_ready, 0, 0) == 0);
  pthread_t reader;
  test_assert(pthread_create(&reader, NULL, fifo_reader, NULL) == 0);
  while (sem_wait(&reader_ready) != 0) test_assert(errno == EINTR);
  usleep(100 * 1000); /* let the reader get into its read (not needed for correctness) */

  pthread_t th[N_THREADS];
  for (int t = 0; t < N_THREADS; t++)
    test_assert(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < N_THREADS; t++) test_assert(pthread_join(th[t], NULL) == 0);
  atomic_store(&workers_done, 1);
  test_assert(fifo_len == 0 && !fifo_eof); /* nothing was written yet */

  long opens = 0, stats = 0, bytes = 0, enoent = 0;
  uint64_t all = 1469598103934665603ULL;
  for (int t = 0; t < N_THREADS; t++) {
    struct result *r = &results[t];
    obs("thread %02d: stat %ld open %ld bytes %ld enoent %ld checksum %016llx", t, r->stats,
        r->opens, r->bytes, r->enoent, (unsigned long long)r->checksum);
    test_assert(r->stats == N_ITER && r->opens == N_ITER && r->enoent == N_ITER / 10);
    opens += r->opens;
    stats += r->stats;
    bytes += r->bytes;
    enoent += r->enoent;
    all = fnv(all, (const unsigned char *)&r->checksum, sizeof r->checksum);
  }
  obs("all threads: stat %ld open %ld bytes %ld enoent %ld checksum %016llx", stats, opens, bytes,
      enoent, (unsigned long long)all);
  /* Every file is read N_THREADS * N_ITER / N_FILES times. */
  test_assert(bytes == (long)expect * (N_THREADS * N_ITER / N_FILES));

  size_t len = strlen(FIFO_MSG);
  test_assert(write(keep, FIFO_MSG, len) == (ssize_t)len);
  check_ok(close(keep)); /* the last writer: the reader sees EOF after the message */
  test_assert(pthread_join(reader, NULL) == 0);
  fifo_got[fifo_len] = '\0';
  obs("fifo reader got %zd bytes: %.*s", fifo_len, (int)strcspn(fifo_got, "\n"), fifo_got);
  obs("fifo data arrived after the workers finished: %s",
      fifo_data_after_workers == 1 ? "yes" : "no");
  obs("fifo reader saw EOF: %s", fifo_eof ? "yes" : "no");
  test_assert(fifo_len == (ssize_t)len && strcmp(fifo_got, FIFO_MSG) == 0);
  test_assert(fifo_data_after_workers == 1 && fifo_eof);
  check_ok(unlink(P("fifo")));
  test_done();
}
