// MessageGuard: the agent's reader of Cap'n Proto frames, in place of capnp's own (PITFALLS #20).
//
// capnp 0.9.2's async frame reader computes the segment count as a 32-bit `n + 1`, so a count of
// 0xFFFFFFFF wraps to 0 and slips past its "too many segments" check; and its RPC layer casts a
// peer's Exception.type to kj::Exception::Type unchecked, which kj later uses as an array index.
// Both are reachable by any peer that gets to the RPC layer. This MessageStream
//
//   - parses the frame header itself, in 64-bit arithmetic: the segment count and the total size
//     are checked against Limits (maxSegments, maxMessageWords) before anything is allocated, and
//     a header or body cut short by EOF is an error, not a message;
//   - hands capnp a reader with the agent's ReaderOptions (traversal and nesting limits);
//   - refuses an RPC message carrying an Exception (abort, return, resolve, also inside
//     `unimplemented`) whose type is not one kj knows;
//   - stops reading requests while more than Limits::maxUnsentBytes of answers wait to be written
//     (backpressure): a client that never reads cannot grow the agent's memory.
//
// Any violation throws a FAILED exception, which ends the connection (and with it the session).

#pragma once

#include <capnp/rpc-twoparty.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/function.h>
#include <kj/timer.h>

#include "resource_limits.h"

namespace sb {

class MessageGuard final: public capnp::MessageStream {
public:
  MessageGuard(kj::AsyncIoStream& stream, const Limits& limits);

  // How many bytes of outgoing messages are queued and not yet written (the network's
  // getCurrentQueueSize()). Set once the network exists; until then nothing is queued.
  void watchQueue(kj::Function<size_t()> unsentBytes);

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratchSpace) override;
  kj::Promise<void> writeMessage(kj::ArrayPtr<const int> fds,
                                 kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments)
      override;
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override;
  kj::Maybe<int> getSendBufferSize() override;
  kj::Promise<void> end() override;

  // Why the guard ended the connection, if it did (for the agent's log).
  kj::Maybe<kj::StringPtr> failure() const;

  // Resolves once the peer has sent its last byte: EOF between messages, or input the guard
  // refused. The listener then gives the session a grace period to finish, not forever.
  kj::Promise<void> whenPeerEnded() { return peerEnded.addBranch(); }

  // True while reading is held back because too many answers wait to be written: the agent,
  // not the peer, is then why nothing is read (the listener's silence check looks at writes).
  bool holdingBack() const { return writeDone != nullptr; }

  // The peer has completed its Agent.handshake: from now on frames may be as big as
  // Limits::maxMessageWords. Until then each frame is held to Limits::preAuthMessageBytes and
  // the whole conversation to Limits::preAuthBytes (issue 17: memory pinning by strangers).
  void authenticated() { authenticated_ = true; }

private:
  kj::AsyncIoStream& stream;
  const Limits& limits;
  kj::Maybe<kj::Function<size_t()>> unsent;
  // Fulfilled whenever a write completes, for a reader waiting on backpressure.
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> writeDone;
  kj::Maybe<kj::String> failed;
  bool authenticated_ = false;
  uint64_t preAuthRead = 0;  // bytes of frames announced before authenticated()
  kj::Own<kj::PromiseFulfiller<void>> peerEndedFulfiller;
  kj::ForkedPromise<void> peerEnded;

  MessageGuard(kj::AsyncIoStream& stream, const Limits& limits,
               kj::PromiseFulfillerPair<void> ended);

  kj::Promise<void> whenBelowUnsentLimit();
  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> readFrame(capnp::ReaderOptions options);
  void wroteSomething();
  // `written`, then wroteSomething(); a failed write also fails a reader held back for it.
  kj::Promise<void> afterWrite(kj::Promise<void> written);
};

// Refuses (throws) an RPC message that carries an Exception of a type kj does not know. Exposed
// for the unit tests.
void checkRpcMessage(capnp::MessageReader& message);

}  // namespace sb
