/* Benchmark helper: reads a file from start to end in CHUNK-byte read() calls into one reused
 * buffer; prints bytes, seconds and MB/s measured around the loop only. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PATH CHUNK_BYTES\n", argv[0]);
    return 2;
  }
  size_t chunk = (size_t)atol(argv[2]);
  char *buf = malloc(chunk);
  int fd = open(argv[1], O_RDONLY);
  if (!buf || fd < 0) {
    perror(argv[1]);
    return 1;
  }
  for (size_t i = 0; i < chunk; i += 4096) buf[i] = 0; /* touch the buffer before timing */
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  long long total = 0;
  long calls = 0;
  ssize_t n;
  while ((n = read(fd, buf, chunk)) > 0) {
    total += n;
    calls++;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (n < 0) {
    perror("read");
    return 1;
  }
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  printf("read bytes %lld calls %ld seconds %.4f MB_per_s %.1f us_per_call %.2f\n", total, calls, s,
         total / 1e6 / s, s * 1e6 / calls);
  return 0;
}
