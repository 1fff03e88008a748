#include "fd_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <kj/debug.h>
#include <kj/vector.h>

namespace sb {

namespace {

// Enough for a typical request or answer and the Finish behind it; asks as big as this go
// straight into the caller's buffer (a big message's body), with no copy.
constexpr size_t READ_BUFFER = 16 * 1024;

}  // namespace

FdStream::FdStream(kj::UnixEventPort& port, kj::AutoCloseFd fd)
    : port_(port),
      fd_(kj::mv(fd)),
      readObserver_(port, fd_.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ),
      buffer_(kj::heapArray<kj::byte>(READ_BUFFER)) {
  int flags;
  KJ_SYSCALL(flags = fcntl(fd_.get(), F_GETFL));
  if (!(flags & O_NONBLOCK)) {
    KJ_SYSCALL(fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK));
  }
}

FdStream::~FdStream() noexcept(false) {
  // The observers go first (their destructors take the fds out of the epoll set).
  writeObserver_ = nullptr;
}

size_t FdStream::takeBuffered(kj::byte* out, size_t maxBytes) {
  size_t n = kj::min(maxBytes, end_ - begin_);
  if (n > 0) {
    memcpy(out, buffer_.begin() + begin_, n);
    begin_ += n;
  }
  if (begin_ == end_) {
    begin_ = end_ = 0;
  }
  return n;
}

kj::Promise<size_t> FdStream::tryRead(void* buffer, size_t minBytes, size_t maxBytes) {
  auto out = static_cast<kj::byte*>(buffer);
  size_t got = takeBuffered(out, maxBytes);
  if (got >= minBytes || got == maxBytes) {
    return got;
  }
  return readMore(out + got, minBytes - got, maxBytes - got, got);
}

kj::Promise<size_t> FdStream::readMore(kj::byte* out, size_t minBytes, size_t maxBytes,
                                       size_t alreadyRead) {
  for (;;) {
    bool direct = maxBytes >= buffer_.size();
    ssize_t n = ::read(fd_.get(), direct ? out : buffer_.begin(),
                       direct ? maxBytes : buffer_.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    // Thrown before any promise exists (KJ_NONBLOCKING_SYSCALL's recovery block returned one
    // that leaked when its fault then threw); EPIPE/ECONNRESET give DISCONNECTED, as kj's.
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      KJ_FAIL_SYSCALL("read", errno);
    }
    if (n < 0) {  // EAGAIN
      return readObserver_.whenBecomesReadable().then([this, out, minBytes, maxBytes,
                                                       alreadyRead]() {
        return readMore(out, minBytes, maxBytes, alreadyRead);
      });
    }
    if (n == 0) {
      return alreadyRead;  // EOF
    }
    size_t took;
    if (direct) {
      took = size_t(n);
    } else {
      begin_ = 0;
      end_ = size_t(n);
      took = takeBuffered(out, maxBytes);
    }
    alreadyRead += took;
    if (took >= minBytes) {
      return alreadyRead;
    }
    out += took;
    minBytes -= took;
    maxBytes -= took;
    // Short: the socket is most likely empty now. As kj's own stream does, skip the read that
    // would say EAGAIN when the last event said the stream had not ended (an end arriving since
    // is an event whenBecomesReadable() still sees).
    KJ_IF_MAYBE(atEnd, readObserver_.atEndHint()) {
      if (*atEnd) {
        continue;  // the next read says 0 (or the bytes that came before the end)
      }
      return readObserver_.whenBecomesReadable().then([this, out, minBytes, maxBytes,
                                                       alreadyRead]() {
        return readMore(out, minBytes, maxBytes, alreadyRead);
      });
    }
  }
}

kj::Promise<void> FdStream::write(const void* buffer, size_t size) {
  auto pieces = kj::heapArray<kj::ArrayPtr<const kj::byte>>(1);
  pieces[0] = kj::arrayPtr(static_cast<const kj::byte*>(buffer), size);
  return kj::evalNow([&]() { return writeAll(kj::mv(pieces), 0); });
}

kj::Promise<void> FdStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  // The bytes stay the caller's until the promise resolves; only the list is copied.
  return kj::evalNow([&]() { return writeAll(kj::heapArray(pieces), 0); });
}

kj::Promise<void> FdStream::writeAll(kj::Array<kj::ArrayPtr<const kj::byte>> pieces,
                                     size_t done) {
  for (;;) {
    kj::Vector<struct iovec> iov(kj::min(pieces.size(), size_t(IOV_MAX)));
    size_t skip = done;
    size_t total = 0;
    for (auto& p : pieces) {
      total += p.size();
      if (skip >= p.size()) {
        skip -= p.size();
        continue;
      }
      if (iov.size() < IOV_MAX) {
        iov.add(iovec{const_cast<kj::byte*>(p.begin()) + skip, p.size() - skip});
      }
      skip = 0;
    }
    if (done == total) {
      writeObserver_ = nullptr;  // stop watching writability until the next full buffer
      return kj::READY_NOW;
    }
    ssize_t n = ::writev(fd_.get(), iov.begin(), int(iov.size()));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      KJ_FAIL_SYSCALL("writev", errno);  // as in readMore: before any promise exists
    }
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    // The socket buffer is full: wait for space, on a dup of the fd (one fd may have only one
    // observer, and the read observer must not wake for every EPOLLOUT edge).
    if (writeFd_ == nullptr) {
      int dupFd;
      KJ_SYSCALL(dupFd = fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
      writeFd_ = kj::AutoCloseFd(dupFd);
    }
    if (writeObserver_ == nullptr) {
      writeObserver_ = kj::heap<kj::UnixEventPort::FdObserver>(
          port_, writeFd_.get(), kj::UnixEventPort::FdObserver::OBSERVE_WRITE);
    }
    auto& observer = *KJ_ASSERT_NONNULL(writeObserver_);
    return observer.whenBecomesWritable().then(
        [this, pieces = kj::mv(pieces), done]() mutable { return writeAll(kj::mv(pieces), done); });
  }
}

kj::Promise<void> FdStream::whenWriteDisconnected() {
  return readObserver_.whenWriteDisconnected();
}

void FdStream::shutdownWrite() {
  KJ_SYSCALL(::shutdown(fd_.get(), SHUT_WR));
}

void FdStream::abortRead() {
  // As kj's stream: the peer's further writes fail rather than fill a buffer nobody reads.
  ::shutdown(fd_.get(), SHUT_RD);
}

void FdStream::getsockopt(int level, int option, void* value, kj::uint* length) {
  socklen_t len = *length;
  KJ_SYSCALL(::getsockopt(fd_.get(), level, option, value, &len));
  *length = len;
}

void FdStream::setsockopt(int level, int option, const void* value, kj::uint length) {
  KJ_SYSCALL(::setsockopt(fd_.get(), level, option, value, length));
}

void FdStream::getsockname(struct sockaddr* addr, kj::uint* length) {
  socklen_t len = *length;
  KJ_SYSCALL(::getsockname(fd_.get(), addr, &len));
  *length = len;
}

void FdStream::getpeername(struct sockaddr* addr, kj::uint* length) {
  socklen_t len = *length;
  KJ_SYSCALL(::getpeername(fd_.get(), addr, &len));
  *length = len;
}

kj::Own<kj::AsyncIoStream> asFdStream(kj::UnixEventPort& port, kj::Own<kj::AsyncIoStream> stream) {
  KJ_IF_MAYBE(fd, stream->getFd()) {
    int own;
    KJ_SYSCALL(own = fcntl(*fd, F_DUPFD_CLOEXEC, 0));
    kj::AutoCloseFd ownFd(own);
    stream = nullptr;  // closes kj's fd and takes it out of the epoll set
    return kj::heap<FdStream>(port, kj::mv(ownFd));
  }
  return stream;
}

}  // namespace sb
