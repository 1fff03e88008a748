// Log: the agent's human-readable lines, always on stderr (stdout may be the protocol stream in
// --stdio mode). `info` is shown with -v only; `warn` always. Formatting is fmt's (DESIGN D11).

#pragma once

#include <cstdio>

#include <string>

#include <fmt/core.h>
#include <kj/exception.h>

namespace sb {

class Log {
public:
  explicit Log(bool verbose = false): verbose(verbose) {}

  bool isVerbose() const { return verbose; }

  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) const {
    if (verbose) {
      line(fmt::format(format, static_cast<Args&&>(args)...));
    }
  }

  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) const {
    line(fmt::format(format, static_cast<Args&&>(args)...));
  }

private:
  bool verbose;

  static void line(const std::string& text) { fmt::print(stderr, "sbagent: {}\n", text); }
};

// Throws a kj exception whose description is exactly `message` (KJ_EXCEPTION would prefix the
// source expression). For failures a person must read: refused handshakes, startup errors.
[[noreturn]] inline void failClearly(const std::string& message, const char* file = __builtin_FILE(),
                                     int line = __builtin_LINE()) {
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, file, line, kj::heapString(message.c_str())));
}

}  // namespace sb
