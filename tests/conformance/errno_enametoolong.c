/* ENAMETOOLONG: a component longer than NAME_MAX, a path longer than PATH_MAX. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_enametoolong");
  char comp[300];
  memset(comp, 'a', 256);
  comp[256] = '\0';
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s", P(comp));
  struct stat st;
  check_err("open 256-byte component", open(path, O_RDONLY), ENAMETOOLONG);
  check_err("creat 256-byte component", open(path, O_WRONLY | O_CREAT, 0644), ENAMETOOLONG);
  check_err("mkdir 256-byte component", mkdir(path, 0755), ENAMETOOLONG);
  check_err("stat 256-byte component", stat(path, &st), ENAMETOOLONG);
  comp[255] = '\0';
  snprintf(path, sizeof path, "%s", P(comp));
  int fd = check_ok(open(path, O_WRONLY | O_CREAT, 0644));
  check_ok(close(fd));
  obs("255-byte component created");
  /* PATH_MAX (4096) bytes including the NUL is too long. */
  char *longp = malloc(PATH_MAX + 16);
  test_assert(longp != NULL);
  size_t n = (size_t)snprintf(longp, PATH_MAX + 16, "%s/", test_dir);
  for (; n < PATH_MAX; n++) longp[n] = (n % 2) ? '/' : 'x';
  longp[PATH_MAX] = '\0';
  check_err("open path of PATH_MAX bytes", open(longp, O_RDONLY), ENAMETOOLONG);
  check_err("stat path of PATH_MAX bytes", stat(longp, &st), ENAMETOOLONG);
  char lbuf[8];
  check_err("readlink path of PATH_MAX bytes", readlink(longp, lbuf, sizeof lbuf), ENAMETOOLONG);
  free(longp);
  test_done();
}
