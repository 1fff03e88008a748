// The byte stream under a Cap'n Proto connection (sbrun's link to an agent, an agent's accepted
// client), cheaper per message than kj's own AsyncStreamFd on a machine where every syscall and
// every wakeup counts (docs/performance.md, "Where the time goes"):
// - The fd is watched for reading only. kj's stream also registers EPOLLOUT, edge-triggered, and
//   a socket reports an EPOLLOUT edge each time the peer reads what was sent: one needless wakeup
//   of the event loop per RPC message, in the middle of every round trip. Writability is watched
//   (on a dup of the fd) only while a write is waiting for buffer space.
// - Reads go through a small buffer: a message's header and body (and often the next message)
//   come in with one read(2) instead of two.
// Writes go out at once, as kj's do: a peer that writes a last word and closes (a TLS alert, a
// refusal) must not lose it to a write deferred past the stream's end.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/io.h>

namespace sb {

class FdStream final : public kj::AsyncIoStream {
 public:
  // `fd` must be a non-blocking stream socket (or one end of a socketpair).
  FdStream(kj::UnixEventPort& port, kj::AutoCloseFd fd);
  ~FdStream() noexcept(false);

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;
  void getsockopt(int level, int option, void* value, kj::uint* length) override;
  void setsockopt(int level, int option, const void* value, kj::uint length) override;
  void getsockname(struct sockaddr* addr, kj::uint* length) override;
  void getpeername(struct sockaddr* addr, kj::uint* length) override;
  kj::Maybe<int> getFd() const override { return fd_.get(); }

 private:
  kj::UnixEventPort& port_;
  kj::AutoCloseFd fd_;
  kj::UnixEventPort::FdObserver readObserver_;
  // Bytes read ahead of the RPC system's asks: buffer_[begin_, end_).
  kj::Array<kj::byte> buffer_;
  size_t begin_ = 0;
  size_t end_ = 0;
  // While a write waits for space: a dup of fd_ and an observer for writability on it.
  kj::AutoCloseFd writeFd_;
  kj::Maybe<kj::Own<kj::UnixEventPort::FdObserver>> writeObserver_;

  size_t takeBuffered(kj::byte* out, size_t maxBytes);
  kj::Promise<size_t> readMore(kj::byte* buffer, size_t minBytes, size_t maxBytes,
                               size_t alreadyRead);
  kj::Promise<void> writeAll(kj::Array<kj::ArrayPtr<const kj::byte>> pieces, size_t done);
};

// `stream` as an FdStream when it is a plain fd stream of kj's (what the network's connect() and
// accept() and wrapSocketFd() give): its fd is taken over (dup'd, the kj stream destroyed).
// Anything else (TLS, a pipe pair) is returned as it is.
kj::Own<kj::AsyncIoStream> asFdStream(kj::UnixEventPort& port, kj::Own<kj::AsyncIoStream> stream);

}  // namespace sb
