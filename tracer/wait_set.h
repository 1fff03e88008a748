// WaitSet: one wait over fds that live on both sides (docs/architecture.md, "Waiting on local
// and remote fds"). The poll, select and epoll handlers (handlers_poll.cc) decode the program's
// arguments into items, wait here, and encode the revents back.
//
// An item is one of:
//   - local: sbrun's own copy of the tracee's fd, taken with pidfd_getfd(2), so it is the same
//     open file description and its readiness is the tracee's;
//   - remote: a RemoteFile, watched by the agent that holds it (Session.poll);
//   - fixed: an answer known in advance (POLLNVAL for a closed fd).
// Items are grouped into sides: the local side and one side per target. `wait` races the sides
// (a local epoll instance watched by the kj event loop against one Session.poll per target); the
// first to answer ends the wait, the others are cancelled and then looked at with a zero
// timeout, so every item's revents is current when the wait returns.

#pragma once

#include <kj/async-unix.h>
#include <kj/io.h>
#include <kj/refcount.h>
#include <kj/time.h>
#include <vector>

#include "fd_table.h"

namespace sb {

struct Call;

// Copies a tracee thread's fds into sbrun (pidfd_getfd(2): sbrun is the tracer, so it may).
class FdCopier {
 public:
  explicit FdCopier(pid_t tid, pid_t tgid);
  // sbrun's copy of the tracee's `fd` (close-on-exec), or -errno (-EBADF: not open).
  int64_t copy(int fd, kj::AutoCloseFd& out);

 private:
  kj::AutoCloseFd pidfd;
  int pidfdError = 0;
};

class WaitSet final : public kj::Refcounted {
 public:
  explicit WaitSet(Call& call);

  struct Item {
    uint16_t events = 0;   // POLL* bits to wait for (ERR and HUP are always reported)
    uint16_t revents = 0;  // filled by look() and wait()
    kj::AutoCloseFd local;
    kj::Own<RemoteFile> remote;  // null for local and fixed items
    bool fixed = false;
  };

  size_t addLocal(kj::AutoCloseFd copy, uint16_t events);
  size_t addRemote(RemoteFile& file, uint16_t events);
  size_t addFixed(uint16_t revents);
  Item& operator[](size_t i) { return items[i]; }
  size_t size() const { return items.size(); }

  // Looks at every item once (timeout 0). Returns how many have revents.
  kj::Promise<size_t> look();
  // Waits until an item is ready or `deadline` passes (null: no limit), then fills every
  // item's revents. Returns how many have revents (0: the deadline passed).
  kj::Promise<size_t> wait(kj::Maybe<kj::TimePoint> deadline);

 private:
  struct Side {
    AgentLink* target;  // null: local
    std::vector<size_t> items;
  };

  Call& call;
  kj::Timer& timer;
  kj::UnixEventPort& eventPort;
  std::vector<Item> items;

  std::vector<Side> sides();
  size_t ready() const;
  void pollLocal(const Side& side);
  kj::Promise<void> lookSide(const Side& side, int64_t timeoutNs,
                             kj::Maybe<kj::TimePoint> deadline);
  kj::Promise<void> waitLocal(const Side& side, kj::Maybe<kj::TimePoint> deadline);
  kj::Promise<void> pollRemote(const Side& side, int64_t timeoutNs);
  kj::Promise<size_t> waitRound(kj::Maybe<kj::TimePoint> deadline);
};

// Nanoseconds left until `deadline` (never negative), or -1 for none.
int64_t remainingNs(kj::Timer& timer, kj::Maybe<kj::TimePoint> deadline);

}  // namespace sb
