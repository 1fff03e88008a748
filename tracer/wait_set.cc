#include "wait_set.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kj/debug.h>

#include "tracee_abi.h"
#include "tracer.h"

namespace sb {

namespace {

// pidfd_open(2)'s PIDFD_THREAD (Linux 6.9): a pidfd for one thread, whose fd table may differ
// from its leader's after unshare(CLONE_FILES).
constexpr unsigned PIDFD_THREAD_ = O_EXCL;

// The poll bits epoll can wait for (EPOLLIN ... EPOLLRDHUP have poll's values).
constexpr uint32_t EPOLL_POLL_BITS = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP |
                                     EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND |
                                     EPOLLMSG | EPOLLRDHUP;

}  // namespace

FdCopier::FdCopier(pid_t tid, pid_t tgid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, tid, PIDFD_THREAD_));
  if (fd < 0) {
    fd = static_cast<int>(syscall(SYS_pidfd_open, tgid, 0));
  }
  if (fd < 0) {
    pidfdError = errno;
  } else {
    pidfd = kj::AutoCloseFd(fd);
  }
}

int64_t FdCopier::copy(int fd, kj::AutoCloseFd& out) {
  if (pidfd.get() < 0) {
    return -pidfdError;
  }
  if (fd < 0) {
    return -EBADF;
  }
  int copy = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0));
  if (copy < 0) {
    return -int64_t(errno);
  }
  out = kj::AutoCloseFd(copy);
  return 0;
}

int64_t remainingNs(kj::Timer& timer, kj::Maybe<kj::TimePoint> deadline) {
  KJ_IF_MAYBE(d, deadline) {
    auto now = timer.now();
    return *d > now ? (*d - now) / kj::NANOSECONDS : 0;
  }
  return -1;
}

WaitSet::WaitSet(Call& call)
    : call(call), timer(call.tracer.timer()), eventPort(call.tracer.eventPort()) {}

size_t WaitSet::addLocal(kj::AutoCloseFd copy, uint16_t events) {
  Item item;
  item.events = events;
  item.local = kj::mv(copy);
  items.push_back(kj::mv(item));
  return items.size() - 1;
}

size_t WaitSet::addRemote(RemoteFile& file, uint16_t events) {
  Item item;
  item.events = events;
  item.remote = kj::addRef(file);
  items.push_back(kj::mv(item));
  return items.size() - 1;
}

size_t WaitSet::addFixed(uint16_t revents) {
  Item item;
  item.revents = revents;
  item.fixed = true;
  items.push_back(kj::mv(item));
  return items.size() - 1;
}

size_t WaitSet::ready() const {
  size_t n = 0;
  for (auto& item : items) {
    n += item.revents != 0 ? 1 : 0;
  }
  return n;
}

std::vector<WaitSet::Side> WaitSet::sides() {
  std::vector<Side> out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].fixed) {
      continue;
    }
    AgentLink* target = items[i].remote.get() ? &items[i].remote->target : nullptr;
    Side* side = nullptr;
    for (auto& s : out) {
      side = s.target == target ? &s : side;
    }
    if (side == nullptr) {
      out.push_back(Side{target, {}});
      side = &out.back();
    }
    side->items.push_back(i);
  }
  return out;
}

void WaitSet::pollLocal(const Side& side) {
  std::vector<struct pollfd> fds;
  for (size_t i : side.items) {
    fds.push_back({items[i].local.get(), static_cast<short>(items[i].events), 0});
  }
  int r;
  do {
    r = ::poll(fds.data(), fds.size(), 0);
  } while (r < 0 && errno == EINTR);
  KJ_REQUIRE(r >= 0, "poll of sbrun's copies of the program's fds failed", strerror(errno));
  for (size_t k = 0; k < side.items.size(); ++k) {
    items[side.items[k]].revents = static_cast<uint16_t>(fds[k].revents);
  }
}

// The local side blocks in the kj event loop: an epoll instance of sbrun's own holds the copies,
// and becomes readable when one of them is ready. It looks first, so what is ready already ends
// the wait at once; a copy epoll refuses (a regular file: its state never changes) is left out.
kj::Promise<void> WaitSet::waitLocal(const Side& side, kj::Maybe<kj::TimePoint> deadline) {
  pollLocal(side);
  for (size_t i : side.items) {
    if (items[i].revents != 0) {
      return kj::READY_NOW;
    }
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  KJ_REQUIRE(ep >= 0, "epoll_create1 failed", strerror(errno));
  kj::AutoCloseFd epfd(ep);
  for (size_t i : side.items) {
    struct epoll_event ev = {};
    ev.events = items[i].events & EPOLL_POLL_BITS;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, items[i].local.get(), &ev);
  }
  // The observer must let go of the fd (EPOLL_CTL_DEL) before it is closed.
  struct Watch {
    Watch(kj::AutoCloseFd fd, kj::UnixEventPort& port)
        : epfd(kj::mv(fd)),
          observer(port, epfd.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ) {}
    kj::AutoCloseFd epfd;
    kj::UnixEventPort::FdObserver observer;
  };
  auto watch = kj::heap<Watch>(kj::mv(epfd), eventPort);
  kj::Promise<void> readable = watch->observer.whenBecomesReadable();
  KJ_IF_MAYBE(d, deadline) {
    readable = readable.exclusiveJoin(timer.atTime(*d));
  }
  return readable.attach(kj::mv(watch)).then([this, &side]() {
    pollLocal(side);
  });
}

kj::Promise<void> WaitSet::pollRemote(const Side& side, int64_t timeoutNs) {
  auto& target = *side.target;
  auto req = target.session().pollRequest();
  auto list = req.initFds(side.items.size());
  for (size_t k = 0; k < side.items.size(); ++k) {
    auto& item = items[side.items[k]];
    list[k].setNode(item.remote->node);
    x86_64::decodePollEvents(item.events, list[k].initEvents());
  }
  req.setTimeoutNs(timeoutNs);
  call.target = &target;
  return req.send().then([this, &side](auto reply) {
    int64_t r = reply.getResult();
    auto revents = reply.getRevents();
    KJ_REQUIRE(r < 0 || revents.size() == side.items.size(),
               "agent answered a poll with the wrong number of entries");
    if (r < 0) {
      // The agent's own poll failed (ENOMEM, EINVAL for more fds than its limit): no entry
      // can be answered, and the kernel would fail the call the same way.
      kj::throwFatalException(KJ_EXCEPTION(FAILED, "agent poll failed", r));
    }
    for (size_t k = 0; k < side.items.size(); ++k) {
      items[side.items[k]].revents = x86_64::encodePollEvents(revents[k]);
    }
  });
}

kj::Promise<void> WaitSet::lookSide(const Side& side, int64_t timeoutNs,
                                    kj::Maybe<kj::TimePoint> deadline) {
  if (side.target != nullptr) {
    return pollRemote(side, timeoutNs);
  }
  if (timeoutNs == 0) {
    pollLocal(side);
    return kj::READY_NOW;
  }
  return waitLocal(side, deadline);
}

kj::Promise<size_t> WaitSet::look() {
  auto all = kj::heap<std::vector<Side>>(sides());
  kj::Vector<kj::Promise<void>> looks;
  for (auto& side : *all) {
    looks.add(lookSide(side, 0, nullptr));
  }
  return kj::joinPromises(looks.releaseAsArray()).attach(kj::mv(all)).then([this]() {
    return ready();
  });
}

// One wait: the sides race; the winner's revents are fresh, the others are looked at again.
kj::Promise<size_t> WaitSet::waitRound(kj::Maybe<kj::TimePoint> deadline) {
  for (auto& item : items) {
    if (item.fixed && item.revents != 0) {
      return look();  // Already has an answer: nothing to wait for.
    }
  }
  int64_t timeoutNs = remainingNs(timer, deadline);
  if (timeoutNs == 0) {
    return look();
  }
  auto all = kj::heap<std::vector<Side>>(sides());
  if (all->empty()) {
    KJ_IF_MAYBE(d, deadline) {
      return timer.atTime(*d).then([]() { return size_t(0); });
    }
    return kj::Promise<size_t>(kj::NEVER_DONE);
  }
  if (all->size() == 1) {
    auto& side = all->front();
    return lookSide(side, timeoutNs, deadline).attach(kj::mv(all)).then([this]() {
      return ready();
    });
  }
  kj::Promise<size_t> first = nullptr;
  for (size_t s = 0; s < all->size(); ++s) {
    auto p = lookSide((*all)[s], timeoutNs, deadline).then([s]() { return s; });
    first = s == 0 ? kj::mv(p) : first.exclusiveJoin(kj::mv(p));
  }
  auto& sidesRef = *all;
  return first
      .then([this, &sidesRef](size_t winner) {
        kj::Vector<kj::Promise<void>> looks;
        for (size_t s = 0; s < sidesRef.size(); ++s) {
          if (s != winner) {
            looks.add(lookSide(sidesRef[s], 0, nullptr));
          }
        }
        return kj::joinPromises(looks.releaseAsArray());
      })
      .attach(kj::mv(all))
      .then([this]() { return ready(); });
}

kj::Promise<size_t> WaitSet::wait(kj::Maybe<kj::TimePoint> deadline) {
  return waitRound(deadline).then([this, deadline](size_t n) -> kj::Promise<size_t> {
    // A side can wake with nothing left to report (another reader took the data first): wait
    // on until something is ready or the time is up, as the kernel's poll does.
    if (n > 0 || remainingNs(timer, deadline) == 0) {
      return n;
    }
    return wait(deadline);
  });
}

}  // namespace sb
