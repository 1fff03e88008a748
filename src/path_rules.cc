#include "path_rules.h"

#include <fnmatch.h>

#include <string>

#include <fmt/format.h>
#include <kj/debug.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

namespace {

std::string_view view(kj::StringPtr s) { return std::string_view(s.begin(), s.size()); }

struct DefaultRule {
  Placement placement;
  const char* prefix;
};

// The defaults, in match order. Each group is here for a reason that holds for any program:
constexpr DefaultRule DEFAULT_RULES[] = {
    // This process's own world: /proc/self and /proc/thread-self describe the tracee, which runs
    // here (its maps, fds, exe); the remote's /proc/self would describe the agent.
    {Placement::LOCAL, "/proc/self"},
    {Placement::LOCAL, "/proc/thread-self"},
    // The terminal the user is typing into is on this machine; a test's prompts, colours and
    // job control must keep working.
    {Placement::LOCAL, "/dev/tty"},
    {Placement::LOCAL, "/dev/pts"},
    {Placement::LOCAL, "/dev/ptmx"},
    // Device sinks and sources behave identically on every Linux machine, so sending them over
    // costs a round trip per call and gains nothing (`> /dev/null` in a loop would crawl).
    {Placement::LOCAL, "/dev/null"},
    {Placement::LOCAL, "/dev/zero"},
    {Placement::LOCAL, "/dev/full"},
    {Placement::LOCAL, "/dev/random"},
    {Placement::LOCAL, "/dev/urandom"},
    // Shared memory is IPC between processes on this machine (the test harness, multiprocessing
    // semaphores); a remote shm object could never be mapped by a local peer.
    {Placement::LOCAL, "/dev/shm"},
    // The process's own fds (sbrun maps those that are remote to the file on the target).
    {Placement::LOCAL, "/dev/fd"},
    {Placement::LOCAL, "/dev/stdin"},
    {Placement::LOCAL, "/dev/stdout"},
    {Placement::LOCAL, "/dev/stderr"},
    // The dynamic loader reads these before main(); they describe *this* machine's libraries,
    // which the loader then maps locally.
    {Placement::LOCAL, "/etc/ld.so.cache"},
    {Placement::LOCAL, "/etc/ld.so.preload"},
    // Locale data belongs to the program's libc (the archive format is libc-specific) and
    // message catalogs to the program: both come from here, before the /usr/lib fallback.
    {Placement::LOCAL, "/usr/lib/locale"},
    {Placement::LOCAL, "/usr/share/locale"},
    // Code that runs here must be loaded from here: shared libraries and interpreters' modules
    // are mapped and executed by the local CPU, and must match the local libc. (Programs are
    // not: a program exec'd inside a remote scope runs there, so the bin directories follow the
    // scope and a shell's PATH search looks where exec will run.) FALLBACK still lets a program reach a library that only the remote
    // has (the analogue of splitbrain importing a missing module from the remote).
    {Placement::FALLBACK, "/lib"},
    {Placement::FALLBACK, "/lib32"},
    {Placement::FALLBACK, "/lib64"},
    {Placement::FALLBACK, "/libx32"},
    {Placement::FALLBACK, "/usr/lib"},
    {Placement::FALLBACK, "/usr/lib32"},
    {Placement::FALLBACK, "/usr/lib64"},
    {Placement::FALLBACK, "/usr/libexec"},
    {Placement::FALLBACK, "/usr/local/lib"},
};

}  // namespace

kj::StringPtr placementName(Placement p) {
  switch (p) {
    case Placement::LOCAL:
      return "local";
    case Placement::REMOTE:
      return "remote";
    case Placement::FALLBACK:
      return "fallback";
    case Placement::SCOPE:
      return "scope";
  }
  KJ_UNREACHABLE;
}

kj::String normalizePath(kj::StringPtr base, kj::StringPtr path) {
  std::string joined;
  if (path.startsWith("/")) {
    joined.assign(path.begin(), path.size());
  } else {
    KJ_REQUIRE(base.startsWith("/"), "a relative path needs an absolute base directory", base,
               path);
    joined.reserve(base.size() + 1 + path.size());
    joined.append(base.begin(), base.size());
    joined.push_back('/');
    joined.append(path.begin(), path.size());
  }

  // Components are kept as (offset, length) into `joined`; ".." pops one, "." and "" vanish.
  struct Component {
    size_t offset;
    size_t size;
  };
  std::vector<Component> stack;
  size_t i = 0;
  while (i < joined.size()) {
    size_t end = joined.find('/', i);
    if (end == std::string::npos) {
      end = joined.size();
    }
    std::string_view component(joined.data() + i, end - i);
    if (component == "..") {
      if (!stack.empty()) {
        stack.pop_back();
      }
    } else if (!component.empty() && component != ".") {
      stack.push_back({i, end - i});
    }
    i = end + 1;
  }

  if (stack.empty()) {
    return kj::str("/");
  }
  size_t total = 0;
  for (auto& c: stack) {
    total += 1 + c.size;
  }
  auto result = kj::heapString(total);
  char* out = result.begin();
  for (auto& c: stack) {
    *out++ = '/';
    memcpy(out, joined.data() + c.offset, c.size);
    out += c.size;
  }
  return result;
}

kj::String parseRulePrefix(kj::StringPtr text) {
  KJ_REQUIRE(text.startsWith("/"),
             "a path rule prefix must be an absolute path, e.g. --remote /dev/ttyUSB0", text);
  return normalizePath("/", text);
}

static bool isGlob(kj::StringPtr prefix) {
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[') {
      return true;
    }
  }
  return false;
}

static bool globHasPrefix(kj::StringPtr absPath, kj::StringPtr pattern) {
  // The pattern against the path and each of its parents, whole components only, so that a
  // match covers everything below it as a prefix does.
  std::string path(absPath.cStr(), absPath.size());
  for (size_t end = path.size(); end > 0; end = path.rfind('/', end - 1)) {
    if (fnmatch(pattern.cStr(), path.substr(0, end).c_str(), FNM_PATHNAME) == 0) {
      return true;
    }
  }
  return false;
}

bool pathHasPrefix(kj::StringPtr absPath, kj::StringPtr prefix) {
  if (prefix == "/") {
    return absPath.startsWith("/");
  }
  if (!absPath.startsWith(prefix)) {
    return false;
  }
  // Only a whole component counts: "/usr/lib" must not claim "/usr/lib64".
  return absPath.size() == prefix.size() || absPath[prefix.size()] == '/';
}

void PathRules::addUser(Placement placement, kj::StringPtr prefix) {
  KJ_REQUIRE(placement != Placement::SCOPE, "a path rule must be local, remote or fallback");
  auto normalized = parseRulePrefix(prefix);
  bool glob = isGlob(normalized);
  rulesInOrder.add(PathRule{placement, kj::mv(normalized), false, glob});
  // Move the new rule in front of the defaults, after the earlier user rules.
  std::rotate(rulesInOrder.begin() + userCount, rulesInOrder.end() - 1, rulesInOrder.end());
  ++userCount;
}

void PathRules::addDefaults(kj::StringPtr programPrefix, kj::StringPtr otherPrefix) {
  KJ_REQUIRE(!defaultsAdded, "default path rules added twice");
  defaultsAdded = true;
  for (auto& rule: DEFAULT_RULES) {
    rulesInOrder.add(PathRule{rule.placement, kj::str(rule.prefix), true, false});
  }
  kj::String added;
  for (auto given : {programPrefix, otherPrefix}) {
    if (given.size() == 0) {
      continue;
    }
    auto prefix = parseRulePrefix(given);
    if (prefix != "/" && prefix != "/usr" && prefix != added) {
      added = kj::str(prefix);
      rulesInOrder.add(PathRule{Placement::FALLBACK, kj::mv(prefix), true, false});
    }
  }
}

kj::Maybe<const PathRule&> PathRules::matchRule(kj::StringPtr absPath) const {
  for (auto& rule: rulesInOrder) {
    if (rule.glob ? globHasPrefix(absPath, rule.prefix) : pathHasPrefix(absPath, rule.prefix)) {
      return rule;
    }
  }
  return nullptr;
}

Placement PathRules::match(kj::StringPtr absPath) const {
  KJ_IF_MAYBE(rule, matchRule(absPath)) {
    return rule->placement;
  }
  return Placement::SCOPE;
}

kj::String PathRules::describe() const {
  size_t width = 0;
  for (auto& rule: rulesInOrder) {
    width = std::max(width, rule.prefix.size());
  }
  std::string out;
  for (auto& rule: rulesInOrder) {
    fmt::format_to(std::back_inserter(out), "{:<9} {:<{}}  {}\n",
                   view(placementName(rule.placement)), view(rule.prefix), width,
                   rule.isDefault ? "(default)" : "(user)");
  }
  out += "unmatched paths follow the thread's scope (its active target, or local outside any)\n";
  return kj::heapString(out.data(), out.size());
}

}  // namespace sb
