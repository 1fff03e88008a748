/* Helper for the agent-killed case: opens argv[1], prints "opened", then reads it again and
 * again with pread until a read fails. Prints the errno name and exits 3 on failure, or exits 4
 * if no read failed within argv[2] seconds (default 60). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [SECONDS]\n", argv[0]);
    return 2;
  }
  int limit = argc > 2 ? atoi(argv[2]) : 60;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) {
    printf("open failed: %s\n", strerror(errno));
    return 2;
  }
  printf("opened\n");
  char buf[4096];
  time_t start = time(NULL);
  long reads = 0;
  while (time(NULL) - start < limit) {
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n < 0) {
      int e = errno;
      printf("read failed after %s reads: %s\n", reads > 0 ? "some" : "no", e == EIO ? "EIO" : strerror(e));
      return 3;
    }
    reads++;
  }
  printf("no read failed in %d s\n", limit);
  return 4;
}
