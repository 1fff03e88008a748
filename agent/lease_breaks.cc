#include "lease_breaks.h"

#include <fcntl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

namespace sb {

void LeaseBreaks::block() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal());
  KJ_SYSCALL(pthread_sigmask(SIG_BLOCK, &set, nullptr));
}

LeaseBreaks::LeaseBreaks(kj::UnixEventPort& port, const Log& log)
    : log(log), errors(log), calls(errors) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal());
  int fd;
  KJ_SYSCALL(fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  signalFd = kj::AutoCloseFd(fd);
  observer = kj::heap<kj::UnixEventPort::FdObserver>(port, fd,
                                                     kj::UnixEventPort::FdObserver::OBSERVE_READ);
  reading = readBreaks().eagerlyEvaluate([this](kj::Exception&& e) {
    this->log.warn("lease breaks are no longer read ({}): leases B grants wait out its "
                   "lease-break-time",
                   e.getDescription().cStr());
  });
}

LeaseBreaks::~LeaseBreaks() noexcept(false) {}

int64_t LeaseBreaks::prepare(int fd) {
  return fcntl(fd, F_SETSIG, signal()) < 0 ? -int64_t(errno) : 0;
}

int64_t LeaseBreaks::hold(int fd, proto::LeaseHolder::Client holder) {
  // F_SETLEASE made the whole agent process the owner (fs/locks.c lease_setup): the signal is
  // blocked in every thread, so it would wait for our signalfd anyway, but a thread that
  // unblocked it (a library's) must not take it.
  struct f_owner_ex owner = {F_OWNER_TID, static_cast<pid_t>(syscall(SYS_gettid))};
  if (fcntl(fd, F_SETOWN_EX, &owner) < 0) {
    return -int64_t(errno);
  }
  holders.insert_or_assign(fd, kj::mv(holder));
  return 0;
}

void LeaseBreaks::drop(int fd) { holders.erase(fd); }

kj::Promise<void> LeaseBreaks::readBreaks() {
  return observer->whenBecomesReadable().then([this]() {
    // Realtime signals queue: read every one there is.
    for (;;) {
      struct signalfd_siginfo info;
      ssize_t n = read(signalFd.get(), &info, sizeof(info));
      if (n < 0) {
        if (errno == EAGAIN) {
          break;
        }
        KJ_FAIL_SYSCALL("read(signalfd for lease breaks)", errno);
      }
      KJ_ASSERT(n == sizeof(info));
      // POLL_MSG is a lease break; anything else (an O_ASYNC readiness signal of a description
      // that also had a lease) is not ours to pass on.
      if (info.ssi_code == POLL_MSG) {
        broken(static_cast<int>(info.ssi_fd), static_cast<uint32_t>(info.ssi_band));
      }
    }
    return readBreaks();
  });
}

void LeaseBreaks::broken(int fd, uint32_t band) {
  auto it = holders.find(fd);
  if (it == holders.end()) {
    // Dropped meanwhile (given back, or its node closed): the break has nobody to wait for.
    log.info("a lease break on fd {} nobody holds now", fd);
    return;
  }
  auto req = it->second.brokenRequest();
  req.setBand(band);
  calls.add(req.send().ignoreResult());
}

void LeaseBreaks::ErrorLogger::taskFailed(kj::Exception&& e) {
  // The client went away (its session's nodes close, and the lease with them) or refused.
  log.info("a lease break could not be passed on: {}", e.getDescription().cStr());
}

}  // namespace sb
