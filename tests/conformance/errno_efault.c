/* EFAULT: bad path pointers and bad buffers; the file position does not move. */
#include "util.h"
#include <sys/mman.h>
#include <sys/uio.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "errno_efault");
  write_file(P("f"), "0123456789", 0644);
  long page = sysconf(_SC_PAGESIZE);
  char *bad = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  test_assert(bad != MAP_FAILED);
  check_ok(munmap(bad, page));
  struct stat st;
  check_err("open (char*)1", open((char *)1, O_RDONLY), EFAULT);
  check_err("stat (char*)1", stat((char *)1, &st), EFAULT);
  check_err("mkdir unmapped path", mkdir(bad, 0755), EFAULT);
  check_err("stat into unmapped buffer", stat(P("f"), (struct stat *)bad), EFAULT);

  int fd = check_ok(open(P("f"), O_RDWR));
  check_err("read into unmapped", read(fd, bad, 4), EFAULT);
  obs("position after failed read: %ld", (long)lseek(fd, 0, SEEK_CUR));
  test_assert(lseek(fd, 0, SEEK_CUR) == 0);
  check_err("pread into unmapped", pread(fd, bad, 4, 2), EFAULT);
  check_err("write from unmapped", write(fd, bad, 4), EFAULT);
  test_assert(lseek(fd, 0, SEEK_CUR) == 0);
  check_err("fstat into unmapped", fstat(fd, (struct stat *)bad), EFAULT);
  struct iovec iov[2] = {{bad, 4}, {bad, 4}};
  check_err("readv with unmapped iovecs", readv(fd, iov, 2), EFAULT);
  check_err("readv with unmapped iovec array", readv(fd, (struct iovec *)bad, 1), EFAULT);
  char buf[16];
  test_assert(read(fd, buf, 4) == 4 && memcmp(buf, "0123", 4) == 0);
  check_ok(close(fd));
  test_assert(read_file(P("f"), buf, sizeof buf) == 10 && memcmp(buf, "0123456789", 10) == 0);
  test_done();
}
