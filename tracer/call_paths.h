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
// one, "" when there is nothing to say (not open). `level` 2 (-yy) adds strace's details: a
// socket's protocol and endpoints ("TCP:[10.0.0.1:40000->10.0.0.2:80]"; a remote socket's as B
// sees them, "target1:TCP:[...]"), a device's numbers ("/dev/null<char 1:3>").
kj::String fdNote(const Call& call, int fd, int level = 1);

// -yy for a local socket: "TCP:[127.0.0.1:40000->127.0.0.1:80]", "UNIX-STREAM:[12345,\"/p\"]",
// from /proc/TID/net/{tcp,tcp6,udp,udp6,unix} by the socket's inode; `proto` is the kernel's
// name for it (the xattr system.sockprotoname: "TCP", "UNIX-STREAM"...). "PROTO:[inode]" when
// the tables do not list it. `procNet` is the directory of those tables.
kj::String localSocketNote(kj::StringPtr procNet, kj::StringPtr proto, uint64_t inode);

// Whether any of `paths` is one the call touches (-P: exact names).
bool touchesAny(const Call& call, kj::ArrayPtr<const kj::String> paths);

}  // namespace sb
