/* Running programs: exit codes, deaths by signal, exec errors, PATH search, scripts, argv, envp,
 * cwd and stdio, through fork+exec, vfork+exec, posix_spawn, execveat and an exec from a second
 * thread.
 *
 * The scripts live in the test directory, which under sbrun exists only on the remote, so they
 * run only if exec runs them there (DESIGN D7); so do the exec errors (EACCES for a file without
 * x bit, ENOEXEC, ENOTDIR ...), which must be the remote's. Every child's stdout is this
 * program's, and what it writes there must come out in order, before its parent learns that it
 * ended. (Children's stderr is not compared.)
 */
#include "util.h"
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static int wait_status(pid_t pid) {
  int status;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) == -1 && errno == EINTR) {
  }
  test_assert(r == pid);
  return status;
}

enum how { EXECV, EXECVP, EXECVE };

/* fork, then exec in the child; reports the exec's errno through a close-on-exec pipe (EOF: the
 * exec succeeded). Returns the wait status; *exec_errno gets 0 or the errno. */
static int fork_exec(enum how how, const char *path, char *const argv[], char *const envp[],
                     const char *cwd, const char *path_env, int *exec_errno) {
  int p[2];
  test_assert(pipe2(p, O_CLOEXEC) == 0);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    if (cwd && chdir(cwd) != 0) _exit(120);
    if (path_env && setenv("PATH", path_env, 1) != 0) _exit(121);
    if (how == EXECV)
      execv(path, argv);
    else if (how == EXECVP)
      execvp(path, argv);
    else
      execve(path, argv, envp);
    int e = errno;
    (void)!write(p[1], &e, sizeof e);
    _exit(127);
  }
  close(p[1]);
  int e = 0;
  ssize_t n = read(p[0], &e, sizeof e);
  test_assert(n == 0 || n == (ssize_t)sizeof e);
  close(p[0]);
  *exec_errno = n == 0 ? 0 : e;
  return wait_status(pid);
}

static void run_expect(const char *label, enum how how, const char *path, char *const argv[],
                       char *const envp[], const char *cwd, const char *path_env,
                       int want_errno, const char *want_status) {
  obs("%s:", label);
  int e;
  int status = fork_exec(how, path, argv, envp, cwd, path_env, &e);
  const char *d = wait_status_text(status);
  obs("  -> exec %s, %s", errname(e), d);
  test_assert(e == want_errno);
  test_assert(strcmp(d, want_status) == 0);
}

static void sh_expect(const char *cmd, const char *want_status) {
  char label[256];
  snprintf(label, sizeof label, "sh -c '%s'", cmd);
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  run_expect(label, EXECV, "/bin/sh", argv, NULL, NULL, NULL, 0, want_status);
}

/* Runs `sh -c CMD` with its stdout on a pipe; returns the pid after reading FIRST from it. */
static pid_t start_sh_piped(const char *cmd, int *out_fd) {
  int p[2];
  test_assert(pipe(p) == 0);
  fflush(stdout);
  pid_t pid = fork();
  test_assert(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

static void read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n + 1 < size) {
    ssize_t r = read(fd, buf + n, 1);
    test_assert(r == 1);
    if (buf[n++] == '\n') break;
  }
  buf[n] = '\0';
}

static void *blocked_thread(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

static void *exec_thread(void *arg) {
  (void)arg;
  execl("/bin/sh", "sh", "-c", "echo exec from a second thread; exit 4", (char *)NULL);
  _exit(126);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "exec_status");
  /* Everything below is relative to the test directory, so nothing absolute gets printed. */
  check_ok(chdir(test_dir));
  write_file("script.sh", "#!/bin/sh\nprintf '%s|' \"$0\" \"$@\"; echo; exit 9\n", 0755);
  write_file("noexec.sh", "#!/bin/sh\necho must not run\n", 0644);
  write_file("garbage", "this is neither ELF nor a script\n", 0755);
  write_file("badinterp.sh", "#!/nonexistent/interpreter\necho must not run\n", 0755);
  check_ok(mkdir("dir", 0755));
  check_ok(mkdir("sub", 0755));
  write_file("sub/marker", "the marker in sub\n", 0644);
  check_ok(mkdir("bin1", 0755));
  check_ok(mkdir("bin2", 0755));
  write_file("bin1/sbtool", "#!/bin/sh\necho wrong sbtool ran\n", 0644); /* no x bit: skipped */
  write_file("bin2/sbtool", "#!/bin/sh\necho bin2/sbtool ran with $# args\nexit 3\n", 0755);

  /* Exit codes and deaths by signal. */
  sh_expect("exit 7", "exited 7");
  sh_expect("exit 200", "exited 200");
  sh_expect("true", "exited 0");
  sh_expect("kill -TERM $$", "killed by signal 15");
  sh_expect("kill -KILL $$", "killed by signal 9");
  sh_expect("echo output before the signal; kill -USR1 $$", "killed by signal 10");
  sh_expect("echo one; echo two >&2; echo three", "exited 0"); /* "two" on stderr */

  /* Scripts, argv boundaries. */
  char *script_argv[] = {"./script.sh", "a", "b c", "", NULL};
  run_expect("./script.sh a 'b c' ''", EXECV, "./script.sh", script_argv, NULL, NULL, NULL, 0,
             "exited 9");

  /* exec errors. */
  char *noargs[] = {"x", NULL};
  run_expect("execvp of a program that exists nowhere", EXECVP, "sb-no-such-program-3", noargs,
             NULL, NULL, NULL, ENOENT, "exited 127");
  run_expect("execv of a missing path", EXECV, "./missing", noargs, NULL, NULL, NULL, ENOENT,
             "exited 127");
  run_expect("execv through a missing directory", EXECV, "nodir/prog", noargs, NULL, NULL, NULL,
             ENOENT, "exited 127");
  run_expect("execv through a file", EXECV, "script.sh/prog", noargs, NULL, NULL, NULL, ENOTDIR,
             "exited 127");
  run_expect("execv of a file without x bit", EXECV, "./noexec.sh", noargs, NULL, NULL, NULL,
             EACCES, "exited 127");
  run_expect("execv of a directory", EXECV, "./dir", noargs, NULL, NULL, NULL, EACCES,
             "exited 127");
  run_expect("execv of a file that is no program", EXECV, "./garbage", noargs, NULL, NULL, NULL,
             ENOEXEC, "exited 127");
  run_expect("execv of a script whose interpreter is missing", EXECV, "./badinterp.sh", noargs,
             NULL, NULL, NULL, ENOENT, "exited 127");

  /* PATH search: bin1/sbtool has no x bit (EACCES, execvp goes on), bin2/sbtool runs. */
  char *tool_argv[] = {"sbtool", "one", "two", NULL};
  run_expect("execvp sbtool with PATH=nobin:bin1:bin2", EXECVP, "sbtool", tool_argv, NULL, NULL,
             "nobin:bin1:bin2", 0, "exited 3");
  run_expect("execvp sbtool with PATH=nobin:bin1", EXECVP, "sbtool", tool_argv, NULL, NULL,
             "nobin:bin1", EACCES, "exited 127");

  /* envp is the one given to execve, not this process's environment. */
  char *env_argv[] = {"sh", "-c", "echo \"$0|$1|$SBX|${SB_NOT_SET-unset}\"", "zero", "a b", NULL};
  char *envp[] = {"SBX=from envp", "PATH=/usr/bin:/bin", NULL};
  setenv("SB_NOT_SET", "must not be seen", 1);
  run_expect("execve with its own envp", EXECVE, "/bin/sh", env_argv, envp, NULL, NULL, 0,
             "exited 0");
  unsetenv("SB_NOT_SET");

  /* The child's cwd. */
  char *cat_argv[] = {"cat", "marker", NULL};
  run_expect("cat marker after chdir sub", EXECVP, "cat", cat_argv, NULL, "sub", NULL, 0,
             "exited 0");

  /* stdin and stdout on pipes: data both ways, EOF at the end. */
  {
    int in[2], out[2];
    check_ok(pipe(in));
    check_ok(pipe(out));
    fflush(stdout);
    pid_t pid = fork();
    test_assert(pid >= 0);
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[0]), close(in[1]), close(out[0]), close(out[1]);
      execlp("wc", "wc", "-c", (char *)NULL);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
    size_t off = 0;
    while (off < sizeof big) {
      ssize_t w = write(in[1], big + off, sizeof big - off);
      test_assert(w > 0);
      off += (size_t)w;
    }
    close(in[1]);
    char buf[64] = {0};
    size_t n = 0;
    ssize_t r;
    while ((r = read(out[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    close(out[0]);
    int status = wait_status(pid);
    obs("200000 bytes through wc -c on pipes: %.*s, %s", (int)strcspn(buf, "\n"), buf,
        wait_status_text(status));
    test_assert(atoi(buf) == 200000 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  /* vfork + exec: the parent is released when the child execs or exits. */
  {
    fflush(stdout);
    pid_t pid = vfork();
    test_assert(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", "echo from vfork child; exit 5", (char *)NULL);
      _exit(127);
    }
    int status = wait_status(pid);
    obs("vfork + exec sh -c 'exit 5': %s", wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5);
    volatile int child_errno = 0;
    pid = vfork();
    test_assert(pid >= 0);
    if (pid == 0) {
      execl("./noexec.sh", "noexec.sh", (char *)NULL);
      child_errno = errno;
      _exit(127);
    }
    status = wait_status(pid);
    obs("vfork + exec of a file without x bit: %s, %s", errname(child_errno), wait_status_text(status));
    test_assert(child_errno == EACCES);
  }

  /* posix_spawn. */
  {
    pid_t pid;
    char *a1[] = {"sh", "-c", "echo from posix_spawn; exit 6", NULL};
    int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, a1, environ);
    test_assert(r == 0);
    int status = wait_status(pid);
    obs("posix_spawn sh: %s", wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 6);
    char *a2[] = {"sb-no-such-program-3", NULL};
    r = posix_spawnp(&pid, "sb-no-such-program-3", NULL, NULL, a2, environ);
    obs("posix_spawnp of a program that exists nowhere -> %s", errname(r));
    test_assert(r == ENOENT);
    char *a3[] = {"noexec.sh", NULL};
    r = posix_spawn(&pid, "./noexec.sh", NULL, NULL, a3, environ);
    obs("posix_spawn of a file without x bit -> %s", errname(r));
    test_assert(r == EACCES);
    /* A file action opens the child's stdout on a file: the program writes into it. */
    posix_spawn_file_actions_t fa;
    test_assert(posix_spawn_file_actions_init(&fa) == 0);
    test_assert(posix_spawn_file_actions_addopen(&fa, 1, "spawn.out",
                                                 O_WRONLY | O_CREAT | O_TRUNC, 0644) == 0);
    char *a4[] = {"sh", "-c", "echo into spawn.out; uname -s", NULL};
    fflush(stdout);
    r = posix_spawn(&pid, "/bin/sh", &fa, NULL, a4, environ);
    test_assert(r == 0);
    posix_spawn_file_actions_destroy(&fa);
    status = wait_status(pid);
    obs("posix_spawn with stdout on spawn.out: %s", wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char buf[128];
    read_file("spawn.out", buf, sizeof buf);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
      obs("spawn.out: %s", line);
    test_assert(strcmp(buf, "into spawn.out") == 0); /* strtok cut it at the first newline */
  }

  /* execveat relative to a directory fd, of a copy of /bin/sh that exists only here. */
  {
    static char shbin[4 << 20];
    int in = check_ok(open("/bin/sh", O_RDONLY | O_CLOEXEC));
    int out = check_ok(open("copied-sh", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755));
    ssize_t n;
    while ((n = read(in, shbin, sizeof shbin)) > 0) test_assert(write(out, shbin, (size_t)n) == n);
    test_assert(n == 0);
    check_ok(close(in));
    check_ok(close(out));
    int dfd = check_ok(open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    fflush(stdout);
    pid_t pid = fork();
    test_assert(pid >= 0);
    if (pid == 0) {
      char *a[] = {"copied-sh", "-c", "echo execveat ran \"$0\"; exit 8", NULL};
      syscall(SYS_execveat, dfd, "copied-sh", a, environ, 0);
      _exit(127);
    }
    int status = wait_status(pid);
    obs("execveat(dirfd, \"copied-sh\"): %s", wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 8);
    check_ok(close(dfd));
  }

  /* Signals sent to a running child reach the program. */
  {
    int out;
    char line[64];
    pid_t pid = start_sh_piped("echo ready; exec sleep 30", &out);
    read_line(out, line, sizeof line);
    check_ok(kill(pid, SIGTERM));
    int status = wait_status(pid);
    obs("sleep 30 after SIGTERM (read %.*s first): %s", (int)strcspn(line, "\n"), line,
        wait_status_text(status));
    test_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    close(out);

    pid = start_sh_piped("echo ready; exec sleep 30", &out);
    read_line(out, line, sizeof line);
    check_ok(kill(pid, SIGKILL));
    status = wait_status(pid);
    obs("sleep 30 after SIGKILL: %s", wait_status_text(status));
    test_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(out);

    /* Stop, continue, then a handled signal: the program's handler runs and it exits 42. */
    pid = start_sh_piped("trap 'echo got USR1; exit 42' USR1; echo ready; "
                         "while :; do sleep 0.1; done", &out);
    read_line(out, line, sizeof line);
    check_ok(kill(pid, SIGSTOP));
    int st;
    test_assert(waitpid(pid, &st, WUNTRACED) == pid);
    obs("after SIGSTOP: %s", wait_status_text(st));
    test_assert(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    check_ok(kill(pid, SIGCONT));
    test_assert(waitpid(pid, &st, WCONTINUED) == pid);
    obs("after SIGCONT: %s", wait_status_text(st));
    test_assert(WIFCONTINUED(st));
    check_ok(kill(pid, SIGUSR1));
    read_line(out, line, sizeof line);
    status = wait_status(pid);
    obs("after SIGUSR1 to a shell that traps it: printed %.*s, %s", (int)strcspn(line, "\n"), line,
        wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42);
    close(out);
  }

  /* exec from a second thread of a multithreaded process (the kernel's de_thread). */
  {
    fflush(stdout);
    pid_t pid = fork();
    test_assert(pid >= 0);
    if (pid == 0) {
      pthread_t a, b;
      if (pthread_create(&a, NULL, blocked_thread, NULL) != 0) _exit(125);
      if (pthread_create(&b, NULL, exec_thread, NULL) != 0) _exit(125);
      for (;;) pause();
    }
    int status = wait_status(pid);
    obs("exec from a second thread: %s", wait_status_text(status));
    test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4);
  }

  test_done();
}
