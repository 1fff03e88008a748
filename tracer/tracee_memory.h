// Reading and writing a tracee's memory with process_vm_readv/writev (DESIGN D9).
//
// A bad tracee pointer is input, not a bug: every function answers -EFAULT exactly where the
// kernel would, never throws. Strings are read without crossing a page boundary per iovec so a
// path that ends just before an unmapped page still reads (process_vm_readv(2) NOTES).

#pragma once

#include <kj/array.h>
#include <kj/string.h>
#include <stdint.h>
#include <sys/types.h>

namespace sb {

class TraceeMemory {
 public:
  explicit TraceeMemory(pid_t tid) : tid(tid) {}

  // Reads exactly out.size() bytes at addr: 0, or -EFAULT.
  int64_t read(uint64_t addr, kj::ArrayPtr<kj::byte> out) const;
  // Writes all of data at addr: 0, or -EFAULT (read-only mappings included, as the kernel's
  // copy_to_user would fail there too).
  int64_t write(uint64_t addr, kj::ArrayPtr<const kj::byte> data) const;
  // As write, but a fault part way is not all or nothing: the bytes placed before it (a read
  // into a buffer that runs into an unmapped page returns them, as the kernel's copy does), or
  // -EFAULT when there are none.
  int64_t writeSome(uint64_t addr, kj::ArrayPtr<const kj::byte> data) const;

  template <typename T>
  int64_t readValue(uint64_t addr, T& out) const {
    return read(addr, kj::arrayPtr(reinterpret_cast<kj::byte*>(&out), sizeof(T)));
  }
  template <typename T>
  int64_t writeValue(uint64_t addr, const T& value) const {
    return write(addr, kj::arrayPtr(reinterpret_cast<const kj::byte*>(&value), sizeof(T)));
  }

  // Reads a NUL-terminated string of at most `limit` bytes (NUL excluded) into `out`.
  // 0, -EFAULT, or -ENAMETOOLONG when no NUL is found within limit.
  int64_t readString(uint64_t addr, size_t limit, kj::String& out) const;

  // A path argument as the kernel reads it: PATH_MAX including the NUL.
  int64_t readPath(uint64_t addr, kj::String& out) const;

 private:
  pid_t tid;
};

}  // namespace sb
