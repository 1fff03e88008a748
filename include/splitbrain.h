/* splitbrain.h — steer the calling thread between this machine and sbrun's targets.
 *
 * Header only (C99 or later, C++11 or later), no library to link. Under sbrun(1) every tracee has
 * a control fd whose number is in the environment variable SB_CONTROL_FD; these functions speak
 * its line protocol (docs/protocol.md, "The control fd (SB_CONTROL_FD)"):
 *
 *     if (sb_enter("b") == 0) {        // this thread's IO now goes to target b
 *         ... read b's files ...
 *         sb_exit();                   // back to where the thread was
 *     }
 *
 * Scopes belong to the calling thread (a stack per thread); new threads and child processes
 * start with a copy of their creator's stack.
 *
 * Every function returns 0 (sb_scope: the name's length) on success, and -1 with errno set on
 * failure. Not running under sbrun (SB_CONTROL_FD is unset, is not a decimal fd number, or that
 * fd is not open) is errno ENOSYS for every function. Other errors:
 *   sb_enter   ENOENT  no target has that name (no target at all, for NULL)
 *              EINVAL  the name is empty or holds a byte <= ' ' (space, tab, newline, ...)
 *              ENAMETOOLONG  the name is longer than SB_NAME_MAX
 *   sb_exit    EINVAL  the thread's scope stack is empty (an exit without its enter)
 *   sb_scope   ERANGE  the name and its NUL do not fit in len bytes
 *   all        EIO     the control fd answered outside the protocol (a short write or read)
 * A call interrupted by a signal is retried, never reported as EINTR.
 *
 * In C++ the namespace splitbrain adds RAII guards that throw std::system_error:
 *
 *     { splitbrain::Scope on_b{"b"};  ...  }       // enter b ... exit
 *     { splitbrain::LocalScope here;  ...  }       // local ... exit
 *     std::string where = splitbrain::current();  // "b" or "local"
 */
#ifndef SPLITBRAIN_H
#define SPLITBRAIN_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The environment variable that holds the control fd's number. */
#define SB_CONTROL_FD_ENV "SB_CONTROL_FD"
/* The longest target name these functions pass or return, in bytes, without its NUL. */
#define SB_NAME_MAX 255

#ifdef __cplusplus
#define SB_PRIV_CAST(T, v) static_cast<T>(v)
extern "C" {
#else
#define SB_PRIV_CAST(T, v) ((T)(v))
#endif

/* Internal (sb_priv_*): not part of the API. */

/* The control fd's number from the environment, or -1 (errno ENOSYS) when it is missing or is
 * not a decimal number in [0, 2^31). */
static inline int sb_priv_control_fd(void) {
  const char* s = getenv(SB_CONTROL_FD_ENV);
  long fd = 0;
  if (s == NULL || *s == '\0') {
    errno = ENOSYS;
    return -1;
  }
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9' || fd > 214748364L) {
      errno = ENOSYS;
      return -1;
    }
    fd = fd * 10 + (*s - '0');
  }
  if (fd > 2147483647L) {
    errno = ENOSYS;
    return -1;
  }
  return SB_PRIV_CAST(int, fd);
}

/* 1 when running under sbrun (SB_CONTROL_FD names an open fd), else 0. Leaves errno alone. */
static inline int sb_available(void) {
  int saved = errno;
  int fd = sb_priv_control_fd();
  int ok = fd >= 0 && (fcntl(fd, F_GETFD) != -1 || errno != EBADF);
  errno = saved;
  return ok;
}

/* Fails with err, or with ENOSYS when not under sbrun: a bad argument to a program that is not
 * traced is still "not running under sbrun". */
static inline int sb_priv_refuse(int err) {
  errno = sb_available() ? err : ENOSYS;
  return -1;
}

/* Writes one command ("enter b\n", "exit\n", ...) to the control fd. */
static inline int sb_priv_command(const char* cmd, size_t len) {
  int fd = sb_priv_control_fd();
  ssize_t n;
  if (fd < 0) {
    return -1;
  }
  do {
    n = write(fd, cmd, len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EBADF) {
      errno = ENOSYS; /* the variable was inherited from elsewhere: no control fd here */
    }
    return -1;
  }
  if (SB_PRIV_CAST(size_t, n) != len) {
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Pushes target NAME (NULL: the first target given to sbrun) onto the calling thread's stack. */
static inline int sb_enter(const char* name) {
  char cmd[sizeof "enter " + SB_NAME_MAX + 1];
  size_t len = 0;
  size_t i;
  if (sb_priv_control_fd() < 0) {
    return -1;
  }
  if (name == NULL) {
    return sb_priv_command("enter\n", 6);
  }
  len = strlen(name);
  if (len == 0) {
    return sb_priv_refuse(EINVAL);
  }
  if (len > SB_NAME_MAX) {
    return sb_priv_refuse(ENAMETOOLONG);
  }
  for (i = 0; i < len; ++i) {
    if (SB_PRIV_CAST(unsigned char, name[i]) <= ' ') { /* one command per write, no spaces */
      return sb_priv_refuse(EINVAL);
    }
  }
  memcpy(cmd, "enter ", 6);
  memcpy(cmd + 6, name, len);
  cmd[6 + len] = '\n';
  return sb_priv_command(cmd, 6 + len + 1);
}

/* Pushes the local scope (this machine) onto the calling thread's stack. */
static inline int sb_local(void) { return sb_priv_command("local\n", 6); }

/* Pops the calling thread's innermost scope (an sb_enter's or an sb_local's). */
static inline int sb_exit(void) { return sb_priv_command("exit\n", 5); }

/* Stores the calling thread's current scope in buf: a target's name, or "local". Returns the
 * name's length (without the NUL). */
static inline int sb_scope(char* buf, size_t len) {
  char line[SB_NAME_MAX + 2];
  ssize_t n;
  size_t size;
  int fd = sb_priv_control_fd();
  if (fd < 0) {
    return -1;
  }
  do {
    n = read(fd, line, sizeof line);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EBADF) {
      errno = ENOSYS;
    }
    return -1;
  }
  size = SB_PRIV_CAST(size_t, n);
  if (size == 0 || line[size - 1] != '\n') { /* empty, or longer than any name */
    errno = EIO;
    return -1;
  }
  --size;
  if (buf == NULL || size + 1 > len) { /* (the read succeeded: under sbrun) */
    errno = ERANGE;
    return -1;
  }
  memcpy(buf, line, size);
  buf[size] = '\0';
  return SB_PRIV_CAST(int, size);
}

#ifdef __cplusplus
} /* extern "C" */

#include <string>
#include <system_error>

namespace splitbrain {

namespace detail {

// The message for a failed call: `op` is "enter", "local", "exit" or "scope"; `name` is the
// target for "enter" (nullptr: the first target).
inline std::string message(int err, const char* op, const char* name) {
  std::string what = "splitbrain: ";
  std::string target = name != nullptr ? std::string("'") + name + "'" : "the first target";
  if (err == ENOSYS) {
    const char* value = getenv(SB_CONTROL_FD_ENV);
    if (value == nullptr) {
      return what + "not running under sbrun (" SB_CONTROL_FD_ENV " is not set)";
    }
    return what + "not running under sbrun (" SB_CONTROL_FD_ENV "='" + value +
           "' is not an open file descriptor)";
  }
  std::string o = op;
  if (o == "enter") {
    if (err == ENOENT) {
      return name != nullptr ? what + "no target named " + target
                             : what + "no target to enter (sbrun was given none)";
    }
    if (err == EINVAL || err == ENAMETOOLONG) {
      return what + "invalid target name " + target;
    }
    return what + "cannot enter " + target;
  }
  if (o == "exit" && err == EINVAL) {
    return what + "exit without a matching enter (the thread's scope stack is empty)";
  }
  if (o == "local") {
    return what + "cannot enter the local scope";
  }
  if (o == "scope") {
    return what + "cannot read the current scope";
  }
  return what + "cannot " + o;
}

[[noreturn]] inline void fail(int err, const char* op, const char* name = nullptr) {
  throw std::system_error(err, std::system_category(), message(err, op, name));
}

}  // namespace detail

// True when running under sbrun (SB_CONTROL_FD names an open fd).
inline bool available() { return sb_available() != 0; }

// The calling thread's current scope: a target's name, or "local".
inline std::string current() {
  char buf[SB_NAME_MAX + 1];
  if (sb_scope(buf, sizeof buf) < 0) {
    detail::fail(errno, "scope");
  }
  return buf;
}

// Leaves the innermost scope for a guard's destructor, which cannot throw. An exit fails only
// when this thread's stack no longer holds the guard's scope (someone else popped it): then the
// thread's IO would go to the wrong machine, so this says why on stderr and aborts.
namespace detail {
inline void leave() noexcept {
  if (sb_exit() != 0) {
    int err = errno;
    std::string m = message(err, "exit", nullptr) + ": " + std::system_category().message(err) +
                    " (in a splitbrain scope guard's destructor; aborting)\n";
    ssize_t ignored = write(2, m.data(), m.size());
    static_cast<void>(ignored);
    abort();
  }
}
}  // namespace detail

// Enters target `name` (nullptr: the first target given to sbrun) for the guard's lifetime:
//     { splitbrain::Scope on_b{"b"}; ... }
class Scope {
 public:
  explicit Scope(const char* name = nullptr) {
    if (sb_enter(name) != 0) {
      detail::fail(errno, "enter", name);
    }
  }
  explicit Scope(const std::string& name) : Scope(name.c_str()) {}
  ~Scope() { detail::leave(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

// Runs on this machine for the guard's lifetime, even inside a target's scope.
class LocalScope {
 public:
  LocalScope() {
    if (sb_local() != 0) {
      detail::fail(errno, "local");
    }
  }
  ~LocalScope() { detail::leave(); }
  LocalScope(const LocalScope&) = delete;
  LocalScope& operator=(const LocalScope&) = delete;
};

}  // namespace splitbrain
#endif /* __cplusplus */

#undef SB_PRIV_CAST
#endif /* SPLITBRAIN_H */
