// Target URLs: what `sbrun --target [NAME=]URL` and `sbagent --listen ADDRESS` accept.
//
// Parsing only: this module turns text into a value and says clearly what is wrong with bad text.
// It does not resolve names, open sockets or start agents (that is the transport's job), and it
// does not assign default target names (the caller does, so it can number them).
//
// Accepted targets:
//   local[:/ABS/ROOT][?hostname=NAME]   an agent started here (tests, demos): --root, --hostname
//   unix:PATH                           an agent listening on a unix socket (PATH may be relative)
//   tcp://HOST:PORT                     an agent over TCP; IPv6 as tcp://[::1]:PORT
//   ssh://[USER@]HOST[:PORT][/PATH]     `ssh ... HOST -- PATH --stdio` (PATH default: sbagent,
//                                       found on the remote PATH; "/~/x" means "~/x")
//   exec:COMMAND                        `sh -c COMMAND`, whose stdin/stdout reach an agent
// each optionally preceded by NAME= where NAME matches [A-Za-z0-9_-]+.

#pragma once

#include <kj/common.h>
#include <kj/string.h>
#include <stdint.h>

namespace sb {

struct TargetUrl {
  enum class Kind : uint8_t { LOCAL, UNIX, TCP, SSH, EXEC };
  Kind kind;
  // From "NAME=", or "" when absent (the caller assigns a default).
  kj::String name;
  // LOCAL: "local:ROOT" becomes the agent's --root; "" for plain "local".
  kj::String root;
  // LOCAL: "?hostname=NAME" becomes the agent's --hostname; "" when absent.
  kj::String hostname;
  // UNIX: the socket path, as given.
  // SSH: the agent's path on the remote machine, as the remote shell will see it ("/opt/sbagent",
  // "~/bin/sbagent"); "" for `sbagent` on the remote PATH.
  kj::String path;
  // TCP, SSH: host name or address; an IPv6 address is stored without its brackets.
  kj::String host;
  // TCP: 1..65535. SSH: 1..65535, or 0 when absent (ssh's own default, usually 22).
  uint16_t port = 0;
  // SSH: the remote user, "" when absent (ssh's own default).
  kj::String user;
  // EXEC: the shell command (never empty), run with `sh -c`.
  kj::String command;
  // The whole argument as given, for messages.
  kj::String text;
};

// Throws a kj::Exception (FAILED) on any bad input, with a message that names the problem and
// lists the accepted forms.
TargetUrl parseTargetUrl(kj::StringPtr text);

struct ListenAddress {
  enum class Kind : uint8_t { UNIX, TCP };
  Kind kind;
  // UNIX: socket path.
  kj::String path;
  // TCP: host or address to bind (IPv6 without brackets).
  kj::String host;
  // TCP: 0..65535; 0 lets the kernel choose (tests read it back).
  uint16_t port = 0;
};

// "unix:PATH" or "tcp://HOST:PORT" (port 0 allowed). Throws like parseTargetUrl.
ListenAddress parseListenAddress(kj::StringPtr text);

}  // namespace sb
