// Log: the agent's human-readable lines, always on stderr (stdout may be the protocol stream in
// --stdio mode). `info` is shown with -v only; `warn` always. Formatting is fmt's (DESIGN D11).

#pragma once

#include <cstdio>

#include <fmt/core.h>

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

}  // namespace sb
