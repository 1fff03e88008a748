// --replay FILE: the targets of a recording (recorder.h) played back with no agent at all.
//
// The Agent of each connection is a local capability that answers every call from the
// recording: the first unanswered recorded call on the same capability, with the same method and
// the same params (capabilities compared by their recorded numbers, the fields in
// kReplayLoose ignored or only checked), gets that call's results, exception or silence. Calls
// on one capability keep their order; calls of different threads on one capability may come in
// another order, as they may in any run. A call the recording does not have ends the run with a
// divergence report (exit status 125); so does a recorded call left unmade at the end. Written
// data that differs from the recording is reported and the run goes on.
//
// Local calls run for real. What a replay cannot reproduce is in docs/replay.md.

#pragma once

#include <capnp/capability.h>
#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <kj/function.h>
#include <kj/refcount.h>
#include <kj/string.h>
#include <kj/vector.h>

#include <deque>
#include <map>
#include <string>
#include <unordered_map>

#include "recording.capnp.h"

namespace sb {

class Replayer final : public kj::Refcounted {
 public:
  // Reads the whole recording. Throws a kj::Exception that says what is wrong with the file.
  static kj::Own<Replayer> open(kj::StringPtr path);
  ~Replayer() noexcept(false);

  rec::RecordingHeader::Reader header() const { return header_; }
  // The Agent of connection `generation` to target `target` (an index into the header's
  // targets). Throws when the recording has no such connection.
  capnp::Capability::Client bootstrap(uint16_t target, uint32_t generation);

  // The next recorded getrandom of thread `lineage` (Task::lineage), or null when the recording
  // has no more for it (the call then runs for real).
  struct RandomAnswer {
    int64_t result;
    kj::ArrayPtr<const kj::byte> bytes;
  };
  kj::Maybe<RandomAnswer> random(kj::StringPtr lineage);

  // Called once, with the report, when the program diverges from the recording; the run must
  // end then (exit status 125).
  void onDivergence(kj::Function<void(kj::StringPtr report)> hook) { divergence_ = kj::mv(hook); }
  // Whether the run diverged (the report went to the hook).
  bool diverged() const { return diverged_; }
  // At the end of the run: reports recorded calls that were never made (as a divergence) and
  // the count of data mismatches. Returns false when the run did not follow the recording.
  bool finish();

  class Server;
  Replayer(kj::String path);

 private:
  struct Recorded {
    rec::Call::Reader call;
    bool used = false;
  };
  kj::String path_;
  kj::Vector<kj::Own<capnp::MessageReader>> messages_;
  rec::RecordingHeader::Reader header_;
  kj::Vector<rec::Connect::Reader> connects_;
  kj::Vector<Recorded> calls_;  // in the order they were made (seq)
  // Per cap id: the indexes into calls_ of its calls not yet answered, in order.
  std::unordered_map<uint32_t, std::deque<size_t>> open_;
  // Per thread lineage: its recorded getrandom answers, in order.
  std::unordered_map<std::string, std::deque<rec::Random::Reader>> randoms_;
  // The program's temporary names and the recorded ones they stand for (last components).
  std::map<std::string, std::string> aliases_;
  // The servers made so far, by cap id, and the hooks of their clients.
  std::unordered_map<uint32_t, Server*> servers_;
  std::unordered_map<const capnp::ClientHook*, uint32_t> hookIds_;
  kj::Maybe<kj::Function<void(kj::StringPtr)>> divergence_;
  bool diverged_ = false;
  uint64_t answered_ = 0;
  uint64_t dataMismatches_ = 0;

  capnp::Capability::Client serverFor(uint32_t id);
  kj::Promise<void> answer(Server& server, uint64_t interfaceId, uint16_t methodId,
                           capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context);
  kj::Promise<void> answerWith(Server& server, uint64_t interfaceId, uint16_t methodId,
                               capnp::AnyPointer::Reader params, kj::ArrayPtr<const uint32_t> ids,
                               capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context);
  // The program made a temporary name (an exclusive create, a mkdir) that differs from the
  // recorded one only where a template's random part would: the recorded call, and from now on
  // the program's name stands for the recorded one (aliases_).
  kj::Maybe<size_t> temporaryName(Server& server, capnp::InterfaceSchema schema,
                                  capnp::InterfaceSchema::Method method,
                                  capnp::DynamicStruct::Reader asked,
                                  kj::ArrayPtr<const uint32_t> ids);
  [[noreturn]] void diverge(kj::String report);
  void reportDivergence(kj::StringPtr report);
  friend class Server;
};

}  // namespace sb
