#include <doctest.h>

#include <signal.h>
#include <unistd.h>

#include "proc_status.h"

TEST_SUITE("proc_status") {
  TEST_CASE("the fields sbrun asks for, from a real kernel's text") {
    const char* text =
        "Name:\tcat\nUmask:\t0027\nState:\tR (running)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\n"
        "PPid:\t17\nTracerPid:\t99\nFDSize:\t256\nSigQ:\t0/63\nSigPnd:\t0000000000000000\n"
        "ShdPnd:\t0000000000000100\nSigBlk:\t0000000000010000\nSigIgn:\t0000000000001000\n"
        "SigCgt:\t0000000000000002\n";
    auto s = sb::ProcStatus::parse(text);
    CHECK(s.tgid == 4242);
    CHECK(s.ppid == 17);
    CHECK(s.tracerPid == 99);
    CHECK(s.umask == 027);
    CHECK(s.fdSize == 256);
    CHECK(s.shdPnd == 0x100);  // SIGKILL's bit (9)
    CHECK(s.ignores(SIGPIPE));  // SigIgn bit 13
    CHECK(s.ignores(SIGCHLD));  // ignored by default, not caught
    CHECK_FALSE(s.ignores(SIGINT));  // caught (SigCgt bit 2)
    CHECK_FALSE(s.ignores(SIGKILL));
    CHECK(s.signalWaiting(0));
    CHECK_FALSE(s.signalWaiting(0x100));
  }

  TEST_CASE("credentials: four ids each, the groups, the capability sets") {
    auto s = sb::ProcStatus::parse(
        "Uid:\t0\t65534\t1\t2\nGid:\t3\t4\t5\t6\nGroups:\t4 24 27 \nCapInh:\t0000000000000000\n"
        "CapPrm:\t000001ffffffffff\nCapEff:\t0000000000000080\n");
    CHECK(s.uid[0] == 0);
    CHECK(s.uid[1] == 65534);
    CHECK(s.uid[3] == 2);
    CHECK(s.gid[0] == 3);
    CHECK(s.gid[3] == 6);
    CHECK(s.groups == std::vector<uint32_t>{4, 24, 27});
    CHECK(s.capPrm == 0x1ffffffffffull);
    CHECK(s.capEff == 0x80);
    CHECK(sb::ProcStatus::parse("Groups:\t\n").groups.empty());
  }

  TEST_CASE("a field's name must start its line (NSpgid is not Pid)") {
    auto s = sb::ProcStatus::parse("NSpgid:\t5\nTgid:\t7\n");
    CHECK(s.tgid == 7);
    CHECK(s.umask == 022);
  }

  TEST_CASE("this process, read from /proc") {
    auto s = sb::ProcStatus::read(getpid());
    CHECK(s.found);
    CHECK(s.tgid == getpid());
    CHECK(s.ppid == getppid());
    CHECK_FALSE(sb::ProcStatus::read(-1).found);
  }
}
