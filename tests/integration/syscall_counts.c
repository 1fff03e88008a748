/* A program with known syscall counts for the --trace/--stats tests: opens PATH N times, reads it
 * to EOF in 4096-byte reads, closes it. For a file of fewer than 4096 bytes that is exactly N
 * openat, 2N read and N close calls on PATH. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PATH N\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[2]);
  char buf[4096];
  for (int i = 0; i < n; i++) {
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
      perror(argv[1]);
      return 1;
    }
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  }
  return 0;
}
