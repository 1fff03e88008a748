/* Benchmark helper: N stat() calls on one path; prints the time per call measured around the
 * loop only (process start-up and sbrun's connection are not counted). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PATH N\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  struct stat st;
  if (stat(argv[1], &st) != 0) {
    perror(argv[1]);
    return 1;
  }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++)
    if (stat(argv[1], &st) != 0) {
      perror("stat");
      return 1;
    }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
  printf("stat calls %ld us_per_call %.3f\n", n, us / n);
  return 0;
}
