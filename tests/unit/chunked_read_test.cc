// chunkedRead (tracer/chunked_read.h) against a scripted Node: the answer and the give-back of a
// big read in pipelined chunks when the file ends, grows between two chunks, fails part way or
// the program's buffer faults. The races a conformance program cannot make happen on purpose
// (the file growing between two chunks of one read) are made here.

#include <doctest.h>

#include <errno.h>

#include <algorithm>
#include <set>
#include <string>

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/debug.h>

#include "chunked_read.h"

namespace {

using sb::ChunkedReadResult;
using sb::proto::Node;

constexpr uint64_t KiB = 1024;

std::string pattern(uint64_t from, uint64_t size) {
  std::string s(size, '\0');
  for (uint64_t i = 0; i < size; i++) {
    s[i] = static_cast<char>(((from + i) * 2654435761u) >> 13);
  }
  return s;
}

// A regular file as the agent serves it: read at its offset, pread at any, in call order. Call
// number `growAfter` (0-based) appends `growBy` bytes once it has run; calls in `errors` answer
// -EIO, calls in `breaks` fail as a lost connection does.
class FakeFile final : public Node::Server {
 public:
  explicit FakeFile(uint64_t size) : content(pattern(0, size)) {}

  std::string content;
  uint64_t offset = 0;
  int calls = 0;
  int growAfter = -1;
  uint64_t growBy = 0;
  std::set<int> errors;
  std::set<int> breaks;

 protected:
  kj::Promise<void> read(ReadContext context) override {
    int64_t r = serve(context.getParams().getCount(), -1, [&](auto bytes) {
      context.getResults().setData(bytes);
    });
    context.getResults().setResult(r);
    return kj::READY_NOW;
  }

  kj::Promise<void> pread(PreadContext context) override {
    auto params = context.getParams();
    int64_t r = serve(params.getCount(), params.getOffset(), [&](auto bytes) {
      context.getResults().setData(bytes);
    });
    context.getResults().setResult(r);
    return kj::READY_NOW;
  }

 private:
  template <typename Set>
  int64_t serve(uint64_t count, int64_t at, Set&& set) {
    int i = calls++;
    KJ_DEFER(if (i == growAfter) content += pattern(content.size(), growBy));
    if (breaks.count(i)) {
      kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "connection lost"));
    }
    if (errors.count(i)) {
      return -EIO;
    }
    uint64_t from = at < 0 ? offset : static_cast<uint64_t>(at);
    uint64_t n = from < content.size() ? std::min<uint64_t>(count, content.size() - from) : 0;
    set(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(content.data()) + from, n));
    if (at < 0) {
      offset += n;
    }
    return static_cast<int64_t>(n);
  }
};

// The program's buffer: `size` bytes, of which only the first `writable` can be written (the
// rest is an unmapped page); untouched bytes stay '#'.
struct Buffer {
  Buffer(uint64_t size, uint64_t writable) : bytes(size, '#'), writable(writable) {}
  std::string bytes;
  uint64_t writable;

  sb::PlaceFn place() {
    return [this](uint64_t at, kj::ArrayPtr<const kj::byte> data) -> int64_t {
      if (at >= writable) {
        return -EFAULT;
      }
      uint64_t n = std::min<uint64_t>(data.size(), writable - at);
      memcpy(&bytes[at], data.begin(), n);
      return static_cast<int64_t>(n);
    };
  }
  // The first `n` bytes are the file's from `from`, the rest untouched.
  bool holds(uint64_t from, uint64_t n) const {
    return bytes.compare(0, n, pattern(from, n)) == 0 &&
           bytes.find_first_not_of('#', n) == std::string::npos;
  }
};

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope ws{loop};
  FakeFile* file;
  Node::Client node;
  explicit Fixture(uint64_t size) : node(nullptr) {
    auto server = kj::heap<FakeFile>(size);
    file = server.get();
    node = kj::mv(server);
  }
  ChunkedReadResult read(int64_t offset, uint64_t count, uint64_t chunk, Buffer& buf) {
    return sb::chunkedRead(node, offset, count, chunk, buf.place()).wait(ws);
  }
};

}  // namespace

TEST_SUITE("chunked_read") {
  TEST_CASE("a big read at the file position is the file's bytes, in order") {
    Fixture f(1024 * KiB + 100);
    f.file->offset = 100;
    Buffer buf(1024 * KiB, 1024 * KiB);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(1024 * KiB));
    CHECK(r.excess == 0);
    CHECK(buf.holds(100, 1024 * KiB));
    CHECK(f.file->calls == 4);
    CHECK(f.file->offset == 1024 * KiB + 100);
  }

  TEST_CASE("a read crossing the end of the file is short and gives nothing back") {
    Fixture f(600 * KiB + 7);
    Buffer buf(1024 * KiB, 1024 * KiB);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(600 * KiB + 7));
    CHECK(r.excess == 0);
    CHECK(buf.holds(0, 600 * KiB + 7));
    CHECK(f.file->offset == 600 * KiB + 7);
  }

  TEST_CASE("at the end of the file: 0") {
    Fixture f(1000);
    f.file->offset = 1000;
    Buffer buf(512 * KiB, 512 * KiB);
    auto r = f.read(-1, 512 * KiB, 128 * KiB, buf);
    CHECK(r.result == 0);
    CHECK(r.excess == 0);
    CHECK(buf.holds(0, 0));
  }

  TEST_CASE("bytes a later chunk read after a short one (the file grew) are not placed") {
    // Chunk 1 meets the end at 300 KiB; then the file grows and chunks 2 and 3 read 150 KiB.
    Fixture f(300 * KiB);
    f.file->growAfter = 1;
    f.file->growBy = 150 * KiB;
    Buffer buf(1024 * KiB, 1024 * KiB);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(300 * KiB));
    CHECK(r.excess == 150 * KiB);  // The caller seeks back by this: the offset is then 300 KiB.
    CHECK(buf.holds(0, 300 * KiB));
    CHECK(f.file->offset - r.excess == 300 * KiB);
  }

  TEST_CASE("a chunk failing after full ones: the bytes before it") {
    Fixture f(2048 * KiB);
    f.file->errors = {2};
    Buffer buf(1024 * KiB, 1024 * KiB);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(512 * KiB));
    CHECK(r.excess == 256 * KiB);  // chunk 3 still read; chunk 2 read nothing
    CHECK(buf.holds(0, 512 * KiB));
  }

  TEST_CASE("the first chunk failing: its errno, and the later chunks' bytes go back") {
    Fixture f(2048 * KiB);
    f.file->errors = {0};
    Buffer buf(1024 * KiB, 1024 * KiB);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == -EIO);
    CHECK(r.excess == 768 * KiB);
    CHECK(buf.holds(0, 0));
  }

  TEST_CASE("a lost connection: the first chunk's exception, or the bytes before it") {
    {
      Fixture f(2048 * KiB);
      f.file->breaks = {0, 1, 2, 3};
      Buffer buf(1024 * KiB, 1024 * KiB);
      auto p = sb::chunkedRead(f.node, -1, 1024 * KiB, 256 * KiB, buf.place());
      auto e = kj::runCatchingExceptions([&]() { p.wait(f.ws); });
      REQUIRE(e != nullptr);
      CHECK(KJ_ASSERT_NONNULL(e).getType() == kj::Exception::Type::DISCONNECTED);
    }
    {
      Fixture f(2048 * KiB);
      f.file->breaks = {1, 2, 3};
      Buffer buf(1024 * KiB, 1024 * KiB);
      auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
      CHECK(r.result == int64_t(256 * KiB));
      CHECK(buf.holds(0, 256 * KiB));
    }
  }

  TEST_CASE("a buffer that runs into an unmapped page: the bytes before the fault") {
    Fixture f(2048 * KiB);
    Buffer buf(1024 * KiB, 300 * KiB + 5);
    auto r = f.read(-1, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(300 * KiB + 5));
    CHECK(r.excess == 1024 * KiB - (300 * KiB + 5));
    CHECK(buf.holds(0, 300 * KiB + 5));
  }

  TEST_CASE("a buffer that faults at once: EFAULT, everything goes back") {
    Fixture f(2048 * KiB);
    Buffer buf(512 * KiB, 0);
    auto r = f.read(-1, 512 * KiB, 128 * KiB, buf);
    CHECK(r.result == -EFAULT);
    CHECK(r.excess == 512 * KiB);
  }

  TEST_CASE("at an offset: preads, the file offset untouched, nothing to give back") {
    Fixture f(1000 * KiB);
    f.file->offset = 5;
    f.file->growAfter = 1;
    f.file->growBy = 64 * KiB;
    Buffer buf(1024 * KiB, 1024 * KiB);
    // From 700 KiB: chunk 0 full, chunk 1 short at 1000 KiB, then growth seen by chunk 2.
    auto r = f.read(700 * KiB, 1024 * KiB, 256 * KiB, buf);
    CHECK(r.result == int64_t(300 * KiB));
    CHECK(r.excess == 0);
    CHECK(buf.holds(700 * KiB, 300 * KiB));
    CHECK(f.file->offset == 5);
  }

  TEST_CASE("a count that is not a multiple of the chunk") {
    Fixture f(2048 * KiB);
    Buffer buf(300 * KiB + 3, 300 * KiB + 3);
    auto r = f.read(10, 300 * KiB + 3, 128 * KiB, buf);
    CHECK(r.result == int64_t(300 * KiB + 3));
    CHECK(f.file->calls == 3);
    CHECK(buf.holds(10, 300 * KiB + 3));
  }
}
