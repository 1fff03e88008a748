/* sendfile and copy_file_range between a file in /dev/shm and one in the working directory.
 * Under sbrun /dev/shm stays on A (a default local rule) while the working directory is on B,
 * so this crosses machines; natively both are on B. The results must be the same. */
#include "util.h"
#include <sys/sendfile.h>

int main(int argc, char **argv) {
  test_init(argc, argv, "sendfile_mixed");
  char shm[64];
  snprintf(shm, sizeof shm, "/dev/shm/sb-conformance-%d", (int)getpid());
  static char data[300000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('A' + (i * 5 + i / 7) % 26);
  int local = check_ok(open(shm, O_RDWR | O_CREAT | O_TRUNC, 0600));
  test_assert(write(local, data, sizeof data) == (ssize_t)sizeof data);
  test_assert(lseek(local, 0, SEEK_SET) == 0);

  /* here -> there, with the file positions. */
  int remote = check_ok(open(P("copy"), O_RDWR | O_CREAT | O_TRUNC, 0644));
  size_t done = 0;
  while (done < sizeof data) {
    ssize_t n = sendfile(remote, local, NULL, sizeof data - done);
    test_assert(n > 0);
    done += (size_t)n;
  }
  test_assert(lseek(local, 0, SEEK_CUR) == (off_t)sizeof data);
  test_assert(lseek(remote, 0, SEEK_CUR) == (off_t)sizeof data);
  obs("sendfile here->there: %zu bytes, both positions at the end", done);

  /* there -> here with an explicit offset: the source position does not move. */
  static char back[sizeof data];
  test_assert(ftruncate(local, 0) == 0);
  test_assert(lseek(local, 0, SEEK_SET) == 0);
  off_t in = 100;
  ssize_t n = sendfile(local, remote, &in, 5000);
  obs("sendfile there->here: %zd bytes, offset now %lld", n, (long long)in);
  test_assert(n == 5000 && in == 5100);
  test_assert(lseek(remote, 0, SEEK_CUR) == (off_t)sizeof data);
  test_assert(pread(local, back, 5000, 0) == 5000);
  test_assert(memcmp(back, data + 100, 5000) == 0);

  /* Two file systems (natively tmpfs and the work dir; under sbrun two machines): a
   * copy_file_range between them is refused with EXDEV, or works on kernels that allow it. */
  loff_t a = 0, b = 0;
  ssize_t c = copy_file_range(remote, &a, local, &b, 10, 0);
  obs("copy_file_range across file systems: %s", c < 0 ? errname(errno) : "copied");

  /* Bad flags and a bad offset pointer come back as the kernel says. */
  check_err("copy_file_range flags=1", copy_file_range(remote, NULL, local, NULL, 1, 1), EINVAL);
  check_err("sendfile bad offset pointer", sendfile(local, remote, (off_t *)8, 10), EFAULT);

  check_ok(close(remote));
  check_ok(close(local));
  check_ok(unlink(shm));
  test_done();
}
