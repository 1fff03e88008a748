// sbrun's configuration files (splitbrain.conf(5) in docs/user-guide.md, "Configuration"): TOML,
// read from /etc/splitbrain/config.toml then $XDG_CONFIG_HOME/splitbrain/config.toml (or one
// file: --config FILE, $SB_CONFIG). Named targets, one table each, and defaults for the flags
// most runs repeat; the command line always wins.
//
//   default-target = "b"                  # the targets when no --target is given
//   on-disconnect = "wait"
//   [target.b]
//   url = "tcp://lab-b:7433"
//   tls-ca = "~/lab/ca.pem"               # ~ is $HOME; relative paths: the file's directory
//   remote = ["/dev/ttyUSB*"]             # path rules; * and ? match within a component
//
// Keys are the long options' names. Every value keeps the file and line it came from, for
// --print-config and for errors ("config.toml:12: unknown key \"tls_cert\"").

#pragma once

#include <kj/string.h>
#include <kj/vector.h>

#include <map>
#include <string>

namespace sb {

struct ConfigValue {
  kj::Vector<kj::String> items;  // one for a string or number, any number for an array
  kj::String origin;             // "FILE:LINE"
  bool isList = false;
};

class Config {
 public:
  // The files to read when neither --config nor $SB_CONFIG names one, in order (later wins).
  static kj::Vector<kj::String> defaultFiles();

  // Reads `files` in order; a missing file is skipped unless `mustExist`. Throws a kj::Exception
  // whose description is "FILE:LINE: what is wrong" for bad TOML, an unknown key, or a bad
  // value.
  static Config load(kj::ArrayPtr<const kj::String> files, bool mustExist);

  // A top-level key ("on-disconnect") or a target's ("target.b.url").
  const ConfigValue* get(kj::StringPtr key) const;
  bool hasTarget(kj::StringPtr name) const;

  // For --print-config: the files read, then one line per value with its origin.
  kj::String describe() const;

 private:
  kj::Vector<kj::String> read_;
  std::map<std::string, ConfigValue> values_;

  void readFile(kj::StringPtr path);
};

}  // namespace sb
