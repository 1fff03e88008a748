#include <doctest.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "lease_signals.h"

namespace {

bool leaseTestNobody(pid_t) { return false; }
bool leaseTestAnybody(pid_t) { return true; }

}  // namespace

TEST_SUITE("lease signals") {
  TEST_CASE("F_SETSIG takes 0 up to _NSIG, as valid_signal() does") {
    sb::FileSignals s;
    CHECK(sb::setSignal(s, 64) == 0);
    CHECK(s.sig == 64);
    CHECK(sb::setSignal(s, 65) == -EINVAL);
    CHECK(sb::setSignal(s, ~0ULL) == -EINVAL);
    CHECK(s.sig == 64);
    CHECK(sb::setSignal(s, 0) == 0);
  }

  TEST_CASE("F_SETOWN: a pid, a process group negated, ESRCH for nobody, INT_MIN refused") {
    sb::FileSignals s;
    CHECK(sb::getOwner(s) == 0);
    CHECK(sb::setOwner(s, 1234, leaseTestAnybody) == 0);
    CHECK(s.ownerType == F_OWNER_PID);
    CHECK(sb::getOwner(s) == 1234);
    CHECK(sb::setOwner(s, -77, leaseTestAnybody) == 0);
    CHECK(s.ownerType == F_OWNER_PGRP);
    CHECK(s.owner == 77);
    CHECK(sb::getOwner(s) == -77);
    CHECK(sb::setOwner(s, 99, leaseTestNobody) == -ESRCH);
    CHECK(sb::getOwner(s) == -77);
    CHECK(sb::setOwner(s, INT_MIN, leaseTestAnybody) == -EINVAL);
    // Zero needs nobody to exist: nobody is signalled.
    CHECK(sb::setOwner(s, 0, leaseTestNobody) == 0);
    CHECK(sb::getOwner(s) == 0);
  }

  TEST_CASE("F_SETOWN_EX: the three types, EINVAL for others, ESRCH for nobody") {
    sb::FileSignals s;
    CHECK(sb::setOwnerEx(s, F_OWNER_TID, 55, leaseTestAnybody) == 0);
    CHECK(s.ownerType == F_OWNER_TID);
    CHECK(sb::getOwner(s) == 55);
    CHECK(sb::setOwnerEx(s, 7, 55, leaseTestAnybody) == -EINVAL);
    CHECK(sb::setOwnerEx(s, F_OWNER_PGRP, 56, leaseTestNobody) == -ESRCH);
    CHECK(sb::setOwnerEx(s, F_OWNER_PGRP, 56, leaseTestAnybody) == 0);
    CHECK(sb::getOwner(s) == -56);
  }

  TEST_CASE("a break's siginfo: plain SIGIO without F_SETSIG, else POLL_MSG with si_fd and si_band") {
    sb::FileSignals s;
    s.leaseFd = 5;
    siginfo_t plain = sb::LeaseSignals::kernelInfo(s, POLLIN | POLLMSG);
    CHECK(plain.si_signo == SIGIO);
    CHECK(plain.si_code == SI_KERNEL);
    s.sig = SIGRTMIN + 2;
    siginfo_t rt = sb::LeaseSignals::kernelInfo(s, POLLIN | POLLMSG);
    CHECK(rt.si_signo == SIGRTMIN + 2);
    CHECK(rt.si_code == POLL_MSG);
    CHECK(rt.si_fd == 5);
    CHECK(rt.si_band == (POLLIN | POLLMSG));
  }

  TEST_CASE("a break is queued to the owner, marked as sbrun's; none without an owner") {
    int sig = SIGRTMIN + 5;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigset_t old;
    REQUIRE(pthread_sigmask(SIG_BLOCK, &set, &old) == 0);
    sb::LeaseSignals signals([](pid_t) -> pid_t { return 0; });
    sb::FileSignals s;
    s.sig = sig;
    s.leaseFd = 3;
    signals.raise(s, POLLMSG);  // owner 0: nothing
    struct timespec none = {0, 0};
    siginfo_t info;
    CHECK(sigtimedwait(&set, &info, &none) == -1);
    s.ownerType = F_OWNER_PID;
    s.owner = getpid();
    signals.raise(s, POLLMSG);
    struct timespec wait = {5, 0};
    REQUIRE(sigtimedwait(&set, &info, &wait) == sig);
    // Not stopped under ptrace here, so nothing rewrote it: the queued form.
    CHECK(info.si_code == SI_QUEUE);
    CHECK(info.si_pid == getpid());
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
}
