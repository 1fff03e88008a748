/* Cost of waiting under sbrun: `bench_poll DIR MODE N` runs N waits and prints µs per wait.
 * DIR holds a FIFO (remote under sbrun when DIR is on the target); the pipe is always local.
 *   local-poll   poll(pipe, 0)                      a local event loop's poll: the trap's cost
 *   local-epoll  epoll_wait(epoll{pipe}, 0)         the same for epoll
 *   remote-poll  poll(fifo, 0)                      one look on B: a round trip
 *   mixed-poll   poll(fifo + pipe, 0)               a look on both sides
 *   mixed-ready  poll(fifo + pipe, -1), pipe ready  the local side wins a blocking wait
 *   remote-ready poll(fifo, -1), fifo ready         a blocking wait B answers at once
 *   mixed-epoll  epoll_wait(epoll{fifo, pipe}, 0)   a look through epoll
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: bench_poll DIR MODE N\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/bench_poll.fifo", argv[1]);
  unlink(path);
  if (mkfifo(path, 0600) != 0) { perror("mkfifo"); return 1; }
  int fr = open(path, O_RDONLY | O_NONBLOCK);
  int fw = open(path, O_WRONLY);
  int p[2];
  if (fr < 0 || fw < 0 || pipe(p) != 0) { perror("open"); return 1; }
  const char *mode = argv[2];
  long n = atol(argv[3]);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
  if (strcmp(mode, "mixed-epoll") == 0) epoll_ctl(ep, EPOLL_CTL_ADD, fr, &ev);
  if (strcmp(mode, "mixed-ready") == 0) (void)!write(p[1], "x", 1);
  if (strcmp(mode, "remote-ready") == 0) (void)!write(fw, "x", 1);
  struct pollfd both[2] = {{fr, POLLIN, 0}, {p[0], POLLIN, 0}};
  struct pollfd pipe_only = {p[0], POLLIN, 0};
  struct epoll_event out[4];
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    if (strcmp(mode, "local-poll") == 0) poll(&pipe_only, 1, 0);
    else if (strcmp(mode, "local-epoll") == 0) epoll_wait(ep, out, 4, 0);
    else if (strcmp(mode, "remote-poll") == 0) poll(both, 1, 0);
    else if (strcmp(mode, "mixed-poll") == 0) poll(both, 2, 0);
    else if (strcmp(mode, "mixed-ready") == 0) poll(both, 2, -1);
    else if (strcmp(mode, "remote-ready") == 0) poll(both, 1, -1);
    else if (strcmp(mode, "mixed-epoll") == 0) epoll_wait(ep, out, 4, 0);
    else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
  }
  printf("%s: %.2f us per wait\n", mode, (now_us() - t0) / n);
  unlink(path);
  return 0;
}
