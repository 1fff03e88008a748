/* Helper for the scope-threads case: scopes are per thread.
 *
 *   scope_threads TARGET ITERATIONS
 *
 * Thread R enters TARGET (sb_enter), thread L enters the local scope (sb_local); then, ITERATIONS
 * times and in step (a barrier each round, so the two really overlap), each reads /etc/hostname
 * and uname's nodename. R must see the target's values every time and L this machine's: the
 * first round fixes what each side is, every later round must agree with it, and the two sides
 * must differ. R then checks that a thread it starts and a child it forks inherit its scope.
 * The main thread checks the errors (unknown target, exit on an empty stack) and that its own
 * scope never moved.
 *
 * Prints a fixed summary (the harness compares it with what A and B are called) and exits 0, or
 * prints what went wrong and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "splitbrain.h"

static const char* target;
static int iterations;
static pthread_barrier_t barrier;
static int failed = 0;

#define FAIL(...)                     \
  do {                                \
    fprintf(stderr, __VA_ARGS__);     \
    fputc('\n', stderr);              \
    __atomic_store_n(&failed, 1, __ATOMIC_SEQ_CST); \
  } while (0)

/* /etc/hostname's first line, or "error:ERRNO". */
static void read_hostname_file(char* out, size_t len) {
  char buf[256];
  int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0) {
    snprintf(out, len, "error:%s", strerror(errno));
    return;
  }
  n = read(fd, buf, sizeof buf - 1);
  if (n < 0) {
    snprintf(out, len, "error:%s", strerror(errno));
    n = 0;
  } else {
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    snprintf(out, len, "%s", buf);
  }
  close(fd);
}

static void read_nodename(char* out, size_t len) {
  struct utsname u;
  if (uname(&u) != 0) {
    snprintf(out, len, "error:%s", strerror(errno));
  } else {
    snprintf(out, len, "%s", u.nodename);
  }
}

static void scope_of_thread(char* out, size_t len) {
  if (sb_scope(out, len) < 0) {
    snprintf(out, len, "error:%s", strerror(errno));
  }
}

struct side {
  const char* name;  /* "remote" or "local" */
  int remote;
  char scope[64];
  char file[256];    /* the first round's values */
  char node[256];
  int file_same;     /* rounds that agreed with the first */
  int node_same;
  char inherited[512];
};

static struct side sides[2];

static void* child_thread_main(void* arg) {
  struct side* s = arg;
  char scope[64], node[256];
  scope_of_thread(scope, sizeof scope);
  read_nodename(node, sizeof node);
  snprintf(s->inherited, sizeof s->inherited, "thread %s %s", scope, node);
  return NULL;
}

/* A thread it starts and a process it forks see the same scope as the thread itself. */
static void check_inheritance(struct side* s) {
  pthread_t t;
  int pipefd[2];
  pid_t pid;
  char child[256] = "";
  ssize_t n;
  int status = 0;
  size_t used;
  if (pthread_create(&t, NULL, child_thread_main, s) != 0 || pthread_join(t, NULL) != 0) {
    FAIL("%s: pthread_create failed", s->name);
    return;
  }
  if (pipe2(pipefd, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
    FAIL("%s: pipe or fork failed: %s", s->name, strerror(errno));
    return;
  }
  if (pid == 0) {
    char scope[64], file[256], line[512];
    scope_of_thread(scope, sizeof scope);
    read_hostname_file(file, sizeof file);
    snprintf(line, sizeof line, "child %s %s", scope, file);
    if (write(pipefd[1], line, strlen(line)) < 0) {
      _exit(1);
    }
    _exit(0);
  }
  close(pipefd[1]);
  n = read(pipefd[0], child, sizeof child - 1);
  child[n > 0 ? n : 0] = '\0';
  close(pipefd[0]);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    FAIL("%s: the child failed (status %d)", s->name, status);
  }
  used = strlen(s->inherited);
  snprintf(s->inherited + used, sizeof s->inherited - used, ", %s", child);
}

static void* side_main(void* arg) {
  struct side* s = arg;
  int i;
  int rc = s->remote ? sb_enter(target) : sb_local();
  if (rc != 0) {
    FAIL("%s: %s failed: %s", s->name, s->remote ? "sb_enter" : "sb_local", strerror(errno));
  }
  scope_of_thread(s->scope, sizeof s->scope);
  for (i = 0; i < iterations; ++i) {
    char file[256], node[256];
    pthread_barrier_wait(&barrier);
    read_hostname_file(file, sizeof file);
    read_nodename(node, sizeof node);
    if (i == 0) {
      memcpy(s->file, file, sizeof file);
      memcpy(s->node, node, sizeof node);
    }
    if (strcmp(file, s->file) == 0) {
      ++s->file_same;
    } else {
      FAIL("%s round %d: /etc/hostname says '%s', round 0 said '%s'", s->name, i, file, s->file);
    }
    if (strcmp(node, s->node) == 0) {
      ++s->node_same;
    } else {
      FAIL("%s round %d: nodename '%s', round 0 said '%s'", s->name, i, node, s->node);
    }
  }
  check_inheritance(s);
  if (sb_exit() != 0) {
    FAIL("%s: sb_exit failed: %s", s->name, strerror(errno));
  }
  return NULL;
}

int main(int argc, char** argv) {
  pthread_t threads[2];
  char before[64], after[64];
  int i;
  if (argc != 3) {
    fprintf(stderr, "usage: %s TARGET ITERATIONS\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  target = argv[1];
  iterations = atoi(argv[2]);
  if (!sb_available()) {
    printf("not under sbrun: sb_enter: %s\n", sb_enter(target) == 0 ? "ok" : strerror(errno));
    return 1;
  }
  scope_of_thread(before, sizeof before);
  printf("main scope: %s\n", before);
  errno = 0;
  printf("enter nope: %s\n", sb_enter("nope") == 0 ? "ok" : strerror(errno));
  if (strcmp(before, "local") == 0) {
    errno = 0;
    printf("exit on an empty stack: %s\n", sb_exit() == 0 ? "ok" : strerror(errno));
  }

  pthread_barrier_init(&barrier, NULL, 2);
  sides[0].name = "remote";
  sides[0].remote = 1;
  sides[1].name = "local";
  sides[1].remote = 0;
  for (i = 0; i < 2; ++i) {
    if (pthread_create(&threads[i], NULL, side_main, &sides[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < 2; ++i) {
    pthread_join(threads[i], NULL);
  }
  for (i = 0; i < 2; ++i) {
    struct side* s = &sides[i];
    printf("%s thread: scope %s, /etc/hostname '%s' %d/%d, nodename '%s' %d/%d\n", s->name,
           s->scope, s->file, s->file_same, iterations, s->node, s->node_same, iterations);
    printf("%s thread inherits: %s\n", s->name, s->inherited);
  }
  if (strcmp(sides[0].file, sides[1].file) == 0 || strcmp(sides[0].node, sides[1].node) == 0) {
    FAIL("both threads saw the same machine");
  }
  scope_of_thread(after, sizeof after);
  printf("main scope after: %s\n", after);
  return failed ? 1 : 0;
}
