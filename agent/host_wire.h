// Host wire: the one place where the protocol's arch-neutral meaning (named booleans, enums,
// typed structs; DESIGN D3) becomes this host's O_*/AT_*/RWF_*/XATTR_*/F_* values and kernel
// structs, and back. Nothing here issues a syscall; every function is a pure translation, so the
// agent is correct on any Linux architecture whose libc headers it is built against.
//
// Results follow the kernel's own encoding used everywhere in the agent: an `int64_t` that is a
// value >= 0 on success or -errno on failure. A request the host cannot express (an unknown enum
// value from a newer peer, an F_SETFL of the access mode) translates to -EINVAL, never a throw.

#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <capnp/blob.h>
#include <kj/string.h>

#include "splitbrain.capnp.h"

namespace sb {

// The wire carries times, sizes and offsets as 64-bit values; the libc calls the agent makes
// with them must take 64-bit ones too, or on a 32-bit board (armhf) a time after 2038 is stored
// wrapped and a stat of a file over 2 GiB or newer than 2038 fails with EOVERFLOW. meson.build
// adds -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64 on 32-bit hosts; this stops a build without them.
static_assert(sizeof(time_t) == 8 && sizeof(off_t) == 8,
              "sbagent needs 64-bit time_t and off_t: build with -D_TIME_BITS=64 "
              "-D_FILE_OFFSET_BITS=64 (glibc >= 2.34)");

// memcpy for bytes that may be none: an empty capnp Data or kj::Array has a null begin(), which
// memcpy must not get even for 0 bytes (UBSan; the fuzzer found it twice).
inline void copyBytes(void* to, const void* from, size_t n) {
  if (n > 0) {
    memcpy(to, from, n);
  }
}

// The largest transfer (read, write, xattr value, copy) one call performs; a short count is
// legal and the tracer loops. Bounds both memory use and the message size (PITFALLS #20).
constexpr uint64_t MAX_TRANSFER = 64ull << 20;

// The kernel's "ret or -errno" for a libc call that returned `r` and set errno.
inline int64_t sysResult(int64_t r) { return r < 0 ? -int64_t(errno) : r; }

// A path from the wire as a NUL-terminated string. Returns 0, or -ENAMETOOLONG (as the kernel
// does for PATH_MAX and beyond), or -EINVAL for an embedded NUL (a C caller cannot send one).
int64_t pathFromWire(capnp::Data::Reader path, kj::String& out);

// OpenHow -> struct open_how for openat2(2). O_CLOEXEC and O_NOCTTY are always added: agent fds
// must never leak into processes it spawns, and the agent must never acquire a controlling tty.
int64_t openHowToHost(proto::OpenHow::Reader how, struct open_how& out);

// AccessMode -> O_RDONLY / O_WRONLY / O_RDWR / O_PATH, or -EINVAL.
int64_t accessModeToHost(proto::AccessMode mode);

// fcntl(F_GETFL) flags -> StatusFlags.
void statusFlagsFromHost(int flags, proto::StatusFlags::Builder out);

// StatusFlags -> the bits F_SETFL may change (the access mode is ignored, as the kernel does).
int statusFlagsToHost(proto::StatusFlags::Reader flags);

// RwFlags -> RWF_* for preadv2/pwritev2.
int rwFlagsToHost(proto::RwFlags::Reader flags);

// Whence -> SEEK_*, or -EINVAL.
int64_t whenceToHost(proto::Whence whence);

// StatFlags -> AT_* for statx(2) (AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW included).
int statFlagsToHost(proto::StatFlags::Reader flags);

// Xattr -> XATTR_CREATE / XATTR_REPLACE (noFollow selects the l* variant and is not a flag).
int xattrFlagsToHost(proto::Xattr::Reader flags);

// TimeSpec -> timespec with UTIME_NOW / UTIME_OMIT; -EINVAL for an unknown union member.
int64_t timeSpecToHost(proto::TimeSpec::Reader time, struct timespec& out);

// LockCmd -> F_GETLK / F_SETLK / F_SETLKW / F_OFD_*, or -EINVAL.
int64_t lockCmdToHost(proto::LockCmd cmd);

// Flock <-> struct flock. The wire whence is restricted to set/cur/end.
int64_t flockToHost(proto::Flock::Reader lock, struct flock& out);
void flockFromHost(const struct flock& lock, proto::Flock::Builder out);

// struct statx -> Statx. STATX_* masks and S_IF* mode bits are the same on every Linux arch.
void statxToWire(const struct statx& st, proto::Statx::Builder out);

// struct statfs -> Statfs.
void statfsToWire(const struct statfs& st, proto::Statfs::Builder out);

// The file type in st_mode / DT_* form.
proto::FileType fileTypeFromMode(mode_t mode);

// poll(2) event bits: PollEvents <-> this host's POLL* values (they differ on sparc and mips).
short pollEventsToHost(proto::PollEvents::Reader events);
void pollEventsFromHost(short revents, proto::PollEvents::Builder out);

}  // namespace sb
