// Numbers and flag words as strace names them (O_RDONLY|O_CLOEXEC, S_IFREG|0644, AF_INET...):
// pure functions of the values, no tracee memory. trace_structs.h reads structs with them;
// trace_format.cc decides which argument is which.

#pragma once

#include <kj/common.h>
#include <kj/string.h>
#include <stdint.h>

#include <utility>

namespace sb {

using NameTable = kj::ArrayPtr<const std::pair<uint64_t, const char*>>;

// Bits by name, in the table's order (composite values first); unknown bits in hex; `zero`
// names a value of 0.
kj::String bitNames(uint64_t value, NameTable names, const char* zero);
// One value by name, else in decimal.
kj::String valueName(int64_t value, NameTable names);

kj::String openFlagNames(uint64_t flags);  // O_RDONLY|O_CREAT|...
kj::String modeText(uint64_t mode);        // S_IFREG|S_ISUID|0644
kj::String addressText(uint64_t addr);     // NULL or 0x...
kj::String numberText(uint64_t a);         // small values in decimal, others in hex
kj::String sockTypeText(uint64_t type);    // SOCK_STREAM|SOCK_CLOEXEC
kj::String sockoptText(uint64_t level, uint64_t name);  // SO_REUSEADDR, TCP_NODELAY...
// mmap(addr, length, prot, flags, fd, offset): the only trapped call with flag words of its own.
kj::String mmapArgs(const uint64_t args[6]);

NameTable statxMaskNames();     // STATX_*
NameTable domainNames();        // AF_*
NameTable sockoptLevelNames();  // SOL_*
NameTable msgFlagNames();       // MSG_*
NameTable spliceFlagNames();    // SPLICE_F_*

}  // namespace sb
