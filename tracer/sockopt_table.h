// Which socket options sbrun passes to a target, and how big their values are (x86-64 numbers),
// like ioctl_table.h for ioctl requests: a data-driven allowlist, never a guess. Option values
// are raw bytes the agent's kernel reads, so they cross only between equal ABIs (the handler
// checks the Welcome's arch) and only for options whose value holds no pointer and no fd.
// Options that carry one (SO_ATTACH_FILTER's sock_fprog points at the program, SO_ATTACH_BPF
// names an fd, TCP_ZEROCOPY_RECEIVE holds addresses ...) are refused with a note.

#pragma once

#include <kj/string.h>
#include <stdint.h>

namespace sb {

enum class SockoptKind : uint8_t {
  VALUE,    // plain data of at most `size` bytes, passed both ways
  REFUSE,   // carries a pointer or an fd: answered with `err` and a note
  UNKNOWN,  // not in the table: ENOPROTOOPT and a note
};

// SO_RCVTIMEO/SO_SNDTIMEO in either form: a signal then interrupts a blocking call with EINTR
// even under SA_RESTART (socket(7)), so the tracer remembers whether one is set.
enum class SockoptTimeout : uint8_t { NONE, RECEIVE, SEND };

struct SockoptPlan {
  SockoptKind kind;
  uint32_t size = 0;  // the largest value the kernel reads or writes for it
  int err = 0;
  const char* name = nullptr;
  SockoptTimeout timeout = SockoptTimeout::NONE;
};

SockoptPlan planSockopt(int level, int name);

// "SOL_SOCKET/SO_REUSEADDR", or "level 0x107 option 12" for messages.
kj::String sockoptName(int level, int name);

}  // namespace sb
