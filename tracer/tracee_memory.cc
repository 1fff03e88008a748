#include "tracee_memory.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <kj/vector.h>

namespace sb {

namespace {
constexpr uint64_t PAGE = 4096;
}

int64_t TraceeMemory::read(uint64_t addr, kj::ArrayPtr<kj::byte> out) const {
  size_t done = 0;
  while (done < out.size()) {
    struct iovec local = {out.begin() + done, out.size() - done};
    struct iovec remote = {reinterpret_cast<void*>(addr + done), out.size() - done};
    ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
    if (n <= 0) {
      // EFAULT for bad addresses; ESRCH if the tracee vanished: to the tracee both read as a
      // fault (it is not there to see the answer anyway).
      return -EFAULT;
    }
    done += n;
  }
  return 0;
}

int64_t TraceeMemory::write(uint64_t addr, kj::ArrayPtr<const kj::byte> data) const {
  size_t done = 0;
  while (done < data.size()) {
    struct iovec local = {const_cast<kj::byte*>(data.begin()) + done, data.size() - done};
    struct iovec remote = {reinterpret_cast<void*>(addr + done), data.size() - done};
    ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);
    if (n <= 0) {
      return -EFAULT;
    }
    done += n;
  }
  return 0;
}

int64_t TraceeMemory::writeSome(uint64_t addr, kj::ArrayPtr<const kj::byte> data) const {
  size_t done = 0;
  while (done < data.size()) {
    struct iovec local = {const_cast<kj::byte*>(data.begin()) + done, data.size() - done};
    struct iovec remote = {reinterpret_cast<void*>(addr + done), data.size() - done};
    ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);
    if (n <= 0) {
      break;
    }
    done += n;
  }
  return done > 0 || data.size() == 0 ? static_cast<int64_t>(done) : -EFAULT;
}

int64_t TraceeMemory::readString(uint64_t addr, size_t limit, kj::String& out) const {
  kj::Vector<char> buf(256);
  uint64_t cur = addr;
  for (;;) {
    // Never let one read cross a page boundary: the next page may be unmapped while the string
    // ends before it.
    size_t chunk = PAGE - (cur % PAGE);
    kj::byte tmp[PAGE];
    if (read(cur, kj::arrayPtr(tmp, chunk)) < 0) {
      return -EFAULT;
    }
    void* nul = memchr(tmp, 0, chunk);
    size_t len = nul ? static_cast<kj::byte*>(nul) - tmp : chunk;
    if (buf.size() + len > limit) {
      return -ENAMETOOLONG;
    }
    buf.addAll(reinterpret_cast<char*>(tmp), reinterpret_cast<char*>(tmp) + len);
    if (nul) {
      break;
    }
    cur += chunk;
  }
  buf.add('\0');
  out = kj::String(buf.releaseAsArray());
  return 0;
}

int64_t TraceeMemory::readPath(uint64_t addr, kj::String& out) const {
  return readString(addr, PATH_MAX - 1, out);
}

}  // namespace sb
