// Handlers that wait for readiness: poll, ppoll, select, pselect6, and epoll_ctl / epoll_wait /
// epoll_pwait / epoll_pwait2 (docs/architecture.md, "Waiting on local and remote fds").
//
// With no remote fd involved the call runs locally, untouched. Otherwise the arguments are read
// as the kernel reads them (same errnos, same order of checks), the fds go into a WaitSet
// (local ones as sbrun's pidfd_getfd copies, remote ones watched by their agent), and the
// answer is written back in the kernel's layout: revents, fd_sets, epoll_events, and the time
// left for select, pselect6 and ppoll (fs/select.c poll_select_finish).
//
// Signals: the wait is interruptible (the thread parks; ppoll, pselect6 and epoll_pwait park in
// rt_sigsuspend under their temporary mask). An interrupted call answers -ERESTARTNOHAND, as
// these calls do in the kernel: a handler makes it EINTR whatever SA_RESTART says; a signal
// without handler (ignored, or a stop) restarts it, with the time left (poll's and epoll_wait's
// timeout register is lowered to it, select's timeval and the timespecs were written back).

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kj/debug.h>

#include "epoll_set.h"
#include "handler_support.h"
#include "proc_status.h"
#include "wait_set.h"

namespace sb::handler {

namespace {

// Longer than this is forever (the kernel saturates its end time too).
constexpr int64_t MAX_TIMEOUT_NS = int64_t(1) << 62;

// An fd the program waits on that lives on a target (the control fd is sbrun's own).
RemoteFile* remoteOf(Call& c, int fd) {
  KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
    return f->control ? nullptr : f;
  }
  return nullptr;
}

struct Timeout {
  bool infinite = true;
  int64_t ns = 0;
  bool zero() const { return !infinite && ns == 0; }
};

kj::Maybe<kj::TimePoint> deadlineOf(Call& c, Timeout t) {
  if (t.infinite) {
    return nullptr;
  }
  return c.tracer.timer().now() + kj::min(t.ns, MAX_TIMEOUT_NS) * kj::NANOSECONDS;
}

// poll's and epoll_wait's int timeout in milliseconds (negative: none).
Timeout fromMs(int ms) {
  return ms < 0 ? Timeout{} : Timeout{false, int64_t(ms) * 1000000};
}

// A restarted poll or epoll_wait must wait only for what is left (the kernel keeps the end
// time in its restart block): the milliseconds left, rounded up.
uint64_t msLeft(int64_t ns) { return static_cast<uint64_t>((ns + 999999) / 1000000); }

// The soft RLIMIT_NOFILE of the tracee: poll and ppoll refuse more fds (EINVAL).
uint64_t nofileLimit(pid_t pid) {
  struct rlimit lim;
  if (prlimit(pid, RLIMIT_NOFILE, nullptr, &lim) != 0) {
    return UINT64_MAX;
  }
  return lim.rlim_cur;
}

// The temporary signal mask of ppoll, pselect6 and epoll_pwait*: read as set_user_sigmask()
// does (EINVAL for a size other than 8, EFAULT). Parking then waits under it.
int64_t takeMask(Call& c, uint64_t addr, uint64_t size, bool& pending) {
  pending = false;
  if (addr == 0) {
    return 0;
  }
  if (size != abi::SIGSET_SIZE) {
    return -EINVAL;
  }
  uint64_t mask;
  if (c.mem().readValue(addr, mask) < 0) {
    return -EFAULT;
  }
  c.parkMask = addr;
  // pselect's and ppoll's purpose: a signal their mask lets through ends the call at once.
  pending = ProcStatus::read(c.task.tid).signalWaiting(mask);
  return 0;
}

// Waits as the call says: a look for a zero timeout; with a signal already waiting under the
// temporary mask, a look, and if nothing is ready the thread parks so the signal ends the call;
// otherwise an interruptible wait until the deadline.
kj::Promise<size_t> waitFor(Call& c, WaitSet& set, kj::Maybe<kj::TimePoint> deadline,
                            bool zero, bool signalPending) {
  if (signalPending) {
    c.interruptible = true;
    return set.look().then([&c](size_t n) -> kj::Promise<size_t> {
      if (n > 0) {
        return n;
      }
      c.tracer.parkCall(c.task);
      return kj::Promise<size_t>(kj::NEVER_DONE);
    });
  }
  if (zero) {
    return set.look();
  }
  c.interruptible = true;
  return set.wait(deadline);
}

// The program's local fd `fd` as a WaitSet item: sbrun's copy, or POLLNVAL when it is not open
// (`closed` set). For select an O_PATH fd is no item at all (`closed` set too, but it is open:
// the caller checks). -errno when sbrun cannot copy it (then the wait cannot be done faithfully).
int64_t addLocalFd(Call& c, WaitSet& set, FdCopier& copier, int fd, uint16_t events,
                   size_t& index, bool& closed, bool forSelect = false) {
  kj::AutoCloseFd copy;
  int64_t r = copier.copy(fd, copy);
  closed = r == -EBADF;
  if (closed) {
    index = set.addFixed(abi::K_POLLNVAL);
    return 0;
  }
  if (r < 0) {
    c.tracer.noteOnce("pidfd_getfd",
                      kj::str("cannot copy the program's fd ", fd, " to wait on it with its "
                              "remote fds (pidfd_getfd: ", strerror(-r), ")"));
    return r;
  }
  // An O_PATH fd has no poll method: poll says POLLNVAL, select never finds it ready.
  int flags = fcntl(copy.get(), F_GETFL);
  if (flags >= 0 && (flags & O_PATH)) {
    closed = forSelect;
    if (!forSelect) {
      index = set.addFixed(abi::K_POLLNVAL);
    }
    return 0;
  }
  index = set.addLocal(kj::mv(copy), events);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// poll, ppoll

kj::Promise<Outcome> pollFamily(Call& c, bool isPpoll) {
  uint64_t fdsAddr = c.arg(0);
  uint64_t nfds = static_cast<uint32_t>(c.arg(1));  // unsigned int
  Timeout timeout;
  uint64_t tsAddr = 0;
  bool pending = false;
  if (isPpoll) {
    tsAddr = c.arg(2);
    if (tsAddr != 0) {
      abi::KernelTimespec ts;
      if (c.mem().readValue(tsAddr, ts) < 0) {
        return done(-EFAULT);
      }
      timeout.infinite = false;
      if (!abi::timespecToNs(ts, timeout.ns)) {
        return done(-EINVAL);
      }
    }
  } else {
    timeout = fromMs(static_cast<int>(c.arg(2)));
  }
  if (nfds > nofileLimit(c.task.tgid)) {
    return done(-EINVAL);
  }
  auto pfds = kj::heapArray<abi::PollFd>(nfds);
  if (nfds > 0 && c.mem().read(fdsAddr, pfds.asBytes()) < 0) {
    return done(-EFAULT);
  }
  bool anyRemote = false;
  for (auto& p : pfds) {
    anyRemote = anyRemote || (p.fd >= 0 && remoteOf(c, p.fd) != nullptr);
  }
  if (!anyRemote) {
    return local();
  }
  if (isPpoll) {
    int64_t r = takeMask(c, c.arg(3), c.arg(4), pending);
    if (r < 0) {
      return done(r);
    }
  }

  auto set = kj::refcounted<WaitSet>(c);
  FdCopier copier(c.task.tid, c.task.tgid);
  auto index = kj::heapArray<int64_t>(nfds);  // the item of each entry, -1 for fd < 0
  for (size_t i = 0; i < nfds; ++i) {
    index[i] = -1;
    int fd = pfds[i].fd;
    if (fd < 0) {
      continue;
    }
    size_t at;
    if (RemoteFile* f = remoteOf(c, fd)) {
      at = set->addRemote(*f, pfds[i].events);
    } else {
      bool closed;
      int64_t r = addLocalFd(c, *set, copier, fd, pfds[i].events, at, closed);
      if (r < 0) {
        return done(r);
      }
    }
    index[i] = static_cast<int64_t>(at);
  }

  auto deadline = deadlineOf(c, timeout);
  auto writeRevents = [&c, fdsAddr](size_t i, uint16_t revents) {
    return c.mem().writeValue(fdsAddr + i * sizeof(abi::PollFd) + offsetof(abi::PollFd, revents),
                              revents);
  };
  // The time left, written back by ppoll (not for a zero or absent timeout). False if it could
  // not be written.
  auto writeTimeLeft = [&c, tsAddr, timeout, deadline]() {
    if (tsAddr == 0 || timeout.zero()) {
      return true;
    }
    auto left = abi::nsToTimespec(remainingNs(c.tracer.timer(), deadline));
    return c.mem().writeValue(tsAddr, left) == 0;
  };
  c.onInterrupt = [&c, nfds, isPpoll, timeout, deadline, writeRevents,
                   writeTimeLeft](user_regs_struct& regs) mutable -> int64_t {
    // do_sys_poll writes every revents back, 0 when interrupted.
    for (size_t i = 0; i < nfds; ++i) {
      writeRevents(i, 0);
    }
    if (!isPpoll) {
      if (!timeout.infinite) {
        abi::setArg(regs, 2, msLeft(remainingNs(c.tracer.timer(), deadline)));
      }
      return -abi::ERESTARTNOHAND;
    }
    return writeTimeLeft() ? -abi::ERESTARTNOHAND : -EINTR;
  };
  auto& setRef = *set;
  return waitFor(c, setRef, deadline, timeout.zero(), pending)
      .then([&setRef, index = kj::mv(index), nfds, writeRevents,
             writeTimeLeft](size_t) mutable -> Outcome {
        int64_t count = 0;
        bool fault = false;
        for (size_t i = 0; i < nfds; ++i) {
          uint16_t revents = index[i] < 0 ? 0 : setRef[index[i]].revents;
          count += revents != 0 ? 1 : 0;
          fault = writeRevents(i, revents) < 0 || fault;
        }
        writeTimeLeft();  // A failure here is ignored, as poll_select_finish ignores it.
        return Complete{fault ? -EFAULT : count};
      })
      .attach(kj::mv(set));
}

kj::Promise<Outcome> hPoll(Call& c) { return pollFamily(c, false); }
kj::Promise<Outcome> hPpoll(Call& c) { return pollFamily(c, true); }

// ---------------------------------------------------------------------------------------------
// select, pselect6

int64_t epollKind(pid_t tid, int fd);

// The fd table size: select ignores bits at and above it.
int64_t fdTableSize(pid_t tid) { return ProcStatus::read(tid).fdSize; }

kj::Promise<Outcome> selectFamily(Call& c, bool isPselect) {
  int64_t n = static_cast<int>(c.arg(0));
  uint64_t setAddr[3] = {c.arg(1), c.arg(2), c.arg(3)};
  uint64_t tAddr = c.arg(4);
  Timeout timeout;
  bool pending = false;
  if (tAddr != 0) {
    timeout.infinite = false;
    bool valid;
    if (isPselect) {
      abi::KernelTimespec ts;
      if (c.mem().readValue(tAddr, ts) < 0) {
        return done(-EFAULT);
      }
      valid = abi::timespecToNs(ts, timeout.ns);
    } else {
      abi::KernelTimeval tv;
      if (c.mem().readValue(tAddr, tv) < 0) {
        return done(-EFAULT);
      }
      valid = abi::timevalToNs(tv, timeout.ns);
    }
    if (!valid) {
      return done(-EINVAL);
    }
  }
  uint64_t maskAddr = 0, maskSize = 0;
  if (isPselect && c.arg(5) != 0) {
    // pselect6's sixth argument: { const sigset_t* ss; size_t ss_len; }.
    uint64_t pair[2];
    if (c.mem().readValue(c.arg(5), pair) < 0) {
      return done(-EFAULT);
    }
    maskAddr = pair[0];
    maskSize = pair[1];
  }
  if (n < 0) {
    return done(-EINVAL);
  }
  size_t bytes = abi::fdSetBytes(n);
  kj::Array<kj::byte> sets[3];
  for (int k = 0; k < 3; ++k) {
    sets[k] = kj::heapArray<kj::byte>(bytes);
    memset(sets[k].begin(), 0, bytes);
    if (setAddr[k] != 0 && bytes > 0 && c.mem().read(setAddr[k], sets[k]) < 0) {
      return done(-EFAULT);
    }
  }
  auto wanted = [&](int fd, int k) { return fd < n && abi::fdIsSet(sets[k], fd); };
  bool anyRemote = false;
  for (int fd = 0; fd < n && !anyRemote; ++fd) {
    if ((wanted(fd, 0) || wanted(fd, 1) || wanted(fd, 2)) && remoteOf(c, fd) != nullptr) {
      anyRemote = true;
    }
  }
  if (!anyRemote) {
    return local();
  }
  if (isPselect) {
    int64_t r = takeMask(c, maskAddr, maskSize, pending);
    if (r < 0) {
      return done(r);
    }
  }

  struct Entry {
    int fd;
    size_t item;
    bool in, out, ex;
  };
  auto set = kj::refcounted<WaitSet>(c);
  FdCopier copier(c.task.tid, c.task.tgid);
  kj::Vector<Entry> entries;
  int64_t tableSize = -1;
  for (int fd = 0; fd < n; ++fd) {
    Entry e{fd, 0, wanted(fd, 0), wanted(fd, 1), wanted(fd, 2)};
    if (!e.in && !e.out && !e.ex) {
      continue;
    }
    uint16_t events = abi::selectEvents(e.in, e.out, e.ex);
    if (RemoteFile* f = remoteOf(c, fd)) {
      e.item = set->addRemote(*f, events);
    } else {
      bool closed;
      int64_t r = addLocalFd(c, *set, copier, fd, events, e.item, closed, true);
      if (r < 0) {
        return done(r);
      }
      if (closed && epollKind(c.task.tid, fd) >= 0) {
        continue;  // Open, but O_PATH: never ready (fs/select.c: no file to poll).
      }
      if (closed) {
        // select fails with EBADF for a closed fd below the fd table's size (max_select_fd).
        if (tableSize < 0) {
          tableSize = fdTableSize(c.task.tid);
        }
        if (fd < tableSize) {
          return done(-EBADF);
        }
        continue;
      }
    }
    entries.add(e);
  }

  auto deadline = deadlineOf(c, timeout);
  auto writeTimeLeft = [&c, tAddr, timeout, deadline, isPselect]() {
    if (tAddr == 0 || timeout.zero()) {
      return true;
    }
    int64_t left = remainingNs(c.tracer.timer(), deadline);
    return isPselect ? c.mem().writeValue(tAddr, abi::nsToTimespec(left)) == 0
                     : c.mem().writeValue(tAddr, abi::nsToTimeval(left)) == 0;
  };
  c.onInterrupt = [writeTimeLeft](user_regs_struct&) mutable -> int64_t {
    // The sets are not written back; the time left is (and a restart waits only for it).
    return writeTimeLeft() ? -abi::ERESTARTNOHAND : -EINTR;
  };
  auto& setRef = *set;
  return waitFor(c, setRef, deadline, timeout.zero(), pending)
      .then([&c, &setRef, entries = entries.releaseAsArray(), bytes, n,
             setAddr0 = setAddr[0], setAddr1 = setAddr[1], setAddr2 = setAddr[2],
             writeTimeLeft](size_t) mutable -> Outcome {
        uint64_t addrs[3] = {setAddr0, setAddr1, setAddr2};
        kj::Array<kj::byte> out[3];
        for (auto& o : out) {
          o = kj::heapArray<kj::byte>(bytes);
          memset(o.begin(), 0, bytes);
        }
        int64_t count = 0;
        for (auto& e : entries) {
          unsigned ready = abi::selectReady(setRef[e.item].revents, e.in, e.out, e.ex);
          for (int k = 0; k < 3; ++k) {
            if (ready & (1u << k)) {
              abi::fdSet(out[k], e.fd);
              ++count;
            }
          }
        }
        (void)n;
        bool fault = false;
        for (int k = 0; k < 3; ++k) {
          if (addrs[k] != 0 && bytes > 0 && c.mem().write(addrs[k], out[k]) < 0) {
            fault = true;
          }
        }
        writeTimeLeft();
        return Complete{fault ? -EFAULT : count};
      })
      .attach(kj::mv(set));
}

kj::Promise<Outcome> hSelect(Call& c) { return selectFamily(c, false); }
kj::Promise<Outcome> hPselect6(Call& c) { return selectFamily(c, true); }

// ---------------------------------------------------------------------------------------------
// epoll

// What the tracee's `fd` is, for epoll_ctl's checks: -EBADF (not open), 1 (an epoll
// instance) or 0 (anything else).
int64_t epollKind(pid_t tid, int fd) {
  if (fd < 0) {
    return -EBADF;
  }
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  char link[64];
  ssize_t n = readlink(path.cStr(), link, sizeof(link) - 1);
  if (n < 0) {
    return -EBADF;
  }
  link[n] = 0;
  return strcmp(link, "anon_inode:[eventpoll]") == 0 ? 1 : 0;
}

// epoll_ctl with a remote target fd (a local one is the kernel's business), with the checks of
// fs/eventpoll.c do_epoll_ctl in its order.
kj::Promise<Outcome> hEpollCtl(Call& c) {
  int epfd = c.fdArg(0);
  int op = static_cast<int>(c.arg(1));
  int fd = c.fdArg(2);
  RemoteFile* file = remoteOf(c, fd);
  if (file == nullptr) {
    return local();
  }
  abi::EpollEvent ev = {0, 0};
  if (op != abi::K_EPOLL_CTL_DEL && c.mem().readValue(c.arg(3), ev) < 0) {
    return done(-EFAULT);
  }
  int64_t kind = epollKind(c.task.tid, epfd);
  if (kind < 0) {
    return done(kind);
  }
  // file_can_poll(): regular files and directories have no poll method.
  if (file->type == proto::FileType::REGULAR || file->type == proto::FileType::DIRECTORY) {
    return done(-EPERM);
  }
  if (kind == 0) {
    return done(-EINVAL);
  }
  if (op != abi::K_EPOLL_CTL_DEL && (ev.events & abi::K_EPOLLEXCLUSIVE)) {
    if (op == abi::K_EPOLL_CTL_MOD ||
        (op == abi::K_EPOLL_CTL_ADD && (ev.events & ~abi::K_EPOLLEXCLUSIVE_OK))) {
      return done(-EINVAL);
    }
  }
  kj::AutoCloseFd copy;
  if (op == abi::K_EPOLL_CTL_ADD) {
    FdCopier copier(c.task.tid, c.task.tgid);
    int64_t r = copier.copy(epfd, copy);
    if (r < 0) {
      return done(r);
    }
  }
  return done(c.tracer.epolls().ctl(c.task.tid, epfd, kj::mv(copy), op, *file, fd, ev.events,
                                    ev.data));
}

// One remote interest being waited on: a snapshot, matched against the live interest after the
// wait (the program may have changed it meanwhile from another thread).
struct Watched {
  size_t item;
  RemoteFile* file;
  int fd;
  uint32_t events;
  uint64_t data;
  bool edge;
};

// Which of the live interests `w` refers to, if it is still there and enabled.
EpollInterest* liveInterest(EpollRegistry& registry, int instanceCopy, const Watched& w) {
  KJ_IF_MAYBE(instance, registry.find(getpid(), instanceCopy)) {
    for (auto& i : instance->interests) {
      if (i.file == w.file && i.fd == w.fd && !i.disabled) {
        return &i;
      }
    }
  }
  return nullptr;
}

constexpr uint16_t POLL_BITS_MASK = 0xffff & ~abi::K_POLLNVAL;

struct EpollWait : public kj::Refcounted {
  Call& c;
  // sbrun's own reference to the instance for this wait: read with epoll_wait, and matched
  // (kcmp) against the registry to find the instance's live interests.
  kj::AutoCloseFd mine;
  uint64_t eventsAddr;
  int maxevents;
  kj::Maybe<kj::TimePoint> deadline;
  bool zero;
  bool pending;

  EpollWait(Call& c, kj::AutoCloseFd mine, uint64_t eventsAddr, int maxevents,
            kj::Maybe<kj::TimePoint> deadline, bool zero, bool pending)
      : c(c), mine(kj::mv(mine)), eventsAddr(eventsAddr), maxevents(maxevents),
        deadline(deadline), zero(zero), pending(pending) {}

  // A WaitSet over the instance (item 0) and its enabled remote interests. `edges`: wait only
  // for the bits of EPOLLET interests that were low last time (an edge is a rise).
  kj::Own<WaitSet> build(bool edges, kj::Vector<Watched>& watched) {
    auto set = kj::refcounted<WaitSet>(c);
    kj::AutoCloseFd local(dup(mine.get()));
    KJ_REQUIRE(local.get() >= 0, "dup failed", strerror(errno));
    set->addLocal(kj::mv(local), abi::K_POLLIN);
    KJ_IF_MAYBE(instance, c.tracer.epolls().find(getpid(), mine.get())) {
      for (auto& i : instance->interests) {
        if (i.disabled) {
          continue;
        }
        bool edge = (i.events & abi::K_EPOLLET) != 0;
        uint16_t events = i.events & POLL_BITS_MASK;
        if (edge) {
          i.refreshEdge();
        }
        if (edges && edge) {
          if (i.lastSeen & (abi::K_POLLERR | abi::K_POLLHUP)) {
            continue;  // Reported already, and poll would report it again at once.
          }
          events &= ~i.lastSeen;
          if ((events & ~(abi::K_POLLERR | abi::K_POLLHUP)) == 0) {
            continue;
          }
        }
        size_t item = set->addRemote(*i.file, events);
        watched.add(Watched{item, i.file, i.fd, i.events, i.data, edge});
      }
    }
    return set;
  }

  bool anyEdge() {
    KJ_IF_MAYBE(instance, c.tracer.epolls().find(getpid(), mine.get())) {
      for (auto& i : instance->interests) {
        if (!i.disabled && (i.events & abi::K_EPOLLET)) {
          return true;
        }
      }
    }
    return false;
  }

  // The events to deliver: the instance's own (epoll_wait on sbrun's copy, which consumes them
  // exactly as the program's call would), then the remote interests', up to maxevents.
  int64_t collect(WaitSet& set, kj::ArrayPtr<const Watched> watched) {
    kj::Vector<abi::EpollEvent> out;
    if (set[0].revents & abi::K_POLLIN) {
      auto buf = kj::heapArray<struct epoll_event>(maxevents);
      int n = epoll_wait(mine.get(), buf.begin(), maxevents, 0);
      for (int k = 0; k < n; ++k) {
        out.add(abi::EpollEvent{buf[k].events, buf[k].data.u64});
      }
    }
    for (auto& w : watched) {
      if (out.size() >= size_t(maxevents)) {
        break;
      }
      EpollInterest* live = liveInterest(c.tracer.epolls(), mine.get(), w);
      if (live == nullptr) {
        continue;
      }
      uint16_t seen = set[w.item].revents & POLL_BITS_MASK;
      uint32_t fire = seen & live->events;
      if (w.edge) {
        live->refreshEdge();
        uint16_t asked = set[w.item].events | abi::K_POLLERR | abi::K_POLLHUP;
        uint16_t before = live->lastSeen;
        live->lastSeen = (before & ~asked) | (seen & asked);
        fire &= ~before;
      }
      if (fire == 0) {
        continue;
      }
      out.add(abi::EpollEvent{fire, live->data});
      if (live->events & abi::K_EPOLLONESHOT) {
        live->disabled = true;
      }
    }
    if (out.size() > 0 && c.mem().write(eventsAddr, out.asPtr().asBytes()) < 0) {
      return -EFAULT;
    }
    return static_cast<int64_t>(out.size());
  }

  kj::Promise<int64_t> attempt() {
    if (anyEdge()) {
      // First a look with the full masks, so that what EPOLLET interests saw is current.
      auto watched = kj::heap<kj::Vector<Watched>>();
      auto set = build(false, *watched);
      auto& setRef = *set;
      return setRef.look()
          .then([this, &setRef, &watched = *watched](size_t) -> kj::Promise<int64_t> {
            int64_t n = collect(setRef, watched);
            if (n != 0 || zero) {
              return n;
            }
            return waitOnce(true);
          })
          .attach(kj::mv(set), kj::mv(watched));
    }
    return waitOnce(false);
  }

  kj::Promise<int64_t> waitOnce(bool edges) {
    auto watched = kj::heap<kj::Vector<Watched>>();
    auto set = build(edges, *watched);
    auto& setRef = *set;
    bool signalPending = pending;
    pending = false;
    return waitFor(c, setRef, deadline, zero, signalPending)
        .then([this, &setRef, &watched = *watched](size_t) -> kj::Promise<int64_t> {
          int64_t n = collect(setRef, watched);
          if (n != 0 || zero || remainingNs(c.tracer.timer(), deadline) == 0) {
            return n;
          }
          return attempt();  // Woken for events another reader took: wait on.
        })
        .attach(kj::mv(set), kj::mv(watched));
  }
};

enum class EpollShape { WAIT, PWAIT, PWAIT2 };

kj::Promise<Outcome> epollWaitFamily(Call& c, EpollShape shape) {
  auto& registry = c.tracer.epolls();
  if (registry.empty()) {
    return local();
  }
  int epfd = c.fdArg(0);
  int copy = -1;
  KJ_IF_MAYBE(instance, registry.find(c.task.tid, epfd)) {
    if (!instance->hasEnabled()) {
      return local();
    }
    copy = instance->copy.get();
  } else {
    return local();
  }
  uint64_t eventsAddr = c.arg(1);
  int maxevents = static_cast<int>(c.arg(2));
  Timeout timeout;
  if (shape == EpollShape::PWAIT2) {
    if (c.arg(3) != 0) {
      abi::KernelTimespec ts;
      if (c.mem().readValue(c.arg(3), ts) < 0) {
        return done(-EFAULT);
      }
      timeout.infinite = false;
      if (!abi::timespecToNs(ts, timeout.ns)) {
        return done(-EINVAL);
      }
    }
  } else {
    timeout = fromMs(static_cast<int>(c.arg(3)));
  }
  bool pending = false;
  if (shape != EpollShape::WAIT) {
    int64_t r = takeMask(c, c.arg(4), c.arg(5), pending);
    if (r < 0) {
      return done(r);
    }
  }
  if (maxevents <= 0 || maxevents > abi::EPOLL_MAX_EVENTS) {
    return done(-EINVAL);
  }
  kj::AutoCloseFd mine(fcntl(copy, F_DUPFD_CLOEXEC, 0));
  KJ_REQUIRE(mine.get() >= 0, "cannot duplicate sbrun's copy of an epoll fd", strerror(errno));
  auto deadline = deadlineOf(c, timeout);
  c.onInterrupt = [&c, shape, timeout, deadline](user_regs_struct& regs) -> int64_t {
    if (shape != EpollShape::PWAIT2 && !timeout.infinite) {
      abi::setArg(regs, 3, msLeft(remainingNs(c.tracer.timer(), deadline)));
    }
    return -abi::ERESTARTNOHAND;
  };
  auto job = kj::refcounted<EpollWait>(c, kj::mv(mine), eventsAddr, maxevents, deadline,
                                       timeout.zero(), pending);
  auto& j = *job;
  return j.attempt().then([](int64_t n) -> Outcome { return Complete{n}; }).attach(kj::mv(job));
}

kj::Promise<Outcome> hEpollWait(Call& c) { return epollWaitFamily(c, EpollShape::WAIT); }
kj::Promise<Outcome> hEpollPwait(Call& c) { return epollWaitFamily(c, EpollShape::PWAIT); }
kj::Promise<Outcome> hEpollPwait2(Call& c) { return epollWaitFamily(c, EpollShape::PWAIT2); }

const HandlerEntry POLL_HANDLERS[] = {
    {SYS_poll, hPoll},
    {SYS_select, hSelect},
    {SYS_epoll_wait, hEpollWait},
    {SYS_epoll_ctl, hEpollCtl},
    {SYS_pselect6, hPselect6},
    {SYS_ppoll, hPpoll},
    {SYS_epoll_pwait, hEpollPwait},
    {SYS_epoll_pwait2, hEpollPwait2},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> pollHandlers() { return POLL_HANDLERS; }

}  // namespace sb::handler
