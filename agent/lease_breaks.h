// LeaseBreaks: brings B's lease breaks from the kernel to the clients that hold the leases
// (Node.lease with a holder, issue 16).
//
// F_SETLEASE makes the agent the lease holder: when another process on B opens or truncates the
// file, B's kernel signals the owner of the description and waits lease-break-time for the
// holder to give way. The agent asks for that signal as SIGNAL (F_SETSIG, so it is queued with
// si_fd naming the description and si_code POLL_MSG) sent to the event-loop thread alone
// (F_SETOWN_EX F_OWNER_TID). SIGNAL is blocked in every thread (block() runs before the first
// one exists; the workers block all but their interrupt signal; spawned programs reset their
// mask) and read here through a signalfd on the kj event loop, so no handler runs and no thread
// dies of a realtime signal's default action. Then the holder's client is called, and the
// program's answer (F_SETLEASE F_UNLCK) comes back as an ordinary Node.lease call.
//
// Threading: every method runs on the event-loop thread, which must be the one that called
// start().

#pragma once

#include <signal.h>

#include <map>

#include <kj/async-unix.h>

#include "log.h"
#include "splitbrain.capnp.h"

namespace sb {

class LeaseBreaks {
public:
  // A realtime signal (queued, carries si_fd) that kj and the executor leave alone; low in the
  // range because qemu-user keeps the highest ones of a guest for itself.
  static int signal() { return SIGRTMIN + 3; }
  // Blocks signal() in the calling thread; call before any other thread exists, which then
  // inherit the mask.
  static void block();

  // Starts reading breaks on this thread's event loop. `log` must outlive this.
  LeaseBreaks(kj::UnixEventPort& port, const Log& log);
  ~LeaseBreaks() noexcept(false);
  KJ_DISALLOW_COPY(LeaseBreaks);

  // Before F_SETLEASE on `fd`: asks for breaks as signal(). 0 or -errno.
  static int64_t prepare(int fd);
  // After F_SETLEASE on `fd` granted a lease: breaks go to this thread and then to `holder`.
  // 0 or -errno (the lease should then be given back: nobody would hear its break).
  int64_t hold(int fd, proto::LeaseHolder::Client holder);
  // The lease on `fd` is gone (given back, or the fd is about to be closed): forget its holder.
  void drop(int fd);
  // The holders known now, for tests.
  size_t held() const { return holders.size(); }

private:
  const Log& log;
  kj::AutoCloseFd signalFd;
  kj::Own<kj::UnixEventPort::FdObserver> observer;
  std::map<int, proto::LeaseHolder::Client> holders;  // by the agent's fd
  struct ErrorLogger: public kj::TaskSet::ErrorHandler {
    explicit ErrorLogger(const Log& log): log(log) {}
    const Log& log;
    void taskFailed(kj::Exception&& e) override;
  } errors;
  kj::TaskSet calls;  // holder.broken calls in flight: their failures are logged, not lost
  kj::Promise<void> reading = nullptr;

  kj::Promise<void> readBreaks();
  void broken(int fd, uint32_t band);
};

}  // namespace sb
