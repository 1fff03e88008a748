// strace's text for one syscall; see trace_format.h. One table says what each argument of each
// decoded syscall is (argShapes); a kind of argument prints through trace_names.h (values) or
// trace_structs.h (tracee memory).

#include "trace_format.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/vector.h>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "errno_names.h"
#include "syscall_table.h"
#include "trace_names.h"
#include "trace_structs.h"

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
  LOFF,      // a loff_t the call reads (splice, copy_file_range): [N] as it was at entry
  LOFF_INOUT,  // sendfile's offset: [N => M] when the call moved it
  SPLICE_FLAGS,  // SPLICE_F_MOVE|...
  MMSGHDR_IN,   // sendmmsg's struct mmsghdr array, of the next argument's count
  MMSGHDR_OUT,  // recvmmsg's, at exit: as many elements as the call filled
  TIMESPEC,  // a struct timespec the call reads, as it was at entry
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
      {"sendfile", {FD, FD, LOFF_INOUT, UINT}}, {"socket", {DOMAIN, SOCK_TYPE, PROTOCOL}},
      {"connect", {FD, SOCKADDR, UINT}}, {"bind", {FD, SOCKADDR, UINT}},
      {"accept", {FD, SOCKADDR_OUT, LEN_PTR}}, {"accept4", {FD, SOCKADDR_OUT, LEN_PTR, SOCK_TYPE}},
      {"sendto", {FD, IN_BUF, UINT, MSG_FLAGS, SOCKADDR, UINT}},
      {"recvfrom", {FD, OUT_BUF, UINT, MSG_FLAGS, SOCKADDR_OUT, LEN_PTR}},
      {"sendmsg", {FD, MSGHDR_IN, MSG_FLAGS}}, {"recvmsg", {FD, MSGHDR_OUT, MSG_FLAGS}},
      {"sendmmsg", {FD, MMSGHDR_IN, UINT, MSG_FLAGS}},
      {"recvmmsg", {FD, MMSGHDR_OUT, UINT, MSG_FLAGS, TIMESPEC}},
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
      {"copy_file_range", {FD, LOFF, FD, LOFF, UINT, UINT}},
      {"splice", {FD, LOFF, FD, LOFF, UINT, SPLICE_FLAGS}}, {"tee", {FD, FD, UINT, SPLICE_FLAGS}},
      {"vmsplice", {FD, IOV_IN, UINT, SPLICE_FLAGS}},
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
  auto shape = shapeOf(nr);
  if (shape == nullptr) {
    return entry;
  }
  for (size_t i = 0; i < shape->size(); ++i) {
    switch ((*shape)[i]) {
      case ArgKind::LEN_PTR: {
        uint32_t len;
        if (readStruct(mem, args[i], len)) {
          entry.addrLen = len;
        }
        break;
      }
      case ArgKind::LOFF:
      case ArgKind::LOFF_INOUT:
        if (readStruct(mem, args[i], entry.loff[i])) {
          entry.loffRead |= 1u << i;
        }
        break;
      case ArgKind::TIMESPEC: {
        struct timespec ts;
        if (readStruct(mem, args[i], ts)) {
          entry.timeout = {ts.tv_sec, ts.tv_nsec};
          entry.timeoutRead = true;
        }
        break;
      }
      case ArgKind::MMSGHDR_OUT: {
        // Each element's msg_namelen, which the call overwrites: the array in one read, no more
        // than IOV_MAX elements (as strace).
        auto vec = kj::heapArray<struct mmsghdr>(std::min<uint64_t>(args[i + 1], 1024));
        if (args[i] != 0 && vec.size() > 0 && mem.read(args[i], vec.asBytes()) >= 0) {
          for (auto& m : vec) {
            entry.mmsgNameLens.push_back(m.msg_hdr.msg_namelen);
          }
        }
        break;
      }
      default:
        break;
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
      case ArgKind::STATX_MASK: parts.add(bitNames(a, statxMaskNames(), "0")); break;
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
      case ArgKind::DOMAIN: parts.add(valueName(static_cast<int64_t>(a), domainNames())); break;
      case ArgKind::SOCK_TYPE: parts.add(sockTypeText(a)); break;
      case ArgKind::PROTOCOL: {
        static const std::pair<uint64_t, const char*> IP[] = {
            {IPPROTO_IP, "IPPROTO_IP"}, {IPPROTO_TCP, "IPPROTO_TCP"}, {IPPROTO_UDP, "IPPROTO_UDP"},
            {IPPROTO_ICMP, "IPPROTO_ICMP"}};
        bool ip = args[0] == AF_INET || args[0] == AF_INET6;
        parts.add(ip ? valueName(static_cast<int64_t>(a), IP) : kj::str(a));
        break;
      }
      case ArgKind::MSG_FLAGS: parts.add(bitNames(a, msgFlagNames(), "0")); break;
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
        parts.add(valueName(static_cast<int64_t>(a), sockoptLevelNames()));
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
      case ArgKind::LOFF:
        parts.add(a == 0                          ? kj::str("NULL")
                  : entry.loffRead & (1u << i) ? loffText(entry.loff[i])
                                                : addressText(a));
        break;
      case ArgKind::LOFF_INOUT: {
        int64_t now;
        if (a == 0 || !(entry.loffRead & (1u << i))) {
          parts.add(addressText(a));
        } else if (ok && result > 0 && readStruct(mem, a, now)) {
          parts.add(kj::str("[", entry.loff[i], "] => [", now, "]"));  // strace 6.1's form
        } else {
          parts.add(loffText(entry.loff[i]));
        }
        break;
      }
      case ArgKind::SPLICE_FLAGS: parts.add(bitNames(a, spliceFlagNames(), "0")); break;
      case ArgKind::MMSGHDR_IN:
        parts.add(mmsghdrText(mem, a, next, ok ? static_cast<uint64_t>(result) : 0, false, {},
                              limit));
        break;
      case ArgKind::MMSGHDR_OUT:
        parts.add(ok ? mmsghdrText(mem, a, static_cast<uint64_t>(result),
                                   static_cast<uint64_t>(result), true,
                                   kj::arrayPtr(entry.mmsgNameLens.data(),
                                                entry.mmsgNameLens.size()),
                                   limit)
                     : addressText(a));
        break;
      case ArgKind::TIMESPEC:
        parts.add(a == 0              ? kj::str("NULL")
                  : entry.timeoutRead ? timespecText(entry.timeout[0], entry.timeout[1])
                                      : addressText(a));
        break;
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
  if (nr == SYS_recvmmsg && result == 0) {
    return kj::str("0 (Timeout)");
  }
  return formatSysResult(result);
}

kj::String formatResultNote(int nr, const uint64_t args[6], int64_t result,
                            const TraceeMemory& mem) {
  struct timespec left;
  if (nr == SYS_recvmmsg && result > 0 && readStruct(mem, args[4], left)) {
    return kj::str(" (left ", timespecText(left.tv_sec, left.tv_nsec), ")");
  }
  return kj::str();
}

}  // namespace sb
