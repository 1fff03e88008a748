#include "token_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kj/vector.h>

#include "preamble.h"

namespace sb {

TokenFile readTokenFile(kj::StringPtr path) {
  TokenFile out;
  auto fail = [&](kj::StringPtr why) {
    out.error = kj::str("--token-file ", path, ": ", why);
    return kj::mv(out);
  };
  int fd = open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail("not a regular file; give the file that holds the token");
  }
  out.othersCanRead = (st.st_mode & 077) != 0;
  kj::Vector<char> content;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      close(fd);
      return fail(strerror(err));
    }
    if (n == 0) {
      break;
    }
    content.addAll(buf, buf + n);
    if (content.size() > MAX_TOKEN + 64) {
      break;  // Too long either way; no need to read a huge file to say so.
    }
  }
  close(fd);
  size_t size = content.size();
  while (size > 0 && (content[size - 1] == '\n' || content[size - 1] == '\r')) {
    --size;
  }
  if (size == 0) {
    return fail("the file is empty; put a secret in it");
  }
  if (size > MAX_TOKEN) {
    return fail(kj::str("the token is longer than ", MAX_TOKEN, " bytes"));
  }
  out.token = kj::heapString(content.begin(), size);
  return out;
}

}  // namespace sb
