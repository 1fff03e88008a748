// Starting the program under the tracer, or borrowing a running one: finding programs and
// helpers, fork + filter + exec + PTRACE_SEIZE, and seizing every thread of a process for
// --pid. Nothing here knows the Tracer: it gets what it needs as arguments and answers pids.

#pragma once

#include <initializer_list>
#include <kj/string.h>
#include <kj/vector.h>
#include <sys/types.h>
#include <utility>

namespace sb {

class SeccompFilter;

// The control fd's number: high, under the usual fd limit, out of the way of lowest-free
// allocation. -1 when the limit leaves no room.
int pickControlFd();
// Fast calls run untrapped below the control fd's block (it must always trap).
int fastLimitFor(int controlFd);

// The sbagent to spawn for `local` targets: beside sbrun (installed), the build tree, or PATH.
kj::String findAgent();
// sb-stub, which stands in for remote programs: an absolute path, or "" when there is none.
kj::String findStub();
// Why findStub() found nothing, and what to do.
kj::String stubNotFound();
// The program as exec will find it: PROGRAM itself when it has a slash, else the first
// executable match on PATH. "" when there is none.
kj::String findProgram(kj::StringPtr program);
// The program's install prefixes for the default fallback rules: where its path says (a
// virtualenv's bin/python) and where its symlinks lead (the interpreter's own prefix).
std::pair<kj::String, kj::String> programPrefixes(kj::StringPtr found);

// Forks the program and execs it traced (PTRACE_SEIZE with ptrace::LAUNCH_OPTIONS) under
// `filter`: at `programPath` when PATH found it, else as execvpe decides. With a control fd
// (>= 0) the child holds an O_PATH placeholder at that number and SB_CONTROL_FD names it.
// Throws with a clear message when the program cannot be traced.
pid_t launchTraced(const kj::Vector<kj::String>& command, kj::StringPtr programPath,
                   int controlFd, const SeccompFilter& filter);

// Seizes every thread of process `pid` (and any it starts meanwhile) for --pid, and returns
// their tids; on failure lets go of those already seized and throws, saying why.
kj::Vector<pid_t> seizeProcess(pid_t pid);
// Why PTRACE_SEIZE of `pid` failed with `err`, in words that say what to do.
kj::String whyNoAttach(pid_t pid, int err);

}  // namespace sb
