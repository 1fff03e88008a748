#include "host_wire.h"

#include <limits.h>
#include <poll.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

namespace sb {

namespace {

// glibc defines O_LARGEFILE as 0 on 64-bit targets, yet the kernel forces and reports its own bit
// in F_GETFL. The kernel's value differs per arch (asm/fcntl.h); <asm/fcntl.h> cannot be included
// next to <fcntl.h>, so the two arches the project supports are spelled out here.
#if defined(__aarch64__) || defined(__arm__)
constexpr int KERNEL_O_LARGEFILE = 0400000;
#else
constexpr int KERNEL_O_LARGEFILE = 0100000;  // asm-generic and x86
#endif

}  // namespace

int64_t pathFromWire(capnp::Data::Reader path, kj::String& out) {
  // The kernel counts the terminating NUL against PATH_MAX.
  if (path.size() >= PATH_MAX) {
    return -ENAMETOOLONG;
  }
  if (path.size() > 0 && memchr(path.begin(), '\0', path.size()) != nullptr) {
    return -EINVAL;
  }
  out = kj::heapString(reinterpret_cast<const char*>(path.begin()), path.size());
  return 0;
}

int64_t accessModeToHost(proto::AccessMode mode) {
  switch (mode) {
    case proto::AccessMode::READ_ONLY: return O_RDONLY;
    case proto::AccessMode::WRITE_ONLY: return O_WRONLY;
    case proto::AccessMode::READ_WRITE: return O_RDWR;
    case proto::AccessMode::PATH: return O_PATH;
  }
  return -EINVAL;
}

int64_t openHowToHost(proto::OpenHow::Reader how, struct open_how& out) {
  int64_t access = accessModeToHost(how.getAccess());
  if (access < 0) {
    return access;
  }
  // O_LARGEFILE: what glibc's open adds for a 64-bit off_t. The agent opens with raw openat2, and
  // a 32-bit kernel (an armhf board) refuses a file over 2 GiB without it (EOVERFLOW); glibc
  // defines it as 0 on 64-bit hosts, whose kernels force it.
  uint64_t flags = uint64_t(access) | O_CLOEXEC | O_NOCTTY | O_LARGEFILE;
  // O_PATH ignores every other flag but these in open(2), while openat2(2) rejects them.
  // Decode them all and let the open path drop what O_PATH cannot take.
  if (how.getCreate()) flags |= O_CREAT;
  if (how.getExclusive()) flags |= O_EXCL;
  if (how.getTruncate()) flags |= O_TRUNC;
  if (how.getAppend()) flags |= O_APPEND;
  if (how.getNonBlock()) flags |= O_NONBLOCK;
  if (how.getDsync()) flags |= O_DSYNC;
  if (how.getSync()) flags |= O_SYNC;
  if (how.getDirect()) flags |= O_DIRECT;
  if (how.getDirectory()) flags |= O_DIRECTORY;
  if (how.getNoFollow()) flags |= O_NOFOLLOW;
  if (how.getNoAtime()) flags |= O_NOATIME;
  if (how.getTmpFile()) flags |= O_TMPFILE;
  if (how.getAsync()) flags |= O_ASYNC;
  if (how.getLargeFile()) flags |= KERNEL_O_LARGEFILE;
  // closeOnExec is recorded by the tracer only; the agent's fd is always O_CLOEXEC.

  uint64_t resolve = 0;
  if (how.getResolveNoXdev()) resolve |= RESOLVE_NO_XDEV;
  if (how.getResolveNoMagicLinks()) resolve |= RESOLVE_NO_MAGICLINKS;
  if (how.getResolveNoSymlinks()) resolve |= RESOLVE_NO_SYMLINKS;
  if (how.getResolveBeneath()) resolve |= RESOLVE_BENEATH;
  if (how.getResolveInRoot()) resolve |= RESOLVE_IN_ROOT;
  if (how.getResolveCached()) resolve |= RESOLVE_CACHED;

  if (access == O_PATH) {
    flags &= O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW;
  }
  memset(&out, 0, sizeof(out));
  out.flags = flags;
  bool takesMode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
  out.mode = takesMode ? (how.getMode() & 07777) : 0;
  out.resolve = resolve;
  return 0;
}

void statusFlagsFromHost(int flags, proto::StatusFlags::Builder out) {
  switch (flags & (O_ACCMODE | O_PATH)) {
    case O_WRONLY: out.setAccess(proto::AccessMode::WRITE_ONLY); break;
    case O_RDWR: out.setAccess(proto::AccessMode::READ_WRITE); break;
    default:
      out.setAccess((flags & O_PATH) ? proto::AccessMode::PATH : proto::AccessMode::READ_ONLY);
      break;
  }
  out.setAppend(flags & O_APPEND);
  out.setNonBlock(flags & O_NONBLOCK);
  out.setAsync(flags & O_ASYNC);
  out.setDirect(flags & O_DIRECT);
  out.setNoAtime(flags & O_NOATIME);
  // O_SYNC contains the O_DSYNC bit: report dsync only when it stands alone.
  out.setSync((flags & O_SYNC) == O_SYNC);
  out.setDsync((flags & O_SYNC) != O_SYNC && (flags & O_DSYNC));
  out.setLargeFile(flags & KERNEL_O_LARGEFILE);
}

int statusFlagsToHost(proto::StatusFlags::Reader flags) {
  int out = 0;
  if (flags.getAppend()) out |= O_APPEND;
  if (flags.getNonBlock()) out |= O_NONBLOCK;
  if (flags.getAsync()) out |= O_ASYNC;
  if (flags.getDirect()) out |= O_DIRECT;
  if (flags.getNoAtime()) out |= O_NOATIME;
  if (flags.getDsync()) out |= O_DSYNC;
  if (flags.getSync()) out |= O_SYNC;
  if (flags.getLargeFile()) out |= KERNEL_O_LARGEFILE;
  return out;
}

int rwFlagsToHost(proto::RwFlags::Reader flags) {
  int out = 0;
  if (flags.getHipri()) out |= RWF_HIPRI;
  if (flags.getDsync()) out |= RWF_DSYNC;
  if (flags.getSync()) out |= RWF_SYNC;
  if (flags.getNoWait()) out |= RWF_NOWAIT;
  if (flags.getAppend()) out |= RWF_APPEND;
  return out;
}

int64_t whenceToHost(proto::Whence whence) {
  switch (whence) {
    case proto::Whence::SET: return SEEK_SET;
    case proto::Whence::CUR: return SEEK_CUR;
    case proto::Whence::END: return SEEK_END;
    case proto::Whence::DATA: return SEEK_DATA;
    case proto::Whence::HOLE: return SEEK_HOLE;
  }
  return -EINVAL;
}

int statFlagsToHost(proto::StatFlags::Reader flags) {
  int out = 0;
  if (flags.getEmptyPath()) out |= AT_EMPTY_PATH;
  if (flags.getNoFollow()) out |= AT_SYMLINK_NOFOLLOW;
  if (flags.getNoAutomount()) out |= AT_NO_AUTOMOUNT;
  if (flags.getForceSync()) out |= AT_STATX_FORCE_SYNC;
  if (flags.getDontSync()) out |= AT_STATX_DONT_SYNC;
  return out;
}

int xattrFlagsToHost(proto::Xattr::Reader flags) {
  int out = 0;
  if (flags.getCreate()) out |= XATTR_CREATE;
  if (flags.getReplace()) out |= XATTR_REPLACE;
  return out;
}

int64_t timeSpecToHost(proto::TimeSpec::Reader time, struct timespec& out) {
  switch (time.which()) {
    case proto::TimeSpec::NOW:
      out = {0, UTIME_NOW};
      return 0;
    case proto::TimeSpec::OMIT:
      out = {0, UTIME_OMIT};
      return 0;
    case proto::TimeSpec::TIME: {
      auto t = time.getTime();
      // The kernel refuses nanoseconds out of range with EINVAL; keep that check its own.
      out.tv_sec = t.getSec();
      out.tv_nsec = long(t.getNsec());
      return 0;
    }
  }
  return -EINVAL;
}

int64_t lockCmdToHost(proto::LockCmd cmd) {
  switch (cmd) {
    case proto::LockCmd::GET_LK: return F_GETLK;
    case proto::LockCmd::SET_LK: return F_SETLK;
    case proto::LockCmd::SET_LK_W: return F_SETLKW;
    case proto::LockCmd::OFD_GET_LK: return F_OFD_GETLK;
    case proto::LockCmd::OFD_SET_LK: return F_OFD_SETLK;
    case proto::LockCmd::OFD_SET_LK_W: return F_OFD_SETLKW;
  }
  return -EINVAL;
}

int64_t flockToHost(proto::Flock::Reader lock, struct flock& out) {
  memset(&out, 0, sizeof(out));
  switch (lock.getType()) {
    case proto::LockType::READ: out.l_type = F_RDLCK; break;
    case proto::LockType::WRITE: out.l_type = F_WRLCK; break;
    case proto::LockType::UNLOCK: out.l_type = F_UNLCK; break;
    default: return -EINVAL;
  }
  switch (lock.getWhence()) {
    case proto::Whence::SET: out.l_whence = SEEK_SET; break;
    case proto::Whence::CUR: out.l_whence = SEEK_CUR; break;
    case proto::Whence::END: out.l_whence = SEEK_END; break;
    default: return -EINVAL;
  }
  out.l_start = lock.getStart();
  out.l_len = lock.getLen();
  out.l_pid = lock.getPid();
  return 0;
}

void flockFromHost(const struct flock& lock, proto::Flock::Builder out) {
  switch (lock.l_type) {
    case F_RDLCK: out.setType(proto::LockType::READ); break;
    case F_WRLCK: out.setType(proto::LockType::WRITE); break;
    default: out.setType(proto::LockType::UNLOCK); break;
  }
  switch (lock.l_whence) {
    case SEEK_CUR: out.setWhence(proto::Whence::CUR); break;
    case SEEK_END: out.setWhence(proto::Whence::END); break;
    default: out.setWhence(proto::Whence::SET); break;
  }
  out.setStart(lock.l_start);
  out.setLen(lock.l_len);
  out.setPid(lock.l_pid);
}

namespace {

void timestampToWire(const struct statx_timestamp& t, proto::Timestamp::Builder out) {
  out.setSec(t.tv_sec);
  out.setNsec(t.tv_nsec);
}

}  // namespace

void statxToWire(const struct statx& st, proto::Statx::Builder out) {
  out.setMask(st.stx_mask);
  out.setBlksize(st.stx_blksize);
  out.setAttributes(st.stx_attributes);
  out.setNlink(st.stx_nlink);
  out.setUid(st.stx_uid);
  out.setGid(st.stx_gid);
  out.setMode(st.stx_mode);
  out.setIno(st.stx_ino);
  out.setSize(st.stx_size);
  out.setBlocks(st.stx_blocks);
  out.setAttributesMask(st.stx_attributes_mask);
  timestampToWire(st.stx_atime, out.initAtime());
  timestampToWire(st.stx_btime, out.initBtime());
  timestampToWire(st.stx_ctime, out.initCtime());
  timestampToWire(st.stx_mtime, out.initMtime());
  out.setRdevMajor(st.stx_rdev_major);
  out.setRdevMinor(st.stx_rdev_minor);
  out.setDevMajor(st.stx_dev_major);
  out.setDevMinor(st.stx_dev_minor);
#ifdef STATX_MNT_ID
  out.setMntId(st.stx_mnt_id);
#endif
}

void statfsToWire(const struct statfs& st, proto::Statfs::Builder out) {
  // f_type is a 32-bit magic in a signed word: on a 32-bit host (armhf) the int would turn the
  // magics above 0x7fffffff (btrfs 0x9123683e, ...) negative, where a 64-bit kernel reports them
  // positive; read it unsigned on every host.
  out.setType(int64_t(std::make_unsigned_t<decltype(st.f_type)>(st.f_type)));
  out.setBsize(int64_t(st.f_bsize));
  out.setBlocks(st.f_blocks);
  out.setBfree(st.f_bfree);
  out.setBavail(st.f_bavail);
  out.setFiles(st.f_files);
  out.setFfree(st.f_ffree);
  int fsid[2];
  static_assert(sizeof(fsid) == sizeof(st.f_fsid), "fsid_t is two ints on Linux");
  memcpy(fsid, &st.f_fsid, sizeof(fsid));
  out.setFsid0(fsid[0]);
  out.setFsid1(fsid[1]);
  out.setNamelen(int64_t(st.f_namelen));
  out.setFrsize(int64_t(st.f_frsize));
  out.setFlags(int64_t(st.f_flags));
}

proto::FileType fileTypeFromMode(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return proto::FileType::REGULAR;
    case S_IFDIR: return proto::FileType::DIRECTORY;
    case S_IFLNK: return proto::FileType::SYMLINK;
    case S_IFCHR: return proto::FileType::CHAR_DEVICE;
    case S_IFBLK: return proto::FileType::BLOCK_DEVICE;
    case S_IFIFO: return proto::FileType::FIFO;
    case S_IFSOCK: return proto::FileType::SOCKET;
    default: return proto::FileType::UNKNOWN;
  }
}

// ---------------------------------------------------------------------------------------------
// poll events

namespace {

struct PollBit {
  short host;
  bool (proto::PollEvents::Reader::*get)() const;
  void (proto::PollEvents::Builder::*set)(bool);
};

using PR = proto::PollEvents::Reader;
using PB = proto::PollEvents::Builder;
const PollBit POLL_BITS[] = {
    {POLLIN, &PR::getIn, &PB::setIn},          {POLLPRI, &PR::getPri, &PB::setPri},
    {POLLOUT, &PR::getOut, &PB::setOut},       {POLLERR, &PR::getErr, &PB::setErr},
    {POLLHUP, &PR::getHup, &PB::setHup},       {POLLNVAL, &PR::getNval, &PB::setNval},
    {POLLRDNORM, &PR::getRdNorm, &PB::setRdNorm}, {POLLRDBAND, &PR::getRdBand, &PB::setRdBand},
    {POLLWRNORM, &PR::getWrNorm, &PB::setWrNorm}, {POLLWRBAND, &PR::getWrBand, &PB::setWrBand},
    {POLLMSG, &PR::getMsg, &PB::setMsg},       {POLLRDHUP, &PR::getRdHup, &PB::setRdHup},
};

}  // namespace

short pollEventsToHost(proto::PollEvents::Reader events) {
  short out = 0;
  for (auto& bit : POLL_BITS) {
    if ((events.*bit.get)()) {
      out |= bit.host;
    }
  }
  return out;
}

void pollEventsFromHost(short revents, proto::PollEvents::Builder out) {
  for (auto& bit : POLL_BITS) {
    (out.*bit.set)((revents & bit.host) != 0);
  }
}

}  // namespace sb
