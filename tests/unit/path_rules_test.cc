#include "path_rules.h"

#include <doctest.h>
#include <kj/exception.h>

#include <string>

namespace sb {
namespace {

std::string toStd(kj::StringPtr s) { return std::string(s.begin(), s.size()); }

std::string matchedPrefix(const PathRules& rules, kj::StringPtr path) {
  KJ_IF_MAYBE(rule, rules.matchRule(path)) {
    return toStd(rule->prefix);
  }
  return "(none)";
}

TEST_SUITE("path_rules") {
  TEST_CASE("normalizePath joins relative paths and resolves . .. and // lexically") {
    struct Case {
      const char* base;
      const char* path;
      const char* expected;
    };
    const Case cases[] = {
        {"/", "/", "/"},
        {"/home/u", "", "/home/u"},
        {"/home/u", ".", "/home/u"},
        {"/home/u", "a", "/home/u/a"},
        {"/home/u", "a/b/", "/home/u/a/b"},
        {"/home/u", "./a/./b", "/home/u/a/b"},
        {"/home/u", "..", "/home"},
        {"/home/u", "../..", "/"},
        {"/home/u", "../../../..", "/"},
        {"/home/u", "../v/x", "/home/v/x"},
        {"/home/u", "/etc/passwd", "/etc/passwd"},
        {"/ignored", "//etc///passwd//", "/etc/passwd"},
        {"/", "/..", "/"},
        {"/", "/../etc", "/etc"},
        {"/", "/a/b/../../c", "/c"},
        {"/", "/a/./b/.", "/a/b"},
        {"/", "/a/...", "/a/..."},
        {"/", "/a/..b/.c", "/a/..b/.c"},
        {"/home//u/", "x", "/home/u/x"},
        {"/", "/dir with space/\xff\x01", "/dir with space/\xff\x01"},
    };
    for (auto& c: cases) {
      CAPTURE(c.base);
      CAPTURE(c.path);
      CHECK(toStd(normalizePath(c.base, c.path)) == c.expected);
    }
  }

  TEST_CASE("normalizePath refuses a relative path against a relative base") {
    CHECK_THROWS_AS(normalizePath("home", "x"), kj::Exception);
    // An absolute path needs no base at all.
    CHECK(toStd(normalizePath("", "/x/")) == "/x");
  }

  TEST_CASE("a prefix matches whole path components only") {
    CHECK(pathHasPrefix("/usr/lib", "/usr/lib"));
    CHECK(pathHasPrefix("/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib"));
    CHECK_FALSE(pathHasPrefix("/usr/lib64", "/usr/lib"));
    CHECK_FALSE(pathHasPrefix("/usr/li", "/usr/lib"));
    CHECK_FALSE(pathHasPrefix("/usr", "/usr/lib"));
    CHECK(pathHasPrefix("/anything/at/all", "/"));
    CHECK(pathHasPrefix("/", "/"));
  }

  TEST_CASE("a glob rule matches a path or a parent of it, * within one component") {
    PathRules rules;
    rules.addUser(Placement::REMOTE, "/dev/ttyUSB*");
    rules.addUser(Placement::LOCAL, "/data/*.log");
    rules.addUser(Placement::FALLBACK, "/opt/v?/[ab]");
    CHECK(rules.match("/dev/ttyUSB0") == Placement::REMOTE);
    CHECK(rules.match("/dev/ttyUSB12/power") == Placement::REMOTE);   // below a match
    CHECK(rules.match("/dev/ttyS0") == Placement::SCOPE);
    CHECK(rules.match("/data/run.log") == Placement::LOCAL);
    CHECK(rules.match("/data/sub/run.log") == Placement::SCOPE);      // * stops at '/'
    CHECK(rules.match("/data/run.log.1") == Placement::SCOPE);
    CHECK(rules.match("/opt/v1/a/lib") == Placement::FALLBACK);
    CHECK(rules.match("/opt/v10/a") == Placement::SCOPE);
    CHECK(rules.match("/opt/v1/c") == Placement::SCOPE);
    CHECK(matchedPrefix(rules, "/dev/ttyUSB3") == "/dev/ttyUSB*");
    CHECK(rules.rules()[0].glob);
  }

  TEST_CASE("defaults keep the loader, libraries, terminal and /proc/self local") {
    PathRules rules;
    rules.addDefaults("");
    CHECK(rules.match("/proc/self/maps") == Placement::LOCAL);
    CHECK(rules.match("/proc/thread-self/status") == Placement::LOCAL);
    CHECK(rules.match("/dev/tty") == Placement::LOCAL);
    CHECK(rules.match("/dev/pts/3") == Placement::LOCAL);
    CHECK(rules.match("/dev/null") == Placement::LOCAL);
    CHECK(rules.match("/dev/shm/sem.x") == Placement::LOCAL);
    CHECK(rules.match("/etc/ld.so.cache") == Placement::LOCAL);
    CHECK(rules.match("/lib64/ld-linux-x86-64.so.2") == Placement::FALLBACK);
    CHECK(rules.match("/usr/lib/x86_64-linux-gnu/libc.so.6") == Placement::FALLBACK);
    // Locale data is the local libc's (its archive format is libc-specific): local, even though
    // /usr/lib as a whole is a fallback.
    CHECK(rules.match("/usr/lib/locale/C.utf8/LC_CTYPE") == Placement::LOCAL);
    CHECK(rules.match("/usr/share/locale/de/LC_MESSAGES/x.mo") == Placement::LOCAL);
    // Everything else is the scope's business: the target's /proc, /etc, devices and data.
    CHECK(rules.match("/proc/1/status") == Placement::SCOPE);
    CHECK(rules.match("/proc/selfish") == Placement::SCOPE);
    CHECK(rules.match("/dev/ttyUSB0") == Placement::SCOPE);
    CHECK(rules.match("/dev/nullx") == Placement::SCOPE);
    CHECK(rules.match("/etc/hostname") == Placement::SCOPE);
    CHECK(rules.match("/usr/share/doc") == Placement::SCOPE);
    CHECK(rules.match("/") == Placement::SCOPE);
    CHECK(rules.matchRule("/etc/passwd") == nullptr);
    for (auto& rule: rules.rules()) {
      CHECK(rule.isDefault);
    }
  }

  TEST_CASE("defaults come in the documented order, locals before fallbacks") {
    PathRules rules;
    rules.addDefaults("");
    auto all = rules.rules();
    REQUIRE(all.size() == 28);
    CHECK(toStd(all[0].prefix) == "/proc/self");
    CHECK(toStd(all[16].prefix) == "/etc/ld.so.preload");
    CHECK(all[16].placement == Placement::LOCAL);
    CHECK(toStd(all[17].prefix) == "/usr/lib/locale");
    CHECK(all[17].placement == Placement::LOCAL);
    CHECK(toStd(all[19].prefix) == "/lib");
    CHECK(all[19].placement == Placement::FALLBACK);
    CHECK(toStd(all[27].prefix) == "/usr/local/lib");
    CHECK(all[27].placement == Placement::FALLBACK);
    // Programs follow the scope: exec inside a remote scope runs them there.
    CHECK(rules.match("/usr/bin/uname") == Placement::SCOPE);
  }

  TEST_CASE("the program's install prefix becomes a fallback unless it is / or /usr") {
    PathRules rules;
    rules.addDefaults("/root/.pyenv/versions/3.11.7/");
    CHECK(rules.match("/root/.pyenv/versions/3.11.7/lib/python3.11/os.py") == Placement::FALLBACK);
    CHECK(matchedPrefix(rules, "/root/.pyenv/versions/3.11.7/bin/python3") ==
          "/root/.pyenv/versions/3.11.7");
    CHECK(rules.match("/root/.pyenv/versions/3.11.70") == Placement::SCOPE);

    for (auto broad: {"/", "/usr", "/usr/", ""}) {
      CAPTURE(broad);
      PathRules other;
      other.addDefaults(broad);
      CHECK(other.rules().size() == 28);
      CHECK(other.match("/usr/share/python3/x") == Placement::SCOPE);
    }
  }

  TEST_CASE("the first matching rule wins, in insertion order") {
    PathRules rules;
    rules.addUser(Placement::REMOTE, "/data");
    rules.addUser(Placement::LOCAL, "/data/cache");
    // The broader rule came first, so it shadows the narrower one.
    CHECK(rules.match("/data/cache/x") == Placement::REMOTE);
    CHECK(matchedPrefix(rules, "/data/cache/x") == "/data");

    PathRules narrowFirst;
    narrowFirst.addUser(Placement::LOCAL, "/data/cache");
    narrowFirst.addUser(Placement::REMOTE, "/data");
    CHECK(narrowFirst.match("/data/cache/x") == Placement::LOCAL);
    CHECK(narrowFirst.match("/data/other") == Placement::REMOTE);
  }

  TEST_CASE("user rules go before defaults even when added after them") {
    PathRules rules;
    rules.addUser(Placement::REMOTE, "/usr/lib/firmware");
    rules.addDefaults("");
    rules.addUser(Placement::REMOTE, "/dev/tty");
    rules.addUser(Placement::FALLBACK, "/opt/tools/");
    CHECK(rules.match("/usr/lib/firmware/x.bin") == Placement::REMOTE);
    CHECK(rules.match("/usr/lib/libc.so") == Placement::FALLBACK);
    CHECK(rules.match("/dev/tty") == Placement::REMOTE);
    CHECK(rules.match("/opt/tools/bin/x") == Placement::FALLBACK);
    auto all = rules.rules();
    REQUIRE(all.size() == 31);
    CHECK(toStd(all[0].prefix) == "/usr/lib/firmware");
    CHECK(toStd(all[1].prefix) == "/dev/tty");
    CHECK(toStd(all[2].prefix) == "/opt/tools");
    CHECK_FALSE(all[2].isDefault);
    CHECK(toStd(all[3].prefix) == "/proc/self");
    CHECK(all[3].isDefault);
  }

  TEST_CASE("a user rule on / overrides every default after it") {
    PathRules rules;
    rules.addUser(Placement::LOCAL, "/");
    rules.addDefaults("");
    CHECK(rules.match("/etc/hostname") == Placement::LOCAL);
    CHECK(rules.match("/usr/lib/x") == Placement::LOCAL);
  }

  TEST_CASE("user rules must be absolute and cannot be SCOPE") {
    PathRules rules;
    CHECK_THROWS_WITH_AS(rules.addUser(Placement::LOCAL, "dev/ttyUSB0"),
                         doctest::Contains("must be an absolute path"), kj::Exception);
    CHECK_THROWS_AS(rules.addUser(Placement::LOCAL, ""), kj::Exception);
    CHECK_THROWS_AS(rules.addUser(Placement::SCOPE, "/x"), kj::Exception);
    CHECK(rules.rules().size() == 0);
    CHECK(toStd(parseRulePrefix("/a//b/./c/")) == "/a/b/c");
  }

  TEST_CASE("placements have lower-case names") {
    CHECK(toStd(placementName(Placement::LOCAL)) == "local");
    CHECK(toStd(placementName(Placement::REMOTE)) == "remote");
    CHECK(toStd(placementName(Placement::FALLBACK)) == "fallback");
    CHECK(toStd(placementName(Placement::SCOPE)) == "scope");
  }

  TEST_CASE("describe lists every rule in match order and ends with the scope line") {
    PathRules rules;
    rules.addUser(Placement::REMOTE, "/dev/ttyUSB0");
    rules.addDefaults("/opt/py");
    std::string text = toStd(rules.describe());
    CAPTURE(text);
    // One line per rule plus the closing one.
    size_t lines = 0;
    for (char c: text) {
      lines += c == '\n';
    }
    CHECK(lines == rules.rules().size() + 1);
    CHECK(text.rfind("remote    /dev/ttyUSB0 ", 0) == 0);
    CHECK(text.find("(user)\n") != std::string::npos);
    CHECK(text.find("\nlocal     /proc/self ") != std::string::npos);
    CHECK(text.find("\nfallback  /usr/lib ") != std::string::npos);
    CHECK(text.find("\nfallback  /opt/py ") != std::string::npos);
    CHECK(text.find("(default)\n") != std::string::npos);
    CHECK(text.find("/dev/ttyUSB0") < text.find("/proc/self"));
    CHECK(text.find("/usr/lib/locale") < text.find("/opt/py"));
    // The closing line explains what happens to everything else.
    auto last = text.substr(text.rfind('\n', text.size() - 2) + 1);
    CHECK(last.find("unmatched paths follow the thread's scope") == 0);
    // Columns line up: every "(default)" starts at the same offset in its line.
    size_t column = std::string::npos;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      auto line = text.substr(start, end - start);
      auto at = line.find(" (");
      if (at != std::string::npos && line.find("unmatched") != 0) {
        if (column == std::string::npos) {
          column = at;
        }
        CHECK(at == column);
      }
      start = end + 1;
    }
  }
}

TEST_SUITE("path_rules") {
  TEST_CASE("a second program prefix (a virtualenv's) is a fallback too, once") {
    PathRules rules;
    rules.addDefaults("/home/u/venv", "/root/.pyenv/versions/3.11.7");
    CHECK(rules.match("/home/u/venv/lib/python3.11/site-packages/x.py") == Placement::FALLBACK);
    CHECK(rules.match("/root/.pyenv/versions/3.11.7/lib/os.py") == Placement::FALLBACK);
    PathRules same;
    same.addDefaults("/opt/tool", "/opt/tool");
    CHECK(same.rules().size() == 29);
    PathRules broad;
    broad.addDefaults("/home/u/venv", "/usr");
    CHECK(broad.rules().size() == 29);
  }
}

}  // namespace
}  // namespace sb
