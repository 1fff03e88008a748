// Path rules: where a path lives (DESIGN D5).
//
// An ordered, first-match list of prefixes, each with a placement: LOCAL (this machine),
// REMOTE (the thread's active target), FALLBACK (here first, the remote on ENOENT). A path no rule
// matches gets SCOPE: the thread's scope decides (its active target, or local outside any).
// User rules (--local/--remote/--fallback) always come before the defaults, so a user can
// override any default by naming a longer or equal prefix.
//
// This module is pure text: it never touches the filesystem. Paths are compared lexically and
// per component after normalizePath(); symlinks are not followed here (the agent resolves them).
// It is not the place that decides *which* remote target a thread uses — that is the scope.
//
//   PathRules rules;
//   rules.addUser(Placement::REMOTE, "/dev/ttyUSB0");
//   rules.addDefaults("/opt/python3.11");
//   rules.match(normalizePath(cwd, path));   // -> LOCAL, REMOTE, FALLBACK or SCOPE

#pragma once

#include <kj/array.h>
#include <kj/common.h>
#include <kj/string.h>
#include <kj/vector.h>
#include <stdint.h>

namespace sb {

enum class Placement : uint8_t {
  LOCAL,
  REMOTE,
  FALLBACK,
  // No rule matched: the thread's scope decides.
  SCOPE,
};

// "local", "remote", "fallback", "scope".
kj::StringPtr placementName(Placement p);

struct PathRule {
  Placement placement;
  // Absolute and normalized (see normalizePath); "/" matches everything.
  kj::String prefix;
  bool isDefault;
  // The prefix holds *, ? or [...]: it matches a path when it matches (fnmatch, FNM_PATHNAME:
  // within components) the path or one of its parents, e.g. /dev/ttyUSB* matches /dev/ttyUSB0.
  bool glob = false;
};

class PathRules {
 public:
  // A user rule (--local/--remote/--fallback PREFIX). User rules keep command-line order and go
  // before every default, even when added after addDefaults(). The prefix must be absolute
  // (KJ_REQUIRE); it is normalized. Placement::SCOPE is not a rule and is refused.
  void addUser(Placement placement, kj::StringPtr prefix);

  // Appends the default rules (see path_rules.cc for why each one is there). programPrefix is the
  // install prefix of the launched program (e.g. "/root/.pyenv/versions/3.11.7" for
  // .../bin/python3): its libraries and modules must load from here like the system ones, so it
  // is added as FALLBACK unless it is "", "/" or "/usr" (already covered, or far too broad).
  // Call at most once. A second prefix (e.g. a virtualenv's, whose bin/python is a symlink to
  // the system one) is added the same way when given and different.
  void addDefaults(kj::StringPtr programPrefix, kj::StringPtr otherPrefix = "");

  // The placement for an absolute, normalized path: the first rule that matches, else SCOPE.
  // Matching is per path component: "/usr/lib" matches "/usr/lib" and "/usr/lib/x" but not
  // "/usr/lib64"; "/" matches everything; a glob rule ("/data/*.log") matches the path or a
  // parent of it.
  Placement match(kj::StringPtr absPath) const;

  // The rule that matched, for -v; nullptr when the scope decides.
  kj::Maybe<const PathRule&> matchRule(kj::StringPtr absPath) const;

  kj::ArrayPtr<const PathRule> rules() const { return rulesInOrder.asPtr(); }

  // For --print-rules: one line per rule in match order, e.g.
  //   "local     /proc/self          (default)"
  // then a last line saying that unmatched paths follow the thread's scope. Ends with '\n'.
  kj::String describe() const;

 private:
  kj::Vector<PathRule> rulesInOrder;
  // User rules occupy [0, userCount); defaults follow.
  size_t userCount = 0;
  bool defaultsAdded = false;
};

// True when `prefix` covers `absPath` per component (both normalized).
bool pathHasPrefix(kj::StringPtr absPath, kj::StringPtr prefix);

// Lexical join and normalize, no filesystem access. A relative `path` is joined to `base`, which
// must then be absolute (KJ_REQUIRE). Collapses "//" and ".", resolves ".." lexically ("/.." is
// "/"), and drops a trailing slash except for "/" itself. An empty `path` yields `base`
// normalized. Paths are bytes: any byte but NUL may appear and is kept as is.
//
// Lexical ".." differs from the kernel's when a symlink precedes it ("/a/link/.." is "/a" here);
// that only affects which rule matches, not how the chosen side resolves the path.
kj::String normalizePath(kj::StringPtr base, kj::StringPtr path);

// An absolute prefix for --local/--remote/--fallback, normalized. KJ_REQUIREs an absolute path,
// with a message that names the option's expected form.
kj::String parseRulePrefix(kj::StringPtr text);

}  // namespace sb
