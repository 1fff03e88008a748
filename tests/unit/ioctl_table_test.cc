#include <doctest.h>

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "ioctl_table.h"

using sb::IoctlKind;
using sb::planIoctl;

TEST_SUITE("ioctl_table") {
  TEST_CASE("classic terminal requests come from the table, with the kernel's sizes") {
    auto get = planIoctl(TCGETS);
    CHECK(get.kind == IoctlKind::POINTER);
    CHECK(get.in == 0);
    CHECK(get.out == 36);  // the kernel's struct termios, not glibc's
    auto set = planIoctl(TCSETSW);
    CHECK(set.in == 36);
    CHECK(set.out == 0);
    CHECK(planIoctl(TIOCGWINSZ).out == sizeof(struct winsize));
    CHECK(planIoctl(TIOCSWINSZ).in == sizeof(struct winsize));
    CHECK(planIoctl(FIONREAD).out == sizeof(int));
    CHECK(planIoctl(TCFLSH).kind == IoctlKind::VALUE);
    CHECK(planIoctl(FIOCLEX).kind == IoctlKind::LOCAL);
  }

  TEST_CASE("requests about this machine's processes or fds are refused") {
    for (uint64_t r : {uint64_t(TIOCSCTTY), uint64_t(TIOCGPGRP), uint64_t(TIOCSPGRP),
                       uint64_t(0x5441) /* TIOCGPTPEER */}) {
      CAPTURE(r);
      auto p = planIoctl(r);
      CHECK(p.kind == IoctlKind::REFUSE);
      CHECK(p.err == ENOTTY);
    }
    CHECK(planIoctl(FICLONE).kind == IoctlKind::REFUSE);
    CHECK(planIoctl(FICLONE).err == EOPNOTSUPP);
  }

  TEST_CASE("the terminal and block families are marshalled from their _IOC encoding") {
    auto ptn = planIoctl(TIOCGPTN);  // _IOR('T', 0x30, unsigned int)
    CHECK(ptn.kind == IoctlKind::POINTER);
    CHECK(ptn.out == 4);
    CHECK(ptn.in == 0);
    auto lock = planIoctl(TIOCSPTLCK);  // _IOW('T', 0x31, int)
    CHECK(lock.in == 4);
    CHECK(lock.out == 0);
    CHECK(planIoctl(BLKGETSIZE64).out == 8);
    // Encoded as size_t, but the kernel copies an int: the table wins.
    CHECK(planIoctl(BLKBSZGET).out == 4);
  }

  TEST_CASE("anything else is not guessed") {
    CHECK(planIoctl(0xC0406619 /* FS_IOC_FIEMAP: trailing array */).kind == IoctlKind::UNKNOWN);
    CHECK(planIoctl(0x80086601 /* FS_IOC_GETFLAGS: really an int */).kind == IoctlKind::UNKNOWN);
    CHECK(planIoctl(0xAE00 /* KVM_GET_API_VERSION */).kind == IoctlKind::UNKNOWN);
    CHECK(planIoctl(0x1288 /* an _IO block request the table does not know */).kind ==
          IoctlKind::UNKNOWN);
    CHECK(sb::ioctlName(TCGETS) == "TCGETS");
    CHECK(sb::ioctlName(0xAE00) == "0xae00");
  }

  TEST_CASE("the request is the kernel's unsigned int: high bits are ignored") {
    CHECK(planIoctl(0xFFFFFFFF00005401ull).kind == IoctlKind::POINTER);
  }
}
