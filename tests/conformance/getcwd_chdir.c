/* chdir, fchdir and getcwd; relative paths follow the working directory. */
#include "util.h"

static char base[PATH_MAX];

static void show_cwd(const char *label) {
  char buf[PATH_MAX];
  test_assert(getcwd(buf, sizeof buf) == buf);
  size_t n = strlen(base);
  test_assert(strncmp(buf, base, n) == 0);
  obs("%s: <dir>%s", label, buf + n);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "getcwd_chdir");
  test_assert(realpath(test_dir, base) != NULL);
  check_ok(mkdir(P("a"), 0755));
  check_ok(mkdir(P("a/b"), 0755));
  check_ok(mkdir(P("c"), 0755));
  check_ok(symlink("a/b", P("lnk")));
  write_file(P("a/b/file"), "in-b", 0644);
  check_ok(chdir(P("a")));
  show_cwd("after chdir a");
  check_ok(chdir("b"));
  show_cwd("after chdir b (relative)");
  char buf[64];
  read_file("file", buf, sizeof buf);
  obs("relative read: %s", buf);
  check_ok(chdir("../.."));
  show_cwd("after chdir ../..");
  check_ok(chdir("lnk"));
  show_cwd("after chdir through symlink");
  int cfd = check_ok(open(P("c"), O_RDONLY | O_DIRECTORY));
  check_ok(fchdir(cfd));
  show_cwd("after fchdir c");
  write_file("made-here", "x", 0644);
  struct stat st;
  check_ok(stat(P("c/made-here"), &st));
  int pfd = check_ok(open(P("a"), O_PATH | O_DIRECTORY));
  check_ok(fchdir(pfd));
  show_cwd("after fchdir O_PATH a");
  check_err("chdir missing", chdir("missing"), ENOENT);
  check_err("chdir file", chdir(P("a/b/file")), ENOTDIR);
  show_cwd("unchanged after failed chdir");
  check_err("getcwd size 1", getcwd(buf, 1) == NULL ? -1 : 0, ERANGE);
  check_err("getcwd size 0", getcwd(buf, 0) == NULL ? -1 : 0, EINVAL);
  /* The raw syscall says ENOENT when the cwd was removed. */
  check_ok(chdir(P("c")));
  check_ok(unlink("made-here"));
  check_ok(rmdir(P("c")));
  char big[PATH_MAX];
  check_err("getcwd of removed dir", syscall(SYS_getcwd, big, sizeof big), ENOENT);
  check_err("create in removed cwd", open("new", O_WRONLY | O_CREAT, 0644), ENOENT);
  check_ok(chdir(test_dir));
  show_cwd("back at the start");
  test_done();
}
