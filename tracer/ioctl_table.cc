#include "ioctl_table.h"

#include <errno.h>

namespace sb {

namespace {

struct Row {
  uint32_t request;
  const char* name;
  IoctlKind kind;
  uint16_t in;
  uint16_t out;
  int err;
};

constexpr auto V = IoctlKind::VALUE;
constexpr auto P = IoctlKind::POINTER;
constexpr auto L = IoctlKind::LOCAL;
constexpr auto R = IoctlKind::REFUSE;

// Sizes are the kernel's (struct termios as the kernel sees it is 36 bytes, not glibc's 60).
constexpr Row ROWS[] = {
    {0x5401, "TCGETS", P, 0, 36, 0},
    {0x5402, "TCSETS", P, 36, 0, 0},
    {0x5403, "TCSETSW", P, 36, 0, 0},
    {0x5404, "TCSETSF", P, 36, 0, 0},
    {0x5405, "TCGETA", P, 0, 18, 0},
    {0x5406, "TCSETA", P, 18, 0, 0},
    {0x5407, "TCSETAW", P, 18, 0, 0},
    {0x5408, "TCSETAF", P, 18, 0, 0},
    {0x5409, "TCSBRK", V, 0, 0, 0},
    {0x540A, "TCXONC", V, 0, 0, 0},
    {0x540B, "TCFLSH", V, 0, 0, 0},
    {0x540C, "TIOCEXCL", V, 0, 0, 0},
    {0x540D, "TIOCNXCL", V, 0, 0, 0},
    // Process groups, sessions and controlling terminals are this machine's processes.
    {0x540E, "TIOCSCTTY", R, 0, 0, ENOTTY},
    {0x540F, "TIOCGPGRP", R, 0, 0, ENOTTY},
    {0x5410, "TIOCSPGRP", R, 0, 0, ENOTTY},
    {0x5411, "TIOCOUTQ", P, 0, 4, 0},
    {0x5412, "TIOCSTI", P, 1, 0, 0},
    {0x5413, "TIOCGWINSZ", P, 0, 8, 0},
    {0x5414, "TIOCSWINSZ", P, 8, 0, 0},
    {0x5415, "TIOCMGET", P, 0, 4, 0},
    {0x5416, "TIOCMBIS", P, 4, 0, 0},
    {0x5417, "TIOCMBIC", P, 4, 0, 0},
    {0x5418, "TIOCMSET", P, 4, 0, 0},
    {0x5419, "TIOCGSOFTCAR", P, 0, 4, 0},
    {0x541A, "TIOCSSOFTCAR", P, 4, 0, 0},
    {0x541B, "FIONREAD", P, 0, 4, 0},
    {0x541D, "TIOCCONS", R, 0, 0, ENOTTY},
    {0x541E, "TIOCGSERIAL", P, 0, 72, 0},
    {0x541F, "TIOCSSERIAL", P, 72, 0, 0},
    {0x5420, "TIOCPKT", P, 4, 0, 0},
    {0x5421, "FIONBIO", P, 4, 0, 0},
    {0x5422, "TIOCNOTTY", R, 0, 0, ENOTTY},
    {0x5423, "TIOCSETD", P, 4, 0, 0},
    {0x5424, "TIOCGETD", P, 0, 4, 0},
    {0x5425, "TCSBRKP", V, 0, 0, 0},
    {0x5427, "TIOCSBRK", V, 0, 0, 0},
    {0x5428, "TIOCCBRK", V, 0, 0, 0},
    {0x5429, "TIOCGSID", R, 0, 0, ENOTTY},
    {0x542E, "TIOCGRS485", P, 0, 32, 0},
    {0x542F, "TIOCSRS485", P, 32, 32, 0},
    {0x5441, "TIOCGPTPEER", R, 0, 0, ENOTTY},  // answers an fd: not across machines
    {0x5450, "FIONCLEX", L, 0, 0, 0},
    {0x5451, "FIOCLEX", L, 0, 0, 0},
    {0x5452, "FIOASYNC", R, 0, 0, ENOTTY},     // SIGIO would go to a process on the agent
    {0x5459, "TIOCSERGETLSR", P, 0, 4, 0},
    {0x545C, "TIOCMIWAIT", V, 0, 0, 0},
    {0x545D, "TIOCGICOUNT", P, 0, 80, 0},
    {0x5460, "FIOQSIZE", P, 0, 8, 0},
    // Block devices: _IO numbers that take pointers, and _IOR/_IOW ones whose encoded size_t
    // is not what the kernel copies (it copies an int).
    {0x125D, "BLKROSET", P, 4, 0, 0},
    {0x125E, "BLKROGET", P, 0, 4, 0},
    {0x125F, "BLKRRPART", V, 0, 0, 0},
    {0x1260, "BLKGETSIZE", P, 0, 8, 0},
    {0x1261, "BLKFLSBUF", V, 0, 0, 0},
    {0x1262, "BLKRASET", V, 0, 0, 0},
    {0x1263, "BLKRAGET", P, 0, 8, 0},
    {0x1268, "BLKSSZGET", P, 0, 4, 0},
    {0x80081270, "BLKBSZGET", P, 0, 4, 0},
    {0x40081271, "BLKBSZSET", P, 4, 0, 0},
    {0x1277, "BLKDISCARD", P, 16, 0, 0},
    {0x1278, "BLKIOMIN", P, 0, 4, 0},
    {0x1279, "BLKIOOPT", P, 0, 4, 0},
    {0x127A, "BLKALIGNOFF", P, 0, 4, 0},
    {0x127B, "BLKPBSZGET", P, 0, 4, 0},
    {0x127C, "BLKDISCARDZEROES", P, 0, 4, 0},
    {0x127D, "BLKSECDISCARD", P, 16, 0, 0},
    {0x127E, "BLKROTATIONAL", P, 0, 2, 0},
    {0x127F, "BLKZEROOUT", P, 16, 0, 0},
    // Reflinks name a second fd: between machines there is nothing to share; cp falls back.
    {0x40049409, "FICLONE", R, 0, 0, EOPNOTSUPP},
    {0x4020940D, "FICLONERANGE", R, 0, 0, EOPNOTSUPP},
    {0xC0189436, "FIDEDUPERANGE", R, 0, 0, EOPNOTSUPP},
};

// _IOC layout: nr 8 bits, type 8, size 14, dir 2 (1 = write to the kernel, 2 = read from it).
constexpr uint32_t iocDir(uint32_t r) { return (r >> 30) & 3; }
constexpr uint32_t iocType(uint32_t r) { return (r >> 8) & 0xff; }
constexpr uint32_t iocSize(uint32_t r) { return (r >> 16) & 0x3fff; }

// Families whose _IOR/_IOW/_IOWR payloads are plain data of the encoded size.
bool plainFamily(uint32_t type) { return type == 'T' || type == 0x12; }

}  // namespace

IoctlPlan planIoctl(uint64_t request64) {
  // The kernel takes the request as an unsigned int.
  uint32_t request = static_cast<uint32_t>(request64);
  for (auto& row : ROWS) {
    if (row.request == request) {
      return IoctlPlan{row.kind, row.in, row.out, row.err, row.name};
    }
  }
  uint32_t dir = iocDir(request), size = iocSize(request);
  if (dir != 0 && size > 0 && plainFamily(iocType(request))) {
    return IoctlPlan{IoctlKind::POINTER, (dir & 1) ? size : 0, (dir & 2) ? size : 0, 0, nullptr};
  }
  return IoctlPlan{IoctlKind::UNKNOWN};
}

kj::String ioctlName(uint64_t request) {
  auto plan = planIoctl(request);
  if (plan.name != nullptr) {
    return kj::str(plan.name);
  }
  return kj::str("0x", kj::hex(static_cast<uint32_t>(request)));
}

}  // namespace sb
