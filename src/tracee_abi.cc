#include "tracee_abi.h"

#include <kj/debug.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

namespace sb::x86_64 {

namespace {

// ---- Kernel constants for x86-64 tracees ----------------------------------------------------
// From the kernel's uapi headers (asm-generic/fcntl.h, which x86-64 uses unchanged;
// linux/openat2.h; linux/fs.h). Checked against glibc below wherever glibc has the same value.

constexpr uint64_t K_O_ACCMODE = 03;
constexpr uint64_t K_O_WRONLY = 01;
constexpr uint64_t K_O_RDWR = 02;
constexpr uint64_t K_O_CREAT = 0100;
constexpr uint64_t K_O_EXCL = 0200;
constexpr uint64_t K_O_NOCTTY = 0400;
constexpr uint64_t K_O_TRUNC = 01000;
constexpr uint64_t K_O_APPEND = 02000;
constexpr uint64_t K_O_NONBLOCK = 04000;  // O_NDELAY is the same bit on x86-64.
constexpr uint64_t K_O_DSYNC = 010000;
constexpr uint64_t K_FASYNC = 020000;
constexpr uint64_t K_O_DIRECT = 040000;
constexpr uint64_t K_O_LARGEFILE = 0100000;
constexpr uint64_t K_O_DIRECTORY = 0200000;
constexpr uint64_t K_O_NOFOLLOW = 0400000;
constexpr uint64_t K_O_NOATIME = 01000000;
constexpr uint64_t K_O_CLOEXEC = 02000000;
constexpr uint64_t K___O_SYNC = 04000000;
constexpr uint64_t K_O_PATH = 010000000;
constexpr uint64_t K___O_TMPFILE = 020000000;

// include/linux/fcntl.h VALID_OPEN_FLAGS.
constexpr uint64_t K_VALID_OPEN_FLAGS =
    K_O_ACCMODE | K_O_CREAT | K_O_EXCL | K_O_NOCTTY | K_O_TRUNC | K_O_APPEND | K_O_NONBLOCK |
    K_O_DSYNC | K___O_SYNC | K_FASYNC | K_O_DIRECT | K_O_LARGEFILE | K_O_DIRECTORY | K_O_NOFOLLOW |
    K_O_NOATIME | K_O_CLOEXEC | K_O_PATH | K___O_TMPFILE;
// fs/open.c O_PATH_FLAGS: all that survives next to O_PATH.
constexpr uint64_t K_O_PATH_FLAGS = K_O_DIRECTORY | K_O_NOFOLLOW | K_O_PATH | K_O_CLOEXEC;

constexpr uint64_t K_RESOLVE_NO_XDEV = 0x01;
constexpr uint64_t K_RESOLVE_NO_MAGICLINKS = 0x02;
constexpr uint64_t K_RESOLVE_NO_SYMLINKS = 0x04;
constexpr uint64_t K_RESOLVE_BENEATH = 0x08;
constexpr uint64_t K_RESOLVE_IN_ROOT = 0x10;
constexpr uint64_t K_RESOLVE_CACHED = 0x20;
constexpr uint64_t K_RESOLVE_ALL = K_RESOLVE_NO_XDEV | K_RESOLVE_NO_MAGICLINKS |
                                   K_RESOLVE_NO_SYMLINKS | K_RESOLVE_BENEATH | K_RESOLVE_IN_ROOT |
                                   K_RESOLVE_CACHED;

constexpr uint32_t K_RWF_HIPRI = 0x01;
constexpr uint32_t K_RWF_DSYNC = 0x02;
constexpr uint32_t K_RWF_SYNC = 0x04;
constexpr uint32_t K_RWF_NOWAIT = 0x08;
constexpr uint32_t K_RWF_APPEND = 0x10;
constexpr uint32_t K_RWF_KNOWN =
    K_RWF_HIPRI | K_RWF_DSYNC | K_RWF_SYNC | K_RWF_NOWAIT | K_RWF_APPEND;

constexpr int64_t K_UTIME_NOW = (1l << 30) - 1;
constexpr int64_t K_UTIME_OMIT = (1l << 30) - 2;

constexpr short K_F_RDLCK = 0;
constexpr short K_F_WRLCK = 1;
constexpr short K_F_UNLCK = 2;

constexpr uint32_t K_SEEK_SET = 0;
constexpr uint32_t K_SEEK_CUR = 1;
constexpr uint32_t K_SEEK_END = 2;
constexpr uint32_t K_SEEK_DATA = 3;
constexpr uint32_t K_SEEK_HOLE = 4;

// glibc agrees where it defines the same thing (it deliberately differs for O_LARGEFILE and
// __O_TMPFILE, see the header).
static_assert(O_ACCMODE == K_O_ACCMODE && O_WRONLY == K_O_WRONLY && O_RDWR == K_O_RDWR);
static_assert(O_CREAT == K_O_CREAT && O_EXCL == K_O_EXCL && O_NOCTTY == K_O_NOCTTY);
static_assert(O_TRUNC == K_O_TRUNC && O_APPEND == K_O_APPEND && O_NONBLOCK == K_O_NONBLOCK);
static_assert(O_NDELAY == K_O_NONBLOCK && O_DSYNC == K_O_DSYNC && O_ASYNC == K_FASYNC);
static_assert(O_DIRECT == K_O_DIRECT && O_DIRECTORY == K_O_DIRECTORY);
static_assert(O_NOFOLLOW == K_O_NOFOLLOW && O_NOATIME == K_O_NOATIME);
static_assert(O_CLOEXEC == K_O_CLOEXEC && O_SYNC == (K___O_SYNC | K_O_DSYNC));
static_assert(O_PATH == K_O_PATH && O_TMPFILE == (K___O_TMPFILE | K_O_DIRECTORY));
static_assert(UTIME_NOW == K_UTIME_NOW && UTIME_OMIT == K_UTIME_OMIT);
static_assert(F_RDLCK == K_F_RDLCK && F_WRLCK == K_F_WRLCK && F_UNLCK == K_F_UNLCK);
static_assert(SEEK_SET == K_SEEK_SET && SEEK_CUR == K_SEEK_CUR && SEEK_END == K_SEEK_END);
static_assert(SEEK_DATA == K_SEEK_DATA && SEEK_HOLE == K_SEEK_HOLE);
static_assert(RWF_HIPRI == K_RWF_HIPRI && RWF_DSYNC == K_RWF_DSYNC && RWF_SYNC == K_RWF_SYNC);
static_assert(RWF_NOWAIT == K_RWF_NOWAIT && RWF_APPEND == K_RWF_APPEND);
static_assert(RESOLVE_NO_XDEV == K_RESOLVE_NO_XDEV);
static_assert(RESOLVE_NO_MAGICLINKS == K_RESOLVE_NO_MAGICLINKS);
static_assert(RESOLVE_NO_SYMLINKS == K_RESOLVE_NO_SYMLINKS && RESOLVE_BENEATH == K_RESOLVE_BENEATH);
static_assert(RESOLVE_IN_ROOT == K_RESOLVE_IN_ROOT && RESOLVE_CACHED == K_RESOLVE_CACHED);

// ---- Layouts: the host structs we hand out must be x86-64's -----------------------------------

static_assert(sizeof(struct stat) == 144);
static_assert(offsetof(struct stat, st_dev) == 0 && offsetof(struct stat, st_ino) == 8);
static_assert(offsetof(struct stat, st_nlink) == 16 && offsetof(struct stat, st_mode) == 24);
static_assert(offsetof(struct stat, st_uid) == 28 && offsetof(struct stat, st_gid) == 32);
static_assert(offsetof(struct stat, st_rdev) == 40 && offsetof(struct stat, st_size) == 48);
static_assert(offsetof(struct stat, st_blksize) == 56 && offsetof(struct stat, st_blocks) == 64);
static_assert(offsetof(struct stat, st_atim) == 72 && offsetof(struct stat, st_mtim) == 88);
static_assert(offsetof(struct stat, st_ctim) == 104);

static_assert(sizeof(struct statx) == 256);
static_assert(offsetof(struct statx, stx_mode) == 0x1c && offsetof(struct statx, stx_ino) == 0x20);
static_assert(offsetof(struct statx, stx_atime) == 0x40);
static_assert(offsetof(struct statx, stx_mtime) == 0x70);
static_assert(offsetof(struct statx, stx_rdev_major) == 0x80);
static_assert(offsetof(struct statx, stx_mnt_id) == 0x90);

static_assert(sizeof(struct statfs) == 120);
static_assert(offsetof(struct statfs, f_type) == 0 && offsetof(struct statfs, f_bsize) == 8);
static_assert(offsetof(struct statfs, f_blocks) == 16 && offsetof(struct statfs, f_ffree) == 48);
static_assert(offsetof(struct statfs, f_fsid) == 56 && offsetof(struct statfs, f_namelen) == 64);
static_assert(offsetof(struct statfs, f_frsize) == 72 && offsetof(struct statfs, f_flags) == 80);

static_assert(sizeof(struct flock) == 32);
static_assert(offsetof(struct flock, l_type) == 0 && offsetof(struct flock, l_whence) == 2);
static_assert(offsetof(struct flock, l_start) == 8 && offsetof(struct flock, l_len) == 16);
static_assert(offsetof(struct flock, l_pid) == 24);

static_assert(sizeof(struct timespec) == 16 && sizeof(struct timeval) == 16);
static_assert(sizeof(struct utsname) == 6 * 65);

// linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
constexpr size_t DIRENT_OFF_OFFSET = 8;
constexpr size_t DIRENT_RECLEN_OFFSET = 16;
constexpr size_t DIRENT_TYPE_OFFSET = 18;
constexpr size_t DIRENT_NAME_OFFSET = 19;

template <typename T>
void storeAt(kj::byte* at, T value) {
  // x86-64 is little-endian like every host this builds on (see the #error in the header).
  memcpy(at, &value, sizeof(value));
}

void setAccess(uint64_t flags, proto::AccessMode& access) {
  if (flags & K_O_PATH) {
    access = proto::AccessMode::PATH;
    return;
  }
  switch (flags & K_O_ACCMODE) {
    case 0:
      access = proto::AccessMode::READ_ONLY;
      break;
    case K_O_WRONLY:
      access = proto::AccessMode::WRITE_ONLY;
      break;
    default:
      // 3 is Linux's "neither" mode (ioctl only): the closest wire value, see the header.
      access = proto::AccessMode::READ_WRITE;
      break;
  }
}

void copyTimestamp(proto::Timestamp::Reader in, struct timespec& out) {
  out.tv_sec = in.getSec();
  out.tv_nsec = in.getNsec();
}

void copyTimestamp(proto::Timestamp::Reader in, struct statx_timestamp& out) {
  out.tv_sec = in.getSec();
  out.tv_nsec = in.getNsec();
}

void copyField(capnp::Text::Reader in, char* out, size_t size) {
  size_t n = kj::min(in.size(), size - 1);
  memcpy(out, in.begin(), n);
  memset(out + n, 0, size - n);
}

}  // namespace

void decodeOpenFlags(uint64_t flags, uint32_t mode, proto::OpenHow::Builder how) {
  if (flags & K_O_PATH) {
    // The kernel drops everything else next to O_PATH for open(2) (build_open_how).
    flags &= K_O_PATH_FLAGS;
  }
  proto::AccessMode access;
  setAccess(flags, access);
  how.setAccess(access);
  how.setCreate(flags & K_O_CREAT);
  how.setExclusive(flags & K_O_EXCL);
  how.setNoCtty(flags & K_O_NOCTTY);
  how.setTruncate(flags & K_O_TRUNC);
  how.setAppend(flags & K_O_APPEND);
  how.setNonBlock(flags & K_O_NONBLOCK);
  how.setDsync(flags & K_O_DSYNC);
  how.setSync(flags & K___O_SYNC);
  how.setDirect(flags & K_O_DIRECT);
  how.setDirectory(flags & K_O_DIRECTORY);
  how.setNoFollow(flags & K_O_NOFOLLOW);
  how.setNoAtime(flags & K_O_NOATIME);
  how.setCloseOnExec(flags & K_O_CLOEXEC);
  how.setTmpFile(flags & K___O_TMPFILE);
  how.setAsync(flags & K_FASYNC);
  how.setLargeFile(flags & K_O_LARGEFILE);
  // The kernel only looks at the mode when it may create, and only at the permission bits.
  bool creates = flags & (K_O_CREAT | K___O_TMPFILE);
  how.setMode(creates ? (mode & 07777) : 0);
}

bool knownOpenFlags(uint64_t flags) { return (flags & ~K_VALID_OPEN_FLAGS) == 0; }

bool validOpenat2(uint64_t flags, uint64_t mode) {
  if (!knownOpenFlags(flags)) {
    return false;
  }
  if (flags & (K_O_CREAT | K___O_TMPFILE)) {
    if (mode & ~uint64_t(07777)) {
      return false;
    }
  } else if (mode != 0) {
    return false;
  }
  if ((flags & K_O_PATH) && (flags & ~K_O_PATH_FLAGS)) {
    return false;
  }
  return true;
}

bool decodeResolve(uint64_t resolve, proto::OpenHow::Builder how) {
  if (resolve & ~K_RESOLVE_ALL) {
    return false;
  }
  if ((resolve & K_RESOLVE_BENEATH) && (resolve & K_RESOLVE_IN_ROOT)) {
    return false;
  }
  how.setResolveNoXdev(resolve & K_RESOLVE_NO_XDEV);
  how.setResolveNoMagicLinks(resolve & K_RESOLVE_NO_MAGICLINKS);
  how.setResolveNoSymlinks(resolve & K_RESOLVE_NO_SYMLINKS);
  how.setResolveBeneath(resolve & K_RESOLVE_BENEATH);
  how.setResolveInRoot(resolve & K_RESOLVE_IN_ROOT);
  how.setResolveCached(resolve & K_RESOLVE_CACHED);
  return true;
}

uint64_t encodeStatusFlags(proto::StatusFlags::Reader flags) {
  uint64_t out = 0;
  switch (flags.getAccess()) {
    case proto::AccessMode::READ_ONLY:
      break;
    case proto::AccessMode::WRITE_ONLY:
      out |= K_O_WRONLY;
      break;
    case proto::AccessMode::READ_WRITE:
      out |= K_O_RDWR;
      break;
    case proto::AccessMode::PATH:
      out |= K_O_PATH;
      break;
  }
  if (flags.getAppend()) {
    out |= K_O_APPEND;
  }
  if (flags.getNonBlock()) {
    out |= K_O_NONBLOCK;
  }
  if (flags.getAsync()) {
    out |= K_FASYNC;
  }
  if (flags.getDirect()) {
    out |= K_O_DIRECT;
  }
  if (flags.getNoAtime()) {
    out |= K_O_NOATIME;
  }
  if (flags.getDsync()) {
    out |= K_O_DSYNC;
  }
  // sync on the wire means O_SYNC, which includes O_DSYNC.
  if (flags.getSync()) {
    out |= K___O_SYNC | K_O_DSYNC;
  }
  if (flags.getLargeFile()) {
    out |= K_O_LARGEFILE;
  }
  return out;
}

void decodeStatusFlags(uint64_t flags, proto::StatusFlags::Builder out) {
  proto::AccessMode access;
  setAccess(flags, access);
  out.setAccess(access);
  out.setAppend(flags & K_O_APPEND);
  out.setNonBlock(flags & K_O_NONBLOCK);
  out.setAsync(flags & K_FASYNC);
  out.setDirect(flags & K_O_DIRECT);
  out.setNoAtime(flags & K_O_NOATIME);
  out.setDsync(flags & K_O_DSYNC);
  out.setSync(flags & K___O_SYNC);
  out.setLargeFile(flags & K_O_LARGEFILE);
}

struct stat toStat(proto::Statx::Reader s) {
  struct stat out;
  // Zeroes the padding and reserved words too: they reach tracee memory.
  memset(&out, 0, sizeof(out));
  out.st_dev = makedev(s.getDevMajor(), s.getDevMinor());
  out.st_ino = s.getIno();
  out.st_nlink = s.getNlink();
  out.st_mode = s.getMode();
  out.st_uid = s.getUid();
  out.st_gid = s.getGid();
  out.st_rdev = makedev(s.getRdevMajor(), s.getRdevMinor());
  out.st_size = s.getSize();
  out.st_blksize = s.getBlksize();
  out.st_blocks = s.getBlocks();
  copyTimestamp(s.getAtime(), out.st_atim);
  copyTimestamp(s.getMtime(), out.st_mtim);
  copyTimestamp(s.getCtime(), out.st_ctim);
  return out;
}

struct statx toStatx(proto::Statx::Reader s) {
  struct statx out;
  memset(&out, 0, sizeof(out));
  out.stx_mask = s.getMask();
  out.stx_blksize = s.getBlksize();
  out.stx_attributes = s.getAttributes();
  out.stx_nlink = s.getNlink();
  out.stx_uid = s.getUid();
  out.stx_gid = s.getGid();
  out.stx_mode = s.getMode();
  out.stx_ino = s.getIno();
  out.stx_size = s.getSize();
  out.stx_blocks = s.getBlocks();
  out.stx_attributes_mask = s.getAttributesMask();
  copyTimestamp(s.getAtime(), out.stx_atime);
  copyTimestamp(s.getBtime(), out.stx_btime);
  copyTimestamp(s.getCtime(), out.stx_ctime);
  copyTimestamp(s.getMtime(), out.stx_mtime);
  out.stx_rdev_major = s.getRdevMajor();
  out.stx_rdev_minor = s.getRdevMinor();
  out.stx_dev_major = s.getDevMajor();
  out.stx_dev_minor = s.getDevMinor();
  out.stx_mnt_id = s.getMntId();
  return out;
}

struct statfs toStatfs(proto::Statfs::Reader s) {
  struct statfs out;
  memset(&out, 0, sizeof(out));
  out.f_type = s.getType();
  out.f_bsize = s.getBsize();
  out.f_blocks = s.getBlocks();
  out.f_bfree = s.getBfree();
  out.f_bavail = s.getBavail();
  out.f_files = s.getFiles();
  out.f_ffree = s.getFfree();
  out.f_fsid.__val[0] = s.getFsid0();
  out.f_fsid.__val[1] = s.getFsid1();
  out.f_namelen = s.getNamelen();
  out.f_frsize = s.getFrsize();
  out.f_flags = s.getFlags();
  return out;
}

size_t direntSize(size_t nameLen) { return (DIRENT_NAME_OFFSET + nameLen + 1 + 7) & ~size_t(7); }

size_t encodeDirents(capnp::List<proto::Dirent>::Reader entries, kj::ArrayPtr<kj::byte> out) {
  size_t used = 0;
  for (auto entry: entries) {
    auto name = entry.getName();
    KJ_REQUIRE(name.size() > 0, "malformed getdents reply: empty name");
    KJ_REQUIRE(memchr(name.begin(), '\0', name.size()) == nullptr &&
                   memchr(name.begin(), '/', name.size()) == nullptr,
               "malformed getdents reply: a name with NUL or '/'");
    size_t size = direntSize(name.size());
    // d_reclen is 16 bits; no filesystem has names anywhere near that long.
    KJ_REQUIRE(size <= 0xffff, "malformed getdents reply: name too long", name.size());
    if (size > out.size() - used) {
      break;
    }
    kj::byte* record = out.begin() + used;
    memset(record, 0, size);
    storeAt<uint64_t>(record, entry.getIno());
    storeAt<int64_t>(record + DIRENT_OFF_OFFSET, entry.getOff());
    storeAt<uint16_t>(record + DIRENT_RECLEN_OFFSET, size);
    storeAt<uint8_t>(record + DIRENT_TYPE_OFFSET, entry.getType());
    memcpy(record + DIRENT_NAME_OFFSET, name.begin(), name.size());
    used += size;
  }
  return used;
}

bool decodeFlock(const struct flock& in, proto::Flock::Builder out) {
  switch (in.l_type) {
    case K_F_RDLCK:
      out.setType(proto::LockType::READ);
      break;
    case K_F_WRLCK:
      out.setType(proto::LockType::WRITE);
      break;
    case K_F_UNLCK:
      out.setType(proto::LockType::UNLOCK);
      break;
    default:
      return false;
  }
  switch (in.l_whence) {
    case K_SEEK_SET:
      out.setWhence(proto::Whence::SET);
      break;
    case K_SEEK_CUR:
      out.setWhence(proto::Whence::CUR);
      break;
    case K_SEEK_END:
      out.setWhence(proto::Whence::END);
      break;
    default:
      return false;
  }
  out.setStart(in.l_start);
  out.setLen(in.l_len);
  out.setPid(in.l_pid);
  return true;
}

struct flock encodeFlock(proto::Flock::Reader in) {
  struct flock out;
  memset(&out, 0, sizeof(out));
  switch (in.getType()) {
    case proto::LockType::READ:
      out.l_type = K_F_RDLCK;
      break;
    case proto::LockType::WRITE:
      out.l_type = K_F_WRLCK;
      break;
    case proto::LockType::UNLOCK:
      out.l_type = K_F_UNLCK;
      break;
    default:
      KJ_FAIL_REQUIRE("malformed lock reply: unknown lock type", static_cast<int>(in.getType()));
  }
  switch (in.getWhence()) {
    case proto::Whence::SET:
      out.l_whence = K_SEEK_SET;
      break;
    case proto::Whence::CUR:
      out.l_whence = K_SEEK_CUR;
      break;
    case proto::Whence::END:
      out.l_whence = K_SEEK_END;
      break;
    default:
      KJ_FAIL_REQUIRE("malformed lock reply: whence must be set, cur or end",
                      static_cast<int>(in.getWhence()));
  }
  out.l_start = in.getStart();
  out.l_len = in.getLen();
  out.l_pid = in.getPid();
  return out;
}

bool decodeRwFlags(int64_t flags, proto::RwFlags::Builder out) {
  uint32_t bits = static_cast<uint32_t>(flags);
  if (bits & ~K_RWF_KNOWN) {
    return false;
  }
  out.setHipri(bits & K_RWF_HIPRI);
  out.setDsync(bits & K_RWF_DSYNC);
  out.setSync(bits & K_RWF_SYNC);
  out.setNoWait(bits & K_RWF_NOWAIT);
  out.setAppend(bits & K_RWF_APPEND);
  return true;
}

bool decodeTimespec(const struct timespec& ts, proto::TimeSpec::Builder out) {
  if (ts.tv_nsec == K_UTIME_NOW) {
    out.setNow();
  } else if (ts.tv_nsec == K_UTIME_OMIT) {
    out.setOmit();
  } else if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000) {
    return false;
  } else {
    auto time = out.initTime();
    time.setSec(ts.tv_sec);
    time.setNsec(ts.tv_nsec);
  }
  return true;
}

bool decodeTimeval(const struct timeval& tv, proto::TimeSpec::Builder out) {
  if (tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
    return false;
  }
  auto time = out.initTime();
  time.setSec(tv.tv_sec);
  time.setNsec(tv.tv_usec * 1000);
  return true;
}

struct utsname toUtsname(proto::Uname::Reader u) {
  struct utsname out;
  copyField(u.getSysname(), out.sysname, sizeof(out.sysname));
  copyField(u.getNodename(), out.nodename, sizeof(out.nodename));
  copyField(u.getRelease(), out.release, sizeof(out.release));
  copyField(u.getVersion(), out.version, sizeof(out.version));
  copyField(u.getMachine(), out.machine, sizeof(out.machine));
  copyField(u.getDomainname(), out.domainname, sizeof(out.domainname));
  return out;
}

kj::Maybe<proto::Whence> decodeWhence(int64_t whence) {
  switch (static_cast<uint32_t>(whence)) {
    case K_SEEK_SET:
      return proto::Whence::SET;
    case K_SEEK_CUR:
      return proto::Whence::CUR;
    case K_SEEK_END:
      return proto::Whence::END;
    case K_SEEK_DATA:
      return proto::Whence::DATA;
    case K_SEEK_HOLE:
      return proto::Whence::HOLE;
    default:
      return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------
// poll, select, epoll

namespace {

struct PollBit {
  uint16_t bit;
  bool (proto::PollEvents::Reader::*get)() const;
  void (proto::PollEvents::Builder::*set)(bool);
};

using PR = proto::PollEvents::Reader;
using PB = proto::PollEvents::Builder;
const PollBit POLL_BITS[] = {
    {K_POLLIN, &PR::getIn, &PB::setIn},             {K_POLLPRI, &PR::getPri, &PB::setPri},
    {K_POLLOUT, &PR::getOut, &PB::setOut},          {K_POLLERR, &PR::getErr, &PB::setErr},
    {K_POLLHUP, &PR::getHup, &PB::setHup},          {K_POLLNVAL, &PR::getNval, &PB::setNval},
    {K_POLLRDNORM, &PR::getRdNorm, &PB::setRdNorm}, {K_POLLRDBAND, &PR::getRdBand, &PB::setRdBand},
    {K_POLLWRNORM, &PR::getWrNorm, &PB::setWrNorm}, {K_POLLWRBAND, &PR::getWrBand, &PB::setWrBand},
    {K_POLLMSG, &PR::getMsg, &PB::setMsg},          {K_POLLRDHUP, &PR::getRdHup, &PB::setRdHup},
};

constexpr int64_t NSEC = 1000000000;

}  // namespace

void decodePollEvents(uint16_t events, proto::PollEvents::Builder out) {
  for (auto& b : POLL_BITS) {
    (out.*b.set)((events & b.bit) != 0);
  }
}

uint16_t encodePollEvents(proto::PollEvents::Reader events) {
  uint16_t out = 0;
  for (auto& b : POLL_BITS) {
    if ((events.*b.get)()) {
      out |= b.bit;
    }
  }
  return out;
}

uint16_t selectEvents(bool in, bool out, bool ex) {
  return (in ? SELECT_IN : 0) | (out ? SELECT_OUT : 0) | (ex ? SELECT_EX : 0);
}

unsigned selectReady(uint16_t revents, bool in, bool out, bool ex) {
  return ((in && (revents & SELECT_IN)) ? 1u : 0u) | ((out && (revents & SELECT_OUT)) ? 2u : 0u) |
         ((ex && (revents & SELECT_EX)) ? 4u : 0u);
}

bool timespecToNs(const KernelTimespec& ts, int64_t& ns) {
  if (ts.sec < 0 || ts.nsec < 0 || ts.nsec >= NSEC) {
    return false;
  }
  ns = ts.sec >= INT64_MAX / NSEC ? INT64_MAX : ts.sec * NSEC + ts.nsec;
  return true;
}

bool timevalToNs(const KernelTimeval& tv, int64_t& ns) {
  // fs/select.c: poll_select_set_timeout(to, tv_sec + tv_usec / USEC_PER_SEC,
  // (tv_usec % USEC_PER_SEC) * NSEC_PER_USEC), with C's truncating division.
  KernelTimespec ts;
  int64_t carry = tv.usec / 1000000;
  ts.sec = tv.sec > INT64_MAX - carry ? INT64_MAX : tv.sec + carry;
  ts.nsec = (tv.usec % 1000000) * 1000;
  return timespecToNs(ts, ns);
}

KernelTimeval nsToTimeval(int64_t ns) {
  ns = ns < 0 ? 0 : ns;
  return KernelTimeval{ns / NSEC, (ns % NSEC) / 1000};
}

KernelTimespec nsToTimespec(int64_t ns) {
  ns = ns < 0 ? 0 : ns;
  return KernelTimespec{ns / NSEC, ns % NSEC};
}

}  // namespace sb::x86_64
