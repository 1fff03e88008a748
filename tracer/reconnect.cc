#include "reconnect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <kj/debug.h>

namespace sb {

namespace {

// Starts the description of an awayError whose outage outlasted --reconnect-timeout.
const char TIMED_OUT_MARK[] = "reconnect timeout: ";

}  // namespace

bool isConnectionLoss(const kj::Exception& e) {
  return e.getType() == kj::Exception::Type::DISCONNECTED;
}

kj::Exception awayError(kj::StringPtr target, bool timedOut) {
  if (timedOut) {
    return KJ_EXCEPTION(DISCONNECTED, kj::str(TIMED_OUT_MARK, "target '", target,
                                              "' has been away longer than --reconnect-timeout"));
  }
  return KJ_EXCEPTION(DISCONNECTED, kj::str("target '", target, "' is away"));
}

bool isReconnectTimeout(const kj::Exception& e) {
  return isConnectionLoss(e) && e.getDescription().startsWith(TIMED_OUT_MARK);
}

kj::Duration Backoff::next() {
  auto d = next_;
  next_ = kj::min(next_ * 2, cap_);
  return d;
}

Liveness::Verdict Liveness::onTick(kj::TimePoint now) {
  bool late = now - lastTick_ > 2 * tick();
  lastTick_ = now;
  if (!pingOutstanding_) {
    pingOutstanding_ = true;
    return Verdict::PING;
  }
  if (!late && now - lastSign_ >= period_ - tick()) {
    return Verdict::DEAD;
  }
  return Verdict::WAIT;
}

void WatchedStream::ended() {
  KJ_IF_MAYBE(fn, onEnd_) {
    auto f = kj::mv(*fn);
    onEnd_ = nullptr;
    f();
  }
}

void WatchedStream::cut() {
  KJ_IF_MAYBE(fd, inner_->getFd()) {
    ::shutdown(*fd, SHUT_RDWR);
  } else {
    inner_->shutdownWrite();
    inner_->abortRead();
  }
}

kj::Promise<size_t> WatchedStream::tryRead(void* buffer, size_t minBytes, size_t maxBytes) {
  auto read = inner_->tryRead(buffer, minBytes, maxBytes);
  if (faulty_) {
    // --link-fault: held back, and seen as silence by the heartbeat meanwhile.
    read = read.then([this](size_t n) -> kj::Promise<size_t> {
      auto at = kj::max(timer_.now() + delay_, frozenUntil_);
      if (at <= timer_.now()) {
        return n;
      }
      return timer_.atTime(at).then([n]() { return n; });
    });
  }
  return read
      .then(
          [this, minBytes](size_t n) {
            if (n > 0) {
              lastRead_ = timer_.now();
            }
            if (n < minBytes || n == 0) {
              ended();  // End of stream: the peer closed it (or died, and the kernel did).
            }
            return n;
          },
          [this](kj::Exception&& e) -> size_t {
            ended();  // ECONNRESET, ETIMEDOUT (TCP_USER_TIMEOUT), a shutdown of ours.
            kj::throwFatalException(kj::mv(e));
          });
}

void tuneTcp(kj::AsyncIoStream& stream, kj::Duration heartbeat) {
  if (heartbeat == 0 * kj::SECONDS) {
    return;
  }
  int fd;
  KJ_IF_MAYBE(f, stream.getFd()) {
    fd = *f;
  } else {
    return;
  }
  struct sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) != 0 ||
      (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)) {
    return;
  }
  int ms = static_cast<int>(heartbeat / kj::MILLISECONDS);
  int on = 1;
  int idle = kj::max(1, ms / 2000);  // seconds of silence before the first probe
  int interval = 1;
  int count = kj::max(1, (ms / 1000 - idle) / interval);
  // Best effort: a kernel without one of these still has the heartbeat.
  (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  // Data (a ping among it) unacknowledged for this long aborts the connection.
  (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

}  // namespace sb
