// Sets of syscalls written as strace writes them (`-e trace=SET`, `-e inject=SET:...`):
// names, numbers, `all`, `none`, `%class`, `/regex`, comma lists, `?name` (no error when nothing
// matches) and a leading `!` that negates the whole set. A set is a bitset over the x86-64
// syscall numbers of syscall_table.h.
//
// The classes are strace's (its syscallent flags: TF, TD, TN ...), kept as a column of data
// in syscall_set.cc so that `-e trace=%file` means here what it means to strace.

#pragma once

#include <bitset>
#include <kj/string.h>
#include <stdint.h>

namespace sb {

// strace's syscall classes, one bit each.
enum StraceClass : uint32_t {
  SC_FILE = 1u << 0,      // %file: takes a file name
  SC_DESC = 1u << 1,      // %desc: takes or makes a file descriptor
  SC_NETWORK = 1u << 2,   // %net, %network
  SC_PROCESS = 1u << 3,   // %process: process lifecycle
  SC_SIGNAL = 1u << 4,    // %signal
  SC_MEMORY = 1u << 5,    // %memory: memory mapping
  SC_IPC = 1u << 6,       // %ipc: SysV IPC
  SC_CREDS = 1u << 7,     // %creds: user and group ids, capabilities
  SC_CLOCK = 1u << 8,     // %clock
  SC_STAT = 1u << 9,      // %stat: stat by name
  SC_LSTAT = 1u << 10,    // %lstat
  SC_FSTAT = 1u << 11,    // %fstat: fstat and fstatat variants
  SC_STAT_ANY = 1u << 12, // %%stat: every stat-like call
  SC_STATFS = 1u << 13,   // %statfs
  SC_FSTATFS = 1u << 14,  // %fstatfs
  SC_STATFS_ANY = 1u << 15,  // %%statfs
  SC_PURE = 1u << 16,     // %pure: no arguments, always succeeds
};

// The strace classes of syscall `nr` (0 when it is in none).
uint32_t straceClasses(int nr);

class SyscallSet {
 public:
  static constexpr int LIMIT = 512;  // above every x86-64 syscall number
  bool has(int nr) const { return nr >= 0 && nr < LIMIT && bits[nr]; }
  void add(int nr) { bits.set(nr); }
  bool empty() const { return bits.none(); }
  size_t count() const { return bits.count(); }
  void invert();
  void addAll(const SyscallSet& other) { bits |= other.bits; }

 private:
  std::bitset<LIMIT> bits;
};

// Parses `text` (e.g. "%file,!close" is not valid, "!%file,close" is; "/^open", "?foo,read").
// On bad input returns null and `error` says which element and why, e.g.
// "unknown syscall 'opne'" or "bad regular expression '/[': ...".
kj::Maybe<SyscallSet> parseSyscallSet(kj::StringPtr text, kj::String& error);

}  // namespace sb
