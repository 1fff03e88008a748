// The configuration files' part of sbrun's options (config_file.h): named targets and defaults.

#include <stdlib.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "config_file.h"
#include "options.h"

namespace sb {

namespace {

[[noreturn]] void configError(kj::StringPtr message) {
  fmt::print(stderr, "sbrun: {}\n", message.cStr());
  exit(EXIT_SBRUN_ERROR);
}

// A target argument that is a name, not a URL: letters, digits, '_' and '-' only.
bool isPlainName(kj::StringPtr text) {
  if (text.size() == 0 || text == "local") {
    return false;
  }
  for (char c : text) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

kj::Vector<kj::String> splitCommas(kj::StringPtr text) {
  kj::Vector<kj::String> out;
  while (text.size() > 0) {
    size_t comma = text.findFirst(',').orDefault(text.size());
    if (comma > 0) {
      out.add(kj::heapString(text.slice(0, comma)));
    }
    text = comma < text.size() ? text.slice(comma + 1) : kj::StringPtr("");
  }
  return out;
}

kj::Duration secondsOf(const ConfigValue& v) {
  return static_cast<int64_t>(strtod(v.items[0].cStr(), nullptr) * 1000) * kj::MILLISECONDS;
}

}  // namespace

void applyConfig(Options& o, ConfigInputs& in) {
  kj::Vector<kj::String> files;
  bool explicitFile = false;
  KJ_IF_MAYBE(f, in.file) {
    files.add(kj::str(*f));
    explicitFile = true;
  } else if (const char* env = getenv("SB_CONFIG"); env != nullptr && *env != 0) {
    files.add(kj::str(env));
    explicitFile = true;
  } else {
    files = Config::defaultFiles();
  }
  Config config;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { config = Config::load(files, explicitFile); })) {
    configError(e->getDescription());
  }
  if (in.print) {
    fmt::print("{}", config.describe().cStr());
    exit(0);
  }

  // The targets: the command line's, else $SB_TARGET's, else the files'.
  kj::Vector<kj::String> wanted = kj::mv(in.targets);
  kj::StringPtr from = "--target";
  if (wanted.empty()) {
    if (const char* env = getenv("SB_TARGET"); env != nullptr && *env != 0) {
      wanted = splitCommas(env);
      from = "SB_TARGET";
    } else if (const ConfigValue* v = config.get("default-target")) {
      for (auto& name : v->items) {
        wanted.add(kj::str(name));
      }
      from = v->origin;
    }
  }
  kj::Vector<kj::String> named;  // the config targets in use, for their other keys
  for (auto& t : wanted) {
    if (isPlainName(t)) {
      if (!config.hasTarget(t)) {
        configError(kj::str(from, ": no target named '", t, "': give a URL (unix:PATH, "
                            "tcp://HOST:PORT, ssh://[USER@]HOST, exec:COMMAND, local[:ROOT]) "
                            "or define [target.", t, "] in ",
                            kj::strArray(files, " or ")));
      }
      const ConfigValue& url = *config.get(kj::str("target.", t, ".url"));
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
        auto parsed = parseTargetUrl(url.items[0]);
        if (parsed.name.size() > 0) {
          KJ_FAIL_REQUIRE("the url of a named target has no NAME= (the table names it)");
        }
        parsed.name = kj::str(t);
        o.targets.add(kj::mv(parsed));
      })) {
        configError(kj::str(url.origin, ": ", e->getDescription()));
      }
      named.add(kj::str(t));
    } else {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { o.targets.add(parseTargetUrl(t)); })) {
        fmt::print(stderr, "sbrun: {}\nTry 'sbrun --help' for more information.\n",
                   e->getDescription().cStr());
        exit(EXIT_SBRUN_ERROR);
      }
    }
  }

  // Files and secrets: the command line's, else the targets' (one value for all of them in
  // this version: they apply to every tcp:// target), else the top level's.
  auto fill = [&](kj::String& field, kj::StringPtr key) {
    if (field.size() > 0) {
      return;
    }
    const ConfigValue* chosen = nullptr;
    for (auto& t : named) {
      const ConfigValue* v = config.get(kj::str("target.", t, ".", key));
      if (v == nullptr) {
        continue;
      }
      if (chosen != nullptr && chosen->items[0] != v->items[0]) {
        configError(kj::str(v->origin, ": ", key, " differs from the one at ", chosen->origin,
                            "; one ", key, " serves every target in this version"));
      }
      chosen = v;
    }
    if (chosen == nullptr) {
      chosen = config.get(key);
    }
    if (chosen != nullptr) {
      field = kj::str(chosen->items[0]);
    }
  };
  fill(o.tokenFile, "token-file");
  fill(o.tls.ca, "tls-ca");
  fill(o.tls.cert, "tls-cert");
  fill(o.tls.key, "tls-key");

  // Path rules after the command line's (first match wins): the targets', then the top level's.
  constexpr std::pair<const char*, Placement> RULE_KEYS[] = {
      {"local", Placement::LOCAL}, {"remote", Placement::REMOTE}, {"fallback", Placement::FALLBACK}};
  auto addRules = [&](kj::StringPtr prefix) {
    for (auto& [key, placement] : RULE_KEYS) {
      if (const ConfigValue* v = config.get(kj::str(prefix, key))) {
        for (auto& rule : v->items) {
          o.userRules.add(placement, kj::str(rule));
        }
      }
    }
  };
  for (auto& t : named) {
    addRules(kj::str("target.", t, "."));
  }
  addRules("");

  // Defaults for the flags the command line did not give.
  if (const ConfigValue* v = config.get("mode"); v != nullptr && !in.given.mode) {
    o.startRemote = v->items[0] == "remote";
  }
  if (const ConfigValue* v = config.get("on-disconnect"); v != nullptr && !in.given.onDisconnect) {
    o.reconnect.mode = v->items[0] == "wait"   ? OnDisconnect::WAIT
                       : v->items[0] == "exit" ? OnDisconnect::EXIT
                                               : OnDisconnect::FAIL;
  }
  if (const ConfigValue* v = config.get("reconnect-timeout");
      v != nullptr && !in.given.reconnectTimeout) {
    o.reconnect.timeout = secondsOf(*v);
  }
  if (const ConfigValue* v = config.get("heartbeat"); v != nullptr && !in.given.heartbeat) {
    o.reconnect.heartbeat = secondsOf(*v);
    if (o.reconnect.heartbeat != 0 * kj::SECONDS &&
        o.reconnect.heartbeat < 100 * kj::MILLISECONDS) {
      configError(kj::str(v->origin, ": heartbeat must be 0 (off) or at least 0.1 s"));
    }
  }
  if (const ConfigValue* v = config.get("remote-cwd"); v != nullptr && !in.given.remoteCwd) {
    o.remoteCwd = kj::str(v->items[0]);
  }
}

}  // namespace sb
