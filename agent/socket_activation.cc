#include "socket_activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sb {

namespace {

constexpr int FIRST_PASSED_FD = 3;  // SD_LISTEN_FDS_START

// A decimal number that fits `out`, nothing else.
bool parseNumber(const char* text, long& out) {
  if (text == nullptr || *text == '\0') {
    return false;
  }
  char* end = nullptr;
  errno = 0;
  out = strtol(text, &end, 10);
  return errno == 0 && *end == '\0' && out >= 0;
}

int socketOption(int fd, int option) {
  int value = 0;
  socklen_t len = sizeof(value);
  return getsockopt(fd, SOL_SOCKET, option, &value, &len) == 0 ? value : -1;
}

}  // namespace

int takeActivatedSocket(kj::String& error) {
  const char* pidText = getenv("LISTEN_PID");
  const char* fdsText = getenv("LISTEN_FDS");
  long pid = 0, fds = 0;
  if (pidText == nullptr || fdsText == nullptr) {
    error = kj::str("--listen systemd: no socket was passed (LISTEN_PID and LISTEN_FDS are not "
                    "set); start sbagent from a systemd .socket unit (sbagent.socket) or give "
                    "--listen unix:PATH or tcp://HOST:PORT");
    return -1;
  }
  if (!parseNumber(pidText, pid) || !parseNumber(fdsText, fds)) {
    error = kj::str("--listen systemd: LISTEN_PID='", pidText, "' LISTEN_FDS='", fdsText,
                    "' are not numbers");
    return -1;
  }
  if (pid != getpid()) {
    error = kj::str("--listen systemd: the passed sockets are for process ", pid, ", not this "
                    "one (", getpid(), "); the variables were inherited from a parent");
    return -1;
  }
  if (fds != 1) {
    error = kj::str("--listen systemd: ", fds, " sockets were passed; sbagent serves exactly "
                    "one (one ListenStream= in the .socket unit)");
    return -1;
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  int fd = FIRST_PASSED_FD;
  int domain = socketOption(fd, SO_DOMAIN);
  if (socketOption(fd, SO_TYPE) != SOCK_STREAM || socketOption(fd, SO_ACCEPTCONN) != 1 ||
      (domain != AF_UNIX && domain != AF_INET && domain != AF_INET6)) {
    error = kj::str("--listen systemd: fd 3 is not a listening unix or TCP stream socket; use "
                    "ListenStream= (not ListenDatagram=, Accept=no) in the .socket unit");
    return -1;
  }
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    error = kj::str("--listen systemd: fcntl(3, F_SETFD): ", strerror(errno));
    return -1;
  }
  return fd;
}

}  // namespace sb
