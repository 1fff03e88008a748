// --record FILE: every call sbrun makes on a target, and the target's answer, written to a
// recording (schema/recording.capnp) that `--replay FILE` plays back with no agent at all
// (replayer.h, docs/replay.md).
//
// It sits on the link as a capability proxy: the Agent of each new connection is wrapped, and so
// is every capability handed out through it (Session, Node, Process), so the tracer's handlers do
// not change. A call is forwarded with its capabilities unwrapped (the agent must see its own
// Nodes), its answer's capabilities are wrapped in turn, and the pair is written when the call
// ends. The proxy works on the wire's capability tables, not on the schema: a method added to
// the protocol is recorded without a change here.

#pragma once

#include <capnp/capability.h>
#include <capnp/message.h>
#include <kj/refcount.h>
#include <kj/string.h>

#include <unordered_map>

namespace sb {

// A capability as far as it resolves: a Node passed on while the call that made it is still on
// its way is a promise until then.
kj::Promise<kj::Own<capnp::ClientHook>> settledHook(kj::Own<capnp::ClientHook> hook);

class Recorder final : public kj::Refcounted {
 public:
  struct Target {
    kj::StringPtr name;
    kj::StringPtr url;
  };
  // Creates FILE (0600, replacing one that exists) and writes the header. Throws a kj::Exception
  // whose description says what went wrong when it cannot.
  static kj::Own<Recorder> create(kj::StringPtr path, kj::ArrayPtr<const kj::String> argv,
                                  kj::ArrayPtr<const Target> targets);
  ~Recorder() noexcept(false);

  // The Agent capability of a new connection to target `target` (an index into the header's
  // list), wrapped: everything reached through it is recorded.
  capnp::Capability::Client wrap(capnp::Capability::Client agent, uint16_t target,
                                 uint32_t generation);
  // What a wrapped capability stands for, for calls that must stay out of the recording (the
  // heartbeat's pings). A capability this recorder did not wrap is returned as it is.
  capnp::Capability::Client unwrap(capnp::Capability::Client wrapped);

  // A getrandom of thread `lineage` (Task::lineage) that ran here, and what it gave.
  void random(kj::StringPtr lineage, int64_t result, kj::ArrayPtr<const kj::byte> bytes);

  // Writes the calls still waiting for an answer as unanswered and closes the file. Returns
  // false (after saying why on stderr) when the recording is incomplete (a write failed).
  bool finish();

  // Internal: the proxy and an unfinished call.
  class Proxy;
  struct Pending;
  Recorder(int fd, kj::String path);

 private:
  int fd_;
  kj::String path_;
  bool failed_ = false;
  uint64_t nextSeq_ = 0;
  uint32_t nextCap_ = 1;
  // The ClientHook of each proxy's client, to find the proxy behind a capability passed back.
  std::unordered_map<const capnp::ClientHook*, Proxy*> proxies_;
  // Calls in flight, written as unanswered by finish().
  std::unordered_map<uint64_t, Pending*> inFlight_;

  capnp::Capability::Client adopt(capnp::Capability::Client inner, uint32_t& id);
  kj::Promise<void> forward(Proxy& proxy, uint64_t interfaceId, uint16_t methodId,
                            capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context);
  void write(Pending& call);
  void writeMessage(capnp::MessageBuilder& message);
};

}  // namespace sb
