/* EACCES: permission checks. Whether they fail depends on who performs the syscalls (root
 * bypasses most of them), so this program prints what it sees, and asserts only when told who
 * it runs as: argv[2] = "expect-eacces" (an unprivileged user) or "expect-root". Without
 * argv[2] it only observes. X_OK on a file without any x bit fails even for root. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_eacces");
  const char *expect = argc > 2 ? argv[2] : "observe";
  int unpriv = strcmp(expect, "expect-eacces") == 0;
  int root = strcmp(expect, "expect-root") == 0;
  obs("expectation: %s", expect);
  write_file(P("none"), "secret", 0000);
  write_file(P("ro"), "read-only", 0444);
  write_file(P("plain"), "plain", 0644);
  check_ok(mkdir(P("noexec"), 0755));
  write_file(P("noexec/inner"), "inner", 0644);
  check_ok(chmod(P("noexec"), 0644)); /* no search permission */
  check_ok(mkdir(P("nowrite"), 0755));
  write_file(P("nowrite/victim"), "victim", 0644);
  check_ok(chmod(P("nowrite"), 0555));
  check_ok(mkdir(P("noread"), 0300));

  struct {
    const char *label;
    long ret;
    int err;
  } r[16];
  int n = 0;
  struct stat st;
#define TRY(label_, expr_)                                       \
  do {                                                           \
    errno = 0;                                                   \
    r[n].label = label_;                                         \
    r[n].ret = (long)(expr_);                                    \
    r[n].err = r[n].ret == -1 ? errno : 0;                       \
    obs("%s -> %s", label_, r[n].ret == -1 ? errname(r[n].err) : "OK"); \
    if (r[n].ret >= 0 && strncmp(label_, "open", 4) == 0) close((int)r[n].ret); \
    n++;                                                         \
  } while (0)
  TRY("open mode-000 file for reading", open(P("none"), O_RDONLY));
  TRY("open 0444 file for writing", open(P("ro"), O_WRONLY));
  TRY("open file in dir without x", open(P("noexec/inner"), O_RDONLY));
  TRY("stat file in dir without x", stat(P("noexec/inner"), &st));
  TRY("create in dir without w", open(P("nowrite/new"), O_WRONLY | O_CREAT, 0644));
  TRY("unlink in dir without w", unlink(P("nowrite/victim")));
  TRY("mkdir in dir without w", mkdir(P("nowrite/sub"), 0755));
  TRY("access W_OK on 0444", access(P("ro"), W_OK));
  TRY("truncate 0444", truncate(P("ro"), 0));
  TRY("open dir without r", open(P("noread"), O_RDONLY | O_DIRECTORY));
  int bad = 0;
  for (int i = 0; i < n; i++) {
    if (unpriv && !(r[i].ret == -1 && r[i].err == EACCES)) bad = 1;
    if (root && r[i].ret == -1) bad = 1;
  }
  test_assert(!bad);
  /* Universal: X_OK needs an x bit even for root; exec of a 0644 file gives EACCES. */
  check_err("access X_OK on 0644", access(P("plain"), X_OK), EACCES);
  /* Restore so the tree can be removed by anyone. */
  check_ok(chmod(P("noexec"), 0755));
  check_ok(chmod(P("nowrite"), 0755));
  test_done();
}
