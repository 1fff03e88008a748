/* O_NONBLOCK on FIFOs in the work directory (remote under sbrun): EAGAIN where a blocking call
 * would wait, ENXIO for a write-only open without a reader, EOF without writers, a pipe filled
 * to EAGAIN, and O_NONBLOCK set and cleared with fcntl(F_SETFL).
 */
#include "util.h"

int main(int argc, char **argv) {
  test_init(argc, argv, "nonblock_eagain");
  check_ok(mkfifo(P("fifo"), 0644));
  char buf[4096];

  check_err("open O_WRONLY|O_NONBLOCK without a reader",
            open(P("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC), ENXIO);
  int r = check_ok(open(P("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  observe("read with no writer ever (EOF)", read(r, buf, sizeof buf));
  int w = check_ok(open(P("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  check_err("read, a writer but no data", read(r, buf, sizeof buf), EAGAIN);
  test_assert(write(w, "abc", 3) == 3);
  observe("read after a write", read(r, buf, sizeof buf));
  check_err("read again", read(r, buf, sizeof buf), EAGAIN);

  /* Fill the pipe: writes succeed until it is full, then EAGAIN. */
  memset(buf, 'x', sizeof buf);
  long total = 0;
  ssize_t n;
  while ((n = write(w, buf, sizeof buf)) > 0) total += n;
  obs("filled the FIFO with %ld bytes, then %s", total, errname(errno));
  test_assert(n == -1 && errno == EAGAIN && total > 0);
  check_err("write when full", write(w, "y", 1), EAGAIN);
  long drained = 0;
  while ((n = read(r, buf, sizeof buf)) > 0) drained += n;
  obs("drained %ld bytes, then %s", drained, errname(errno));
  test_assert(drained == total && errno == EAGAIN);

  /* fcntl: clear O_NONBLOCK on the reader, set it again. */
  int fl = check_ok(fcntl(r, F_GETFL));
  check_ok(fcntl(r, F_SETFL, fl & ~O_NONBLOCK));
  obs("O_NONBLOCK after clearing: %d", (int)(check_ok(fcntl(r, F_GETFL)) & O_NONBLOCK) != 0);
  check_ok(fcntl(r, F_SETFL, fl | O_NONBLOCK));
  obs("O_NONBLOCK after setting: %d", (int)(check_ok(fcntl(r, F_GETFL)) & O_NONBLOCK) != 0);
  check_err("read after F_SETFL O_NONBLOCK", read(r, buf, sizeof buf), EAGAIN);
  /* A blocking reader opened without O_NONBLOCK, switched with F_SETFL. */
  int r2 = check_ok(open(P("fifo"), O_RDONLY | O_CLOEXEC));
  check_ok(fcntl(r2, F_SETFL, O_NONBLOCK));
  check_err("read on a reader switched to O_NONBLOCK", read(r2, buf, sizeof buf), EAGAIN);

  check_ok(close(w));
  observe("read after the last writer closed (EOF)", read(r, buf, sizeof buf));
  check_ok(close(r));
  check_ok(close(r2));
  check_ok(unlink(P("fifo")));
  test_done();
}
