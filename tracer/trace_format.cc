// strace's text for one syscall; see trace_format.h. One table says what each argument of each
// decoded syscall is (ARG_SHAPES); one function a kind of argument.

#include "trace_format.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/vector.h>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "errno_names.h"
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
};

const std::unordered_map<std::string_view, std::vector<ArgKind>>& argShapes() {
  using enum ArgKind;
  static const std::unordered_map<std::string_view, std::vector<ArgKind>> SHAPES = {
      {"read", {FD, OUT_BUF, UINT}}, {"write", {FD, IN_BUF, UINT}},
      {"open", {PATH, OPEN_FLAGS, MODE}}, {"close", {FD}}, {"stat", {PATH, STAT}},
      {"fstat", {FD, STAT}}, {"lstat", {PATH, STAT}}, {"lseek", {FD, INT, WHENCE}},
      {"pread64", {FD, OUT_BUF, UINT, INT}}, {"pwrite64", {FD, IN_BUF, UINT, INT}},
      {"readv", {FD, PTR, INT}}, {"writev", {FD, PTR, INT}}, {"access", {PATH, ACCESS}},
      {"dup", {FD}}, {"dup2", {FD, FD}}, {"dup3", {FD, FD, CLOEXEC}},
      {"sendfile", {FD, FD, PTR, UINT}}, {"socket", {DOMAIN, SOCK_TYPE, PROTOCOL}},
      {"connect", {FD, SOCKADDR, UINT}}, {"bind", {FD, SOCKADDR, UINT}},
      {"accept", {FD, SOCKADDR_OUT, LEN_PTR}}, {"accept4", {FD, SOCKADDR_OUT, LEN_PTR, SOCK_TYPE}},
      {"sendto", {FD, IN_BUF, UINT, MSG_FLAGS, SOCKADDR, UINT}},
      {"recvfrom", {FD, OUT_BUF, UINT, MSG_FLAGS, SOCKADDR_OUT, LEN_PTR}},
      {"sendmsg", {FD, PTR, MSG_FLAGS}}, {"recvmsg", {FD, PTR, MSG_FLAGS}},
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
      {"mknod", {PATH, MODE, HEX}}, {"statfs", {PATH, PTR}}, {"fstatfs", {FD, PTR}},
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
      {"fallocate", {FD, INT, INT, INT}}, {"preadv", {FD, PTR, INT, INT}},
      {"pwritev", {FD, PTR, INT, INT}}, {"preadv2", {FD, PTR, INT, INT, INT, HEX}},
      {"pwritev2", {FD, PTR, INT, INT, INT, HEX}},
      {"renameat2", {DIRFD, PATH, DIRFD, PATH, HEX}},
      {"copy_file_range", {FD, PTR, FD, PTR, UINT, UINT}},
      {"statx", {DIRFD, PATH, STATX_FLAGS, STATX_MASK, STATX}},
      {"close_range", {FD, UINT, HEX}}, {"openat2", {DIRFD, PATH, PTR, UINT}},
      {"fadvise64", {FD, INT, INT, ADVICE}}, {"readahead", {FD, INT, UINT}},
      {"sync_file_range", {FD, INT, INT, UINT}}, {"syncfs", {FD}}, {"ioctl", {FD, HEX, HEX}},
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

kj::String formatCallArgs(int nr, const uint64_t args[6], int64_t result,
                          const TraceeMemory& mem, const TraceStyle& style,
                          kj::ArrayPtr<const kj::String> fdNotes) {
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
        parts.add(readStruct(mem, a, len) ? kj::str("[", len, "]") : addressText(a));
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
      case ArgKind::MSG_FLAGS: {
        static const std::pair<uint64_t, const char*> M[] = {
            {MSG_OOB, "MSG_OOB"}, {MSG_PEEK, "MSG_PEEK"}, {MSG_DONTROUTE, "MSG_DONTROUTE"},
            {MSG_CTRUNC, "MSG_CTRUNC"}, {MSG_TRUNC, "MSG_TRUNC"}, {MSG_DONTWAIT, "MSG_DONTWAIT"},
            {MSG_EOR, "MSG_EOR"}, {MSG_WAITALL, "MSG_WAITALL"}, {MSG_NOSIGNAL, "MSG_NOSIGNAL"},
            {MSG_MORE, "MSG_MORE"}, {MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC"}};
        parts.add(bitNames(a, M, "0"));
        break;
      }
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
