// Identity: what the agent's machine says about itself (uname, DESIGN D3's handshake) and the
// --hostname option, which gives the agent a machine identity of its own: a new UTS and mount
// namespace with another hostname, so a demo or an integration test can see where a file came
// from (DESIGN "done").

#pragma once

#include <kj/string.h>

#include "splitbrain.capnp.h"

namespace sb {

// Fills `out` from uname(2). Returns 0 or -errno.
int64_t fillUname(proto::Uname::Builder out);

// unshare(CLONE_NEWUTS | CLONE_NEWNS) (a user namespace first when unprivileged), makes every
// mount private so nothing propagates back, and sets the hostname. Must run before any thread
// starts (unshare(CLONE_NEWUSER) requires a single-threaded process). Throws a clear error.
void enterHostnameNamespace(kj::StringPtr hostname);

}  // namespace sb
