/* openat2 with RESOLVE_IN_ROOT and RESOLVE_BENEATH (issue 16): the whole path, absolute or not,
 * resolves from the dirfd on the machine where that directory is. Under a root that holds no
 * proc, /proc/version is ENOENT (not this machine's or the other's file); an absolute path is
 * the root's own file; `..` stops at the root; RESOLVE_BENEATH refuses both with EXDEV. */
#include "util.h"

#include <linux/openat2.h>

static long open2(int dirfd, const char *path, unsigned long long resolve) {
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = resolve};
  return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static void show(const char *label, long fd) {
  if (fd < 0) {
    obs("%s -> %s", label, errname(errno));
    return;
  }
  char buf[64] = {0};
  ssize_t n = read((int)fd, buf, sizeof buf - 1);
  test_assert(n >= 0);
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
  obs("%s -> opened \"%s\"", label, buf);
  close((int)fd);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "openat2_resolve");
  test_maybe_drop(argc, argv);
  check_ok(mkdir(P("root"), 0755));
  check_ok(mkdir(P("root/sub"), 0755));
  write_file(P("root/f"), "the root's f\n", 0644);
  write_file(P("f"), "outside the root\n", 0644);
  check_ok(symlink("/f", P("root/sub/abs")));
  int root = check_ok(open(P("root"), O_PATH | O_DIRECTORY));
  int sub = check_ok(open(P("root/sub"), O_RDONLY | O_DIRECTORY));

  show("IN_ROOT /proc/version", open2(root, "/proc/version", RESOLVE_IN_ROOT));
  show("IN_ROOT /f", open2(root, "/f", RESOLVE_IN_ROOT));
  show("IN_ROOT ../f", open2(root, "../f", RESOLVE_IN_ROOT));
  show("IN_ROOT sub/abs (symlink to /f)", open2(root, "sub/abs", RESOLVE_IN_ROOT));
  show("BENEATH /proc/version", open2(root, "/proc/version", RESOLVE_BENEATH));
  show("BENEATH /f", open2(root, "/f", RESOLVE_BENEATH));
  show("BENEATH ../f", open2(root, "../f", RESOLVE_BENEATH));
  show("BENEATH f", open2(root, "f", RESOLVE_BENEATH));
  show("BENEATH sub/abs", open2(root, "sub/abs", RESOLVE_BENEATH));
  show("IN_ROOT from sub: /f", open2(sub, "/f", RESOLVE_IN_ROOT));
  show("BENEATH from sub: ../f", open2(sub, "../f", RESOLVE_BENEATH));
  /* From the working directory: the cwd is the root. */
  check_ok(chdir(P("root")));
  show("IN_ROOT from the cwd: /f", open2(AT_FDCWD, "/f", RESOLVE_IN_ROOT));
  show("IN_ROOT from the cwd: /proc/version", open2(AT_FDCWD, "/proc/version", RESOLVE_IN_ROOT));
  show("BENEATH from the cwd: /f", open2(AT_FDCWD, "/f", RESOLVE_BENEATH));
  close(sub);
  close(root);
  test_done();
}
