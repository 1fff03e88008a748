// Socket activation (`sbagent --listen systemd`): the listening socket systemd (or any
// supervisor speaking the same convention: systemd-socket-activate, s6, inetd-style wrappers)
// opened and passed as fd 3, announced by LISTEN_PID and LISTEN_FDS (sd_listen_fds(3)). Parsed
// here rather than with libsystemd: the convention is three environment variables, and the
// agent must also build statically for boards without systemd.

#pragma once

#include <kj/string.h>

namespace sb {

// The first passed fd (3), checked to be a listening stream socket (unix, TCP over IPv4 or
// IPv6), close-on-exec, with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES removed from the
// environment so that programs the agent runs do not take it for theirs. -1 with `error` set
// to a message that says what to do when there is none.
int takeActivatedSocket(kj::String& error);

}  // namespace sb
