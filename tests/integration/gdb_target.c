// The program the gdb-* cases debug through `sbrun --gdb` (gdb_cases.py). It reads two files
// that exist only on B, in the main thread or in a second one, and exits 7. Lines marked
// "GDB-LINE name" are where the cases put breakpoints (they find the numbers in this file).
//
//   gdb_target plain FIRST SECOND     main reads FIRST, then SECOND
//   gdb_target threads FIRST SECOND   a second thread reads FIRST; main reads SECOND meanwhile
//   gdb_target attach FIRST SECOND    waits (locally) until gdb sets `go`, then as plain
//   gdb_target fifo FIRST FIFO        a second thread reads FIRST while main waits in a read of
//                                     FIFO on B (a remote call in flight at the breakpoint)
//   gdb_target signal FIRST SECOND    raises SIGUSR1, whose handler must run; then as plain
//   gdb_target fork FIRST SECOND      a forked child runs child_work (where gdb has a breakpoint
//                                     in the parent) and reads FIRST; then as plain

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char first[64];
char second[64];
char from_thread[64];
volatile int watched;
volatile int go;
volatile sig_atomic_t got_usr1;

static void on_usr1(int sig) {
  (void)sig;
  got_usr1 = 1;
}

static void read_file(const char* path, char* buf, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    perror(path);
    exit(2);
  }
  ssize_t n = read(fd, buf, size - 1);
  if (n < 0) {
    perror("read");
    exit(3);
  }
  buf[n] = 0;
  close(fd);
}

// Not inlined, so that gdb can break on it by name.
__attribute__((noinline)) void thread_mark(const char* buf) {
  __asm__ volatile("" : : "r"(buf) : "memory");
}

// Runs in a forked child only: a breakpoint gdb put here in the parent must not kill it.
__attribute__((noinline)) int child_work(const char* path) {
  char buf[64];
  read_file(path, buf, sizeof(buf));
  printf("child: %s", buf);
  return 0;
}

static void* worker(void* path) {
  if (go == 2) {
    usleep(300000);  // Main is in its FIFO read by now (if not, the case still holds).
  }
  read_file(path, from_thread, sizeof(from_thread));
  thread_mark(from_thread);  // GDB-LINE thread
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: gdb_target plain|threads|attach|fifo|signal|fork FIRST SECOND\n");
    return 1;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  if (strcmp(argv[1], "attach") == 0) {
    printf("waiting %d\n", (int)getpid());
    while (!go) {
      usleep(10000);
    }
  }
  if (strcmp(argv[1], "threads") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, worker, argv[2]);
    read_file(argv[3], second, sizeof(second));
    pthread_join(t, NULL);
    printf("thread: %s", from_thread);
    printf("second: %s", second);
    return 7;
  }
  if (strcmp(argv[1], "fifo") == 0) {
    // O_RDWR: the open never waits for a writer; the read waits on B until one writes.
    int fd = open(argv[3], O_RDWR);
    if (fd < 0) {
      perror(argv[3]);
      return 2;
    }
    go = 2;
    pthread_t t;
    pthread_create(&t, NULL, worker, argv[2]);
    ssize_t n = read(fd, second, sizeof(second) - 1);
    if (n < 0) {
      perror("read fifo");
      return 3;
    }
    second[n] = 0;
    pthread_join(t, NULL);
    printf("thread: %s", from_thread);
    printf("fifo: %s", second);
    return 7;
  }
  if (strcmp(argv[1], "fork") == 0) {
    pid_t child = fork();
    if (child == 0) {
      _exit(child_work(argv[2]));
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child status: %d %d\n", WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status)
                                                                      : WTERMSIG(status));
  }
  if (strcmp(argv[1], "signal") == 0) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    if (!got_usr1) {
      return 4;
    }
  }
  read_file(argv[2], first, sizeof(first));
  watched = 1;  // GDB-LINE first
  read_file(argv[3], second, sizeof(second));
  printf("second: %s", second);  // GDB-LINE second
  watched = 42;
  printf("watched: %d\n", watched);
  return 7;
}
