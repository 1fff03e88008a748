// The files a trapped call touches; see call_paths.h.

#include "call_paths.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <kj/common.h>
#include <string>

#include "agent_link.h"
#include "fd_table.h"
#include "task.h"
#include "trace_format.h"

namespace sb {

namespace {

// The file of a local fd of thread `tid`, as /proc shows it, or "".
kj::String localFdPath(pid_t tid, int fd) {
  char link[64];
  snprintf(link, sizeof(link), "/proc/%d/fd/%d", tid, fd);
  char target[4096];
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  return n > 0 ? kj::heapString(target, static_cast<size_t>(n)) : kj::str();
}

// strace's name of a remote socket's protocol ("TCP", "UDPv6", "UNIX-STREAM").
kj::String remoteProtoName(const SocketInfo& s) {
  using F = proto::SockFamily;
  using T = proto::SockType;
  bool stream = s.type == T::STREAM, dgram = s.type == T::DGRAM;
  switch (s.family) {
    case F::INET: return kj::str(stream ? "TCP" : dgram ? "UDP" : "RAW");
    case F::INET6: return kj::str(stream ? "TCPv6" : dgram ? "UDPv6" : "RAWv6");
    case F::UNIX:
      return kj::str(stream ? "UNIX-STREAM" : dgram ? "UNIX-DGRAM" : "UNIX-SEQPACKET");
    case F::NETLINK: return kj::str("NETLINK");
  }
  return kj::str("SOCKET");
}

// "TCP:[10.0.0.1:40000->10.0.0.2:80]", as far as bind, connect and accept told (call.h).
kj::String remoteSocketNote(const SocketInfo& s) {
  return kj::str(remoteProtoName(s), ":[", s.localEnd.c_str(), s.peerEnd.empty() ? "" : "->",
                 s.peerEnd.c_str(), "]");
}

// An address of /proc/net/tcp*: "0100007F:1F90" (the kernel's words in hex, the port in host
// order) as strace prints it: "127.0.0.1:8080", "[::1]:8080". Sets `zero` for 0.0.0.0:0 / [::]:0.
std::string procNetEndpoint(const char* field, bool& zero) {
  const char* colon = strchr(field, ':');
  if (colon == nullptr) {
    return std::string();
  }
  std::string hex(field, colon - field);
  unsigned port = static_cast<unsigned>(strtoul(colon + 1, nullptr, 16));
  char text[INET6_ADDRSTRLEN] = "";
  zero = port == 0;
  if (hex.size() == 8) {
    struct in_addr in = {static_cast<in_addr_t>(strtoul(hex.c_str(), nullptr, 16))};
    zero = zero && in.s_addr == 0;
    inet_ntop(AF_INET, &in, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(port);
  }
  if (hex.size() == 32) {
    struct in6_addr in6;
    for (int i = 0; i < 4; ++i) {
      in6.s6_addr32[i] = static_cast<uint32_t>(strtoul(hex.substr(i * 8, 8).c_str(), nullptr, 16));
      zero = zero && in6.s6_addr32[i] == 0;
    }
    inet_ntop(AF_INET6, &in6, text, sizeof(text));
    return std::string("[") + text + "]:" + std::to_string(port);
  }
  return std::string();
}

// -yy's note on a local fd: a socket's endpoints, a device's numbers, else its path.
kj::String localDetailNote(pid_t tid, int fd, kj::String path) {
  char link[64];
  snprintf(link, sizeof(link), "/proc/%d/fd/%d", tid, fd);
  unsigned long long inode;
  if (sscanf(path.cStr(), "socket:[%llu]", &inode) == 1) {
    char proto[64];
    ssize_t n = getxattr(link, "system.sockprotoname", proto, sizeof(proto) - 1);
    if (n <= 0) {
      return path;
    }
    proto[n] = 0;
    char net[64];
    snprintf(net, sizeof(net), "/proc/%d/net", tid);
    return localSocketNote(net, kj::StringPtr(proto, strnlen(proto, n)), inode);
  }
  struct stat st;
  if (stat(link, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
    return kj::str(path, "<", S_ISCHR(st.st_mode) ? "char " : "block ", major(st.st_rdev), ":",
                   minor(st.st_rdev), ">");
  }
  return path;
}

}  // namespace

kj::String localSocketNote(kj::StringPtr procNet, kj::StringPtr proto, uint64_t inode) {
  kj::StringPtr table = proto == "TCP" ? "tcp" : proto == "TCPv6" ? "tcp6" : proto == "UDP" ? "udp"
                      : proto == "UDPv6" ? "udp6" : proto.startsWith("UNIX") ? "unix" : "";
  auto fallback = [&]() { return kj::str(proto, ":[", inode, "]"); };
  if (table.size() == 0) {
    return fallback();
  }
  auto file = kj::str(procNet, "/", table);
  FILE* f = fopen(file.cStr(), "re");
  if (f == nullptr) {
    return fallback();
  }
  KJ_DEFER(fclose(f));
  char line[1024];
  bool unixTable = table == "unix";
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (unixTable) {
      // Num RefCount Protocol Flags Type St Inode Path
      unsigned long long ino = 0;
      int pathAt = -1;
      if (sscanf(line, "%*s %*s %*s %*s %*s %*s %llu %n", &ino, &pathAt) < 1 || ino != inode) {
        continue;
      }
      std::string name = pathAt > 0 ? std::string(line + pathAt) : std::string();
      while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) {
        name.pop_back();
      }
      return name.empty() ? fallback()
                          : kj::str(proto, ":[", inode, ",\"", name.c_str(), "\"]");
    }
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    char local[64], remote[64];
    unsigned long long ino = 0;
    if (sscanf(line, "%*s %63s %63s %*s %*s %*s %*s %*s %*s %llu", local, remote, &ino) != 3 ||
        ino != inode) {
      continue;
    }
    bool zeroLocal = false, zeroPeer = false;
    std::string src = procNetEndpoint(local, zeroLocal);
    std::string dst = procNetEndpoint(remote, zeroPeer);
    return zeroPeer ? kj::str(proto, ":[", src.c_str(), "]")
                    : kj::str(proto, ":[", src.c_str(), "->", dst.c_str(), "]");
  }
  return fallback();
}

kj::String fdNote(const Call& call, int fd, int level) {
  if (fd < 0) {
    return kj::str();
  }
  KJ_IF_MAYBE(file, call.task.fds->find(fd)) {
    if (level >= 2) {
      KJ_IF_MAYBE(s, file->socket) {
        return kj::str(file->target.name(), ":", remoteSocketNote(*s));
      }
      if (!file->device.empty()) {
        return kj::str(file->target.name(), ":", file->path, "<", file->device.c_str(), ">");
      }
    }
    return kj::str(file->target.name(), ":", file->path);
  }
  auto path = localFdPath(call.task.tid, fd);
  return level >= 2 && path.size() > 0 ? localDetailNote(call.task.tid, fd, kj::mv(path))
                                        : kj::mv(path);
}

kj::Vector<kj::String> callPaths(const Call& call) {
  kj::Vector<kj::String> paths;
  uint8_t pathArgs = pathArgMask(call.nr), fdArgs = fdArgMask(call.nr);
  auto mem = call.mem();
  for (int i = 0; i < 6; ++i) {
    if (pathArgs & (1u << i)) {
      kj::String path;
      if (call.arg(i) != 0 && mem.readPath(call.arg(i), path) >= 0) {
        paths.add(kj::mv(path));
      }
    } else if (fdArgs & (1u << i)) {
      int fd = call.fdArg(i);
      if (fd == AT_FDCWD) {
        continue;
      }
      KJ_IF_MAYBE(file, call.task.fds->find(fd)) {
        paths.add(kj::str(file->path));
      } else {
        auto path = localFdPath(call.task.tid, fd);
        if (path.size() > 0) {
          paths.add(kj::mv(path));
        }
      }
    }
  }
  return paths;
}

bool touchesAny(const Call& call, kj::ArrayPtr<const kj::String> wanted) {
  for (auto& path : callPaths(call)) {
    for (auto& w : wanted) {
      if (path == w) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace sb
