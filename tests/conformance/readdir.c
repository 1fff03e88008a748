/* Directory listing: readdir sees every entry exactly once with the right d_type, also when
 * getdents64 is called with a small buffer; rewinddir starts over. */
#include "util.h"

struct linux_dirent64_ {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  test_init(argc, argv, "readdir");
  check_ok(mkdir(P("d"), 0755));
  char name[64];
  for (int i = 0; i < 60; i++) {
    snprintf(name, sizeof name, "d/file-%02d-with-a-longer-name-to-fill-records", i);
    write_file(P(name), "x", 0644);
  }
  check_ok(mkdir(P("d/subdir"), 0755));
  check_ok(symlink("file-00", P("d/link")));
  check_ok(mkfifo(P("d/fifo"), 0644));

  DIR *dir = opendir(P("d"));
  test_assert(dir != NULL);
  char *names[128];
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    test_assert(n < 128);
    char line[300];
    const char *t = de->d_type == DT_REG ? "reg" : de->d_type == DT_DIR ? "dir" : de->d_type == DT_LNK ? "lnk"
                  : de->d_type == DT_FIFO ? "fifo" : de->d_type == DT_UNKNOWN ? "unknown" : "other";
    snprintf(line, sizeof line, "%s %s", de->d_name, t);
    names[n++] = strdup(line);
  }
  qsort(names, n, sizeof names[0], cmp);
  obs("%d entries", n);
  test_assert(n == 60 + 5);
  for (int i = 0; i < n; i++) obs("  %s", names[i]);
  rewinddir(dir);
  int m = 0;
  while (readdir(dir) != NULL) m++;
  test_assert(m == n);
  check_ok(closedir(dir));

  /* Raw getdents64 with a buffer that holds only a couple of records at a time. */
  int fd = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  char small[8];
  check_err("getdents64 buffer too small", syscall(SYS_getdents64, fd, small, sizeof small), EINVAL);
  char buf[160] __attribute__((aligned(8)));
  int total = 0, calls = 0;
  long r;
  while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    calls++;
    for (long off = 0; off < r;) {
      struct linux_dirent64_ *d = (struct linux_dirent64_ *)(buf + off);
      test_assert(d->d_reclen > 0 && off + d->d_reclen <= r);
      total++;
      off += d->d_reclen;
    }
  }
  test_assert(r == 0);
  obs("small-buffer getdents64: %d entries, more than one call: %s", total, calls > 1 ? "yes" : "no");
  test_assert(total == n && calls > 1);
  check_ok(close(fd));
  /* getdents on a regular file. */
  fd = check_ok(open(P("d/file-00-with-a-longer-name-to-fill-records"), O_RDONLY));
  check_err("getdents64 on a file", syscall(SYS_getdents64, fd, buf, sizeof buf), ENOTDIR);
  check_ok(close(fd));
  test_done();
}
