#include <doctest.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <capnp/message.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>

#include "fd_stream.h"
#include "splitbrain.capnp.h"

namespace {

struct Pair {
  kj::AsyncIoContext& io;
  kj::Own<sb::FdStream> a;
  kj::Own<sb::FdStream> b;
};

Pair makePair(kj::AsyncIoContext& io) {
  int sv[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  return Pair{io, kj::heap<sb::FdStream>(io.unixEventPort, kj::AutoCloseFd(sv[0])),
              kj::heap<sb::FdStream>(io.unixEventPort, kj::AutoCloseFd(sv[1]))};
}

kj::byte pattern(size_t i) { return kj::byte((i * 7 + i / 4093) & 0xff); }

}  // namespace

TEST_SUITE("fd_stream") {
  TEST_CASE("capnp messages cross in both directions, back to back") {
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    for (int round = 0; round < 3; ++round) {
      capnp::MallocMessageBuilder m1, m2;
      m1.initRoot<sb::proto::Hello>().setClientName(kj::str("first ", round));
      m2.initRoot<sb::proto::Hello>().setClientName(kj::str("second ", round));
      // Two messages written before the peer reads: the peer's first read takes in both.
      capnp::writeMessage(*p.a, m1).then([&]() { return capnp::writeMessage(*p.a, m2); })
          .wait(io.waitScope);
      auto r1 = capnp::readMessage(*p.b).wait(io.waitScope);
      auto r2 = capnp::readMessage(*p.b).wait(io.waitScope);
      CHECK(r1->getRoot<sb::proto::Hello>().getClientName() == kj::str("first ", round));
      CHECK(r2->getRoot<sb::proto::Hello>().getClientName() == kj::str("second ", round));
      capnp::writeMessage(*p.b, m1).wait(io.waitScope);
      auto back = capnp::readMessage(*p.a).wait(io.waitScope);
      CHECK(back->getRoot<sb::proto::Hello>().getClientName() == kj::str("first ", round));
    }
  }

  TEST_CASE("8 MiB cross while the reader asks for odd sizes (writes wait for space)") {
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    constexpr size_t SIZE = 8u << 20;
    auto data = kj::heapArray<kj::byte>(SIZE);
    for (size_t i = 0; i < SIZE; ++i) data[i] = pattern(i);
    // Three pieces in one write, as capnp's segment table and segments.
    kj::ArrayPtr<const kj::byte> pieces[] = {data.slice(0, 3), data.slice(3, SIZE / 2),
                                             data.slice(SIZE / 2, SIZE)};
    auto writing = p.a->write(kj::arrayPtr(pieces, 3));

    auto got = kj::heapArray<kj::byte>(SIZE);
    size_t have = 0;
    size_t asks[][2] = {{1, 7}, {100, 20000}, {5000, 5000}, {1, 1u << 20}, {17, 17}};
    for (int k = 0; have < SIZE; ++k) {
      auto ask = asks[k % 5];
      size_t maxBytes = kj::min(ask[1], SIZE - have);
      size_t minBytes = kj::min(ask[0], maxBytes);
      size_t n = p.b->tryRead(got.begin() + have, minBytes, maxBytes).wait(io.waitScope);
      REQUIRE(n >= minBytes);
      REQUIRE(n <= maxBytes);
      have += n;
    }
    writing.wait(io.waitScope);
    CHECK(memcmp(got.begin(), data.begin(), SIZE) == 0);
  }

  TEST_CASE("a last word written just before the stream goes reaches the peer") {
    // What a TLS alert or a refusal does: write, then drop the promise and the stream at once.
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    { auto dropped = p.a->write("bye", 3); }
    p.a = nullptr;
    char buf[8];
    CHECK(p.b->tryRead(buf, 3, 8).wait(io.waitScope) == 3);
    CHECK(memcmp(buf, "bye", 3) == 0);
    CHECK(p.b->tryRead(buf, 1, 8).wait(io.waitScope) == 0);
  }

  TEST_CASE("the end of the stream: a short read, then 0") {
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    p.a->write("0123456789", 10).wait(io.waitScope);
    p.a->shutdownWrite();
    char buf[32];
    CHECK(p.b->tryRead(buf, 20, 32).wait(io.waitScope) == 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    CHECK(p.b->tryRead(buf, 1, 32).wait(io.waitScope) == 0);
  }

  TEST_CASE("a read waiting for bytes gets them when they come") {
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    char buf[8];
    auto reading = p.b->tryRead(buf, 6, 8);
    CHECK(!reading.poll(io.waitScope));
    p.a->write("abc", 3).wait(io.waitScope);
    CHECK(!reading.poll(io.waitScope));  // 3 of the 6 it needs
    p.a->write("def", 3).wait(io.waitScope);
    CHECK(reading.wait(io.waitScope) == 6);
    CHECK(memcmp(buf, "abcdef", 6) == 0);
  }

  TEST_CASE("writing to a closed peer fails, and does not hang") {
    auto io = kj::setupAsyncIo();
    auto p = makePair(io);
    p.b = nullptr;
    auto big = kj::heapArray<kj::byte>(1u << 20);
    memset(big.begin(), 'x', big.size());
    bool failed = false;
    p.a->write(big.begin(), big.size())
        .then([]() {}, [&](kj::Exception&&) { failed = true; })
        .wait(io.waitScope);
    CHECK(failed);
  }

  TEST_CASE("asFdStream takes over kj's fd streams and leaves other streams alone") {
    auto io = kj::setupAsyncIo();
    int sv[2];
    KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    auto kjStream = io.lowLevelProvider->wrapSocketFd(
        sv[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    auto converted = sb::asFdStream(io.unixEventPort, kj::mv(kjStream));
    CHECK(dynamic_cast<sb::FdStream*>(converted.get()) != nullptr);
    CHECK(fcntl(sv[0], F_GETFD) == -1);  // kj's fd was closed; the stream has its own
    converted->write("hi", 2).wait(io.waitScope);
    char buf[2];
    CHECK(read(sv[1], buf, 2) == 2);
    close(sv[1]);

    auto pipe = kj::newTwoWayPipe();  // in memory: no fd
    kj::AsyncIoStream* raw = pipe.ends[0].get();
    auto same = sb::asFdStream(io.unixEventPort, kj::mv(pipe.ends[0]));
    CHECK(same.get() == raw);
  }
}
