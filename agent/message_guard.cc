#include "message_guard.h"

#include <sys/socket.h>

#include <capnp/rpc.capnp.h>
#include <kj/debug.h>

namespace sb {

namespace {

[[noreturn]] void refuse(kj::String why) {
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::mv(why)));
}

uint32_t le32(const kj::byte* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// A message that owns the words it was read into.
class FrameReader final: public capnp::MessageReader {
public:
  FrameReader(kj::Array<capnp::word> words, kj::Array<kj::ArrayPtr<const capnp::word>> segments,
              capnp::ReaderOptions options)
      : capnp::MessageReader(options), words(kj::mv(words)), segments(kj::mv(segments)) {}

  kj::ArrayPtr<const capnp::word> getSegment(uint id) override {
    return id < segments.size() ? segments[id] : nullptr;
  }

private:
  kj::Array<capnp::word> words;
  kj::Array<kj::ArrayPtr<const capnp::word>> segments;
};

void checkException(capnp::rpc::Exception::Reader e) {
  auto type = uint16_t(e.getType());
  if (type > uint16_t(capnp::rpc::Exception::Type::UNIMPLEMENTED)) {
    refuse(kj::str("an RPC exception of unknown type ", type,
                   " (capnp 0.9.2 would use it unchecked)"));
  }
}

void checkMessage(capnp::rpc::Message::Reader m, int depth) {
  switch (m.which()) {
    case capnp::rpc::Message::UNIMPLEMENTED:
      // The peer echoes one of our messages; it may carry an exception as well. One level is
      // all a well-behaved peer ever sends.
      if (depth > 0) {
        refuse(kj::str("an `unimplemented` RPC message nested in another"));
      }
      checkMessage(m.getUnimplemented(), depth + 1);
      break;
    case capnp::rpc::Message::ABORT:
      checkException(m.getAbort());
      break;
    case capnp::rpc::Message::RETURN: {
      auto r = m.getReturn();
      if (r.isException()) {
        checkException(r.getException());
      }
      break;
    }
    case capnp::rpc::Message::RESOLVE: {
      auto r = m.getResolve();
      if (r.isException()) {
        checkException(r.getException());
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace

void checkRpcMessage(capnp::MessageReader& message) {
  checkMessage(message.getRoot<capnp::rpc::Message>(), 0);
}

MessageGuard::MessageGuard(kj::AsyncIoStream& stream, const Limits& limits)
    : MessageGuard(stream, limits, kj::newPromiseAndFulfiller<void>()) {}

MessageGuard::MessageGuard(kj::AsyncIoStream& stream, const Limits& limits,
                           kj::PromiseFulfillerPair<void> ended)
    : stream(stream), limits(limits), peerEndedFulfiller(kj::mv(ended.fulfiller)),
      peerEnded(ended.promise.fork()) {}

void MessageGuard::watchQueue(kj::Function<size_t()> unsentBytes) {
  unsent = kj::mv(unsentBytes);
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> MessageGuard::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd>, capnp::ReaderOptions options, kj::ArrayPtr<capnp::word>) {
  return whenBelowUnsentLimit()
      .then([this, options]() { return readFrame(options); })
      .then(
          [this](kj::Maybe<capnp::MessageReaderAndFds> message) {
            if (message == nullptr) {
              peerEndedFulfiller->fulfill();
            }
            return kj::mv(message);
          },
          [this](kj::Exception&& e) -> kj::Maybe<capnp::MessageReaderAndFds> {
            failed = kj::str(e.getDescription());
            peerEndedFulfiller->fulfill();
            kj::throwFatalException(kj::mv(e));
          });
}

kj::Maybe<kj::StringPtr> MessageGuard::failure() const {
  KJ_IF_MAYBE(f, failed) {
    return f->asPtr();
  }
  return nullptr;
}

kj::Promise<void> MessageGuard::whenBelowUnsentLimit() {
  KJ_IF_MAYBE(f, unsent) {
    if ((*f)() > limits.maxUnsentBytes) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      writeDone = kj::mv(paf.fulfiller);
      // evalLast: the network lowers its queue size in a continuation of the write that woke
      // us; look again only after it has run.
      return paf.promise.then(
          [this]() { return kj::evalLast([this]() { return whenBelowUnsentLimit(); }); });
    }
  }
  return kj::READY_NOW;
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> MessageGuard::readFrame(
    capnp::ReaderOptions options) {
  auto first = kj::heapArray<kj::byte>(8);
  auto* firstAt = first.begin();
  return stream.tryRead(firstAt, 8, 8).then(
      [this, first = kj::mv(first), options](size_t n) mutable
      -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
        if (n == 0) {
          return kj::Maybe<capnp::MessageReaderAndFds>(nullptr);  // EOF between messages
        }
        if (n < 8) {
          refuse(kj::str("the connection ended inside a frame header (", n, " of 8 bytes)"));
        }
        // 64-bit: a count of 0xFFFFFFFF is 2^32 segments here, not 0.
        uint64_t segments = uint64_t(le32(first.begin())) + 1;
        if (segments > limits.maxSegments) {
          refuse(kj::str("a frame announced ", segments, " segments (at most ",
                         limits.maxSegments, ")"));
        }
        // The table: a count and one size per segment, padded to whole words.
        size_t tableBytes = (4 + 4 * segments + 7) & ~size_t(7);
        auto table = kj::heapArray<kj::byte>(tableBytes);
        memcpy(table.begin(), first.begin(), 8);
        auto more = tableBytes == 8 ? kj::Promise<size_t>(size_t(0))
                                    : stream.tryRead(table.begin() + 8, tableBytes - 8,
                                                     tableBytes - 8);
        return more.then([this, table = kj::mv(table), segments, options](size_t got) mutable
                         -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
          if (got < table.size() - 8) {
            refuse(kj::str("the connection ended inside a segment table"));
          }
          auto sizes = kj::heapArray<uint64_t>(segments);
          uint64_t total = 0;
          for (uint64_t i = 0; i < segments; ++i) {
            sizes[i] = le32(table.begin() + 4 + 4 * i);
            total += sizes[i];
          }
          if (total > limits.maxMessageWords) {
            refuse(kj::str("a frame announced ", total * 8, " bytes (at most ",
                           limits.maxMessageWords * 8, ")"));
          }
          if (!authenticated_) {
            // Checked before the body is allocated: the frame's announced size is what it would
            // pin, whether or not the peer ever sends it.
            if (total * 8 > limits.preAuthMessageBytes) {
              refuse(kj::str("a frame announced ", total * 8, " bytes before the handshake "
                             "(at most ", limits.preAuthMessageBytes, " until it is done)"));
            }
            preAuthRead += table.size() + total * 8;
            if (preAuthRead > limits.preAuthBytes) {
              refuse(kj::str("more than ", limits.preAuthBytes, " bytes before the handshake"));
            }
          }
          auto words = kj::heapArray<capnp::word>(total);
          auto* wordsAt = words.begin();
          size_t bytes = total * sizeof(capnp::word);
          auto body = bytes == 0 ? kj::Promise<size_t>(size_t(0))
                                 : stream.tryRead(wordsAt, bytes, bytes);
          return body.then([words = kj::mv(words), sizes = kj::mv(sizes), bytes, options](
                               size_t read) mutable -> kj::Maybe<capnp::MessageReaderAndFds> {
            if (read < bytes) {
              refuse(kj::str("the connection ended inside a message (", read, " of ", bytes,
                             " bytes)"));
            }
            auto segmentPtrs = kj::heapArray<kj::ArrayPtr<const capnp::word>>(sizes.size());
            const capnp::word* at = words.begin();
            for (size_t i = 0; i < sizes.size(); ++i) {
              segmentPtrs[i] = kj::arrayPtr(at, sizes[i]);
              at += sizes[i];
            }
            auto reader = kj::heap<FrameReader>(kj::mv(words), kj::mv(segmentPtrs), options);
            checkRpcMessage(*reader);
            return capnp::MessageReaderAndFds{kj::mv(reader), nullptr};
          });
        });
      });
}

void MessageGuard::wroteSomething() {
  KJ_IF_MAYBE(f, writeDone) {
    (*f)->fulfill();
    writeDone = nullptr;
  }
}

kj::Promise<void> MessageGuard::writeMessage(
    kj::ArrayPtr<const int> fds, kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  KJ_REQUIRE(fds.size() == 0, "the agent never sends file descriptors");
  return afterWrite(capnp::writeMessage(stream, segments));
}

kj::Promise<void> MessageGuard::writeMessages(
    kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) {
  return afterWrite(capnp::writeMessages(stream, messages));
}

kj::Promise<void> MessageGuard::afterWrite(kj::Promise<void> written) {
  return written.then([this]() { wroteSomething(); },
                      [this](kj::Exception&& e) {
                        // A reader held back by backpressure must not wait for writes that will
                        // never complete: it fails too, and the connection ends.
                        KJ_IF_MAYBE(f, writeDone) {
                          (*f)->reject(kj::cp(e));
                          writeDone = nullptr;
                        }
                        kj::throwFatalException(kj::mv(e));
                      });
}

kj::Maybe<int> MessageGuard::getSendBufferSize() {
  int size = 0;
  uint length = sizeof(size);
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    stream.getsockopt(SOL_SOCKET, SO_SNDBUF, &size, &length);
  })) {
    return nullptr;  // not a socket (a pipe in tests, stdio over ssh)
  }
  return size;
}

kj::Promise<void> MessageGuard::end() {
  stream.shutdownWrite();
  return kj::READY_NOW;
}

}  // namespace sb
