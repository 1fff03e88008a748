// The x86-64 tracee ABI on one side, the arch-neutral wire (splitbrain.capnp) on the other.
//
// The tracer reads a tracee's flag words and structs as that tracee's kernel would, and writes
// results back in the layout that kernel would have written (DESIGN D3). Every bit value, struct
// layout and range check that depends on the tracee's architecture lives in this file pair and
// nowhere else (STYLE §2.7), so a second tracee arch is a second file pair with the same names.
//
// What this module is not: it does not read or write tracee memory (marshalling does, with these
// structs), and it does not decide errnos beyond saying "the kernel would refuse this" through a
// false return; the caller picks the errno the comment names.
//
// The constants are the *kernel's* x86-64 values, written out, not glibc's: glibc redefines some
// (O_LARGEFILE is 0 for 64-bit programs, its __O_TMPFILE includes O_DIRECTORY), and a tracee may
// pass any bit the kernel accepts.

#pragma once

#include <fcntl.h>
#include <kj/array.h>
#include <kj/common.h>
#include <kj/string.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>

#include "splitbrain.capnp.h"
#include "tracee_regs.h"

#if !defined(__x86_64__)
// TODO(port): the structs below are the host's <sys/stat.h> and <fcntl.h> ones, checked against
// the x86-64 layout by static_asserts. A tracer on another host (or for another tracee arch)
// needs explicit struct definitions for the tracee's layout, e.g. namespace sb::aarch64.
#error "tracee_abi: only x86-64 tracees on an x86-64 host are supported for now"
#endif

namespace sb::x86_64 {

// ---- open(2), openat(2), openat2(2) ---------------------------------------------------------

// Decodes open flags (and the mode, kept only with O_CREAT or O_TMPFILE, as the kernel does)
// into `how`. Unknown bits are ignored, as open(2) ignores them; openat2 callers check
// knownOpenFlags() first. With O_PATH only O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC survive, as in
// the kernel's build_open_how(). O_TMPFILE is __O_TMPFILE|O_DIRECTORY: both `tmpFile` and
// `directory` are set, so the agent passes its own kernel exactly what ours would have seen
// (and __O_TMPFILE without O_DIRECTORY stays the EINVAL it is). O_SYNC is __O_SYNC|O_DSYNC: it
// sets `sync` and `dsync`. Access mode 3 (no read, no write: ioctl only) has no wire value and
// is sent as readWrite; TODO(protocol): add it to AccessMode.
void decodeOpenFlags(uint64_t flags, uint32_t mode, proto::OpenHow::Builder how);

// False when `flags` has a bit the kernel does not know (openat2 then fails with EINVAL; open(2)
// would ignore it).
bool knownOpenFlags(uint64_t flags);

// The other EINVAL cases openat2(2) has and open(2) silently repairs: unknown flag bits, a mode
// without O_CREAT/O_TMPFILE, mode bits outside 07777, O_PATH with flags other than O_DIRECTORY,
// O_NOFOLLOW, O_CLOEXEC.
bool validOpenat2(uint64_t flags, uint64_t mode);

// openat2 RESOLVE_* bits into `how`. False (EINVAL) on unknown bits or on RESOLVE_BENEATH
// together with RESOLVE_IN_ROOT, which the kernel refuses; `how` is then unspecified.
bool decodeResolve(uint64_t resolve, proto::OpenHow::Builder how);

// ---- fcntl(2) status flags ------------------------------------------------------------------

// The F_GETFL answer for the tracee. O_LARGEFILE is added when `largeFile` is set; the agent's
// kernel sets it on every 64-bit open, as ours does.
uint64_t encodeStatusFlags(proto::StatusFlags::Reader flags);

// The F_SETFL argument (the access mode is decoded too, for completeness; F_SETFL ignores it).
void decodeStatusFlags(uint64_t flags, proto::StatusFlags::Builder out);

// ---- stat family ----------------------------------------------------------------------------

// What stat/fstat/lstat/newfstatat write: x86-64 `struct stat`. Device numbers are encoded with
// makedev(), the same encoding the kernel's new_encode_dev gives for every possible value.
struct stat toStat(proto::Statx::Reader s);

// What statx(2) writes. Fields the wire does not carry (stx_dio_*) are 0.
struct statx toStatx(proto::Statx::Reader s);

// What statfs/fstatfs write: x86-64 `struct statfs`.
struct statfs toStatfs(proto::Statfs::Reader s);

// ---- getdents64 -----------------------------------------------------------------------------

// Size of one linux_dirent64 record: 19 header bytes, the name, its NUL, padded to 8.
size_t direntSize(size_t nameLen);

// Encodes as many whole entries as fit into `out`, in order, exactly as the kernel lays them out
// (padding bytes zeroed). Returns the bytes used; 0 when not even the first fits (getdents64
// then returns EINVAL). KJ_REQUIREs each name to be non-empty and free of '/' and NUL: anything
// else is a malformed message.
size_t encodeDirents(capnp::List<proto::Dirent>::Reader entries, kj::ArrayPtr<kj::byte> out);

// ---- fcntl(2) record locks ------------------------------------------------------------------

// Decodes a tracee `struct flock`. False when l_type or l_whence is not one the kernel accepts
// (the caller returns EINVAL); `out` is then unspecified. Range checks on l_start/l_len are left
// to the agent's kernel, which knows the file position SEEK_CUR refers to.
bool decodeFlock(const struct flock& in, proto::Flock::Builder out);
// Same as decodeFlock(); the name says at the call site that the result must be checked.
inline bool decodeFlockChecked(const struct flock& in, proto::Flock::Builder out) {
  return decodeFlock(in, out);
}

// For F_GETLK/F_OFD_GETLK answers. KJ_REQUIREs whence set/cur/end (data/hole are malformed).
struct flock encodeFlock(proto::Flock::Reader in);

// ---- preadv2/pwritev2 -----------------------------------------------------------------------

// False on RWF_* bits the wire cannot carry (the caller returns EOPNOTSUPP, as the kernel does
// for bits it does not know). Only the low 32 bits count: the kernel's rwf_t is an int.
bool decodeRwFlags(int64_t flags, proto::RwFlags::Builder out);

// ---- utimensat/utimes -----------------------------------------------------------------------

// One utimensat time: UTIME_NOW, UTIME_OMIT (tv_sec ignored) or a time. False when tv_nsec is
// none of these and outside 0..999999999 (EINVAL).
bool decodeTimespec(const struct timespec& ts, proto::TimeSpec::Builder out);

// One utimes/futimesat time. False when tv_usec is outside 0..999999 (EINVAL).
bool decodeTimeval(const struct timeval& tv, proto::TimeSpec::Builder out);

// ---- uname ----------------------------------------------------------------------------------

// Each field truncated to 64 bytes and NUL-terminated, the rest zeroed.
struct utsname toUtsname(proto::Uname::Reader u);

// ---- lseek ----------------------------------------------------------------------------------

// SEEK_SET..SEEK_HOLE; nullptr otherwise (EINVAL). Only the low 32 bits count: the kernel's
// `whence` is an unsigned int.
kj::Maybe<proto::Whence> decodeWhence(int64_t whence);

// ---- poll, select, epoll --------------------------------------------------------------------

// poll(2)'s event bits (asm-generic values, which x86-64 uses).
constexpr uint16_t K_POLLIN = 0x001, K_POLLPRI = 0x002, K_POLLOUT = 0x004, K_POLLERR = 0x008,
                   K_POLLHUP = 0x010, K_POLLNVAL = 0x020, K_POLLRDNORM = 0x040,
                   K_POLLRDBAND = 0x080, K_POLLWRNORM = 0x100, K_POLLWRBAND = 0x200,
                   K_POLLMSG = 0x400, K_POLLRDHUP = 0x2000;

// struct pollfd.
struct PollFd {
  int32_t fd;
  uint16_t events;
  uint16_t revents;
};
static_assert(sizeof(PollFd) == 8);

// The tracee's poll bits <-> PollEvents. Bits without a name on the wire are dropped (the
// kernel ignores them too).
void decodePollEvents(uint16_t events, proto::PollEvents::Builder out);
uint16_t encodePollEvents(proto::PollEvents::Reader events);

// select(2): what each fd_set asks and answers in poll terms (fs/select.c POLLIN_SET,
// POLLOUT_SET, POLLEX_SET). An fd_set is an array of 64-bit words, bit fd%64 of word fd/64.
constexpr uint16_t SELECT_IN = K_POLLRDNORM | K_POLLRDBAND | K_POLLIN | K_POLLHUP | K_POLLERR;
constexpr uint16_t SELECT_OUT = K_POLLWRBAND | K_POLLWRNORM | K_POLLOUT | K_POLLERR;
constexpr uint16_t SELECT_EX = K_POLLPRI;
// The bytes of one fd_set for `n` fds, as the kernel copies them (whole longs).
inline size_t fdSetBytes(int64_t n) { return static_cast<size_t>((n + 63) / 64) * 8; }
inline bool fdIsSet(kj::ArrayPtr<const kj::byte> set, int fd) {
  return set.size() > size_t(fd / 8) && (set[fd / 8] >> (fd % 8)) & 1;
}
inline void fdSet(kj::ArrayPtr<kj::byte> set, int fd) {
  set[fd / 8] |= static_cast<kj::byte>(1u << (fd % 8));
}
// The events to ask poll(2) for an fd in the given sets, and which sets its revents put it in
// (bit 0: readable, 1: writable, 2: exceptional).
uint16_t selectEvents(bool in, bool out, bool ex);
unsigned selectReady(uint16_t revents, bool in, bool out, bool ex);

// The timeouts, as the kernel reads them. A select timeval is normalised like fs/select.c
// (tv_sec + tv_usec / 10^6, the rest as nanoseconds) and must then be a valid timespec; false
// means EINVAL. The result is in nanoseconds, saturated.
struct KernelTimeval {
  int64_t sec;
  int64_t usec;
};
struct KernelTimespec {
  int64_t sec;
  int64_t nsec;
};
bool timevalToNs(const KernelTimeval& tv, int64_t& ns);
bool timespecToNs(const KernelTimespec& ts, int64_t& ns);
// What select and pselect6/ppoll write back: the time left (fs/select.c poll_select_finish:
// truncated to microseconds for a timeval).
KernelTimeval nsToTimeval(int64_t ns);
KernelTimespec nsToTimespec(int64_t ns);

// The kernel's sigset_t for rt_* calls, ppoll, pselect6 and epoll_pwait: 8 bytes.
constexpr uint64_t SIGSET_SIZE = 8;

// struct epoll_event: packed on x86-64 (12 bytes), unlike on every other arch.
struct __attribute__((packed)) EpollEvent {
  uint32_t events;
  uint64_t data;
};
static_assert(sizeof(EpollEvent) == 12);

constexpr int K_EPOLL_CTL_ADD = 1, K_EPOLL_CTL_DEL = 2, K_EPOLL_CTL_MOD = 3;
constexpr uint32_t K_EPOLLEXCLUSIVE = 1u << 28, K_EPOLLWAKEUP = 1u << 29,
                   K_EPOLLONESHOT = 1u << 30, K_EPOLLET = 1u << 31;
// fs/eventpoll.c EPOLLEXCLUSIVE_OK_BITS: what may go with EPOLLEXCLUSIVE.
constexpr uint32_t K_EPOLLEXCLUSIVE_OK = K_POLLIN | K_POLLOUT | K_POLLERR | K_POLLHUP |
                                         K_EPOLLWAKEUP | K_EPOLLET | K_EPOLLEXCLUSIVE;
// fs/eventpoll.c EP_MAX_EVENTS.
constexpr int64_t EPOLL_MAX_EVENTS = INT32_MAX / int64_t(sizeof(EpollEvent));

}  // namespace sb::x86_64
