// How an ioctl(2) request on a remote fd is marshalled (x86-64 request numbers): by a table for
// the classic requests whose number does not describe their payload (TCGETS, TIOCMGET, FIONREAD,
// BLKSSZGET ...) or whose encoded size is wrong, and generically from the _IOC encoding for the
// terminal ('T') and block (0x12) families, whose payloads are plain data. Anything else is
// refused: a payload with pointers in it (V4L2, DRM, FIEMAP's trailing array ...) would make the
// agent's kernel read or write the agent's own memory. Never a guess.

#pragma once

#include <kj/string.h>
#include <stdint.h>

namespace sb {

enum class IoctlKind : uint8_t {
  VALUE,    // arg is passed by value (or unused)
  POINTER,  // arg points to `in` bytes read by the kernel and/or `out` bytes written
  LOCAL,    // acts on the local placeholder (FIOCLEX, FIONCLEX)
  REFUSE,   // answered with `err` here
  UNKNOWN,  // not marshalled: ENOTTY and a one-time note
};

struct IoctlPlan {
  IoctlKind kind;
  uint32_t in = 0;
  uint32_t out = 0;
  int err = 0;
  const char* name = nullptr;  // the request's name when the table knows it
};

IoctlPlan planIoctl(uint64_t request);

// "TCGETS" or "0x5401" for messages.
kj::String ioctlName(uint64_t request);

}  // namespace sb
