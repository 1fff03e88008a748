#include "config_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <errno.h>
#include <string.h>

#include <fmt/core.h>
#include <kj/debug.h>

// toml++ (Debian's libtomlplusplus-dev) as a header-only library in this one file: no shared
// library for sbrun to depend on, and only sbrun reads configuration.
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

namespace sb {

namespace {

enum class Kind { TEXT, NAMES, PATH, ABS_PATH, RULES, SECONDS, ONE_OF };

struct KeySpec {
  const char* name;
  Kind kind;
  const char* choices;  // ONE_OF: "a|b|c"
};

// Keys of the top level: defaults for every run.
constexpr KeySpec TOP_KEYS[] = {
    {"default-target", Kind::NAMES, nullptr},
    {"mode", Kind::ONE_OF, "remote|local"},
    {"on-disconnect", Kind::ONE_OF, "fail|wait|exit"},
    {"reconnect-timeout", Kind::SECONDS, nullptr},
    {"heartbeat", Kind::SECONDS, nullptr},
    {"remote-cwd", Kind::ABS_PATH, nullptr},
    {"token-file", Kind::PATH, nullptr},
    {"tls-ca", Kind::PATH, nullptr},
    {"tls-cert", Kind::PATH, nullptr},
    {"tls-key", Kind::PATH, nullptr},
    {"local", Kind::RULES, nullptr},
    {"remote", Kind::RULES, nullptr},
    {"fallback", Kind::RULES, nullptr},
};

// Keys of a [target.NAME] table: used when that target is.
constexpr KeySpec TARGET_KEYS[] = {
    {"url", Kind::TEXT, nullptr},
    {"token-file", Kind::PATH, nullptr},
    {"tls-ca", Kind::PATH, nullptr},
    {"tls-cert", Kind::PATH, nullptr},
    {"tls-key", Kind::PATH, nullptr},
    {"local", Kind::RULES, nullptr},
    {"remote", Kind::RULES, nullptr},
    {"fallback", Kind::RULES, nullptr},
};

template <size_t N>
const KeySpec* findKey(const KeySpec (&keys)[N], kj::StringPtr name) {
  for (auto& k : keys) {
    if (name == k.name) {
      return &k;
    }
  }
  return nullptr;
}

template <size_t N>
kj::String knownKeys(const KeySpec (&keys)[N]) {
  kj::Vector<kj::StringPtr> names;
  for (auto& k : keys) {
    names.add(k.name);
  }
  return kj::strArray(names, ", ");
}

[[noreturn]] void fail(kj::StringPtr origin, kj::StringPtr message) {
  kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(origin, ": ", message)));
}

kj::String originOf(kj::StringPtr path, const toml::source_region& where) {
  return kj::str(path, ":", where.begin.line);
}

kj::String dirOf(kj::StringPtr path) {
  KJ_IF_MAYBE(slash, path.findLast('/')) {
    return kj::heapString(path.slice(0, *slash == 0 ? 1 : *slash));
  }
  return kj::str(".");
}

// "~/x" is under $HOME; a relative path is relative to the config file's directory.
kj::String expandPath(kj::StringPtr file, kj::StringPtr value, kj::StringPtr origin) {
  if (value.startsWith("~/") || value == "~") {
    const char* home = getenv("HOME");
    if (home == nullptr || *home == 0) {
      fail(origin, kj::str("\"", value, "\" starts with ~ but HOME is not set"));
    }
    return kj::str(home, value.slice(1));
  }
  if (value.startsWith("/")) {
    return kj::str(value);
  }
  return kj::str(dirOf(file), "/", value);
}

kj::String asText(const toml::node& node, kj::StringPtr key, kj::StringPtr origin) {
  if (!node.is_string()) {
    fail(origin, kj::str(key, " takes a string"));
  }
  return kj::str(node.as_string()->get().c_str());
}

// One key's value, checked and normalized by its kind.
ConfigValue readValue(const KeySpec& spec, const toml::node& node, kj::StringPtr file,
                      kj::StringPtr key, kj::StringPtr origin) {
  ConfigValue v;
  v.origin = kj::str(origin);
  switch (spec.kind) {
    case Kind::TEXT:
      v.items.add(asText(node, key, origin));
      break;
    case Kind::ONE_OF: {
      auto text = asText(node, key, origin);
      bool ok = false;
      kj::StringPtr rest = spec.choices;
      kj::Vector<kj::String> quoted;
      while (rest.size() > 0) {
        size_t bar = rest.findFirst('|').orDefault(rest.size());
        auto choice = kj::heapString(rest.slice(0, bar));
        ok = ok || choice == text;
        quoted.add(kj::str("\"", choice, "\""));
        rest = bar < rest.size() ? rest.slice(bar + 1) : kj::StringPtr("");
      }
      if (!ok) {
        fail(origin, kj::str(key, " must be one of ", kj::strArray(quoted, ", "), ", not \"", text,
                             "\""));
      }
      v.items.add(kj::mv(text));
      break;
    }
    case Kind::SECONDS: {
      double secs = -1;
      if (node.is_integer()) {
        secs = static_cast<double>(node.as_integer()->get());
      } else if (node.is_floating_point()) {
        secs = node.as_floating_point()->get();
      } else {
        fail(origin, kj::str(key, " takes a number of seconds"));
      }
      if (!(secs >= 0 && secs <= 86400)) {
        fail(origin, kj::str(key, " takes a number of seconds from 0 to 86400"));
      }
      v.items.add(kj::str(secs));
      break;
    }
    case Kind::PATH:
      v.items.add(expandPath(file, asText(node, key, origin), origin));
      break;
    case Kind::ABS_PATH: {
      auto text = asText(node, key, origin);
      if (!text.startsWith("/")) {
        fail(origin, kj::str(key, " must be an absolute path, not \"", text, "\""));
      }
      v.items.add(kj::mv(text));
      break;
    }
    case Kind::NAMES:
    case Kind::RULES: {
      v.isList = true;
      auto one = [&](const toml::node& item) {
        auto text = asText(item, key, origin);
        if (spec.kind == Kind::RULES && !text.startsWith("/")) {
          fail(origin, kj::str(key, ": a path rule must be absolute, not \"", text, "\""));
        }
        v.items.add(kj::mv(text));
      };
      if (const toml::array* list = node.as_array()) {
        for (auto& item : *list) {
          one(item);
        }
      } else {
        one(node);
      }
      break;
    }
  }
  return v;
}

// The keys of one table; at the top level the [target.NAME] tables are read apart.
template <size_t N>
void readTable(const toml::table& table, const KeySpec (&keys)[N], kj::StringPtr file,
               kj::StringPtr prefix, std::map<std::string, ConfigValue>& out) {
  for (auto&& [k, node] : table) {
    kj::StringPtr name(k.str().data(), k.str().size());
    auto origin = originOf(file, k.source());
    if (prefix.size() == 0 && name == "target") {
      if (!node.is_table()) {
        fail(origin, "target must be a table of targets ([target.NAME] with url = ...); the "
                     "targets to use by default are default-target = \"NAME\"");
      }
      continue;
    }
    const KeySpec* spec = findKey(keys, name);
    if (spec == nullptr) {
      kj::String hint;
      auto dashed = kj::heapString(name);
      for (char& c : dashed) {
        c = c == '_' ? '-' : c;
      }
      if (dashed != name && findKey(keys, dashed) != nullptr) {
        hint = kj::str(" (did you mean \"", dashed, "\"?)");
      } else {
        hint = kj::str(" (known keys here: ", knownKeys(keys), ")");
      }
      fail(origin, kj::str("unknown key \"", prefix, name, "\"", hint));
    }
    out[std::string(prefix.cStr()) + name.cStr()] =
        readValue(*spec, node, file, kj::str(prefix, name), origin);
  }
}

}  // namespace

kj::Vector<kj::String> Config::defaultFiles() {
  kj::Vector<kj::String> files;
  files.add(kj::str("/etc/splitbrain/config.toml"));
  const char* xdg = getenv("XDG_CONFIG_HOME");
  const char* home = getenv("HOME");
  if (xdg != nullptr && *xdg == '/') {
    files.add(kj::str(xdg, "/splitbrain/config.toml"));
  } else if (home != nullptr && *home == '/') {
    files.add(kj::str(home, "/.config/splitbrain/config.toml"));
  }
  return files;
}

Config Config::load(kj::ArrayPtr<const kj::String> files, bool mustExist) {
  Config config;
  for (auto& f : files) {
    if (access(f.cStr(), F_OK) != 0) {
      if (mustExist) {
        fail(f, kj::str("cannot read the configuration file: ", strerror(errno)));
      }
      continue;
    }
    config.readFile(f);
  }
  return config;
}

void Config::readFile(kj::StringPtr path) {
  toml::table root;
  try {
    root = toml::parse_file(std::string_view(path.cStr(), path.size()));
  } catch (const toml::parse_error& e) {
    fail(kj::str(path, ":", e.source().begin.line), kj::str(e.description().data()));
  }
  read_.add(kj::str(path));
  // The [target.NAME] tables, then the plain keys of the top level.
  for (auto&& [k, node] : root) {
    if (k.str() != "target" || !node.is_table()) {
      continue;
    }
    for (auto&& [name, table] : *node.as_table()) {
      auto origin = originOf(path, name.source());
      kj::StringPtr n(name.str().data(), name.str().size());
      if (n == "local" || n.size() == 0 || n.size() > 255) {
        fail(origin, kj::str("\"", n, "\" cannot name a target"));
      }
      if (!table.is_table()) {
        fail(origin, kj::str("target.", n, " must be a table: [target.", n, "] with url = ..."));
      }
      readTable(*table.as_table(), TARGET_KEYS, path, kj::str("target.", n, "."), values_);
      if (values_.count(std::string("target.") + n.cStr() + ".url") == 0) {
        fail(origin, kj::str("[target.", n, "] has no url"));
      }
    }
  }
  readTable(root, TOP_KEYS, path, "", values_);
}

const ConfigValue* Config::get(kj::StringPtr key) const {
  auto it = values_.find(std::string(key.cStr()));
  return it == values_.end() ? nullptr : &it->second;
}

bool Config::hasTarget(kj::StringPtr name) const {
  return get(kj::str("target.", name, ".url")) != nullptr;
}

kj::String Config::describe() const {
  kj::Vector<kj::String> lines;
  if (read_.empty()) {
    lines.add(kj::str("# no configuration file (looked for ", kj::strArray(defaultFiles(), ", "),
                      ")"));
  }
  for (auto& f : read_) {
    lines.add(kj::str("# read ", f));
  }
  for (auto& [key, v] : values_) {
    kj::Vector<kj::String> shown;
    for (auto& item : v.items) {
      shown.add(kj::str("\"", item, "\""));
    }
    auto value = v.isList ? kj::str("[", kj::strArray(shown, ", "), "]")
                          : kj::str(shown.empty() ? kj::str("") : kj::mv(shown[0]));
    auto line = kj::str(key.c_str(), " = ", value);
    lines.add(kj::str(fmt::format("{:<47} # {}", line.cStr(), v.origin.cStr()).c_str()));
  }
  return kj::str(kj::strArray(lines, "\n"), "\n");
}

}  // namespace sb
