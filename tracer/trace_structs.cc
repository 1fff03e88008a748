// See trace_structs.h. Layouts are the x86-64 tracee's, as this build's headers give them: the
// tracer traces x86-64 programs (tracee_abi.h).

#include "trace_structs.h"

#include <arpa/inet.h>
#include <linux/ioctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <termios.h>

#include <kj/vector.h>

#include "ioctl_table.h"
#include "trace_format.h"

namespace sb {

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

kj::String bufferText(const TraceeMemory& mem, uint64_t addr, uint64_t len, size_t limit) {
  size_t shown = static_cast<size_t>(std::min<uint64_t>(len, limit));
  auto bytes = kj::heapArray<kj::byte>(shown);
  if (mem.read(addr, bytes) < 0) {
    return addressText(addr);
  }
  return quoteBytes(bytes, limit, len > limit);
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
  return kj::str("{stx_mask=", bitNames(st.stx_mask, statxMaskNames(), "0"),
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

namespace {

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
    kj::String level = valueName(h.cmsg_level, sockoptLevelNames());
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

}  // namespace

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
                 ", msg_flags=", bitNames(static_cast<uint32_t>(m.msg_flags), msgFlagNames(), "0"),
                 "}");
}

kj::String loffText(int64_t value) {
  return kj::str("[", value, "]");
}

kj::String timespecText(int64_t sec, int64_t nsec) {
  return kj::str("{tv_sec=", sec, ", tv_nsec=", nsec, "}");
}

kj::String mmsghdrText(const TraceeMemory& mem, uint64_t addr, uint64_t count, uint64_t withLen,
                       bool out, kj::ArrayPtr<const int64_t> nameLensIn, size_t limit) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  if (count == 0) {
    return kj::str("[]");
  }
  kj::Vector<kj::String> parts;
  uint64_t shown = std::min<uint64_t>(count, limit);
  for (uint64_t i = 0; i < shown; ++i) {
    uint64_t at = addr + i * sizeof(struct mmsghdr);
    struct mmsghdr m;
    if (!readStruct(mem, at, m)) {
      if (i == 0) {
        return addressText(addr);
      }
      parts.add(kj::str("... /* ", addressText(at), " */"));
      return kj::str("[", kj::strArray(parts, ", "), "]");
    }
    int64_t nameLen = i < nameLensIn.size() ? nameLensIn[i] : -1;
    kj::String hdr = msghdrText(mem, at + offsetof(struct mmsghdr, msg_hdr), out, m.msg_len,
                                nameLen, limit);
    parts.add(i < withLen ? kj::str("{msg_hdr=", hdr, ", msg_len=", m.msg_len, "}")
                          : kj::str("{msg_hdr=", hdr, "}"));
  }
  if (count > shown) {
    parts.add(kj::str("..."));
  }
  return kj::str("[", kj::strArray(parts, ", "), "]");
}

namespace {

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

// A request by name when sbrun knows it, else as strace prints an unknown one:
// `_IOC(_IOC_READ|_IOC_WRITE, 0x54, 0x99, 0x4)`.
kj::String ioctlCodeText(uint32_t request) {
  if (const char* known = planIoctl(request).name) {
    return kj::str(known);
  }
  static const std::pair<uint64_t, const char*> DIRS[] = {{_IOC_READ, "_IOC_READ"},
                                                          {_IOC_WRITE, "_IOC_WRITE"}};
  auto hex = [](uint32_t v) { return v == 0 ? kj::str("0") : kj::str("0x", kj::hex(v)); };
  return kj::str("_IOC(", bitNames(_IOC_DIR(request), DIRS, "_IOC_NONE"), ", ",
                 hex(_IOC_TYPE(request)), ", ", hex(_IOC_NR(request)), ", ",
                 hex(_IOC_SIZE(request)), ")");
}

}  // namespace

kj::String ioctlArgs(uint64_t request64, uint64_t arg, bool ok, const TraceeMemory& mem) {
  uint32_t request = static_cast<uint32_t>(request64);
  kj::String name;
  switch (request) {
    // strace's names for the numbers OSS's sequencer shares with the terminal.
    case 0x5402: name = kj::str("SNDCTL_TMR_START or TCSETS"); break;
    case 0x5403: name = kj::str("SNDCTL_TMR_STOP or TCSETSW"); break;
    case 0x5404: name = kj::str("SNDCTL_TMR_CONTINUE or TCSETSF"); break;
    default: name = ioctlCodeText(request); break;
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

}  // namespace sb
