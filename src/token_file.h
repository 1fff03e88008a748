// The --token-file both programs read (sbrun presents the token, sbagent expects it): one
// reader, so the two sides can never disagree about what the token is.
//
// The token is the file's content without its trailing line ends: "\n", "\r\n", and any blank
// lines after the secret (an editor's). Before wave 2 each side had its own rule, and a file
// ending in two newlines gave them different tokens.

#pragma once

#include <kj/string.h>

namespace sb {

struct TokenFile {
  kj::String token;      // Empty when `error` is set.
  kj::String error;      // What went wrong, naming the file, for a person; empty on success.
  bool othersCanRead = false;  // Group or others may read it (the agent warns).
};

// Reads PATH. Fails (in `error`) when it cannot be read (missing, a directory, no permission),
// is empty once its line ends are gone, or is longer than the preamble allows (MAX_TOKEN).
TokenFile readTokenFile(kj::StringPtr path);

}  // namespace sb
