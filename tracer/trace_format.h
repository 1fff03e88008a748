// strace's text for one syscall: its arguments decoded as strace decodes them (strings quoted
// and cut at -s, flags by name, struct stat and sockaddr at strace's usual depth) and its
// result (`= -1 ENOENT (No such file or directory)`). Output arguments (a read's buffer, a
// stat's struct) are read from tracee memory once the answer is there: format after the call.

#pragma once

#include <kj/string.h>
#include <stdint.h>

#include <array>
#include <vector>

#include "tracee_memory.h"

namespace sb {

struct TraceStyle {
  size_t stringLimit = 32;  // -s: bytes of a string or buffer shown before `...`
};

// What a call's line needs from its entry that the call itself overwrites: recvmsg's
// msg_namelen and the socklen_t of accept, getsockname, recvfrom..., which strace prints as
// `110 => 16` when the kernel changed them (-1: not read).
// The same for the loff_t of splice, copy_file_range and sendfile, recvmmsg's timeout and the
// msg_namelen of each of its elements.
struct CallEntry {
  int64_t msgNameLen = -1;
  int64_t addrLen = -1;
  uint8_t loffRead = 0;  // bit i: loff[i] is argument i's loff_t at entry
  int64_t loff[6] = {};
  bool timeoutRead = false;
  std::array<int64_t, 2> timeout = {};  // tv_sec, tv_nsec
  std::vector<int64_t> mmsgNameLens;
};
// Read at the entry stop of an observed call (nothing but for the calls that need it).
CallEntry readCallEntry(int nr, const uint64_t args[6], const TraceeMemory& mem);

// The arguments of `nr` between the parentheses. `fdNotes[i]`, when not empty, follows fd
// argument i in angle brackets (-y: `3</etc/hostname>`, taken before the call, since a close
// ends the fd). `result` is the call's answer (the output buffers it filled are decoded).
kj::String formatCallArgs(int nr, const uint64_t args[6], int64_t result,
                          const TraceeMemory& mem, const TraceStyle& style,
                          kj::ArrayPtr<const kj::String> fdNotes, const CallEntry& entry = {});

// The result as strace prints it: "3", "0x7f..." for an address, "-1 ENOENT (No such file ...)".
kj::String formatCallResult(int nr, int64_t result);
// What strace prints after some results that it reads from memory at exit: recvmmsg's time
// left, ` (left {tv_sec=0, tv_nsec=N})`. Empty for other calls.
kj::String formatResultNote(int nr, const uint64_t args[6], int64_t result,
                            const TraceeMemory& mem);

// Bit i set: argument i of `nr` is a file descriptor (AT_FDCWD included), for -y and -P.
uint8_t fdArgMask(int nr);
// Bit i set: argument i of `nr` is a path name, for -P and inject path=.
uint8_t pathArgMask(int nr);

// Bytes as strace quotes them: "...", C escapes (\n \t \" \\), other bytes in octal, at most
// `limit` of them, then `...` after the closing quote when there were more (`more`: the caller
// knows the data goes on).
kj::String quoteBytes(kj::ArrayPtr<const kj::byte> bytes, size_t limit, bool more = false);

}  // namespace sb
