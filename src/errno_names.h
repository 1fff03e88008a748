// Errno names and strace-style result text, for --trace, -v and messages.
//
// Numbers are Linux's asm-generic errno numbering, the wire's numbering (schema: `result`),
// identical on x86-64 and aarch64. This module does not translate between numberings; an arch
// whose numbers differ (mips, sparc, alpha) would need that at the ABI layer.

#pragma once

#include <kj/string.h>
#include <stdint.h>

namespace sb {

// "ENOENT" for 2, ... for every Linux errno including the kernel-internal codes a tracer can see
// at syscall exit (ERESTARTSYS = 512 ...). Aliases give the primary name (EAGAIN, not
// EWOULDBLOCK; EDEADLK, not EDEADLOCK; EOPNOTSUPP, not ENOTSUP). "EUNKNOWN" otherwise.
kj::StringPtr errnoName(int err);

// strace's rendering of a syscall return value: "3", or "-1 ENOENT (No such file or directory)"
// for -4095..-1 (the kernel's error range). Other negative values are plain numbers.
kj::String formatSysResult(int64_t ret);

}  // namespace sb
