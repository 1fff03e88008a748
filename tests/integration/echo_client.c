/* A TCP client for the sockets cases and the benchmark: resolves HOST (getaddrinfo, so under
 * sbrun in a remote scope B's /etc/hosts answers), connects to PORT, and plays COUNT 1-byte
 * ping-pongs. Prints the address it reached and the bytes echoed on stdout, and the mean round
 * trip in microseconds on stderr.
 *
 *   echo_client HOST PORT COUNT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s HOST PORT COUNT\n", argv[0]);
    return 2;
  }
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
  int e = getaddrinfo(argv[1], argv[2], &hints, &res);
  if (e != 0) {
    fprintf(stderr, "echo_client: cannot resolve %s: %s\n", argv[1], gai_strerror(e));
    return 1;
  }
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
    perror("echo_client: connect");
    return 1;
  }
  char text[64];
  inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof text);
  printf("connected to %s\n", text);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  long count = atol(argv[3]), echoed = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < count; i++) {
    char c = 'a' + i % 26, back;
    if (send(fd, &c, 1, 0) != 1 || recv(fd, &back, 1, MSG_WAITALL) != 1 || back != c) {
      perror("echo_client: ping-pong");
      return 1;
    }
    echoed++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("echoed %ld bytes\n", echoed);
  double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3;
  fprintf(stderr, "round trip: %.1f us\n", count > 0 ? us / count : 0.0);
  freeaddrinfo(res);
  close(fd);
  return 0;
}
