// Defence in depth for --root (issue 7): the agent asks the kernel to hold it to the export root
// too, so that a bug in the agent's own path handling (or in a library it uses) cannot reach
// files outside --root, even though openat2(RESOLVE_IN_ROOT) already confines every path it
// serves (confinement.h).
//
//   - PR_SET_NO_NEW_PRIVS, always: nothing the agent runs gains privileges through setuid or
//     file capabilities (and Landlock needs it from an unprivileged process).
//   - Landlock, under --root: file access (read, write, execute, create, remove, rename,
//     truncate, device ioctl — as many rights as the running kernel's ABI knows) is allowed
//     beneath the root only, plus read/write of /dev/null (spawn gives it to a program's
//     unused stdio) and removing the agent's own unix socket at exit (its directory). Sockets,
//     signals and everything that is not a file path are not restricted.
//
// Landlock applies to the calling thread and to the threads and processes it creates later, so
// this must run while the agent has only one thread (before the executor starts workers).
// A kernel without Landlock (or with it disabled) is not an error: the agent says so once and
// relies on openat2 alone.

#pragma once

#include <kj/common.h>
#include <kj/string.h>

#include "confinement.h"
#include "log.h"

namespace sb {

// Sets PR_SET_NO_NEW_PRIVS; throws a clear error if the kernel refuses.
void setNoNewPrivs();

// Restricts this process to `confinement`'s root as described above, when it is confined (does
// nothing otherwise). `unixSocket` is the path of the socket the agent listens on, if any.
// Returns the Landlock ABI version in force (0 when Landlock is unavailable), having logged what
// it did: one line with -v when restricted, one warning when it could not be.
// `cgroupDir` (when not empty) is where session cgroups are made (session_cgroup.h): the agent
// may create, remove, read and write beneath it.
int restrictToRoot(const Confinement& confinement, kj::Maybe<kj::StringPtr> unixSocket,
                   const Log& log, kj::StringPtr cgroupDir = "");

}  // namespace sb
