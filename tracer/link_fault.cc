#include "link_fault.h"

#include <errno.h>
#include <stdlib.h>

namespace sb {

namespace {

// "250ms", "2s", "1.5s".
kj::Maybe<kj::Duration> parseDuration(kj::StringPtr text) {
  char* end = nullptr;
  errno = 0;
  double value = strtod(text.cStr(), &end);
  if (end == text.cStr() || errno != 0 || value < 0 || value > 86400 * 1000.0) {
    return nullptr;
  }
  kj::StringPtr unit = end;
  if (unit == "ms") {
    return int64_t(value * 1000) * kj::MICROSECONDS;
  }
  if (unit == "s") {
    return int64_t(value * 1000000) * kj::MICROSECONDS;
  }
  return nullptr;
}

kj::Maybe<uint64_t> parseCount(kj::StringPtr text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = strtoull(text.cStr(), &end, 10);
  if (text.size() == 0 || *end != 0 || errno != 0 || n == 0 || text[0] == '-') {
    return nullptr;
  }
  return uint64_t(n);
}

}  // namespace

kj::Maybe<LinkFault> parseLinkFault(kj::StringPtr spec, kj::String& error) {
  LinkFault fault;
  fault.text = kj::str(spec);
  bool haveFor = false;
  bool first = true;
  kj::StringPtr rest = spec;
  bool last = false;
  while (!last) {
    kj::String part;
    KJ_IF_MAYBE(colon, rest.findFirst(':')) {
      part = kj::heapString(rest.slice(0, *colon));
      rest = rest.slice(*colon + 1);
    } else {
      part = kj::str(rest);
      last = true;
    }
    kj::StringPtr key = part;
    kj::StringPtr value = "";
    KJ_IF_MAYBE(eq, part.findFirst('=')) {
      part.begin()[*eq] = '\0';
      key = kj::StringPtr(part.begin(), *eq);
      value = kj::StringPtr(part.begin() + *eq + 1);
    } else {
      error = kj::str("--link-fault ", spec, ": '", part, "' needs a value (KEY=VALUE)");
      return nullptr;
    }
    if (first) {
      first = false;
      if (key == "delay") {
        fault.kind = LinkFault::Kind::DELAY;
        KJ_IF_MAYBE(d, parseDuration(value)) {
          fault.duration = *d;
        } else {
          error = kj::str("--link-fault ", spec, ": delay takes a duration such as 50ms or 2s");
          return nullptr;
        }
      } else if (key == "drop" || key == "freeze") {
        fault.kind = key == "drop" ? LinkFault::Kind::DROP : LinkFault::Kind::FREEZE;
        KJ_IF_MAYBE(n, parseCount(value)) {
          fault.afterCalls = *n;
        } else {
          error = kj::str("--link-fault ", spec, ": ", key,
                          " takes the number of remote calls after which it happens (1 or more)");
          return nullptr;
        }
      } else {
        error = kj::str("--link-fault ", spec, ": unknown fault '", key,
                        "' (delay=DURATION, drop=N or freeze=N:for=DURATION)");
        return nullptr;
      }
    } else if (key == "target") {
      if (value.size() == 0) {
        error = kj::str("--link-fault ", spec, ": target= needs a target's name");
        return nullptr;
      }
      fault.target = kj::str(value);
    } else if (key == "for" && fault.kind == LinkFault::Kind::FREEZE) {
      KJ_IF_MAYBE(d, parseDuration(value)) {
        fault.duration = *d;
        haveFor = true;
      } else {
        error = kj::str("--link-fault ", spec, ": for= takes a duration such as 500ms or 5s");
        return nullptr;
      }
    } else {
      error = kj::str("--link-fault ", spec, ": unknown or misplaced '", key, "='");
      return nullptr;
    }
  }
  if (fault.kind == LinkFault::Kind::FREEZE && !haveFor) {
    error = kj::str("--link-fault ", spec, ": freeze needs for=DURATION (freeze=N:for=5s)");
    return nullptr;
  }
  return kj::mv(fault);
}

}  // namespace sb
