#include <doctest.h>

#include <stdlib.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "token_file.h"

namespace {

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/sb-token-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    close(fd);
    path = name;
  }
  ~TempFile() { unlink(path.c_str()); }
};

}  // namespace

TEST_SUITE("token_file") {
  TEST_CASE("line ends are not part of the token, however many") {
    for (auto content : {"s3cret", "s3cret\n", "s3cret\r\n", "s3cret\n\n", "s3cret\r\n\r\n\n"}) {
      TempFile f(content);
      auto t = sb::readTokenFile(f.path.c_str());
      CHECK(t.error == "");
      CHECK(t.token == "s3cret");
    }
  }

  TEST_CASE("inner newlines and spaces stay") {
    TempFile f(" a b\nc \n");
    CHECK(sb::readTokenFile(f.path.c_str()).token == " a b\nc ");
  }

  TEST_CASE("what cannot be a token says so, naming the file") {
    TempFile empty("\n\n");
    auto t = sb::readTokenFile(empty.path.c_str());
    CHECK(t.error.startsWith("--token-file "));
    CHECK(t.error.endsWith("the file is empty; put a secret in it"));
    auto dir = sb::readTokenFile("/tmp");
    CHECK(dir.error == "--token-file /tmp: not a regular file; give the file that holds the token");
    auto missing = sb::readTokenFile("/nonexistent/token");
    CHECK(missing.error == "--token-file /nonexistent/token: No such file or directory");
    TempFile huge(std::string(5000, 'x'));
    CHECK(sb::readTokenFile(huge.path.c_str()).error.endsWith("bytes"));
  }

  TEST_CASE("a file others can read is flagged") {
    TempFile f("x");
    chmod(f.path.c_str(), 0644);
    CHECK(sb::readTokenFile(f.path.c_str()).othersCanRead);
    chmod(f.path.c_str(), 0600);
    CHECK_FALSE(sb::readTokenFile(f.path.c_str()).othersCanRead);
  }
}
