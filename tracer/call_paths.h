// The files a trapped call names or acts on, for -P PATH, `-e inject=...:path=GLOB` and -y:
// its path arguments as the program wrote them, and the files of its fd arguments (a remote
// fd: the path the program opened it by on its target, from the fd table, with no RPC; a local
// fd: the link /proc/TID/fd/N).

#pragma once

#include <kj/string.h>
#include <kj/vector.h>

#include "call.h"

namespace sb {

kj::Vector<kj::String> callPaths(const Call& call);

// -y's note on fd argument `fd`: "/etc/hostname" for a local fd, "target1:/data/x" for a remote
// one, "" when there is nothing to say (not open).
kj::String fdNote(const Call& call, int fd);

// Whether any of `paths` is one the call touches (-P: exact names).
bool touchesAny(const Call& call, kj::ArrayPtr<const kj::String> paths);

}  // namespace sb
