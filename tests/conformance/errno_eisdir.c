/* EISDIR: opening a directory for writing, read on a directory fd, unlink of a directory. */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_eisdir");
  check_ok(mkdir(P("d"), 0755));
  check_ok(mkdir(P("e"), 0755));
  write_file(P("f"), "x", 0644);
  check_err("open dir O_WRONLY", open(P("d"), O_WRONLY), EISDIR);
  check_err("open dir O_RDWR", open(P("d"), O_RDWR), EISDIR);
  check_err("open dir O_CREAT", open(P("d"), O_RDONLY | O_CREAT, 0644), EISDIR);
  check_err("open dir O_TRUNC|O_WRONLY", open(P("d"), O_WRONLY | O_TRUNC), EISDIR);
  int fd = check_ok(open(P("d"), O_RDONLY | O_DIRECTORY));
  char buf[16];
  check_err("read on dir fd", read(fd, buf, sizeof buf), EISDIR);
  check_err("pread on dir fd", pread(fd, buf, sizeof buf, 0), EISDIR);
  check_ok(close(fd));
  check_err("unlink dir", unlink(P("d")), EISDIR);
  check_err("rename file over dir", rename(P("f"), P("d")), EISDIR);
  check_err("truncate dir", truncate(P("d"), 0), EISDIR);
  test_done();
}
