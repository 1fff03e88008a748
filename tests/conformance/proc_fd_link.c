/* /proc/self/fd/N of a file on the other machine (issue 16): readlink gives that machine's text
 * (the path, " (deleted)" once unlinked, an O_TMPFILE file's "#INODE (deleted)", a socket's
 * "socket:[INODE]"); opening it reopens the same file, an O_TMPFILE one included; linkat of it
 * with AT_SYMLINK_FOLLOW gives an O_TMPFILE file a name (not one opened with O_EXCL), and
 * without it links the magic link itself (EXDEV). Inode numbers are printed as N. */
#include "util.h"

#include <sys/socket.h>

static const char *fdpath(int fd) {
  static char buf[64];
  snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
  return buf;
}

/* readlink of fd's magic link, the test directory shown as DIR and digits after '#' or '['
 * as N. */
static void show_link(const char *label, int fd) {
  char text[PATH_MAX + 1];
  ssize_t n = readlink(fdpath(fd), text, PATH_MAX);
  if (n < 0) {
    obs("readlink %s -> %s", label, errname(errno));
    return;
  }
  text[n] = '\0';
  char out[PATH_MAX + 16];
  size_t dl = strlen(test_dir);
  const char *s = text;
  size_t o = 0;
  if (strncmp(s, test_dir, dl) == 0) {
    o += (size_t)sprintf(out, "DIR");
    s += dl;
  }
  for (; *s; s++) {
    out[o++] = *s;
    if ((*s == '#' || *s == '[') && s[1] >= '0' && s[1] <= '9') {
      out[o++] = 'N';
      while (s[1] >= '0' && s[1] <= '9') s++;
    }
  }
  out[o] = '\0';
  obs("readlink %s -> %s", label, out);
}

static void show_content(const char *label, int fd) {
  char buf[32] = {0};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  test_assert(n >= 0);
  obs("%s reads \"%s\"", label, buf);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "proc_fd_link");
  test_maybe_drop(argc, argv);
  check_ok(mkdir(P("d"), 0755));

  int tmp = check_ok(open(P("d"), O_TMPFILE | O_RDWR, 0600));
  test_assert(write(tmp, "hello", 5) == 5);
  show_link("O_TMPFILE", tmp);
  int again = check_ok(open(fdpath(tmp), O_RDONLY));
  show_content("the O_TMPFILE file reopened", again);
  show_link("the reopened O_TMPFILE", again);
  close(again);
  check_err("linkat of the magic link itself",
            linkat(AT_FDCWD, fdpath(tmp), AT_FDCWD, P("d/nofollow"), 0), EXDEV);
  check_ok(linkat(AT_FDCWD, fdpath(tmp), AT_FDCWD, P("d/named"), AT_SYMLINK_FOLLOW));
  obs("linkat AT_SYMLINK_FOLLOW of the O_TMPFILE file -> OK");
  show_link("the O_TMPFILE file once named", tmp);
  int named = check_ok(open(P("d/named"), O_RDONLY));
  show_content("d/named", named);
  close(named);
  check_err("linkat of a name taken", 
            linkat(AT_FDCWD, fdpath(tmp), AT_FDCWD, P("d/named"), AT_SYMLINK_FOLLOW), EEXIST);
  close(tmp);

  int excl = check_ok(open(P("d"), O_TMPFILE | O_RDWR | O_EXCL, 0600));
  check_err("linkat of an O_TMPFILE|O_EXCL file",
            linkat(AT_FDCWD, fdpath(excl), AT_FDCWD, P("d/excl"), AT_SYMLINK_FOLLOW), ENOENT);
  close(excl);

  write_file(P("d/f"), "plain\n", 0644);
  int f = check_ok(open(P("d/f"), O_RDONLY));
  show_link("a file", f);
  check_ok(unlink(P("d/f")));
  show_link("the file unlinked", f);
  int f2 = check_ok(open(fdpath(f), O_RDONLY));
  show_content("the unlinked file reopened", f2);
  close(f2);
  check_err("linkat of an unlinked file",
            linkat(AT_FDCWD, fdpath(f), AT_FDCWD, P("d/back"), AT_SYMLINK_FOLLOW), ENOENT);
  close(f);

  int dir = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  show_link("a directory", dir);
  close(dir);
  int sock = check_ok(socket(AF_UNIX, SOCK_STREAM, 0));
  show_link("a socket", sock);
  close(sock);
  test_done();
}
