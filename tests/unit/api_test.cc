// The C++ API of <splitbrain.h> without sbrun (built as C++17 with -Werror, tests/meson.build):
//   - outside sbrun every guard and current() throw std::system_error with code ENOSYS and a
//     message that says so, and available() is false;
//   - against a fake control fd (a SOCK_SEQPACKET socketpair) Scope and LocalScope write the
//     protocol's lines on construction and destruction, bad names throw before anything is
//     written, and the messages for the errors sbrun gives are clear;
//   - a guard whose exit fails aborts with a message (checked in a child process).
// Prints one line per failed check and exits 1 if any failed.
#include "splitbrain.h"

#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>
#include <string>
#include <system_error>

#ifdef NDEBUG
#error "this test must not be built with NDEBUG"
#endif

namespace {

int failures = 0;

void check(bool ok, const char* what, int line) {
  if (!ok) {
    fprintf(stderr, "FAILED: %s at line %d\n", what, line);
    ++failures;
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// Runs fn, which must throw std::system_error with errno `err` and a what() that starts with
// `message`.
template <typename Fn>
void checkThrows(Fn fn, int err, const std::string& message, int line) {
  try {
    fn();
    fprintf(stderr, "FAILED: no exception (expected \"%s\") at line %d\n", message.c_str(), line);
    ++failures;
  } catch (const std::system_error& e) {
    std::string what = e.what();
    if (e.code().value() != err || what.compare(0, message.size(), message) != 0) {
      fprintf(stderr, "FAILED: got [%d] \"%s\", expected [%d] \"%s...\" at line %d\n",
              e.code().value(), e.what(), err, message.c_str(), line);
      ++failures;
    }
  }
}
#define CHECK_THROWS(stmt, err, message) checkThrows([&] { stmt; }, (err), (message), __LINE__)

int sv[2];

std::string nextRecord() {
  char buf[512];
  ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

#define CHECK_RECORD(expected)                                                                   \
  do {                                                                                           \
    std::string got_ = nextRecord();                                                             \
    if (got_ != (expected)) {                                                                    \
      fprintf(stderr, "FAILED: wrote \"%s\", expected \"%s\" at line %d\n", got_.c_str(),        \
              std::string(expected).c_str(), __LINE__);                                         \
      ++failures;                                                                                \
    }                                                                                            \
  } while (0)

void testOutsideSbrun() {
  const std::string notSet =
      "splitbrain: not running under sbrun (SB_CONTROL_FD is not set)";
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
  CHECK(!splitbrain::available());
  CHECK_THROWS(splitbrain::Scope s{"b"}, ENOSYS, notSet);
  CHECK_THROWS(splitbrain::Scope s{}, ENOSYS, notSet);
  CHECK_THROWS(splitbrain::Scope s{std::string("b")}, ENOSYS, notSet);
  CHECK_THROWS(splitbrain::LocalScope s, ENOSYS, notSet);
  CHECK_THROWS(splitbrain::current(), ENOSYS, notSet);

  int closed = dup(2);
  CHECK(closed >= 0);
  CHECK(close(closed) == 0);
  std::string num = std::to_string(closed);
  CHECK(setenv(SB_CONTROL_FD_ENV, num.c_str(), 1) == 0);
  const std::string notOpen = "splitbrain: not running under sbrun (SB_CONTROL_FD='" + num +
                              "' is not an open file descriptor)";
  CHECK(!splitbrain::available());
  CHECK_THROWS(splitbrain::Scope s{"b"}, ENOSYS, notOpen);
  CHECK_THROWS(splitbrain::LocalScope s, ENOSYS, notOpen);
  CHECK_THROWS(splitbrain::current(), ENOSYS, notOpen);
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
}

void testFakeControlFd() {
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(setenv(SB_CONTROL_FD_ENV, std::to_string(sv[0]).c_str(), 1) == 0);
  CHECK(splitbrain::available());
  {
    splitbrain::Scope onB{"b"};
    CHECK_RECORD("enter b\n");
    {
      splitbrain::LocalScope here;
      CHECK_RECORD("local\n");
    }
    CHECK_RECORD("exit\n");
    {
      splitbrain::Scope first;
      CHECK_RECORD("enter\n");
    }
    CHECK_RECORD("exit\n");
  }
  CHECK_RECORD("exit\n");

  CHECK_THROWS(splitbrain::Scope s{"a b"}, EINVAL, "splitbrain: invalid target name 'a b'");
  CHECK_THROWS(splitbrain::Scope s{""}, EINVAL, "splitbrain: invalid target name ''");
  CHECK_RECORD("");

  const char answer[] = "b\n";
  CHECK(send(sv[1], answer, 2, 0) == 2);
  CHECK(splitbrain::current() == "b");
  CHECK(send(sv[1], "local\n", 6, 0) == 6);
  CHECK(splitbrain::current() == "local");
  CHECK(send(sv[1], "b", 1, 0) == 1);
  CHECK_THROWS(splitbrain::current(), EIO, "splitbrain: cannot read the current scope");

  // The messages for what sbrun answers.
  namespace d = splitbrain::detail;
  CHECK(d::message(ENOENT, "enter", "x") == "splitbrain: no target named 'x'");
  CHECK(d::message(ENOENT, "enter", nullptr) ==
        "splitbrain: no target to enter (sbrun was given none)");
  CHECK(d::message(EINVAL, "enter", "x") == "splitbrain: invalid target name 'x'");
  CHECK(d::message(EINVAL, "exit", nullptr) ==
        "splitbrain: exit without a matching enter (the thread's scope stack is empty)");
  CHECK(d::message(EIO, "enter", "x") == "splitbrain: cannot enter 'x'");
  CHECK(d::message(EIO, "local", nullptr) == "splitbrain: cannot enter the local scope");
  CHECK_THROWS(d::fail(ENOENT, "enter", "x"), ENOENT, "splitbrain: no target named 'x'");
  try {
    d::fail(ENOENT, "enter", "x");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
  }

  // A guard whose exit fails aborts, saying why: here the control fd is gone by then.
  int errPipe[2];
  CHECK(pipe(errPipe) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(errPipe[1], 2);
    {
      splitbrain::Scope s{"b"};
      close(sv[0]);
    }
    _exit(0);   // not reached
  }
  close(errPipe[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(errPipe[0], buf, sizeof buf)) > 0) {
    err.append(buf, static_cast<size_t>(n));
  }
  close(errPipe[0]);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(err.find("splitbrain: not running under sbrun") != std::string::npos);
  CHECK(err.find("aborting") != std::string::npos);
  CHECK_RECORD("enter b\n");   // the child's enter, and no exit
  CHECK_RECORD("");

  close(sv[0]);
  close(sv[1]);
  CHECK(unsetenv(SB_CONTROL_FD_ENV) == 0);
}

}  // namespace

int main() {
  testOutsideSbrun();
  testFakeControlFd();
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all checks passed\n");
  return 0;
}
