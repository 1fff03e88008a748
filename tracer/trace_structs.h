// Arguments that live in tracee memory, as strace prints them at its default depth: strings and
// buffers quoted and cut at -s, struct stat/statx/statfs/utsname, sockaddrs, iovec arrays,
// msghdr and mmsghdr, ioctl arguments. Each falls back to the address when the memory cannot be
// read, as strace does. trace_format.cc decides which argument is which.

#pragma once

#include <kj/string.h>
#include <stdint.h>

#include "trace_names.h"
#include "tracee_memory.h"

namespace sb {

template <typename T>
bool readStruct(const TraceeMemory& mem, uint64_t addr, T& out) {
  return addr != 0 && mem.readValue(addr, out) >= 0;
}

kj::String pathText(const TraceeMemory& mem, uint64_t addr);  // quoted, never cut
kj::String stringText(const TraceeMemory& mem, uint64_t addr, size_t limit);
// `len` bytes at `addr`, of which at most `limit` are read and shown.
kj::String bufferText(const TraceeMemory& mem, uint64_t addr, uint64_t len, size_t limit);

kj::String statText(const TraceeMemory& mem, uint64_t addr);
kj::String statxText(const TraceeMemory& mem, uint64_t addr);
kj::String statfsText(const TraceeMemory& mem, uint64_t addr);
kj::String utsText(const TraceeMemory& mem, uint64_t addr);
// getdents64's buffer: its address and how many entries the call wrote.
kj::String direntsText(const TraceeMemory& mem, uint64_t addr, int64_t result);
kj::String sockaddrText(const TraceeMemory& mem, uint64_t addr, uint64_t len);
// A loff_t the call reads (and may update): [N], or NULL.
kj::String loffText(int64_t value);
// A struct timespec: {tv_sec=N, tv_nsec=N}.
kj::String timespecText(int64_t sec, int64_t nsec);

// An iovec array, as strace's tprint_iovec: `[{iov_base="abc", iov_len=3}, ...]`, at most -s
// elements. `dataSize`: bytes of data to show in all (an output array: what the call returned;
// UINT64_MAX for an input one), each element's cut at -s.
kj::String iovecText(const TraceeMemory& mem, uint64_t addr, uint64_t count, uint64_t dataSize,
                     size_t limit);

// struct msghdr as strace prints it. `out`: recvmsg's, at exit (`result` bytes in its iovecs;
// `nameLenIn` is msg_namelen before the call, -1 when unknown).
kj::String msghdrText(const TraceeMemory& mem, uint64_t addr, bool out, int64_t result,
                      int64_t nameLenIn, size_t limit);

// sendmmsg's and recvmmsg's struct mmsghdr array: `count` elements (at most -s, then `...`),
// each `{msg_hdr={...}, msg_len=N}`, msg_len for the first `withLen` of them only (the ones
// the call sent or filled). `out`: recvmmsg's, each msghdr's iovecs shown up to its msg_len;
// `nameLensIn` the msg_namelen of each element before the call.
kj::String mmsghdrText(const TraceeMemory& mem, uint64_t addr, uint64_t count, uint64_t withLen,
                       bool out, kj::ArrayPtr<const int64_t> nameLensIn, size_t limit);

// ioctl(fd, REQUEST, arg): the request by name and its argument as strace decodes it at its
// default depth (an int as [N], struct winsize, struct termios); others as a number. Output
// arguments only when the call succeeded.
kj::String ioctlArgs(uint64_t request64, uint64_t arg, bool ok, const TraceeMemory& mem);

}  // namespace sb
