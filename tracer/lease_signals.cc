#include "lease_signals.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "ptrace.h"

namespace sb {

int64_t setSignal(FileSignals& s, uint64_t arg) {
  // valid_signal(): 0 (back to plain SIGIO) up to _NSIG.
  if (arg > 64) {
    return -EINVAL;
  }
  s.sig = static_cast<int>(arg);
  return 0;
}

int64_t setOwner(FileSignals& s, int64_t who, bool (*exists)(pid_t)) {
  // f_setown(): the argument is an int; negative names a process group.
  int w = static_cast<int>(who);
  if (w == INT_MIN) {
    return -EINVAL;
  }
  if (w != 0 && !exists(w)) {
    return -ESRCH;
  }
  s.ownerType = w < 0 ? F_OWNER_PGRP : F_OWNER_PID;
  s.owner = w < 0 ? -w : w;
  return 0;
}

int64_t getOwner(const FileSignals& s) {
  return s.ownerType == F_OWNER_PGRP ? -int64_t(s.owner) : s.owner;
}

int64_t setOwnerEx(FileSignals& s, int type, pid_t pid, bool (*exists)(pid_t)) {
  if (type != F_OWNER_TID && type != F_OWNER_PID && type != F_OWNER_PGRP) {
    return -EINVAL;
  }
  if (pid != 0 && !exists(type == F_OWNER_PGRP ? -pid : pid)) {
    return -ESRCH;
  }
  s.ownerType = type;
  s.owner = pid;
  return 0;
}

void LeaseTaken::grant() {
  if (granted) {
    return;
  }
  granted = true;
  file->ownerType = F_OWNER_PID;
  file->owner = tgid;
  file->leaseFd = fd;
}

namespace {

class LeaseHolderImpl final: public proto::LeaseHolder::Server {
 public:
  LeaseHolderImpl(LeaseSignals& signals, kj::Own<LeaseTaken> taken)
      : signals(signals), taken(kj::mv(taken)) {}

  kj::Promise<void> broken(BrokenContext context) override {
    // A description the program has closed since: the agent closed it too, and with it the
    // lease; this break crossed the close on the way.
    if (taken->file->open) {
      taken->grant();  // a break means B granted it, whatever came first here
      signals.raise(*taken->file, context.getParams().getBand());
    }
    return kj::READY_NOW;
  }

 private:
  LeaseSignals& signals;
  kj::Own<LeaseTaken> taken;
};

}  // namespace

proto::LeaseHolder::Client LeaseSignals::holderFor(kj::Own<LeaseTaken> taken) {
  return kj::heap<LeaseHolderImpl>(*this, kj::mv(taken));
}

siginfo_t LeaseSignals::kernelInfo(const FileSignals& s, uint32_t band) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (s.sig == 0) {
    info.si_signo = SIGIO;
    info.si_code = SI_KERNEL;  // SEND_SIG_PRIV: no fd, no band
  } else {
    info.si_signo = s.sig;
    info.si_code = POLL_MSG;
    info.si_band = band;
    info.si_fd = s.leaseFd;
  }
  return info;
}

void LeaseSignals::raise(const FileSignals& s, uint32_t band) {
  if (s.owner == 0) {
    return;  // F_SETOWN 0 after the lease: the kernel signals nobody either.
  }
  siginfo_t want = kernelInfo(s, band);
  int sig = want.si_signo;
  if (s.ownerType == F_OWNER_PGRP) {
    // No call queues a siginfo to a group: its members get the plain signal.
    kill(-s.owner, sig);
    return;
  }
  while (pending.size() >= MAX_PENDING) {
    pending.erase(pending.begin());
  }
  int cookie = ++nextCookie;
  siginfo_t queued;
  memset(&queued, 0, sizeof(queued));
  queued.si_signo = sig;
  queued.si_code = SI_QUEUE;
  queued.si_pid = getpid();
  queued.si_uid = getuid();
  queued.si_value.sival_int = cookie;
  long r;
  if (s.ownerType == F_OWNER_TID) {
    pid_t tgid = tgidOf(s.owner);
    r = tgid > 0 ? syscall(SYS_rt_tgsigqueueinfo, tgid, s.owner, sig, &queued)
                 : syscall(SYS_rt_sigqueueinfo, s.owner, sig, &queued);
  } else {
    r = syscall(SYS_rt_sigqueueinfo, s.owner, sig, &queued);
  }
  // The owner may be gone (ESRCH): the kernel's send_sigio finds nobody then and sends nothing.
  if (r == 0) {
    pending.emplace(cookie, want);
  }
}

void LeaseSignals::rewrite(pid_t tid, int sig) {
  if (pending.empty()) {
    return;
  }
  siginfo_t info;
  if (!ptrace::signalInfo(tid, info) || info.si_code != SI_QUEUE || info.si_pid != getpid() ||
      info.si_signo != sig) {
    return;
  }
  auto it = pending.find(info.si_value.sival_int);
  if (it == pending.end()) {
    return;
  }
  ptrace::setSignalInfo(tid, it->second);
  pending.erase(it);
}

}  // namespace sb
