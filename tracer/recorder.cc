#include "recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <fmt/core.h>
#include <kj/debug.h>

#include "recording.capnp.h"
#include "splitbrain.capnp.h"

namespace sb {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

kj::Promise<kj::Own<capnp::ClientHook>> settledHook(kj::Own<capnp::ClientHook> hook) {
  KJ_IF_MAYBE(more, hook->whenMoreResolved()) {
    return more->then([](kj::Own<capnp::ClientHook> next) { return settledHook(kj::mv(next)); });
  }
  return kj::mv(hook);
}

class Recorder::Proxy final : public capnp::Capability::Server {
 public:
  Proxy(kj::Own<Recorder> recorder, uint32_t id, capnp::Capability::Client inner)
      : recorder(kj::mv(recorder)), id(id), inner(kj::mv(inner)) {}
  ~Proxy() noexcept(false) { recorder->proxies_.erase(hook); }
  DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    return {recorder->forward(*this, interfaceId, methodId, context), false};
  }

  kj::Own<Recorder> recorder;
  uint32_t id;
  capnp::Capability::Client inner;
  const capnp::ClientHook* hook = nullptr;
};

// One call from the moment it is made: its event, built as it goes, with the capability tables
// of its params and results.
struct Recorder::Pending {
  kj::Own<Recorder> recorder;
  capnp::MallocMessageBuilder message;
  capnp::BuilderCapabilityTable paramCaps;
  capnp::BuilderCapabilityTable resultCaps;
  rec::Call::Builder call;
  Clock::time_point start = Clock::now();
  bool written = false;

  explicit Pending(kj::Own<Recorder> r)
      : recorder(kj::mv(r)), call(message.initRoot<rec::Event>().initCall()) {}
  ~Pending() noexcept(false) {
    // Dropped before its answer (a signal cancelled it): recorded as unanswered.
    if (!written) {
      call.setCancelled();
      recorder->write(*this);
    }
    recorder->inFlight_.erase(call.getSeq());
  }
};

Recorder::Recorder(int fd, kj::String path) : fd_(fd), path_(kj::mv(path)) {}

kj::Own<Recorder> Recorder::create(kj::StringPtr path, kj::ArrayPtr<const kj::String> argv,
                                   kj::ArrayPtr<const Target> targets) {
  int fd = open(path.cStr(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    KJ_FAIL_REQUIRE(kj::str("--record ", path, ": ", strerror(errno)));
  }
  auto recorder = kj::refcounted<Recorder>(fd, kj::str(path));
  capnp::MallocMessageBuilder message;
  auto header = message.initRoot<rec::RecordingHeader>();
  header.setFormatVersion(rec::FORMAT_VERSION);
  header.setProtocolVersion(proto::PROTOCOL_VERSION);
  header.setSbrunVersion(SB_VERSION);
  auto args = header.initArgv(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    args.set(i, argv[i]);
  }
  auto list = header.initTargets(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    list[i].setName(targets[i].name);
    list[i].setUrl(targets[i].url);
  }
  struct timeval now;
  gettimeofday(&now, nullptr);
  header.setStartedUnixMillis(int64_t(now.tv_sec) * 1000 + now.tv_usec / 1000);
  recorder->writeMessage(message);
  KJ_REQUIRE(!recorder->failed_, kj::str("--record ", path, ": cannot write the header"));
  return recorder;
}

Recorder::~Recorder() noexcept(false) {
  if (fd_ >= 0) {
    close(fd_);
  }
}

capnp::Capability::Client Recorder::adopt(capnp::Capability::Client inner, uint32_t& id) {
  id = nextCap_++;
  auto server = kj::heap<Proxy>(kj::addRef(*this), id, kj::mv(inner));
  auto& proxy = *server;
  capnp::Capability::Client client(kj::mv(server));
  proxy.hook = capnp::ClientHook::from(kj::cp(client)).get();
  proxies_[proxy.hook] = &proxy;
  return client;
}

capnp::Capability::Client Recorder::wrap(capnp::Capability::Client agent, uint16_t target,
                                         uint32_t generation) {
  uint32_t id = 0;
  auto client = adopt(kj::mv(agent), id);
  capnp::MallocMessageBuilder message;
  auto connect = message.initRoot<rec::Event>().initConnect();
  connect.setTarget(target);
  connect.setGeneration(generation);
  connect.setAgent(id);
  writeMessage(message);
  return client;
}

void Recorder::random(kj::StringPtr lineage, int64_t result, kj::ArrayPtr<const kj::byte> bytes) {
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<rec::Event>().initRandom();
  r.setThread(lineage);
  r.setResult(result);
  r.setBytes(bytes);
  writeMessage(message);
}

capnp::Capability::Client Recorder::unwrap(capnp::Capability::Client wrapped) {
  auto hook = capnp::ClientHook::from(kj::cp(wrapped));
  auto found = proxies_.find(hook.get());
  if (found == proxies_.end()) {
    return wrapped;
  }
  return found->second->inner;
}

kj::Promise<void> Recorder::forward(
    Proxy& proxy, uint64_t interfaceId, uint16_t methodId,
    capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) {
  // Cancelling the program's call (a signal) must reach the agent, as without a recording.
  context.allowCancellation();
  auto pending = kj::heap<Pending>(kj::addRef(*this));
  auto& p = *pending;
  p.call.setSeq(nextSeq_++);
  inFlight_[p.call.getSeq()] = &p;
  p.call.setCap(proxy.id);
  p.call.setInterfaceId(interfaceId);
  p.call.setMethodId(methodId);
  p.paramCaps.imbue(p.call.getParams()).set(context.getParams());
  context.releaseParams();

  // The params' capabilities are ours (proxies): the agent gets what they stand for.
  auto table = p.paramCaps.getTable();
  auto hooks = kj::heapArrayBuilder<kj::Promise<kj::Own<capnp::ClientHook>>>(table.size());
  for (auto& entry : table) {
    KJ_IF_MAYBE(h, entry) {
      hooks.add(settledHook((*h)->addRef()));
    } else {
      hooks.add(kj::Own<capnp::ClientHook>());
    }
  }
  auto inner = proxy.inner;
  return kj::joinPromises(hooks.finish())
      .then([this, &p, inner = kj::mv(inner), interfaceId, methodId](
                kj::Array<kj::Own<capnp::ClientHook>> settledHooks) mutable {
        auto ids = p.call.initParamCaps(settledHooks.size());
        auto forwarded = kj::heapArrayBuilder<kj::Maybe<kj::Own<capnp::ClientHook>>>(
            settledHooks.size());
        for (size_t i = 0; i < settledHooks.size(); ++i) {
          auto& h = settledHooks[i];
          if (h.get() == nullptr) {
            ids.set(i, 0);
            forwarded.add(nullptr);
            continue;
          }
          auto found = proxies_.find(h.get());
          if (found == proxies_.end()) {
            ids.set(i, 0xffffffff);  // Not one of ours (a broken capability): passed on as is.
            forwarded.add(h->addRef());
          } else {
            ids.set(i, found->second->id);
            forwarded.add(capnp::ClientHook::from(kj::cp(found->second->inner)));
          }
        }
        capnp::ReaderCapabilityTable unwrapped(forwarded.finish());
        auto request = inner.typelessRequest(interfaceId, methodId, nullptr);
        request.set(unwrapped.imbue(p.call.getParams().asReader()));
        return request.send();
      })
      .then(
          [this, &p, context](capnp::Response<capnp::AnyPointer>&& response) mutable {
            auto results = p.call.initResults();
            p.resultCaps.imbue(results.getValue()).set(response);
            // Each capability of the answer gets a proxy (and a number) of its own.
            auto table = p.resultCaps.getTable();
            auto ids = results.initCaps(table.size());
            auto wrapped =
                kj::heapArrayBuilder<kj::Maybe<kj::Own<capnp::ClientHook>>>(table.size());
            for (size_t i = 0; i < table.size(); ++i) {
              KJ_IF_MAYBE(h, table[i]) {
                uint32_t id = 0;
                auto client = adopt(capnp::Capability::Client((*h)->addRef()), id);
                ids.set(i, id);
                wrapped.add(capnp::ClientHook::from(kj::mv(client)));
              } else {
                ids.set(i, 0);
                wrapped.add(nullptr);
              }
            }
            capnp::ReaderCapabilityTable answer(wrapped.finish());
            context.getResults().set(answer.imbue(results.getValue().asReader()));
            write(p);
          },
          [this, &p](kj::Exception&& e) {
            auto ex = p.call.initException();
            ex.setType(static_cast<uint8_t>(e.getType()));
            ex.setDescription(e.getDescription());
            write(p);
            kj::throwRecoverableException(kj::mv(e));
          })
      .attach(kj::mv(pending));
}

void Recorder::write(Pending& p) {
  p.written = true;
  p.call.setMicros(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - p.start).count()));
  writeMessage(p.message);
}

void Recorder::writeMessage(capnp::MessageBuilder& message) {
  if (fd_ < 0 || failed_) {
    return;
  }
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { capnp::writePackedMessageToFd(fd_, message); })) {
    failed_ = true;
    fmt::print(stderr, "sbrun: --record {}: {}; the recording ends here\n", path_.cStr(),
               e->getDescription().cStr());
  }
}

bool Recorder::finish() {
  // Calls still in flight (a read of a pipe nobody wrote to) were never answered.
  kj::Vector<Pending*> open;
  for (auto& [seq, p] : inFlight_) {
    open.add(p);
  }
  for (auto* p : open) {
    if (!p->written) {
      p->call.setCancelled();
      write(*p);
    }
  }
  if (fd_ >= 0) {
    if (close(fd_) != 0 && !failed_) {
      failed_ = true;
      fmt::print(stderr, "sbrun: --record {}: {}\n", path_.cStr(), strerror(errno));
    }
    fd_ = -1;
  }
  return !failed_;
}

}  // namespace sb
