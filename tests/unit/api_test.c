/* The C API of <splitbrain.h> without sbrun:
 *   - outside sbrun (SB_CONTROL_FD unset, malformed, or naming a closed fd) every call fails
 *     with ENOSYS and sb_available() is 0;
 *   - against a fake control fd (one end of a SOCK_SEQPACKET socketpair, so that each write is
 *     one record) the calls write exactly the protocol's lines, refuse bad names without writing
 *     anything, parse the scope line, and retry a read or write interrupted by a signal.
 * Built as strict C11 with -Werror (tests/meson.build). Prints one line per failed check and
 * exits 1 if any failed. */
#define _POSIX_C_SOURCE 200809L

#include "splitbrain.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifdef NDEBUG
#error "this test must not be built with NDEBUG"
#endif

int api_header_only_probe(void);

static int failures = 0;

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "FAILED: %s at %s:%d\n", #cond, __FILE__, __LINE__);    \
      ++failures;                                                             \
    }                                                                         \
  } while (0)

/* `call` returns -1 with errno `err`. */
#define CHECK_ERR(call, err)                                                           \
  do {                                                                                 \
    int r_;                                                                            \
    errno = 0;                                                                         \
    r_ = (call);                                                                       \
    if (r_ != -1 || errno != (err)) {                                                  \
      fprintf(stderr, "FAILED: %s gave %d, errno %d (%s); expected -1, errno %s at %s:%d\n", \
              #call, r_, errno, strerror(errno), #err, __FILE__, __LINE__);            \
      ++failures;                                                                      \
    }                                                                                  \
  } while (0)

static void set_env_fd(int fd) {
  char buf[16];
  snprintf(buf, sizeof buf, "%d", fd);
  CHECK(setenv(SB_CONTROL_FD_ENV, buf, 1) == 0);
}

/* Every call fails with ENOSYS; sb_available() is 0 and keeps errno. */
static void check_all_enosys(const char* why) {
  char buf[64];
  fprintf(stderr, "-- not under sbrun: %s\n", why);
  errno = 1234;
  CHECK(sb_available() == 0);
  CHECK(errno == 1234);
  CHECK_ERR(sb_enter("b"), ENOSYS);
  CHECK_ERR(sb_enter(NULL), ENOSYS);
  CHECK_ERR(sb_enter("bad name"), ENOSYS); /* not under sbrun comes first */
  CHECK_ERR(sb_enter(""), ENOSYS);
  CHECK_ERR(sb_local(), ENOSYS);
  CHECK_ERR(sb_exit(), ENOSYS);
  CHECK_ERR(sb_scope(buf, sizeof buf), ENOSYS);
  CHECK_ERR(sb_scope(NULL, 0), ENOSYS);
}

static void test_outside_sbrun(void) {
  static const char* const bad_values[] = {"", "abc", "-1", "3x", " 3", "+3", "0x3",
                                           "2147483648", "99999999999999999999"};
  size_t i;
  int closed;
  char num[16];

  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
  check_all_enosys("SB_CONTROL_FD unset");

  for (i = 0; i < sizeof bad_values / sizeof bad_values[0]; ++i) {
    CHECK(setenv(SB_CONTROL_FD_ENV, bad_values[i], 1) == 0);
    check_all_enosys(bad_values[i]);
  }

  /* A number that names no open fd (the variable leaked out of sbrun). */
  closed = dup(2);
  CHECK(closed >= 0);
  CHECK(close(closed) == 0);
  set_env_fd(closed);
  snprintf(num, sizeof num, "closed fd %d", closed);
  check_all_enosys(num);
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
}

/* The fake control fd: sv[0] is the program's, sv[1] plays sbrun. */
static int sv[2];

/* The next record the API wrote, or "" when there is none. */
static const char* next_record(void) {
  static char buf[512];
  ssize_t n = recv(sv[1], buf, sizeof buf - 1, MSG_DONTWAIT);
  if (n < 0) {
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    n = 0;
  }
  buf[n] = '\0';
  return buf;
}

#define CHECK_RECORD(expected)                                                            \
  do {                                                                                    \
    const char* got_ = next_record();                                                     \
    if (strcmp(got_, (expected)) != 0) {                                                  \
      fprintf(stderr, "FAILED: wrote \"%s\", expected \"%s\" at %s:%d\n", got_, (expected), \
              __FILE__, __LINE__);                                                        \
      ++failures;                                                                         \
    }                                                                                     \
  } while (0)

static void answer(const char* line) {
  size_t len = strlen(line);
  CHECK(send(sv[1], line, len, 0) == (ssize_t)len);
}

static void test_fake_control_fd(void) {
  char name[SB_NAME_MAX + 2];
  char expected[SB_NAME_MAX + 16];
  char buf[64];

  fprintf(stderr, "-- fake control fd\n");
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  set_env_fd(sv[0]);
  CHECK(sb_available() == 1);

  CHECK(sb_enter("b") == 0);
  CHECK_RECORD("enter b\n");
  CHECK(sb_enter(NULL) == 0);
  CHECK_RECORD("enter\n");
  CHECK(sb_enter("board-b.example_2") == 0);
  CHECK_RECORD("enter board-b.example_2\n");
  CHECK(sb_local() == 0);
  CHECK_RECORD("local\n");
  CHECK(sb_exit() == 0);
  CHECK_RECORD("exit\n");

  /* Names the protocol cannot carry are refused here, and nothing is written. */
  CHECK_ERR(sb_enter(""), EINVAL);
  CHECK_ERR(sb_enter("a b"), EINVAL);
  CHECK_ERR(sb_enter("b\nexit"), EINVAL);
  CHECK_ERR(sb_enter("b\n"), EINVAL);
  CHECK_ERR(sb_enter("\tb"), EINVAL);
  memset(name, 'x', sizeof name);
  name[SB_NAME_MAX + 1] = '\0';
  CHECK_ERR(sb_enter(name), ENAMETOOLONG);
  CHECK_RECORD("");
  name[SB_NAME_MAX] = '\0'; /* the longest name that fits */
  CHECK(sb_enter(name) == 0);
  snprintf(expected, sizeof expected, "enter %s\n", name);
  CHECK_RECORD(expected);

  /* Reading the scope: one line, the newline stripped. */
  answer("b\n");
  CHECK(sb_scope(buf, sizeof buf) == 1);
  CHECK(strcmp(buf, "b") == 0);
  answer("local\n");
  CHECK(sb_scope(buf, sizeof buf) == 5);
  CHECK(strcmp(buf, "local") == 0);
  answer("board\n");
  CHECK(sb_scope(buf, 6) == 5); /* exactly fits with its NUL */
  CHECK(strcmp(buf, "board") == 0);
  answer("board\n");
  CHECK_ERR(sb_scope(buf, 5), ERANGE);
  answer("board\n");
  CHECK_ERR(sb_scope(NULL, 0), ERANGE);
  answer("no-newline");
  CHECK_ERR(sb_scope(buf, sizeof buf), EIO);
  answer("");
  CHECK_ERR(sb_scope(buf, sizeof buf), EIO);
  CHECK_RECORD(""); /* reading wrote nothing */

  /* The fd was closed behind the API's back: as if not under sbrun. */
  CHECK(close(sv[0]) == 0);
  check_all_enosys("control fd closed");
  CHECK(close(sv[1]) == 0);
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
}

/* EINTR: a signal (handler without SA_RESTART) interrupts a blocked read or write; the API
 * retries and the call succeeds. */
static volatile sig_atomic_t signals_seen = 0;
static void on_signal(int sig) {
  (void)sig;
  ++signals_seen;
}

struct interrupter {
  pthread_t target;
  int drain; /* 0: answer a read; N > 0: receive the N records that filled the socket */
};

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = 0;
  ts.tv_nsec = ms * 1000000L;
  nanosleep(&ts, NULL);
}

static void* interrupt_then_unblock(void* arg) {
  struct interrupter* it = (struct interrupter*)arg;
  sleep_ms(100);
  pthread_kill(it->target, SIGUSR1);
  sleep_ms(100);
  pthread_kill(it->target, SIGUSR1);
  sleep_ms(100);
  if (it->drain > 0) {
    char buf[64];
    int i;
    for (i = 0; i < it->drain; ++i) {
      CHECK(recv(sv[1], buf, sizeof buf, 0) == 7);
    }
  } else {
    answer("b\n");
  }
  return NULL;
}

static void test_eintr(void) {
  struct sigaction sa;
  struct interrupter it;
  pthread_t thread;
  char buf[64];
  int size = 1;
  int filled = 0;

  fprintf(stderr, "-- EINTR\n");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocked read or write returns EINTR */
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  set_env_fd(sv[0]);

  it.target = pthread_self();
  it.drain = 0;
  signals_seen = 0;
  CHECK(pthread_create(&thread, NULL, interrupt_then_unblock, &it) == 0);
  CHECK(sb_scope(buf, sizeof buf) == 1); /* blocks until the answer, through two signals */
  CHECK(strcmp(buf, "b") == 0);
  CHECK(signals_seen == 2);
  CHECK(pthread_join(thread, NULL) == 0);

  /* Fill the socket so that the next write blocks. */
  CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
  while (send(sv[0], "filler\n", 7, MSG_DONTWAIT) == 7) {
    ++filled;
  }
  CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
  CHECK(filled > 0);
  it.drain = filled;
  signals_seen = 0;
  CHECK(pthread_create(&thread, NULL, interrupt_then_unblock, &it) == 0);
  CHECK(sb_local() == 0); /* blocks until drained, through two signals */
  CHECK(signals_seen == 2);
  CHECK(pthread_join(thread, NULL) == 0);
  CHECK_RECORD("local\n"); /* written once, after the fillers */
  CHECK_RECORD("");
  CHECK(close(sv[0]) == 0);
  CHECK(close(sv[1]) == 0);
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
}

int main(void) {
  CHECK(api_header_only_probe() == 1);
  test_outside_sbrun();
  test_fake_control_fd();
  test_eintr();
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all checks passed\n");
  return 0;
}
