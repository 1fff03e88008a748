// See trace_names.h. Each table is strace's order (its xlat/*.in), so lines compare equal.

#include "trace_names.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <fmt/core.h>
#include <kj/vector.h>

namespace sb {

kj::String bitNames(uint64_t value, NameTable names, const char* zero) {
  if (value == 0) {
    return kj::str(zero);
  }
  kj::Vector<kj::String> parts;
  for (auto& [bit, name] : names) {
    if (bit != 0 && (value & bit) == bit) {
      parts.add(kj::str(name));
      value &= ~bit;
    }
  }
  if (value != 0) {
    parts.add(kj::str("0x", kj::hex(value)));
  }
  return kj::strArray(parts, "|");
}

kj::String valueName(int64_t value, NameTable names) {
  for (auto& [v, name] : names) {
    if (static_cast<int64_t>(v) == value) {
      return kj::str(name);
    }
  }
  return kj::str(value);
}

kj::String openFlagNames(uint64_t flags) {
  // strace's order; composite flags before their parts (O_SYNC holds O_DSYNC's bit, O_TMPFILE
  // O_DIRECTORY's).
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {O_CREAT, "O_CREAT"}, {O_EXCL, "O_EXCL"}, {O_NOCTTY, "O_NOCTTY"}, {O_TRUNC, "O_TRUNC"},
      {O_APPEND, "O_APPEND"}, {O_NONBLOCK, "O_NONBLOCK"}, {O_SYNC, "O_SYNC"},
      {O_DSYNC, "O_DSYNC"}, {O_DIRECT, "O_DIRECT"}, {0100000, "O_LARGEFILE"},
      {O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"}, {O_CLOEXEC, "O_CLOEXEC"},
      {O_PATH, "O_PATH"}, {O_TMPFILE, "O_TMPFILE"}, {O_DIRECTORY, "O_DIRECTORY"},
      {FASYNC, "O_ASYNC"},
  };
  kj::Vector<kj::String> parts;
  if (!(flags & O_PATH)) {
    static const char* const ACC[] = {"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"};
    parts.add(kj::str(ACC[flags & O_ACCMODE]));
  }
  uint64_t rest = flags & ~uint64_t(O_ACCMODE);
  if (rest != 0) {
    parts.add(bitNames(rest, NAMES, ""));
  }
  return kj::strArray(parts, "|");
}

kj::String modeText(uint64_t mode) {
  // File type, set-id and sticky bits by name, permissions in octal: S_IFREG|0644.
  static const std::pair<uint64_t, const char*> TYPES[] = {
      {S_IFREG, "S_IFREG"}, {S_IFDIR, "S_IFDIR"}, {S_IFLNK, "S_IFLNK"}, {S_IFCHR, "S_IFCHR"},
      {S_IFBLK, "S_IFBLK"}, {S_IFIFO, "S_IFIFO"}, {S_IFSOCK, "S_IFSOCK"}};
  kj::Vector<kj::String> parts;
  uint64_t type = mode & S_IFMT;
  if (type != 0) {
    parts.add(valueName(static_cast<int64_t>(type), TYPES));
  }
  static const std::pair<uint64_t, const char*> SPECIAL[] = {
      {S_ISUID, "S_ISUID"}, {S_ISGID, "S_ISGID"}, {S_ISVTX, "S_ISVTX"}};
  for (auto& [bit, name] : SPECIAL) {
    if (mode & bit) {
      parts.add(kj::str(name));
    }
  }
  parts.add(kj::str(fmt::format("{:#04o}", mode & 0777).c_str()));
  return kj::strArray(parts, "|");
}

kj::String addressText(uint64_t addr) {
  return addr == 0 ? kj::str("NULL") : kj::str("0x", kj::hex(addr));
}

// STATX_* mask bits, STATX_BASIC_STATS first.
NameTable statxMaskNames() {
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {0x7ff, "STATX_BASIC_STATS"}, {0x1, "STATX_TYPE"}, {0x2, "STATX_MODE"},
      {0x4, "STATX_NLINK"}, {0x8, "STATX_UID"}, {0x10, "STATX_GID"}, {0x20, "STATX_ATIME"},
      {0x40, "STATX_MTIME"}, {0x80, "STATX_CTIME"}, {0x100, "STATX_INO"}, {0x200, "STATX_SIZE"},
      {0x400, "STATX_BLOCKS"}, {0x800, "STATX_BTIME"}, {0x1000, "STATX_MNT_ID"},
      {0x2000, "STATX_DIOALIGN"}};
  return NAMES;
}

// AF_* address families.
NameTable domainNames() {
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {AF_UNIX, "AF_UNIX"}, {AF_INET, "AF_INET"}, {AF_INET6, "AF_INET6"},
      {AF_NETLINK, "AF_NETLINK"}, {AF_PACKET, "AF_PACKET"}, {AF_UNSPEC, "AF_UNSPEC"}};
  return NAMES;
}

kj::String sockTypeText(uint64_t type) {
  static const std::pair<uint64_t, const char*> TYPES[] = {
      {SOCK_STREAM, "SOCK_STREAM"}, {SOCK_DGRAM, "SOCK_DGRAM"}, {SOCK_RAW, "SOCK_RAW"},
      {SOCK_SEQPACKET, "SOCK_SEQPACKET"}};
  static const std::pair<uint64_t, const char*> FLAGS[] = {
      {SOCK_CLOEXEC, "SOCK_CLOEXEC"}, {SOCK_NONBLOCK, "SOCK_NONBLOCK"}};
  uint64_t flags = type & (SOCK_CLOEXEC | SOCK_NONBLOCK);
  kj::String base = valueName(static_cast<int64_t>(type & 0xf), TYPES);
  return flags == 0 ? kj::mv(base) : kj::str(base, "|", bitNames(flags, FLAGS, "0"));
}

// SOL_* socket option levels (strace says SOL_TCP for IPPROTO_TCP).
NameTable sockoptLevelNames() {
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {SOL_SOCKET, "SOL_SOCKET"}, {IPPROTO_TCP, "SOL_TCP"}, {IPPROTO_IP, "SOL_IP"},
      {IPPROTO_IPV6, "SOL_IPV6"}, {IPPROTO_UDP, "SOL_UDP"}};
  return NAMES;
}

kj::String sockoptText(uint64_t level, uint64_t name) {
  static const std::pair<uint64_t, const char*> SOCKET[] = {
      {SO_DEBUG, "SO_DEBUG"}, {SO_REUSEADDR, "SO_REUSEADDR"}, {SO_TYPE, "SO_TYPE"},
      {SO_ERROR, "SO_ERROR"}, {SO_DONTROUTE, "SO_DONTROUTE"}, {SO_BROADCAST, "SO_BROADCAST"},
      {SO_SNDBUF, "SO_SNDBUF"}, {SO_RCVBUF, "SO_RCVBUF"}, {SO_KEEPALIVE, "SO_KEEPALIVE"},
      {SO_OOBINLINE, "SO_OOBINLINE"}, {SO_LINGER, "SO_LINGER"}, {SO_REUSEPORT, "SO_REUSEPORT"},
      {SO_RCVLOWAT, "SO_RCVLOWAT"}, {SO_SNDLOWAT, "SO_SNDLOWAT"}, {SO_RCVTIMEO, "SO_RCVTIMEO"},
      {SO_SNDTIMEO, "SO_SNDTIMEO"}, {SO_PASSCRED, "SO_PASSCRED"}, {SO_PEERCRED, "SO_PEERCRED"}};
  static const std::pair<uint64_t, const char*> TCP[] = {
      {1, "TCP_NODELAY"}, {2, "TCP_MAXSEG"}, {3, "TCP_CORK"}, {4, "TCP_KEEPIDLE"},
      {5, "TCP_KEEPINTVL"}, {6, "TCP_KEEPCNT"}, {18, "TCP_USER_TIMEOUT"}};
  int64_t n = static_cast<int64_t>(name);
  return level == SOL_SOCKET ? valueName(n, SOCKET)
         : level == IPPROTO_TCP ? valueName(n, TCP) : kj::str(n);
}

kj::String numberText(uint64_t a) {
  int64_t s = static_cast<int64_t>(a);
  if (a < 0x10000 || (s > -0x10000 && s < 0)) {
    return kj::str(s);
  }
  return kj::str("0x", kj::hex(a));
}

// mmap(addr, length, prot, flags, fd, offset): the only trapped call with flag words of its own.
kj::String mmapArgs(const uint64_t args[6]) {
  static const std::pair<uint64_t, const char*> PROT[] = {
      {PROT_READ, "PROT_READ"}, {PROT_WRITE, "PROT_WRITE"}, {PROT_EXEC, "PROT_EXEC"}};
  static const std::pair<uint64_t, const char*> TYPE[] = {
      {MAP_SHARED_VALIDATE, "MAP_SHARED_VALIDATE"}, {MAP_SHARED, "MAP_SHARED"},
      {MAP_PRIVATE, "MAP_PRIVATE"}};
  static const std::pair<uint64_t, const char*> FLAGS[] = {
      {MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"}, {MAP_FIXED, "MAP_FIXED"},
      {MAP_ANONYMOUS, "MAP_ANONYMOUS"}, {MAP_DENYWRITE, "MAP_DENYWRITE"},
      {MAP_NORESERVE, "MAP_NORESERVE"}, {MAP_POPULATE, "MAP_POPULATE"},
      {MAP_LOCKED, "MAP_LOCKED"}, {MAP_STACK, "MAP_STACK"}, {MAP_32BIT, "MAP_32BIT"}};
  uint64_t flags = args[3];
  auto type = bitNames(flags & MAP_TYPE, TYPE, "0");
  auto rest = flags & ~uint64_t(MAP_TYPE);
  return kj::str(addressText(args[0]), ", ", args[1], ", ", bitNames(args[2], PROT, "PROT_NONE"),
                 ", ", type, rest ? kj::str("|", bitNames(rest, FLAGS, "0")) : kj::str(), ", ",
                 static_cast<int>(args[4]), ", 0x", kj::hex(args[5]));
}

// MSG_* flags of send and recv calls.
NameTable msgFlagNames() {
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {MSG_OOB, "MSG_OOB"}, {MSG_PEEK, "MSG_PEEK"}, {MSG_DONTROUTE, "MSG_DONTROUTE"},
      {MSG_CTRUNC, "MSG_CTRUNC"}, {MSG_TRUNC, "MSG_TRUNC"}, {MSG_DONTWAIT, "MSG_DONTWAIT"},
      {MSG_EOR, "MSG_EOR"}, {MSG_WAITALL, "MSG_WAITALL"}, {MSG_NOSIGNAL, "MSG_NOSIGNAL"},
      {MSG_MORE, "MSG_MORE"}, {MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC"}};
  return NAMES;
}

NameTable spliceFlagNames() {
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {1, "SPLICE_F_MOVE"}, {2, "SPLICE_F_NONBLOCK"}, {4, "SPLICE_F_MORE"}, {8, "SPLICE_F_GIFT"}};
  return NAMES;
}

}  // namespace sb
