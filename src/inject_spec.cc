// strace's -e inject= syntax; see inject_spec.h.

#include "inject_spec.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <string_view>

#include "errno_names.h"

namespace sb {

namespace {

// A whole decimal number in [min, max], or -1.
int64_t wholeNumber(std::string_view text, int64_t min, int64_t max) {
  if (text.empty() || text.size() > 18) {
    return -1;
  }
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return -1;
    }
    v = v * 10 + (c - '0');
  }
  return v >= min && v <= max ? v : -1;
}

kj::Vector<kj::String> splitColons(kj::StringPtr text) {
  kj::Vector<kj::String> parts;
  std::string_view all(text.cStr(), text.size());
  size_t pos = 0;
  while (true) {
    size_t colon = all.find(':', pos);
    auto piece = all.substr(pos, colon == all.npos ? all.npos : colon - pos);
    parts.add(kj::heapString(piece.data(), piece.size()));
    if (colon == all.npos) {
      return parts;
    }
    pos = colon + 1;
  }
}

}  // namespace

kj::Maybe<WhenSpec> parseWhen(kj::StringPtr text, kj::String& error) {
  // strace's ranges: first and step 1..65535, last 1..65534.
  std::string_view s(text.cStr(), text.size());
  WhenSpec w;
  auto bad = [&](const char* why) {
    error = kj::str("bad when=", text, ": ", why,
                    " (FIRST, FIRST+, FIRST+STEP, FIRST..LAST, FIRST..LAST+STEP or ..LAST; "
                    "FIRST and STEP 1..65535, LAST 1..65534)");
    return nullptr;
  };
  size_t plus = s.find('+');
  std::string_view range = s.substr(0, plus);
  size_t dots = range.find("..");
  std::string_view firstText = range.substr(0, dots);
  if (dots != range.npos && firstText.empty()) {
    w.first = 1;  // "..M": splitbrain's shorthand for 1..M
  } else {
    int64_t first = wholeNumber(firstText, 1, 65535);
    if (first < 0) {
      return bad("FIRST must be a number from 1 to 65535");
    }
    w.first = static_cast<uint32_t>(first);
  }
  if (dots != range.npos) {
    int64_t last = wholeNumber(range.substr(dots + 2), 1, 65534);
    if (last < 0) {
      return bad("LAST must be a number from 1 to 65534");
    }
    if (last < w.first) {
      return bad("LAST is before FIRST");
    }
    w.last = static_cast<uint32_t>(last);
  } else if (plus == s.npos) {
    w.last = w.first;  // "N": that invocation only
  }
  if (plus != s.npos) {
    std::string_view stepText = s.substr(plus + 1);
    if (!stepText.empty()) {
      int64_t step = wholeNumber(stepText, 1, 65535);
      if (step < 0) {
        return bad("STEP must be a number from 1 to 65535");
      }
      w.step = static_cast<uint32_t>(step);
    }
  }
  return w;
}

kj::Maybe<uint64_t> parseDelay(kj::StringPtr text, kj::String& error) {
  char* end = nullptr;
  errno = 0;
  double v = strtod(text.cStr(), &end);
  kj::StringPtr unit(end);
  double scale = unit == "" || unit == "us" ? 1 : unit == "s" ? 1e6 : unit == "ms" ? 1e3
               : unit == "ns" ? 1e-3 : -1;
  if (end == text.cStr() || errno != 0 || scale < 0 || !(v >= 0) || v * scale > 86400e6) {
    error = kj::str("bad delay '", text, "': a number of microseconds, or with a unit s, ms, us "
                    "or ns (at most a day)");
    return nullptr;
  }
  return static_cast<uint64_t>(v * scale);
}

int parseErrno(kj::StringPtr text) {
  int64_t n = wholeNumber(std::string_view(text.cStr(), text.size()), 1, 4095);
  if (n > 0) {
    return static_cast<int>(n);
  }
  for (int e = 1; e < 4096; ++e) {
    if (errnoName(e) == text) {
      return e;
    }
  }
  return 0;
}

int parseSignal(kj::StringPtr text) {
  int64_t n = wholeNumber(std::string_view(text.cStr(), text.size()), 1, 64);
  if (n > 0) {
    return static_cast<int>(n);
  }
  kj::StringPtr name = text.startsWith("SIG") ? text.slice(3) : text;
  for (int sig = 1; sig < 32; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev) {
      return sig;
    }
  }
  return 0;
}

kj::Maybe<InjectRule> parseInjectRule(kj::StringPtr text, kj::String& error, bool fault) {
  InjectRule rule;
  rule.text = kj::str(text);
  auto parts = splitColons(text);
  KJ_IF_MAYBE(set, parseSyscallSet(parts[0], error)) {
    rule.set = *set;
  } else {
    return nullptr;
  }
  bool action = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    kj::StringPtr part = parts[i];
    const char* eq = strchr(part.cStr(), '=');
    if (eq == nullptr) {
      error = kj::str("'", part, "' is not KEY=VALUE (error=, retval=, signal=, delay_enter=, "
                      "delay_exit=, when=, path=)");
      return nullptr;
    }
    kj::String key = kj::heapString(part.cStr(), eq - part.cStr());
    kj::StringPtr value(eq + 1);
    if (key == "error") {
      if (rule.hasRetval || rule.error != 0) {
        error = kj::str("one error= or retval= per rule");
        return nullptr;
      }
      rule.error = parseErrno(value);
      if (rule.error == 0) {
        error = kj::str("error=", value, ": not an errno name (EIO, ENOSPC ...) or number 1..4095");
        return nullptr;
      }
      action = true;
    } else if (key == "retval") {
      if (rule.hasRetval || rule.error != 0) {
        error = kj::str("one error= or retval= per rule");
        return nullptr;
      }
      int64_t v = wholeNumber(std::string_view(value.cStr(), value.size()), 0, INT64_MAX / 10);
      if (v < 0) {
        error = kj::str("retval=", value, ": not a non-negative number");
        return nullptr;
      }
      rule.hasRetval = true;
      rule.retval = v;
      action = true;
    } else if (key == "signal") {
      if (rule.signal != 0) {
        error = kj::str("one signal= per rule");
        return nullptr;
      }
      rule.signal = parseSignal(value);
      if (rule.signal == 0) {
        error = kj::str("signal=", value, ": not a signal name (SIGUSR1 ...) or number 1..64");
        return nullptr;
      }
      action = true;
    } else if (key == "delay_enter" || key == "delay_exit") {
      KJ_IF_MAYBE(us, parseDelay(value, error)) {
        (key == "delay_enter" ? rule.delayEnterUs : rule.delayExitUs) = *us;
      } else {
        return nullptr;
      }
      action = true;
    } else if (key == "when") {
      KJ_IF_MAYBE(w, parseWhen(value, error)) {
        rule.when = *w;  // the last when= wins, as strace's
      } else {
        return nullptr;
      }
    } else if (key == "path") {
      if (!value.startsWith("/")) {
        error = kj::str("path=", value, ": the glob must be an absolute path, e.g. /data/*");
        return nullptr;
      }
      rule.pathGlobs.add(kj::str(value));
    } else {
      error = kj::str("unknown key '", key, "' (error=, retval=, signal=, delay_enter=, "
                      "delay_exit=, when=, path=)");
      return nullptr;
    }
  }
  if (fault && !rule.hasRetval && rule.error == 0) {
    rule.error = ENOSYS;  // strace's -e fault=
    action = true;
  }
  if (!action) {
    error = kj::str("'", text, "' injects nothing: give error=, retval=, signal=, delay_enter= "
                    "or delay_exit=");
    return nullptr;
  }
  return rule;
}

}  // namespace sb
