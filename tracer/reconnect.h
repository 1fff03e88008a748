// Losing and regaining a target: the pieces AgentLink's state machine is made of (DESIGN D10,
// docs/failure-semantics.md).
//
// - Backoff: when the background reconnect attempts happen.
// - Liveness: the heartbeat's verdict. A peer that stops answering without closing the
//   connection (B frozen, a cable pulled) sends no FIN or RST, so only silence tells: sbrun
//   pings it (a cheap RPC) and watches the connection's traffic, and declares it gone when a
//   ping is outstanding and nothing at all has moved for the heartbeat period. Traffic counts
//   as a sign of life, so a big transfer on a slow link that delays the ping's answer is not
//   mistaken for a dead peer.
// - WatchedStream: the transport stream as the RPC system sees it, noting when bytes last moved
//   and telling at once when the peer closed it (before the RPC system fails the calls in
//   flight, so that no new call slips onto the dead connection in between).
// - Errors: what a remote call that could not reach the target carries, so that the tracer
//   maps it to EIO or ETIMEDOUT.

#pragma once

#include <kj/async-io.h>
#include <kj/function.h>
#include <kj/time.h>

namespace sb {

// The connection to the target broke (or was never there for this call): the RPC system's
// DISCONNECTED, and the errors of calls made while the target is away (awayError).
bool isConnectionLoss(const kj::Exception& e);

// The error of a call that needs a target that is away. `timedOut`: the outage has lasted
// longer than --reconnect-timeout, and the call must fail with ETIMEDOUT rather than EIO.
kj::Exception awayError(kj::StringPtr target, bool timedOut);
// Whether `e` is an awayError with timedOut set.
bool isReconnectTimeout(const kj::Exception& e);

// Delays between background reconnect attempts: FIRST, then doubling up to `cap`.
class Backoff {
 public:
  static constexpr kj::Duration FIRST = 100 * kj::MILLISECONDS;
  explicit Backoff(kj::Duration cap) : cap_(cap) {}
  kj::Duration next();
  void reset() { next_ = FIRST; }

 private:
  kj::Duration cap_;
  kj::Duration next_ = FIRST;
};

// The heartbeat's bookkeeping for one connection. The caller ticks it every period/4 and sends
// a ping when it asks for one. Detection: a peer that goes silent right after a sign of life is
// declared gone at most `period` later (a ping goes out within a tick; the verdict comes once
// nothing has moved for period - tick, checked every tick).
class Liveness {
 public:
  Liveness(kj::Duration period, kj::TimePoint now)
      : period_(period), lastSign_(now), lastTick_(now) {}

  kj::Duration tick() const { return period_ / 4; }
  // Bytes moved on the connection, or a ping was answered.
  void sign(kj::TimePoint now) { lastSign_ = kj::max(lastSign_, now); }
  void pingAnswered(kj::TimePoint now) {
    pingOutstanding_ = false;
    sign(now);
  }

  enum class Verdict { PING, WAIT, DEAD };
  // At each tick. PING: send a ping now (none is outstanding). DEAD: a ping is outstanding and
  // nothing has moved for period - tick. A tick that comes late by more than a tick means sbrun
  // itself was not running (a stalled event loop): answers may sit unread in the socket, so
  // there is no verdict this time.
  Verdict onTick(kj::TimePoint now);
  kj::Duration silentFor(kj::TimePoint now) const { return now - lastSign_; }

 private:
  kj::Duration period_;
  kj::TimePoint lastSign_;
  kj::TimePoint lastTick_;
  bool pingOutstanding_ = false;
};

// The transport stream under the RPC system, watched: `lastRead()` is when bytes last arrived,
// and `onEnd` runs once, as soon as a read finds the stream closed or failed. (Only reads count
// as a sign of life: writes to a frozen peer keep completing until the socket buffers are full.)
class WatchedStream final : public kj::AsyncIoStream {
 public:
  WatchedStream(kj::Own<kj::AsyncIoStream> inner, kj::Timer& timer)
      : inner_(kj::mv(inner)), timer_(timer), lastRead_(timer.now()) {}

  kj::TimePoint lastRead() const { return lastRead_; }
  void onEnd(kj::Function<void()> fn) { onEnd_ = kj::mv(fn); }
  // shutdown(2) both ways: the RPC system then sees the end as if the peer had closed, and
  // writes stuck on a peer that reads nothing fail instead of waiting forever.
  void cut();
  // --link-fault (link_fault.h): every read is handed over `delay` late; nothing read is handed
  // over before `until` (a frozen peer, as far as sbrun can tell).
  // Either, before the first read, turns the check on (a link without faults pays nothing).
  void delayReads(kj::Duration delay) {
    delay_ = delay;
    faulty_ = true;
  }
  void mayFreeze() { faulty_ = true; }
  void freezeUntil(kj::TimePoint until) { frozenUntil_ = until; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  kj::Maybe<int> getFd() const override { return inner_->getFd(); }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  kj::Timer& timer_;
  kj::TimePoint lastRead_;
  kj::Maybe<kj::Function<void()>> onEnd_;
  bool faulty_ = false;
  kj::Duration delay_ = 0 * kj::SECONDS;
  kj::TimePoint frozenUntil_ = kj::origin<kj::TimePoint>();

  void ended();
};

// TCP: keepalive probes and TCP_USER_TIMEOUT, both within `heartbeat`, so the kernel also
// notices a peer that stopped acknowledging. Other streams: nothing.
void tuneTcp(kj::AsyncIoStream& stream, kj::Duration heartbeat);

}  // namespace sb
