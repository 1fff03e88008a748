// strace's text for one syscall; see trace_format.h. One table says what each argument of each
// decoded syscall is (ARG_SHAPES); one function a kind of argument.

#include "trace_format.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/vector.h>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "errno_names.h"
#include "ioctl_table.h"
#include "syscall_table.h"

namespace sb {

namespace {

// What one argument is, and so how it prints.
enum class ArgKind : uint8_t {
  INT,       // signed decimal
  UINT,      // unsigned decimal
  HEX,       // 0x...
  PTR,       // NULL or 0x...
  FD,        // a file descriptor (-y notes follow it)
  DIRFD,     // a directory fd or AT_FDCWD
  PATH,      // a file name: quoted, never cut
  STR,       // a NUL-terminated string: quoted, cut at -s
  OUT_BUF,   // bytes the call wrote, as many as it returned
  IN_BUF,    // bytes the call read, as many as the next argument says
  CWD,       // getcwd's buffer: a path of (result - 1) bytes
  OPEN_FLAGS,  // O_* flags; the next argument (a mode) prints only when they create a file
  MODE,      // permission bits in octal
  ACCESS,    // F_OK or R_OK|W_OK|X_OK
  AT_FLAGS,  // AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH ...
  UNLINK_FLAGS,  // 0 or AT_REMOVEDIR
  STATX_FLAGS,   // AT_STATX_SYNC_AS_STAT|...
  STATX_MASK,    // STATX_MODE|...
  STAT,      // struct stat, written by the call
  STATX,     // struct statx, written by the call
  WHENCE,    // SEEK_SET ...
  SOCKADDR,  // a sockaddr the call read, of the next argument's length
  SOCKADDR_OUT,  // a sockaddr the call wrote; the next argument points at its length
  LEN_PTR,   // [N]: a socklen_t the call wrote
  DOMAIN,    // AF_INET ...
  SOCK_TYPE,  // SOCK_STREAM|SOCK_CLOEXEC ...
  PROTOCOL,  // IPPROTO_TCP ... (by the domain in argument 0)
  MSG_FLAGS,  // MSG_* flags
  UTSNAME,   // struct utsname, written by the call
  DIRENTS,   // getdents64's buffer: its address and how many entries the call wrote
  ADVICE,    // POSIX_FADV_*
  FCNTL_CMD,  // F_GETFL ...; F_GETFD and F_GETFL take no third argument
  CLOEXEC,   // 0 or O_CLOEXEC
  SOCKOPT_LEVEL,  // SOL_SOCKET, SOL_TCP ...
  SOCKOPT_NAME,   // SO_REUSEADDR, TCP_NODELAY ... (by the level before it)
  SOCKOPT_VALUE,  // [N] when the length after it is an int's, else the address
  IOV_IN,    // an iovec array the call read, of the next argument's count
  IOV_OUT,   // an iovec array the call filled: its bytes up to the result, at exit
  STATFS,    // struct statfs, written by the call
  IOCTL_REQ,  // an ioctl request by name (ioctl_table.h); its argument after it by request
  SKIP,      // not shown (preadv2's pos_h: strace prints the offset once)
  MSGHDR_IN,   // sendmsg's struct msghdr: its name, iovecs and control messages
  MSGHDR_OUT,  // recvmsg's, at exit: the iovecs up to the result, the name and control it got
  RWF_FLAGS,  // RWF_NOWAIT|...
};

const std::unordered_map<std::string_view, std::vector<ArgKind>>& argShapes() {
  using enum ArgKind;
  static const std::unordered_map<std::string_view, std::vector<ArgKind>> SHAPES = {
      {"read", {FD, OUT_BUF, UINT}}, {"write", {FD, IN_BUF, UINT}},
      {"open", {PATH, OPEN_FLAGS, MODE}}, {"close", {FD}}, {"stat", {PATH, STAT}},
      {"fstat", {FD, STAT}}, {"lstat", {PATH, STAT}}, {"lseek", {FD, INT, WHENCE}},
      {"pread64", {FD, OUT_BUF, UINT, INT}}, {"pwrite64", {FD, IN_BUF, UINT, INT}},
      {"readv", {FD, IOV_OUT, INT}}, {"writev", {FD, IOV_IN, INT}}, {"access", {PATH, ACCESS}},
      {"dup", {FD}}, {"dup2", {FD, FD}}, {"dup3", {FD, FD, CLOEXEC}},
      {"sendfile", {FD, FD, PTR, UINT}}, {"socket", {DOMAIN, SOCK_TYPE, PROTOCOL}},
      {"connect", {FD, SOCKADDR, UINT}}, {"bind", {FD, SOCKADDR, UINT}},
      {"accept", {FD, SOCKADDR_OUT, LEN_PTR}}, {"accept4", {FD, SOCKADDR_OUT, LEN_PTR, SOCK_TYPE}},
      {"sendto", {FD, IN_BUF, UINT, MSG_FLAGS, SOCKADDR, UINT}},
      {"recvfrom", {FD, OUT_BUF, UINT, MSG_FLAGS, SOCKADDR_OUT, LEN_PTR}},
      {"sendmsg", {FD, MSGHDR_IN, MSG_FLAGS}}, {"recvmsg", {FD, MSGHDR_OUT, MSG_FLAGS}},
      {"shutdown", {FD, INT}}, {"listen", {FD, INT}},
      {"getsockname", {FD, SOCKADDR_OUT, LEN_PTR}}, {"getpeername", {FD, SOCKADDR_OUT, LEN_PTR}},
      {"setsockopt", {FD, SOCKOPT_LEVEL, SOCKOPT_NAME, SOCKOPT_VALUE, INT}},
      {"getsockopt", {FD, INT, INT, PTR, PTR}},
      {"socketpair", {DOMAIN, SOCK_TYPE, PROTOCOL, PTR}},
      {"uname", {UTSNAME}}, {"fcntl", {FD, FCNTL_CMD, HEX}}, {"flock", {FD, INT}},
      {"fsync", {FD}}, {"fdatasync", {FD}}, {"truncate", {PATH, INT}},
      {"ftruncate", {FD, INT}}, {"getdents64", {FD, DIRENTS, UINT}},
      {"getcwd", {CWD, UINT}}, {"chdir", {PATH}}, {"fchdir", {FD}},
      {"rename", {PATH, PATH}}, {"mkdir", {PATH, MODE}}, {"rmdir", {PATH}},
      {"creat", {PATH, MODE}}, {"link", {PATH, PATH}}, {"unlink", {PATH}},
      {"symlink", {PATH, PATH}}, {"readlink", {PATH, OUT_BUF, UINT}},
      {"chmod", {PATH, MODE}}, {"fchmod", {FD, MODE}}, {"chown", {PATH, INT, INT}},
      {"fchown", {FD, INT, INT}}, {"lchown", {PATH, INT, INT}}, {"utime", {PATH, PTR}},
      {"mknod", {PATH, MODE, HEX}}, {"statfs", {PATH, STATFS}}, {"fstatfs", {FD, STATFS}},
      {"setxattr", {PATH, STR, IN_BUF, UINT, INT}}, {"lsetxattr", {PATH, STR, IN_BUF, UINT, INT}},
      {"fsetxattr", {FD, STR, IN_BUF, UINT, INT}}, {"getxattr", {PATH, STR, PTR, UINT}},
      {"lgetxattr", {PATH, STR, PTR, UINT}}, {"fgetxattr", {FD, STR, PTR, UINT}},
      {"listxattr", {PATH, PTR, UINT}}, {"llistxattr", {PATH, PTR, UINT}},
      {"flistxattr", {FD, PTR, UINT}}, {"removexattr", {PATH, STR}},
      {"lremovexattr", {PATH, STR}}, {"fremovexattr", {FD, STR}}, {"utimes", {PATH, PTR}},
      {"openat", {DIRFD, PATH, OPEN_FLAGS, MODE}}, {"mkdirat", {DIRFD, PATH, MODE}},
      {"mknodat", {DIRFD, PATH, MODE, HEX}}, {"fchownat", {DIRFD, PATH, INT, INT, AT_FLAGS}},
      {"futimesat", {DIRFD, PATH, PTR}}, {"newfstatat", {DIRFD, PATH, STAT, AT_FLAGS}},
      {"unlinkat", {DIRFD, PATH, UNLINK_FLAGS}}, {"renameat", {DIRFD, PATH, DIRFD, PATH}},
      {"linkat", {DIRFD, PATH, DIRFD, PATH, AT_FLAGS}}, {"symlinkat", {PATH, DIRFD, PATH}},
      {"readlinkat", {DIRFD, PATH, OUT_BUF, UINT}}, {"fchmodat", {DIRFD, PATH, MODE}},
      {"faccessat", {DIRFD, PATH, ACCESS}}, {"faccessat2", {DIRFD, PATH, ACCESS, AT_FLAGS}},
      {"fchmodat2", {DIRFD, PATH, MODE, AT_FLAGS}}, {"utimensat", {DIRFD, PATH, PTR, AT_FLAGS}},
      {"fallocate", {FD, INT, INT, INT}}, {"preadv", {FD, IOV_OUT, INT, INT}},
      {"pwritev", {FD, IOV_IN, INT, INT}}, {"preadv2", {FD, IOV_OUT, INT, INT, SKIP, RWF_FLAGS}},
      {"pwritev2", {FD, IOV_IN, INT, INT, SKIP, RWF_FLAGS}},
      {"renameat2", {DIRFD, PATH, DIRFD, PATH, HEX}},
      {"copy_file_range", {FD, PTR, FD, PTR, UINT, UINT}},
      {"statx", {DIRFD, PATH, STATX_FLAGS, STATX_MASK, STATX}},
      {"close_range", {FD, UINT, HEX}}, {"openat2", {DIRFD, PATH, PTR, UINT}},
      {"fadvise64", {FD, INT, INT, ADVICE}}, {"readahead", {FD, INT, UINT}},
      {"sync_file_range", {FD, INT, INT, UINT}}, {"syncfs", {FD}}, {"ioctl", {FD, IOCTL_REQ}},
      {"sethostname", {STR, UINT}}, {"setdomainname", {STR, UINT}},
      {"unshare", {HEX}}, {"execve", {PATH, PTR, PTR}},
      {"execveat", {DIRFD, PATH, PTR, PTR, AT_FLAGS}}, {"epoll_ctl", {FD, INT, FD, PTR}},
      {"epoll_wait", {FD, PTR, INT, INT}}, {"poll", {PTR, UINT, INT}},
  };
  return SHAPES;
}

const std::vector<ArgKind>* shapeOf(int nr) {
  const SyscallRow* row = findSyscall(nr);
  if (row == nullptr) {
    return nullptr;
  }
  auto it = argShapes().find(row->name);
  return it == argShapes().end() ? nullptr : &it->second;
}

using NameTable = kj::ArrayPtr<const std::pair<uint64_t, const char*>>;

// Bits by name, as strace prints them; unknown bits in hex. `zero` names a value of 0.
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

// One value by name, else in decimal.
kj::String valueName(int64_t value, NameTable names) {
  for (auto& [v, name] : names) {
    if (static_cast<int64_t>(v) == value) {
      return kj::str(name);
    }
  }
  return kj::str(value);
}

kj::String openFlagNames(uint64_t flags) {
  // Composite flags first (O_SYNC includes O_DSYNC, O_TMPFILE includes O_DIRECTORY).
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

kj::String pathText(const TraceeMemory& mem, uint64_t addr) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  kj::String s;
  if (mem.readString(addr, 4096, s) < 0) {
    return addressText(addr);
  }
  return quoteBytes(s.asBytes(), s.size());
}

kj::String stringText(const TraceeMemory& mem, uint64_t addr, size_t limit) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  kj::String s;
  if (mem.readString(addr, limit + 1, s) < 0) {
    return addressText(addr);
  }
  return quoteBytes(s.asBytes(), limit);
}

// `len` bytes at `addr`, of which at most `limit` are read and shown.
kj::String bufferText(const TraceeMemory& mem, uint64_t addr, uint64_t len, size_t limit) {
  size_t shown = static_cast<size_t>(std::min<uint64_t>(len, limit));
  auto bytes = kj::heapArray<kj::byte>(shown);
  if (mem.read(addr, bytes) < 0) {
    return addressText(addr);
  }
  return quoteBytes(bytes, limit, len > limit);
}

template <typename T>
bool readStruct(const TraceeMemory& mem, uint64_t addr, T& out) {
  return addr != 0 && mem.readValue(addr, out) >= 0;
}

kj::String statText(const TraceeMemory& mem, uint64_t addr) {
  struct stat st;
  if (!readStruct(mem, addr, st)) {
    return addressText(addr);
  }
  auto type = st.st_mode & S_IFMT;
  if (type == S_IFCHR || type == S_IFBLK) {
    return kj::str("{st_mode=", modeText(st.st_mode), ", st_rdev=makedev(0x",
                   kj::hex(major(st.st_rdev)), ", 0x", kj::hex(minor(st.st_rdev)), "), ...}");
  }
  return kj::str("{st_mode=", modeText(st.st_mode), ", st_size=", st.st_size, ", ...}");
}

const std::pair<uint64_t, const char*> STATX_MASK_NAMES[] = {
    {0x7ff, "STATX_BASIC_STATS"}, {0x1, "STATX_TYPE"}, {0x2, "STATX_MODE"},
    {0x4, "STATX_NLINK"}, {0x8, "STATX_UID"}, {0x10, "STATX_GID"}, {0x20, "STATX_ATIME"},
    {0x40, "STATX_MTIME"}, {0x80, "STATX_CTIME"}, {0x100, "STATX_INO"}, {0x200, "STATX_SIZE"},
    {0x400, "STATX_BLOCKS"}, {0x800, "STATX_BTIME"}, {0x1000, "STATX_MNT_ID"},
    {0x2000, "STATX_DIOALIGN"}};

kj::String statxText(const TraceeMemory& mem, uint64_t addr) {
  struct statx st;
  if (!readStruct(mem, addr, st)) {
    return addressText(addr);
  }
  kj::String size = kj::str("stx_size=", st.stx_size);
  auto type = st.stx_mode & S_IFMT;
  if (type == S_IFCHR || type == S_IFBLK) {
    size = kj::str("stx_rdev_major=", st.stx_rdev_major, ", stx_rdev_minor=", st.stx_rdev_minor);
  }
  kj::String attributes = st.stx_attributes == 0 ? kj::str("0")
                                                 : kj::str("0x", kj::hex(st.stx_attributes));
  return kj::str("{stx_mask=", bitNames(st.stx_mask, STATX_MASK_NAMES, "0"),
                 ", stx_attributes=", attributes,
                 ", stx_mode=", modeText(st.stx_mode), ", ", size, ", ...}");
}

kj::String sockaddrText(const TraceeMemory& mem, uint64_t addr, uint64_t len) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  struct sockaddr_storage ss = {};
  size_t n = std::min<uint64_t>(len, sizeof(ss));
  if (n < sizeof(sa_family_t) ||
      mem.read(addr, kj::arrayPtr(reinterpret_cast<kj::byte*>(&ss), n)) < 0) {
    return addressText(addr);
  }
  switch (ss.ss_family) {
    case AF_UNIX: {
      auto* un = reinterpret_cast<sockaddr_un*>(&ss);
      size_t pathLen = n - offsetof(sockaddr_un, sun_path);
      if (pathLen == 0) {
        return kj::str("{sa_family=AF_UNIX}");
      }
      if (un->sun_path[0] == 0) {  // abstract: strace's @"name"
        return kj::str("{sa_family=AF_UNIX, sun_path=@",
                       quoteBytes(kj::arrayPtr(reinterpret_cast<kj::byte*>(un->sun_path) + 1,
                                               pathLen - 1), pathLen), "}");
      }
      size_t used = strnlen(un->sun_path, pathLen);
      return kj::str("{sa_family=AF_UNIX, sun_path=",
                     quoteBytes(kj::arrayPtr(reinterpret_cast<kj::byte*>(un->sun_path), used),
                                used), "}");
    }
    case AF_INET: {
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      return kj::str("{sa_family=AF_INET, sin_port=htons(", ntohs(in->sin_port),
                     "), sin_addr=inet_addr(\"", text, "\")}");
    }
    case AF_INET6: {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
      char text[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      return kj::str("{sa_family=AF_INET6, sin6_port=htons(", ntohs(in6->sin6_port),
                     "), sin6_flowinfo=htonl(", ntohl(in6->sin6_flowinfo),
                     "), inet_pton(AF_INET6, \"", text, "\", &sin6_addr), sin6_scope_id=",
                     in6->sin6_scope_id, "}");
    }
    default:
      return kj::str("{sa_family=", ss.ss_family, ", ...}");
  }
}

const std::pair<uint64_t, const char*> DOMAINS[] = {
    {AF_UNIX, "AF_UNIX"}, {AF_INET, "AF_INET"}, {AF_INET6, "AF_INET6"},
    {AF_NETLINK, "AF_NETLINK"}, {AF_PACKET, "AF_PACKET"}, {AF_UNSPEC, "AF_UNSPEC"}};

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

kj::String utsText(const TraceeMemory& mem, uint64_t addr) {
  struct utsname u;
  if (!readStruct(mem, addr, u)) {
    return addressText(addr);
  }
  return kj::str("{sysname=", quoteBytes(kj::StringPtr(u.sysname).asBytes(), 64),
                 ", nodename=", quoteBytes(kj::StringPtr(u.nodename).asBytes(), 64), ", ...}");
}

kj::String direntsText(const TraceeMemory& mem, uint64_t addr, int64_t result) {
  if (result < 0) {
    return addressText(addr);
  }
  auto buf = kj::heapArray<kj::byte>(static_cast<size_t>(result));
  if (mem.read(addr, buf) < 0) {
    return addressText(addr);
  }
  size_t entries = 0;
  for (size_t off = 0; off + 19 <= buf.size(); ++entries) {
    uint16_t reclen;
    memcpy(&reclen, buf.begin() + off + 16, sizeof(reclen));  // linux_dirent64.d_reclen
    if (reclen == 0) {
      break;
    }
    off += reclen;
  }
  return kj::str(addressText(addr), " /* ", entries, " entries */");
}

const std::pair<uint64_t, const char*> SOCKOPT_LEVELS[] = {
    {SOL_SOCKET, "SOL_SOCKET"}, {IPPROTO_TCP, "SOL_TCP"}, {IPPROTO_IP, "SOL_IP"},
    {IPPROTO_IPV6, "SOL_IPV6"}, {IPPROTO_UDP, "SOL_UDP"}};

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

// An iovec array, as strace's tprint_iovec: `[{iov_base="abc", iov_len=3}, ...]`, at most -s
// elements. `dataSize`: bytes of data to show in all (an output array: what the call returned;
// UINT64_MAX for an input one), each element's cut at -s.
kj::String iovecText(const TraceeMemory& mem, uint64_t addr, uint64_t count, uint64_t dataSize,
                     size_t limit) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  if (count > 1024) {  // IOV_MAX: the kernel's EINVAL; strace prints the address
    return addressText(addr);
  }
  struct Iov {
    uint64_t base;
    uint64_t len;
  };
  size_t shown = static_cast<size_t>(std::min<uint64_t>(count, limit));
  auto iov = kj::heapArray<Iov>(shown);
  if (shown > 0 && mem.read(addr, iov.asBytes()) < 0) {
    return addressText(addr);
  }
  kj::Vector<kj::String> parts;
  for (auto& v : iov) {
    uint64_t len = std::min(v.len, dataSize);
    if (dataSize != UINT64_MAX) {
      dataSize -= len;
    }
    parts.add(kj::str("{iov_base=", bufferText(mem, v.base, len, limit), ", iov_len=", v.len,
                      "}"));
  }
  if (count > shown) {
    parts.add(kj::str("..."));
  }
  return kj::str("[", kj::strArray(parts, ", "), "]");
}

kj::String statfsText(const TraceeMemory& mem, uint64_t addr) {
  struct statfs st;
  if (!readStruct(mem, addr, st)) {
    return addressText(addr);
  }
  static const std::pair<uint64_t, const char*> MAGIC[] = {
      {0xef53, "EXT2_SUPER_MAGIC"}, {0x01021994, "TMPFS_MAGIC"}, {0x9fa0, "PROC_SUPER_MAGIC"},
      {0x62656572, "SYSFS_MAGIC"}, {0x794c7630, "OVERLAYFS_SUPER_MAGIC"},
      {0x9123683e, "BTRFS_SUPER_MAGIC"}, {0x58465342, "XFS_SUPER_MAGIC"},
      {0x6969, "NFS_SUPER_MAGIC"}, {0x1cd1, "DEVPTS_SUPER_MAGIC"},
      {0x63677270, "CGROUP2_SUPER_MAGIC"}, {0x27e0eb, "CGROUP_SUPER_MAGIC"},
      {0x65735546, "FUSE_SUPER_MAGIC"}, {0x73717368, "SQUASHFS_MAGIC"},
      {0x858458f6, "RAMFS_MAGIC"}, {0x4d44, "MSDOS_SUPER_MAGIC"},
      {0x9660, "ISOFS_SUPER_MAGIC"}, {0xff534d42, "CIFS_SUPER_MAGIC"},
      {0x5346544e, "NTFS_SB_MAGIC"}, {0x01021997, "V9FS_MAGIC"}, {0x6e736673, "NSFS_MAGIC"},
      {0xcafe4a11, "BPF_FS_MAGIC"}, {0x74726163, "TRACEFS_MAGIC"},
      {0x64626720, "DEBUGFS_MAGIC"}, {0x73636673, "SECURITYFS_MAGIC"},
      {0x42494e4d, "BINFMTFS_MAGIC"}, {0x2011bab0, "EXFAT_SUPER_MAGIC"},
      {0x958458f6, "HUGETLBFS_MAGIC"}, {0xf2f52010, "F2FS_SUPER_MAGIC"},
      {0xca451a4e, "BCACHEFS_SUPER_MAGIC"}, {0x3153464a, "JFS_SUPER_MAGIC"},
      {0x52654973, "REISERFS_SUPER_MAGIC"}, {0x517b, "SMB_SUPER_MAGIC"},
      {0xfe534d42, "SMB2_SUPER_MAGIC"}, {0x50495045, "PIPEFS_MAGIC"},
      {0x534f434b, "SOCKFS_MAGIC"}, {0x6165676c, "PSTOREFS_MAGIC"},
      {0xde5e81e4, "EFIVARFS_MAGIC"}, {0x1badface, "BFS_MAGIC"}, {0x15013346, "UDF_SUPER_MAGIC"},
      {0x2fc12fc1, "ZFS_SUPER_MAGIC"}, {0x7461636f, "OCFS2_SUPER_MAGIC"},
      {0x47504653, "GPFS_SUPER_MAGIC"}, {0x00c36400, "CEPH_SUPER_MAGIC"}};
  static const std::pair<uint64_t, const char*> FLAGS[] = {
      // strace's order (xlat/statfs_flags.in)
      {0x20, "ST_VALID"}, {ST_RDONLY, "ST_RDONLY"}, {ST_NOSUID, "ST_NOSUID"},
      {ST_NODEV, "ST_NODEV"}, {ST_NOEXEC, "ST_NOEXEC"}, {ST_SYNCHRONOUS, "ST_SYNCHRONOUS"},
      {ST_MANDLOCK, "ST_MANDLOCK"}, {ST_NOATIME, "ST_NOATIME"},
      {ST_NODIRATIME, "ST_NODIRATIME"}, {ST_RELATIME, "ST_RELATIME"},
      {0x2000, "ST_NOSYMFOLLOW"}};
  uint64_t type = static_cast<uint64_t>(st.f_type);
  kj::String typeName = kj::str("0x", kj::hex(type));
  for (auto& [magic, name] : MAGIC) {
    if (magic == type) {
      typeName = kj::str(name);
    }
  }
  auto hex = [](int v) {
    return v == 0 ? kj::str("0") : kj::str("0x", kj::hex(static_cast<uint32_t>(v)));
  };
  int fsid[2];
  static_assert(sizeof(fsid) == sizeof(st.f_fsid));
  memcpy(fsid, &st.f_fsid, sizeof(fsid));
  return kj::str("{f_type=", typeName, ", f_bsize=", st.f_bsize, ", f_blocks=", st.f_blocks,
                 ", f_bfree=", st.f_bfree, ", f_bavail=", st.f_bavail, ", f_files=", st.f_files,
                 ", f_ffree=", st.f_ffree, ", f_fsid={val=[", hex(fsid[0]), ", ", hex(fsid[1]),
                 "]}, f_namelen=", st.f_namelen, ", f_frsize=", st.f_frsize,
                 ", f_flags=", bitNames(static_cast<uint64_t>(st.f_flags), FLAGS, "0"), "}");
}

const std::pair<uint64_t, const char*> MSG_FLAG_NAMES[] = {
    {MSG_OOB, "MSG_OOB"}, {MSG_PEEK, "MSG_PEEK"}, {MSG_DONTROUTE, "MSG_DONTROUTE"},
    {MSG_CTRUNC, "MSG_CTRUNC"}, {MSG_TRUNC, "MSG_TRUNC"}, {MSG_DONTWAIT, "MSG_DONTWAIT"},
    {MSG_EOR, "MSG_EOR"}, {MSG_WAITALL, "MSG_WAITALL"}, {MSG_NOSIGNAL, "MSG_NOSIGNAL"},
    {MSG_MORE, "MSG_MORE"}, {MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC"}};

// Control messages as strace prints them: SCM_RIGHTS' fds, SCM_CREDENTIALS' ids; the header
// alone for others.
kj::String cmsgText(const TraceeMemory& mem, uint64_t addr, uint64_t len) {
  auto buf = kj::heapArray<kj::byte>(static_cast<size_t>(std::min<uint64_t>(len, 4096)));
  if (mem.read(addr, buf) < 0) {
    return addressText(addr);
  }
  kj::Vector<kj::String> parts;
  for (size_t off = 0; off + sizeof(struct cmsghdr) <= buf.size();) {
    struct cmsghdr h;
    memcpy(&h, buf.begin() + off, sizeof(h));
    if (h.cmsg_len < sizeof(h) || off + h.cmsg_len > buf.size()) {
      break;
    }
    kj::String level = valueName(h.cmsg_level, SOCKOPT_LEVELS);
    kj::String type = kj::str(h.cmsg_type);
    kj::String data;
    auto payload = buf.slice(off + CMSG_LEN(0), off + h.cmsg_len);
    if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_RIGHTS) {
      type = kj::str("SCM_RIGHTS");
      kj::Vector<kj::String> fds;
      for (size_t i = 0; i + sizeof(int) <= payload.size(); i += sizeof(int)) {
        int fd;
        memcpy(&fd, payload.begin() + i, sizeof(fd));
        fds.add(kj::str(fd));
      }
      data = kj::str(", cmsg_data=[", kj::strArray(fds, ", "), "]");
    } else if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_CREDENTIALS &&
               payload.size() >= sizeof(struct ucred)) {
      type = kj::str("SCM_CREDENTIALS");
      struct ucred cred;
      memcpy(&cred, payload.begin(), sizeof(cred));
      data = kj::str(", cmsg_data={pid=", cred.pid, ", uid=", cred.uid, ", gid=", cred.gid, "}");
    }
    parts.add(kj::str("{cmsg_len=", h.cmsg_len, ", cmsg_level=", level, ", cmsg_type=", type,
                      data, "}"));
    off += CMSG_ALIGN(h.cmsg_len);
  }
  return kj::str("[", kj::strArray(parts, ", "), "]");
}

// struct msghdr as strace prints it. `out`: recvmsg's, at exit (`result` bytes in its iovecs;
// `nameLenIn` is msg_namelen before the call, -1 when unknown).
kj::String msghdrText(const TraceeMemory& mem, uint64_t addr, bool out, int64_t result,
                      int64_t nameLenIn, size_t limit) {
  struct msghdr m;
  if (!readStruct(mem, addr, m) || (out && result < 0)) {
    return addressText(addr);
  }
  uint64_t nameAddr = reinterpret_cast<uint64_t>(m.msg_name);
  kj::String name = nameAddr == 0 || m.msg_namelen == 0 ? addressText(nameAddr)
                                                       : sockaddrText(mem, nameAddr, m.msg_namelen);
  kj::String nameLen = out && nameLenIn >= 0 && nameLenIn != m.msg_namelen
                           ? kj::str(nameLenIn, " => ", m.msg_namelen)
                           : kj::str(m.msg_namelen);
  uint64_t iovAddr = reinterpret_cast<uint64_t>(m.msg_iov);
  kj::String iov = iovecText(mem, iovAddr, m.msg_iovlen,
                             out ? static_cast<uint64_t>(result) : UINT64_MAX, limit);
  uint64_t control = reinterpret_cast<uint64_t>(m.msg_control);
  kj::String controlText = control != 0 && m.msg_controllen > 0
                               ? kj::str("msg_control=", cmsgText(mem, control, m.msg_controllen),
                                         ", ")
                               : kj::str();
  return kj::str("{msg_name=", name, ", msg_namelen=", nameLen, ", msg_iov=", iov,
                 ", msg_iovlen=", m.msg_iovlen, ", ", controlText,
                 "msg_controllen=", m.msg_controllen,
                 ", msg_flags=", bitNames(static_cast<uint32_t>(m.msg_flags), MSG_FLAG_NAMES, "0"),
                 "}");
}

// struct termios as the kernel's TCGETS/TCSETS* copy it (36 bytes), at strace's depth.
struct KernelTermios {
  uint32_t iflag, oflag, cflag, lflag;
  uint8_t line;
  uint8_t cc[19];
};

// A field of termios flags: its multi-bit fields first (`NL0|CR0|...`, by value under their
// mask), then the single bits in strace's order (its xlat/term_*flags.in), the rest in hex.
struct TermiosField {
  uint32_t mask;
  kj::ArrayPtr<const std::pair<uint64_t, const char*>> values;
};

kj::String termiosFlags(uint32_t v, kj::ArrayPtr<const TermiosField> fields, NameTable bits) {
  kj::Vector<kj::String> parts;
  for (auto& f : fields) {
    uint32_t part = v & f.mask;
    bool named = false;
    for (auto& [value, name] : f.values) {
      if (value == part) {
        parts.add(kj::str(name));
        named = true;
        break;
      }
    }
    if (named) {
      v &= ~f.mask;
    }
  }
  if (v != 0 || parts.size() == 0) {
    parts.add(bitNames(v, bits, "0"));
  }
  return kj::strArray(parts, "|");
}

kj::String termiosText(const TraceeMemory& mem, uint64_t addr) {
  KernelTermios t;
  static_assert(sizeof(KernelTermios) == 36);
  if (!readStruct(mem, addr, t)) {
    return addressText(addr);
  }
  static const std::pair<uint64_t, const char*> IFLAG[] = {
      {IGNBRK, "IGNBRK"}, {BRKINT, "BRKINT"}, {IGNPAR, "IGNPAR"}, {PARMRK, "PARMRK"},
      {INPCK, "INPCK"}, {ISTRIP, "ISTRIP"}, {INLCR, "INLCR"}, {IGNCR, "IGNCR"},
      {ICRNL, "ICRNL"}, {IUCLC, "IUCLC"}, {IXON, "IXON"}, {IXANY, "IXANY"}, {IXOFF, "IXOFF"},
      {IMAXBEL, "IMAXBEL"}, {IUTF8, "IUTF8"}};
  static const std::pair<uint64_t, const char*> OFLAG[] = {
      {OPOST, "OPOST"}, {OLCUC, "OLCUC"}, {ONLCR, "ONLCR"}, {OCRNL, "OCRNL"},
      {ONOCR, "ONOCR"}, {ONLRET, "ONLRET"}, {OFILL, "OFILL"}, {OFDEL, "OFDEL"}};
  static const std::pair<uint64_t, const char*> NL[] = {{NL0, "NL0"}, {NL1, "NL1"}};
  static const std::pair<uint64_t, const char*> CR[] = {
      {CR0, "CR0"}, {CR1, "CR1"}, {CR2, "CR2"}, {CR3, "CR3"}};
  static const std::pair<uint64_t, const char*> TAB[] = {
      {TAB0, "TAB0"}, {TAB1, "TAB1"}, {TAB2, "TAB2"}, {TAB3, "TAB3"}};
  static const std::pair<uint64_t, const char*> BS[] = {{BS0, "BS0"}, {BS1, "BS1"}};
  static const std::pair<uint64_t, const char*> VT[] = {{VT0, "VT0"}, {VT1, "VT1"}};
  static const std::pair<uint64_t, const char*> FF[] = {{FF0, "FF0"}, {FF1, "FF1"}};
  static const TermiosField OFIELDS[] = {{NLDLY, NL}, {CRDLY, CR}, {TABDLY, TAB},
                                         {BSDLY, BS}, {VTDLY, VT}, {FFDLY, FF}};
  static const std::pair<uint64_t, const char*> BAUD[] = {
      {B0, "B0"}, {B50, "B50"}, {B75, "B75"}, {B110, "B110"}, {B134, "B134"}, {B150, "B150"},
      {B200, "B200"}, {B300, "B300"}, {B600, "B600"}, {B1200, "B1200"}, {B1800, "B1800"},
      {B2400, "B2400"}, {B4800, "B4800"}, {B9600, "B9600"}, {B19200, "B19200"},
      {B38400, "B38400"}, {B57600, "B57600"}, {B115200, "B115200"}, {B230400, "B230400"},
      {B460800, "B460800"}, {B500000, "B500000"}, {B576000, "B576000"},
      {B921600, "B921600"}, {B1000000, "B1000000"}, {B1152000, "B1152000"},
      {B1500000, "B1500000"}, {B2000000, "B2000000"}, {B2500000, "B2500000"},
      {B3000000, "B3000000"}, {B3500000, "B3500000"}, {B4000000, "B4000000"}};
  static const std::pair<uint64_t, const char*> SIZE[] = {
      {CS5, "CS5"}, {CS6, "CS6"}, {CS7, "CS7"}, {CS8, "CS8"}};
  static const TermiosField CFIELDS[] = {{CBAUD, BAUD}, {CSIZE, SIZE}};
  static const std::pair<uint64_t, const char*> CFLAG[] = {
      {CSTOPB, "CSTOPB"}, {CREAD, "CREAD"}, {PARENB, "PARENB"}, {PARODD, "PARODD"},
      {HUPCL, "HUPCL"}, {CLOCAL, "CLOCAL"}, {CMSPAR, "CMSPAR"}, {CRTSCTS, "CRTSCTS"}};
  static const std::pair<uint64_t, const char*> LFLAG[] = {
      {ISIG, "ISIG"}, {ICANON, "ICANON"}, {XCASE, "XCASE"}, {ECHO, "ECHO"}, {ECHOE, "ECHOE"},
      {ECHOK, "ECHOK"}, {ECHONL, "ECHONL"}, {NOFLSH, "NOFLSH"}, {IEXTEN, "IEXTEN"},
      {ECHOCTL, "ECHOCTL"}, {ECHOPRT, "ECHOPRT"}, {ECHOKE, "ECHOKE"}, {FLUSHO, "FLUSHO"},
      {PENDIN, "PENDIN"}, {TOSTOP, "TOSTOP"}, {EXTPROC, "EXTPROC"}};
  return kj::str("{c_iflag=", termiosFlags(t.iflag, nullptr, IFLAG),
                 ", c_oflag=", termiosFlags(t.oflag, OFIELDS, OFLAG),
                 ", c_cflag=", termiosFlags(t.cflag, CFIELDS, CFLAG),
                 ", c_lflag=", termiosFlags(t.lflag, nullptr, LFLAG), ", ...}");
}

// ioctl(fd, REQUEST, arg): the request by name and its argument as strace decodes it at its
// default depth (an int as [N], struct winsize, struct termios); others as a number. Output
// arguments only when the call succeeded.
kj::String ioctlArgs(uint64_t request64, uint64_t arg, bool ok, const TraceeMemory& mem) {
  uint32_t request = static_cast<uint32_t>(request64);
  kj::String name;
  switch (request) {
    // strace's names for the numbers OSS's sequencer shares with the terminal.
    case 0x5402: name = kj::str("SNDCTL_TMR_START or TCSETS"); break;
    case 0x5403: name = kj::str("SNDCTL_TMR_STOP or TCSETSW"); break;
    case 0x5404: name = kj::str("SNDCTL_TMR_CONTINUE or TCSETSF"); break;
    default: name = ioctlName(request); break;
  }
  auto intArg = [&]() {
    int32_t v;
    return readStruct(mem, arg, v) ? kj::str("[", v, "]") : addressText(arg);
  };
  auto winsize = [&]() {
    uint16_t ws[4];
    return readStruct(mem, arg, ws) ? kj::str("{ws_row=", ws[0], ", ws_col=", ws[1],
                                              ", ws_xpixel=", ws[2], ", ws_ypixel=", ws[3], "}")
                                    : addressText(arg);
  };
  kj::String text;
  switch (request) {
    case 0x5450: case 0x5451:  // FIONCLEX, FIOCLEX: no argument
      return name;
    case 0x541B: case 0x5411: case 0x5415: case 0x5424: case 0x5419:
      // FIONREAD, TIOCOUTQ, TIOCMGET, TIOCGETD, TIOCGSOFTCAR: an int the call wrote
      text = ok ? intArg() : addressText(arg);
      break;
    case 0x5421: case 0x5416: case 0x5417: case 0x5418: case 0x5423: case 0x541A:
    case 0x5452: case 0x5420:
      // FIONBIO, TIOCMBIS/BIC/SET, TIOCSETD, TIOCSSOFTCAR, FIOASYNC, TIOCPKT: an int it read
      text = intArg();
      break;
    case 0x5413: text = ok ? winsize() : addressText(arg); break;  // TIOCGWINSZ
    case 0x5414: text = winsize(); break;                          // TIOCSWINSZ
    case 0x5401: text = ok ? termiosText(mem, arg) : addressText(arg); break;  // TCGETS
    case 0x5402: case 0x5403: case 0x5404: text = termiosText(mem, arg); break;
    default: text = arg == 0 ? kj::str("0") : kj::str("0x", kj::hex(arg)); break;
  }
  return kj::str(name, ", ", text);
}

}  // namespace

kj::String quoteBytes(kj::ArrayPtr<const kj::byte> bytes, size_t limit, bool more) {
  kj::Vector<char> out;
  out.add('"');
  size_t shown = std::min(bytes.size(), limit);
  for (size_t i = 0; i < shown; ++i) {
    unsigned char c = bytes[i];
    const char* esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                    : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\f' ? "\\f"
                    : c == '\v' ? "\\v" : nullptr;
    if (esc != nullptr) {
      out.addAll(kj::StringPtr(esc));
    } else if (c >= 0x20 && c < 0x7f) {
      out.add(static_cast<char>(c));
    } else {
      // Octal, in as few digits as stay unambiguous: three when a digit follows.
      bool digitNext = i + 1 < shown && bytes[i + 1] >= '0' && bytes[i + 1] <= '9';
      auto text = digitNext ? fmt::format("\\{:03o}", c) : fmt::format("\\{:o}", c);
      out.addAll(text.begin(), text.end());
    }
  }
  out.add('"');
  if (more || bytes.size() > limit) {
    out.addAll(kj::StringPtr("..."));
  }
  return kj::heapString(out.begin(), out.size());
}

uint8_t fdArgMask(int nr) {
  uint8_t mask = 0;
  if (auto shape = shapeOf(nr)) {
    for (size_t i = 0; i < shape->size(); ++i) {
      if ((*shape)[i] == ArgKind::FD || (*shape)[i] == ArgKind::DIRFD) {
        mask |= 1u << i;
      }
    }
    return mask;
  }
  if (nr == SYS_mmap) {
    return 1u << 4;
  }
  const SyscallRow* row = findSyscall(nr);
  if (row != nullptr && row->fdArg >= 0) {
    mask |= 1u << row->fdArg;
  }
  if (row != nullptr && row->dirfdArg >= 0) {
    mask |= 1u << row->dirfdArg;
  }
  return mask;
}

uint8_t pathArgMask(int nr) {
  uint8_t mask = 0;
  if (auto shape = shapeOf(nr)) {
    for (size_t i = 0; i < shape->size(); ++i) {
      if ((*shape)[i] == ArgKind::PATH) {
        mask |= 1u << i;
      }
    }
    return mask;
  }
  const SyscallRow* row = findSyscall(nr);
  if (row != nullptr && row->pathArg >= 0) {
    mask |= 1u << row->pathArg;
  }
  return mask;
}

CallEntry readCallEntry(int nr, const uint64_t args[6], const TraceeMemory& mem) {
  CallEntry entry;
  struct msghdr m;
  if (nr == SYS_recvmsg && readStruct(mem, args[1], m)) {
    entry.msgNameLen = m.msg_namelen;
  }
  if (auto shape = shapeOf(nr)) {
    for (size_t i = 0; i < shape->size(); ++i) {
      uint32_t len;
      if ((*shape)[i] == ArgKind::LEN_PTR && readStruct(mem, args[i], len)) {
        entry.addrLen = len;
      }
    }
  }
  return entry;
}

kj::String formatCallArgs(int nr, const uint64_t args[6], int64_t result,
                          const TraceeMemory& mem, const TraceStyle& style,
                          kj::ArrayPtr<const kj::String> fdNotes, const CallEntry& entry) {
  if (nr == SYS_mmap) {
    return mmapArgs(args);
  }
  auto shape = shapeOf(nr);
  std::vector<ArgKind> fallback;
  if (shape == nullptr) {
    // Not decoded yet: fds and paths by the syscall table, the rest as numbers.
    uint8_t fds = fdArgMask(nr), paths = pathArgMask(nr);
    for (int i = 0; i < 6; ++i) {
      fallback.push_back(fds & (1u << i)     ? ArgKind::FD
                         : paths & (1u << i) ? ArgKind::PATH
                                             : ArgKind::HEX);
    }
    shape = &fallback;
  }
  bool ok = result >= 0;
  kj::Vector<kj::String> parts;
  size_t limit = style.stringLimit;
  for (size_t i = 0; i < shape->size(); ++i) {
    uint64_t a = args[i];
    ArgKind kind = (*shape)[i];
    uint64_t next = i + 1 < 6 ? args[i + 1] : 0;
    switch (kind) {
      case ArgKind::INT: parts.add(kj::str(static_cast<int64_t>(a))); break;
      case ArgKind::UINT: parts.add(kj::str(a)); break;
      case ArgKind::HEX: parts.add(numberText(a)); break;
      case ArgKind::PTR: parts.add(addressText(a)); break;
      case ArgKind::FD:
      case ArgKind::DIRFD: {
        int fd = static_cast<int>(a);
        kj::String text =
            kind == ArgKind::DIRFD && fd == AT_FDCWD ? kj::str("AT_FDCWD") : kj::str(fd);
        if (i < fdNotes.size() && fdNotes[i].size() > 0) {
          text = kj::str(text, "<", fdNotes[i], ">");
        }
        parts.add(kj::mv(text));
        break;
      }
      case ArgKind::PATH: parts.add(pathText(mem, a)); break;
      case ArgKind::STR: parts.add(stringText(mem, a, limit)); break;
      case ArgKind::OUT_BUF:
        parts.add(ok ? bufferText(mem, a, static_cast<uint64_t>(result), limit) : addressText(a));
        break;
      case ArgKind::IN_BUF: parts.add(bufferText(mem, a, next, limit)); break;
      case ArgKind::CWD:
        parts.add(ok && result > 0 ? bufferText(mem, a, static_cast<uint64_t>(result - 1), 4096)
                                   : addressText(a));
        break;
      case ArgKind::OPEN_FLAGS:
        parts.add(openFlagNames(a));
        // As strace: the mode only when the flags create something.
        if (!(a & O_CREAT) && (a & O_TMPFILE) != O_TMPFILE) {
          return kj::strArray(parts, ", ");
        }
        break;
      case ArgKind::MODE: parts.add(modeText(a)); break;
      case ArgKind::ACCESS: {
        static const std::pair<uint64_t, const char*> BITS[] = {
            {R_OK, "R_OK"}, {W_OK, "W_OK"}, {X_OK, "X_OK"}};
        parts.add(bitNames(a, BITS, "F_OK"));
        break;
      }
      case ArgKind::AT_FLAGS:
      case ArgKind::UNLINK_FLAGS:
      case ArgKind::STATX_FLAGS: {
        static const std::pair<uint64_t, const char*> AT[] = {
            {AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"}, {AT_SYMLINK_FOLLOW, "AT_SYMLINK_FOLLOW"},
            {AT_NO_AUTOMOUNT, "AT_NO_AUTOMOUNT"}, {AT_EMPTY_PATH, "AT_EMPTY_PATH"},
            {AT_EACCESS, kind == ArgKind::UNLINK_FLAGS ? "AT_REMOVEDIR" : "AT_EACCESS"}};
        if (kind == ArgKind::STATX_FLAGS) {
          static const std::pair<uint64_t, const char*> SYNC[] = {
              {AT_STATX_SYNC_AS_STAT, "AT_STATX_SYNC_AS_STAT"},
              {AT_STATX_FORCE_SYNC, "AT_STATX_FORCE_SYNC"},
              {AT_STATX_DONT_SYNC, "AT_STATX_DONT_SYNC"}};
          kj::String sync = valueName(static_cast<int64_t>(a & AT_STATX_SYNC_TYPE), SYNC);
          uint64_t rest = a & ~uint64_t(AT_STATX_SYNC_TYPE);
          parts.add(rest ? kj::str(sync, "|", bitNames(rest, AT, "0")) : kj::mv(sync));
        } else {
          parts.add(bitNames(a, AT, "0"));
        }
        break;
      }
      case ArgKind::STATX_MASK: parts.add(bitNames(a, STATX_MASK_NAMES, "0")); break;
      case ArgKind::STAT: parts.add(ok ? statText(mem, a) : addressText(a)); break;
      case ArgKind::STATX: parts.add(ok ? statxText(mem, a) : addressText(a)); break;
      case ArgKind::WHENCE: {
        static const std::pair<uint64_t, const char*> W[] = {
            {SEEK_SET, "SEEK_SET"}, {SEEK_CUR, "SEEK_CUR"}, {SEEK_END, "SEEK_END"},
            {SEEK_DATA, "SEEK_DATA"}, {SEEK_HOLE, "SEEK_HOLE"}};
        parts.add(valueName(static_cast<int64_t>(a), W));
        break;
      }
      case ArgKind::SOCKADDR: parts.add(sockaddrText(mem, a, next)); break;
      case ArgKind::SOCKADDR_OUT: {
        uint32_t len = 0;
        parts.add(ok && readStruct(mem, next, len) ? sockaddrText(mem, a, len) : addressText(a));
        break;
      }
      case ArgKind::LEN_PTR: {
        uint32_t len = 0;
        if (!readStruct(mem, a, len)) {
          parts.add(addressText(a));
        } else if (ok && entry.addrLen >= 0 && entry.addrLen != len) {
          parts.add(kj::str("[", entry.addrLen, " => ", len, "]"));  // the kernel changed it
        } else {
          parts.add(kj::str("[", len, "]"));
        }
        break;
      }
      case ArgKind::DOMAIN: parts.add(valueName(static_cast<int64_t>(a), DOMAINS)); break;
      case ArgKind::SOCK_TYPE: parts.add(sockTypeText(a)); break;
      case ArgKind::PROTOCOL: {
        static const std::pair<uint64_t, const char*> IP[] = {
            {IPPROTO_IP, "IPPROTO_IP"}, {IPPROTO_TCP, "IPPROTO_TCP"}, {IPPROTO_UDP, "IPPROTO_UDP"},
            {IPPROTO_ICMP, "IPPROTO_ICMP"}};
        bool ip = args[0] == AF_INET || args[0] == AF_INET6;
        parts.add(ip ? valueName(static_cast<int64_t>(a), IP) : kj::str(a));
        break;
      }
      case ArgKind::MSG_FLAGS: parts.add(bitNames(a, MSG_FLAG_NAMES, "0")); break;
      case ArgKind::MSGHDR_IN: parts.add(msghdrText(mem, a, false, result, -1, limit)); break;
      case ArgKind::MSGHDR_OUT:
        parts.add(msghdrText(mem, a, true, result, entry.msgNameLen, limit));
        break;
      case ArgKind::UTSNAME: parts.add(ok ? utsText(mem, a) : addressText(a)); break;
      case ArgKind::DIRENTS: parts.add(direntsText(mem, a, result)); break;
      case ArgKind::ADVICE: {
        static const std::pair<uint64_t, const char*> ADV[] = {
            {0, "POSIX_FADV_NORMAL"}, {1, "POSIX_FADV_RANDOM"}, {2, "POSIX_FADV_SEQUENTIAL"},
            {3, "POSIX_FADV_WILLNEED"}, {4, "POSIX_FADV_DONTNEED"}, {5, "POSIX_FADV_NOREUSE"}};
        parts.add(valueName(static_cast<int64_t>(a), ADV));
        break;
      }
      case ArgKind::FCNTL_CMD: {
        static const std::pair<uint64_t, const char*> CMDS[] = {
            {F_DUPFD, "F_DUPFD"}, {F_GETFD, "F_GETFD"}, {F_SETFD, "F_SETFD"},
            {F_GETFL, "F_GETFL"}, {F_SETFL, "F_SETFL"}, {F_GETLK, "F_GETLK"},
            {F_SETLK, "F_SETLK"}, {F_SETLKW, "F_SETLKW"}, {F_DUPFD_CLOEXEC, "F_DUPFD_CLOEXEC"},
            {F_OFD_GETLK, "F_OFD_GETLK"}, {F_OFD_SETLK, "F_OFD_SETLK"},
            {F_OFD_SETLKW, "F_OFD_SETLKW"}, {F_GETPIPE_SZ, "F_GETPIPE_SZ"}};
        parts.add(valueName(static_cast<int64_t>(a), CMDS));
        if (a == F_GETFD || a == F_GETFL) {
          return kj::strArray(parts, ", ");
        }
        if (a == F_SETFD) {
          parts.add(kj::str(next == FD_CLOEXEC ? "FD_CLOEXEC" : kj::str(next).cStr()));
          return kj::strArray(parts, ", ");
        }
        break;
      }
      case ArgKind::CLOEXEC:
        parts.add(a == O_CLOEXEC ? kj::str("O_CLOEXEC") : numberText(a));
        break;
      case ArgKind::SOCKOPT_LEVEL:
        parts.add(valueName(static_cast<int64_t>(a), SOCKOPT_LEVELS));
        break;
      case ArgKind::SOCKOPT_NAME: parts.add(sockoptText(args[i - 1], a)); break;
      case ArgKind::IOV_IN: parts.add(iovecText(mem, a, next, UINT64_MAX, limit)); break;
      case ArgKind::IOV_OUT:
        parts.add(ok ? iovecText(mem, a, next, static_cast<uint64_t>(result), limit)
                     : addressText(a));
        break;
      case ArgKind::STATFS: parts.add(ok ? statfsText(mem, a) : addressText(a)); break;
      case ArgKind::SKIP: break;
      case ArgKind::RWF_FLAGS: {
        static const std::pair<uint64_t, const char*> RWF[] = {
            {0x1, "RWF_HIPRI"}, {0x2, "RWF_DSYNC"}, {0x4, "RWF_SYNC"}, {0x8, "RWF_NOWAIT"},
            {0x10, "RWF_APPEND"}};
        parts.add(bitNames(a, RWF, "0"));
        break;
      }
      case ArgKind::IOCTL_REQ:
        parts.add(ioctlArgs(a, next, ok, mem));
        return kj::strArray(parts, ", ");
      case ArgKind::SOCKOPT_VALUE: {
        int32_t v;
        parts.add(next == sizeof(v) && readStruct(mem, a, v) ? kj::str("[", v, "]")
                                                            : addressText(a));
        break;
      }
    }
  }
  return kj::strArray(parts, ", ");
}

kj::String formatCallResult(int nr, int64_t result) {
  if (nr == SYS_mmap && result >= 0) {
    return kj::str("0x", kj::hex(static_cast<uint64_t>(result)));  // an address, as strace
  }
  return formatSysResult(result);
}

}  // namespace sb
