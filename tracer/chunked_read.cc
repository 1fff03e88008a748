#include "chunked_read.h"

#include <errno.h>

#include <kj/debug.h>
#include <kj/vector.h>

namespace sb {

namespace {

// One chunk's answer: the agent's result and the bytes, which keep the reply they point into.
struct Answer {
  int64_t result;
  kj::Array<const kj::byte> data;
};

template <typename Results>
kj::Promise<Answer> answerOf(capnp::RemotePromise<Results>&& sent) {
  return sent.then([](capnp::Response<Results>&& reply) {
    int64_t result = reply.getResult();
    kj::ArrayPtr<const kj::byte> data = reply.getData();
    if (data.size() == 0) {
      return Answer{result, nullptr};
    }
    return Answer{result, data.attach(kj::mv(reply))};
  });
}

// A chunked read in flight. The answers are taken in order: the agent runs the chunks in order
// and answers them so, and bytes are placed only while every chunk before was full.
struct ChunkedRead : public kj::Refcounted {
  ChunkedRead(kj::Array<kj::Promise<Answer>> answers, kj::Array<uint64_t> sizes, PlaceFn place)
      : answers(kj::mv(answers)), sizes(kj::mv(sizes)), place(kj::mv(place)) {}

  kj::Array<kj::Promise<Answer>> answers;
  kj::Array<uint64_t> sizes;
  PlaceFn place;
  // Bytes placed in the program's buffer: the answer, once the read is over.
  uint64_t placed = 0;
  // Bytes the agent's reads took (each moves the agent's file offset by its result).
  uint64_t taken = 0;
  // A short, failed or unplaceable chunk ended the read; later answers are only counted.
  bool stopped = false;
  // Why nothing was placed: the first chunk's -errno or -EFAULT (0: end of file)...
  int64_t error = 0;
  // ... or its exception.
  kj::Maybe<kj::Exception> failure;

  // Waits for the answers from `i` on, one after the other: all of them, even after the read
  // stopped, because `excess` needs every chunk's result.
  kj::Promise<ChunkedReadResult> from(size_t i, bool atFilePosition) {
    if (i == answers.size()) {
      return finish(atFilePosition);
    }
    return kj::mv(answers[i]).then(
        [this, i, atFilePosition](Answer&& a) {
          take(i, kj::mv(a));
          return from(i + 1, atFilePosition);
        },
        [this, i, atFilePosition](kj::Exception&& e) {
          fail(kj::mv(e));
          return from(i + 1, atFilePosition);
        });
  }

  void take(size_t i, Answer&& a) {
    if (a.result > 0) {
      taken += a.result;
    }
    if (stopped) {
      return;  // Bytes after a short chunk: the file grew between the two reads.
    }
    if (a.result < 0) {
      stop(a.result);
      return;
    }
    // Never place more than was asked, whatever the peer sends.
    KJ_REQUIRE(a.data.size() == static_cast<uint64_t>(a.result) && a.data.size() <= sizes[i],
               "agent answered a read with more bytes than asked");
    int64_t n = a.data.size() > 0 ? place(placed, a.data) : 0;
    placed += kj::max(n, int64_t(0));
    if (n < static_cast<int64_t>(a.data.size())) {
      stop(-EFAULT);  // The buffer ran into memory the program cannot write.
    } else if (a.data.size() < sizes[i]) {
      stop(0);  // End of file, as the agent saw it when this chunk ran.
    }
  }

  void fail(kj::Exception&& e) {
    if (!stopped && placed == 0) {
      failure = kj::mv(e);
    }
    stopped = true;
  }

  void stop(int64_t why) {
    if (placed == 0) {
      error = why;
    }
    stopped = true;
  }

  ChunkedReadResult finish(bool atFilePosition) {
    uint64_t excess = atFilePosition ? taken - placed : 0;
    if (placed == 0) {
      KJ_IF_MAYBE(e, failure) {
        kj::throwFatalException(kj::mv(*e));
      }
      return {error, excess};
    }
    return {static_cast<int64_t>(placed), excess};
  }
};

}  // namespace

kj::Promise<ChunkedReadResult> chunkedRead(proto::Node::Client node, int64_t offset,
                                           uint64_t count, uint64_t chunk, PlaceFn place) {
  KJ_REQUIRE(chunk > 0);
  kj::Vector<kj::Promise<Answer>> answers;
  kj::Vector<uint64_t> sizes;
  for (uint64_t at = 0; at < count; at += chunk) {
    uint64_t size = kj::min(chunk, count - at);
    sizes.add(size);
    if (offset < 0) {
      auto req = node.readRequest();
      req.setCount(size);
      answers.add(answerOf(req.send()));
    } else {
      auto req = node.preadRequest();
      req.setCount(size);
      req.setOffset(offset + static_cast<int64_t>(at));
      answers.add(answerOf(req.send()));
    }
  }
  auto job = kj::refcounted<ChunkedRead>(answers.releaseAsArray(), sizes.releaseAsArray(),
                                         kj::mv(place));
  auto& j = *job;
  return j.from(0, offset < 0).attach(kj::mv(job));
}

}  // namespace sb
