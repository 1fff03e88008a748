#include "replayer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>

#include <capnp/dynamic.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <fmt/core.h>
#include <kj/debug.h>
#include <kj/io.h>

#include "recorder.h"
#include "splitbrain.capnp.h"

namespace sb {

namespace {

// The protocol's interfaces, to read a call's params by its method's schema.
capnp::InterfaceSchema protocolInterface(uint64_t id) {
  static const capnp::InterfaceSchema kInterfaces[] = {
      capnp::Schema::from<proto::Agent>(),
      capnp::Schema::from<proto::Session>(),
      capnp::Schema::from<proto::Node>(),
      capnp::Schema::from<proto::Process>(),
  };
  for (auto& schema : kInterfaces) {
    if (schema.getProto().getId() == id) {
      return schema;
    }
  }
  KJ_FAIL_REQUIRE(kj::str("the recording has a call on interface ", kj::hex(id),
                          " which this sbrun does not know: replay it with the sbrun that "
                          "recorded it"));
}

// Params fields that do not decide whether a call is the recorded one. IGNORE: values that
// differ from run to run by nature (process ids, the client's name, a terminal's size, a
// timeout computed from the clock). CHECK: data the program writes: a difference is reported
// (the program wrote something else) and the recorded answer still stands.
enum class Loose : uint8_t { IGNORE, CHECK };
struct LooseField {
  const char* interface;
  const char* method;
  const char* path;
  Loose how;
  const char* onlyIf = nullptr;  // a Bool field of the same struct that must be true
};
constexpr LooseField kReplayLoose[] = {
    {"Agent", "handshake", "hello.token", Loose::IGNORE},
    {"Agent", "handshake", "hello.clientName", Loose::IGNORE},
    {"Agent", "handshake", "hello.heartbeatMillis", Loose::IGNORE},
    {"Session", "releaseOwner", "owner", Loose::IGNORE},
    {"Session", "poll", "timeoutNs", Loose::IGNORE},
    {"Session", "spawn", "request.terminalRows", Loose::IGNORE},
    {"Session", "spawn", "request.terminalCols", Loose::IGNORE},
    {"Session", "spawn", "request.envp", Loose::CHECK},
    {"Node", "lock", "owner", Loose::IGNORE},
    {"Node", "lock", "lock.pid", Loose::IGNORE},  // unused by the kernel, often stack garbage
    {"Node", "releaseLocks", "owner", Loose::IGNORE},
    {"Node", "write", "data", Loose::CHECK},
    {"Node", "pwrite", "data", Loose::CHECK},
    {"Node", "sendMsg", "data", Loose::CHECK},
    {"Node", "setXattr", "value", Loose::CHECK},
    // The program's buffer address: where it sits differs from run to run (ASLR).
    {"Node", "ioctl", "arg", Loose::IGNORE, "pointer"},
};

kj::StringPtr shortName(capnp::InterfaceSchema schema) {
  auto name = schema.getShortDisplayName();
  return name;
}

kj::Maybe<Loose> looseness(capnp::InterfaceSchema schema, kj::StringPtr method,
                           kj::StringPtr path, capnp::DynamicStruct::Reader in) {
  auto iface = shortName(schema);
  for (auto& f : kReplayLoose) {
    if (iface == f.interface && method == f.method && path == f.path) {
      if (f.onlyIf != nullptr && !in.get(f.onlyIf).as<bool>()) {
        return nullptr;
      }
      return f.how;
    }
  }
  return nullptr;
}

bool sameValue(const capnp::DynamicValue::Reader& a, const capnp::DynamicValue::Reader& b);

kj::String clip(kj::String text, size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  return kj::str(text.slice(0, limit), "...");
}

struct Comparison {
  capnp::InterfaceSchema schema;
  kj::StringPtr method;
  bool same = true;
  bool dataDiffers = false;
  kj::String firstDifference;  // the path of the first field that differs
  kj::String dataField;        // the first CHECK field that differs
  // Temporary names the program made that differ from the recorded ones (Replayer::aliases_),
  // applied to the program's path fields before they are compared.
  const std::map<std::string, std::string>* aliases = nullptr;
  bool skipPath = false;       // compare everything but the `path` field (aliasing a name)
};

// The path fields of the protocol's params: where a temporary name may appear.
bool isPathField(kj::StringPtr name) {
  return name == "path" || name == "oldPath" || name == "newPath";
}

// `path` with each component that has an alias replaced by it.
std::string aliased(kj::ArrayPtr<const kj::byte> path,
                    const std::map<std::string, std::string>& aliases) {
  std::string in(reinterpret_cast<const char*>(path.begin()), path.size());
  std::string out;
  size_t start = 0;
  while (start <= in.size()) {
    size_t end = in.find('/', start);
    if (end == std::string::npos) {
      end = in.size();
    }
    std::string part = in.substr(start, end - start);
    auto found = aliases.find(part);
    out += found == aliases.end() ? part : found->second;
    if (end < in.size()) {
      out += '/';
    }
    start = end + 1;
  }
  return out;
}

void compareStruct(capnp::DynamicStruct::Reader a, capnp::DynamicStruct::Reader b,
                   kj::StringPtr prefix, Comparison* cmp, bool& same) {
  auto fields = a.getSchema().getNonUnionFields();
  kj::Vector<capnp::StructSchema::Field> check;
  for (auto f : fields) {
    check.add(f);
  }
  auto wa = a.which();
  auto wb = b.which();
  KJ_IF_MAYBE(fa, wa) {
    KJ_IF_MAYBE(fb, wb) {
      if (fa->getIndex() != fb->getIndex()) {
        same = false;
        if (cmp != nullptr && cmp->firstDifference == nullptr) {
          cmp->firstDifference = kj::str(prefix, fa->getProto().getName(), " (recorded: ",
                                         prefix, fb->getProto().getName(), ")");
        }
        return;
      }
      check.add(*fa);
    }
  }
  for (auto f : check) {
    auto path = kj::str(prefix, f.getProto().getName());
    kj::Maybe<Loose> how =
        cmp != nullptr ? looseness(cmp->schema, cmp->method, path, a) : nullptr;
    if (how == Loose::IGNORE) {
      continue;
    }
    if (f.getType().isInterface()) {
      continue;  // Compared apart, by the numbers of the capability tables.
    }
    bool pathField = cmp != nullptr && prefix.size() == 0 && isPathField(f.getProto().getName());
    if (pathField && cmp->skipPath && f.getProto().getName() == "path") {
      continue;
    }
    bool eq;
    auto va = a.get(f);
    if (pathField && cmp->aliases != nullptr && !cmp->aliases->empty() &&
        va.getType() == capnp::DynamicValue::DATA) {
      auto want = aliased(va.as<capnp::Data>(), *cmp->aliases);
      auto got = b.get(f).as<capnp::Data>();
      eq = want.size() == got.size() && memcmp(want.data(), got.begin(), got.size()) == 0;
    } else if (va.getType() == capnp::DynamicValue::STRUCT) {
      eq = true;
      compareStruct(va.as<capnp::DynamicStruct>(), b.get(f).as<capnp::DynamicStruct>(),
                    kj::str(path, "."), cmp, eq);
    } else {
      eq = sameValue(va, b.get(f));
    }
    if (eq) {
      continue;
    }
    if (how == Loose::CHECK) {
      if (!cmp->dataDiffers) {
        cmp->dataDiffers = true;
        cmp->dataField = kj::mv(path);
      }
      continue;
    }
    same = false;
    if (cmp != nullptr && cmp->firstDifference == nullptr) {
      cmp->firstDifference = kj::str(path, " = ", clip(kj::str(va), 200), " (recorded: ",
                                     clip(kj::str(b.get(f)), 200), ")");
    }
    return;
  }
}

bool sameValue(const capnp::DynamicValue::Reader& a, const capnp::DynamicValue::Reader& b) {
  if (a.getType() != b.getType()) {
    return false;
  }
  switch (a.getType()) {
    case capnp::DynamicValue::UNKNOWN:
    case capnp::DynamicValue::VOID:
      return true;
    case capnp::DynamicValue::BOOL:
      return a.as<bool>() == b.as<bool>();
    case capnp::DynamicValue::INT:
      return a.as<int64_t>() == b.as<int64_t>();
    case capnp::DynamicValue::UINT:
      return a.as<uint64_t>() == b.as<uint64_t>();
    case capnp::DynamicValue::FLOAT:
      return a.as<double>() == b.as<double>();
    case capnp::DynamicValue::TEXT:
      return a.as<capnp::Text>() == b.as<capnp::Text>();
    case capnp::DynamicValue::DATA:
      return a.as<capnp::Data>() == b.as<capnp::Data>();
    case capnp::DynamicValue::ENUM:
      return a.as<capnp::DynamicEnum>().getRaw() == b.as<capnp::DynamicEnum>().getRaw();
    case capnp::DynamicValue::LIST: {
      auto la = a.as<capnp::DynamicList>();
      auto lb = b.as<capnp::DynamicList>();
      if (la.size() != lb.size()) {
        return false;
      }
      for (uint i = 0; i < la.size(); ++i) {
        if (!sameValue(la[i], lb[i])) {
          return false;
        }
      }
      return true;
    }
    case capnp::DynamicValue::STRUCT: {
      bool same = true;
      compareStruct(a.as<capnp::DynamicStruct>(), b.as<capnp::DynamicStruct>(), "", nullptr,
                    same);
      return same;
    }
    case capnp::DynamicValue::CAPABILITY:
      // Compared apart, by the numbers of the capability tables.
      return true;
    case capnp::DynamicValue::ANY_POINTER:
      return true;
  }
  return false;
}

// A recorded call's params, readable: its capabilities read as null (the tables compare them,
// by number).
struct RecordedParams {
  capnp::ReaderCapabilityTable table;
  capnp::DynamicStruct::Reader params;
  RecordedParams(rec::Call::Reader call, capnp::StructSchema type)
      : table(placeholders(call.getParamCaps().size())),
        params(table.imbue(call.getParams()).getAs<capnp::DynamicStruct>(type)) {}
  static kj::Array<kj::Maybe<kj::Own<capnp::ClientHook>>> placeholders(size_t n) {
    auto caps = kj::heapArrayBuilder<kj::Maybe<kj::Own<capnp::ClientHook>>>(n);
    for (size_t i = 0; i < n; ++i) {
      caps.add(capnp::newBrokenCap("a capability of the recording"));
    }
    return caps.finish();
  }
};

// `Node.openAt(path = "x", ...)`, cut at a readable length.
kj::String describeCall(capnp::InterfaceSchema schema, uint16_t methodId,
                        kj::Maybe<capnp::DynamicStruct::Reader> params, uint32_t cap) {
  auto methods = schema.getMethods();
  kj::String name = methodId < methods.size()
                        ? kj::str(methods[methodId].getProto().getName())
                        : kj::str("method ", methodId);
  kj::String args = kj::str("");
  KJ_IF_MAYBE(p, params) {
    args = clip(kj::str(*p), 200);
  }
  return kj::str(shortName(schema), ".", name, args, " on capability #", cap);
}

}  // namespace

class Replayer::Server final : public capnp::Capability::Server {
 public:
  Server(kj::Own<Replayer> replayer, uint32_t id) : replayer(kj::mv(replayer)), id(id) {}
  ~Server() noexcept(false) {
    replayer->servers_.erase(id);
    replayer->hookIds_.erase(hook);
  }
  DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    return {replayer->answer(*this, interfaceId, methodId, context), false};
  }

  kj::Own<Replayer> replayer;
  uint32_t id;
  capnp::ClientHook* hook = nullptr;
};

Replayer::Replayer(kj::String path) : path_(kj::mv(path)) {}
Replayer::~Replayer() noexcept(false) {}

kj::Own<Replayer> Replayer::open(kj::StringPtr path) {
  int fd = ::open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    KJ_FAIL_REQUIRE(kj::str("--replay ", path, ": ", strerror(errno)));
  }
  kj::AutoCloseFd owned(fd);
  auto replayer = kj::refcounted<Replayer>(kj::str(path));
  auto& r = *replayer;
  // Each packed message is read whole, kept flat, and read in place from then on.
  capnp::ReaderOptions options;
  options.traversalLimitInWords = uint64_t(1) << 40;
  kj::FdInputStream raw(fd);
  kj::BufferedInputStreamWrapper buffered(raw);
  for (;;) {
    bool more = true;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      if (buffered.tryGetReadBuffer().size() == 0) {
        more = false;
        return;
      }
      capnp::PackedMessageReader packed(buffered, options);
      kj::Vector<kj::ArrayPtr<const capnp::word>> segments;
      for (uint id = 0;; ++id) {
        auto segment = packed.getSegment(id);
        if (segment == nullptr) {
          break;
        }
        segments.add(segment);
      }
      auto flat = capnp::messageToFlatArray(segments.asPtr());
      r.messages_.add(kj::heap<capnp::FlatArrayMessageReader>(flat, options).attach(kj::mv(flat)));
    })) {
      if (r.messages_.empty()) {
        KJ_FAIL_REQUIRE(kj::str("--replay ", path, ": not a recording of sbrun --record (",
                                e->getDescription(), ")"));
      }
      // A run that ended badly leaves a partial last message: what came before still counts.
      fmt::print(stderr, "sbrun: --replay {}: the recording ends with a partial message ({}), "
                         "ignored\n", path.cStr(), e->getDescription().cStr());
      break;
    }
    if (!more) {
      break;
    }
  }
  KJ_REQUIRE(!r.messages_.empty(), kj::str("--replay ", path, ": the file is empty"));
  r.header_ = r.messages_[0]->getRoot<rec::RecordingHeader>();
  KJ_REQUIRE(r.header_.getFormatVersion() == rec::FORMAT_VERSION,
             kj::str("--replay ", path, ": recording format ", r.header_.getFormatVersion(),
                     ", this sbrun reads format ", rec::FORMAT_VERSION,
                     ": replay it with the sbrun that recorded it (",
                     r.header_.getSbrunVersion(), ")"));
  KJ_REQUIRE(r.header_.getProtocolVersion() == proto::PROTOCOL_VERSION,
             kj::str("--replay ", path, ": recorded with protocol ",
                     r.header_.getProtocolVersion(), ", this sbrun speaks ",
                     proto::PROTOCOL_VERSION, ": replay it with sbrun ",
                     r.header_.getSbrunVersion()));
  kj::Vector<rec::Call::Reader> calls;
  for (size_t i = 1; i < r.messages_.size(); ++i) {
    auto event = r.messages_[i]->getRoot<rec::Event>();
    switch (event.which()) {
      case rec::Event::CONNECT:
        r.connects_.add(event.getConnect());
        break;
      case rec::Event::CALL:
        calls.add(event.getCall());
        break;
      case rec::Event::RANDOM: {
        auto random = event.getRandom();
        r.randoms_[std::string(random.getThread().cStr())].push_back(random);
        break;
      }
    }
  }
  // Written as they ended; answered in the order they were made.
  std::sort(calls.begin(), calls.end(),
            [](auto& a, auto& b) { return a.getSeq() < b.getSeq(); });
  for (auto& c : calls) {
    r.open_[c.getCap()].push_back(r.calls_.size());
    r.calls_.add(Recorded{c, false});
  }
  return replayer;
}

capnp::Capability::Client Replayer::serverFor(uint32_t id) {
  auto found = servers_.find(id);
  if (found != servers_.end()) {
    return capnp::Capability::Client(found->second->hook->addRef());
  }
  auto server = kj::heap<Server>(kj::addRef(*this), id);
  auto& s = *server;
  capnp::Capability::Client client(kj::mv(server));
  s.hook = capnp::ClientHook::from(kj::cp(client)).get();
  servers_[id] = &s;
  hookIds_[s.hook] = id;
  return client;
}

kj::Maybe<Replayer::RandomAnswer> Replayer::random(kj::StringPtr lineage) {
  auto found = randoms_.find(std::string(lineage.cStr()));
  if (found == randoms_.end() || found->second.empty()) {
    return nullptr;
  }
  auto r = found->second.front();
  found->second.pop_front();
  return RandomAnswer{r.getResult(), r.getBytes()};
}

capnp::Capability::Client Replayer::bootstrap(uint16_t target, uint32_t generation) {
  for (auto c : connects_) {
    if (c.getTarget() == target && c.getGeneration() == generation) {
      return serverFor(c.getAgent());
    }
  }
  KJ_FAIL_REQUIRE(kj::str("the recording has no connection ", generation, " to target '",
                          header_.getTargets()[target].getName(), "'"));
}

kj::Promise<void> Replayer::answer(
    Server& server, uint64_t interfaceId, uint16_t methodId,
    capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) {
  context.allowCancellation();
  // The params with their capabilities as table entries, to compare by recorded numbers.
  auto copy = kj::heap<capnp::MallocMessageBuilder>();
  auto table = kj::heap<capnp::BuilderCapabilityTable>();
  auto root = table->imbue(copy->getRoot<capnp::AnyPointer>());
  root.set(context.getParams());
  context.releaseParams();
  auto entries = table->getTable();
  auto hooks = kj::heapArrayBuilder<kj::Promise<kj::Own<capnp::ClientHook>>>(entries.size());
  for (auto& entry : entries) {
    KJ_IF_MAYBE(h, entry) {
      hooks.add(settledHook((*h)->addRef()));
    } else {
      hooks.add(kj::Own<capnp::ClientHook>());
    }
  }
  return kj::joinPromises(hooks.finish())
      .then([this, &server, interfaceId, methodId, context,
             root](kj::Array<kj::Own<capnp::ClientHook>> settled) mutable -> kj::Promise<void> {
        kj::Vector<uint32_t> ids;
        for (auto& h : settled) {
          if (h.get() == nullptr) {
            ids.add(0);
            continue;
          }
          const capnp::ClientHook* hook = h.get();
          auto found = hookIds_.find(hook);
          ids.add(found == hookIds_.end() ? 0xffffffff : found->second);
        }
        return answerWith(server, interfaceId, methodId, root.asReader(), ids, context);
      })
      .attach(kj::mv(copy), kj::mv(table));
}

kj::Promise<void> Replayer::answerWith(
    Server& server, uint64_t interfaceId, uint16_t methodId, capnp::AnyPointer::Reader params,
    kj::ArrayPtr<const uint32_t> ids,
    capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) {
  auto schema = protocolInterface(interfaceId);
  auto methods = schema.getMethods();
  KJ_REQUIRE(methodId < methods.size(), "a call of a method the protocol does not have");
  auto method = methods[methodId];
  auto asked = params.getAs<capnp::DynamicStruct>(method.getParamType());

  auto& queue = open_[server.id];
  kj::Maybe<size_t> chosen;
  bool dataDiffers = false;
  kj::String dataField;
  kj::String firstDifference;
  for (size_t at : queue) {
    auto& rc = calls_[at];
    auto call = rc.call;
    if (call.getInterfaceId() != interfaceId || call.getMethodId() != methodId) {
      continue;
    }
    auto recIds = call.getParamCaps();
    bool capsSame = recIds.size() == ids.size();
    for (size_t i = 0; capsSame && i < ids.size(); ++i) {
      capsSame = recIds[i] == ids[i];
    }
    if (!capsSame) {
      if (firstDifference == nullptr) {
        firstDifference = kj::str("a capability argument (another Node or Session)");
      }
      continue;
    }
    RecordedParams recorded(call, method.getParamType());
    Comparison cmp{schema, method.getProto().getName(), true, false, nullptr, nullptr,
                   &aliases_};
    bool same = true;
    compareStruct(asked, recorded.params, "", &cmp, same);
    if (same) {
      chosen = at;
      dataDiffers = cmp.dataDiffers;
      dataField = kj::mv(cmp.dataField);
      break;
    }
    if (firstDifference == nullptr) {
      firstDifference = kj::mv(cmp.firstDifference);
    }
  }

  if (chosen == nullptr) {
    chosen = temporaryName(server, schema, method, asked, ids);
  }
  size_t at;
  KJ_IF_MAYBE(c, chosen) {
    at = *c;
  } else {
    kj::String recordedNext = kj::str("nothing (the recording has no further call on it)");
    if (!queue.empty()) {
      auto next = calls_[queue.front()].call;
      auto nextSchema = protocolInterface(next.getInterfaceId());
      auto nextMethods = nextSchema.getMethods();
      kj::Maybe<RecordedParams> readable;
      kj::Maybe<capnp::DynamicStruct::Reader> nextParams;
      if (next.getMethodId() < nextMethods.size()) {
        nextParams = readable.emplace(next, nextMethods[next.getMethodId()].getParamType()).params;
      }
      recordedNext = kj::str(describeCall(nextSchema, next.getMethodId(), nextParams, server.id),
                             " (recorded call ", next.getSeq() + 1, ")");
    }
    diverge(kj::str("the program asked ", describeCall(schema, methodId, asked, server.id),
                    "\n  the recording has next on that capability: ", recordedNext,
                    firstDifference != nullptr
                        ? kj::str("\n  the nearest recorded call of that method differs in ",
                                  firstDifference)
                        : kj::str(""),
                    "\n  remote calls answered from the recording before it: ", answered_));
  }
  auto& rc = calls_[at];
  rc.used = true;
  for (auto it = queue.begin(); it != queue.end(); ++it) {
    if (*it == at) {
      queue.erase(it);
      break;
    }
  }
  ++answered_;
  if (dataDiffers) {
    ++dataMismatches_;
    fmt::print(stderr, "sbrun: --replay: the program passed other data than the recording: "
                       "{} of {} (recorded call {}); the recorded answer stands\n",
               dataField.cStr(), describeCall(schema, methodId, nullptr, server.id).cStr(),
               rc.call.getSeq() + 1);
  }
  auto call = rc.call;
  switch (call.which()) {
    case rec::Call::RESULTS: {
      auto results = call.getResults();
      auto capIds = results.getCaps();
      auto hooks = kj::heapArrayBuilder<kj::Maybe<kj::Own<capnp::ClientHook>>>(capIds.size());
      for (auto id : capIds) {
        if (id == 0) {
          hooks.add(nullptr);
        } else {
          hooks.add(capnp::ClientHook::from(serverFor(id)));
        }
      }
      capnp::ReaderCapabilityTable table(hooks.finish());
      context.getResults().set(table.imbue(results.getValue()));
      return kj::READY_NOW;
    }
    case rec::Call::EXCEPTION: {
      auto ex = call.getException();
      return kj::Exception(static_cast<kj::Exception::Type>(ex.getType()), __FILE__, __LINE__,
                           kj::str(ex.getDescription()));
    }
    case rec::Call::CANCELLED:
      // sbrun dropped it in the recorded run (a signal, the end of the run): it drops it again.
      return kj::NEVER_DONE;
  }
  KJ_UNREACHABLE;
}

namespace {

// Whether two names could come from one template (mkstemp's XXXXXX, a name made of the time
// and the pid): the same length and directory, and differing only in the last 16 bytes of the
// last component, in letters, digits, '_' and '.'.
bool sameTemplate(kj::ArrayPtr<const kj::byte> a, kj::ArrayPtr<const kj::byte> b) {
  if (a.size() != b.size() || a == b) {
    return false;
  }
  size_t slash = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == '/') {
      slash = i + 1;
    }
  }
  size_t first = a.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      first = kj::min(first, i);
      auto ok = [](kj::byte c) { return isalnum(c) || c == '_' || c == '.'; };
      if (i < slash || !ok(a[i]) || !ok(b[i])) {
        return false;
      }
    }
  }
  return a.size() - first <= 16;
}

kj::ArrayPtr<const kj::byte> lastComponent(kj::ArrayPtr<const kj::byte> path) {
  size_t slash = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '/') {
      slash = i + 1;
    }
  }
  return path.slice(slash, path.size());
}

}  // namespace

kj::Maybe<size_t> Replayer::temporaryName(Server& server, capnp::InterfaceSchema schema,
                                          capnp::InterfaceSchema::Method method,
                                          capnp::DynamicStruct::Reader asked,
                                          kj::ArrayPtr<const uint32_t> ids) {
  // Only calls that make a new name: an exclusive create, a mkdir (mkdtemp), a symlink.
  kj::StringPtr name = method.getProto().getName();
  bool makesName = false;
  if (shortName(schema) == "Node") {
    if (name == "openAt") {
      auto how = asked.get("how").as<capnp::DynamicStruct>();
      makesName = how.get("create").as<bool>() && how.get("exclusive").as<bool>();
    } else {
      makesName = name == "mkdirAt" || name == "symlinkAt";
    }
  }
  if (!makesName) {
    return nullptr;
  }
  auto askedPath = asked.get("path").as<capnp::Data>();
  for (size_t at : open_[server.id]) {
    auto call = calls_[at].call;
    if (call.getInterfaceId() != schema.getProto().getId() ||
        call.getMethodId() != method.getIndex() || call.getParamCaps().size() != ids.size()) {
      continue;
    }
    RecordedParams recorded(call, method.getParamType());
    auto recordedPath = recorded.params.get("path").as<capnp::Data>();
    if (!sameTemplate(askedPath, recordedPath)) {
      continue;
    }
    Comparison cmp{schema, name, true, false, nullptr, nullptr, &aliases_, true};
    bool same = true;
    compareStruct(asked, recorded.params, "", &cmp, same);
    if (!same) {
      continue;
    }
    auto from = lastComponent(askedPath);
    auto to = lastComponent(recordedPath);
    aliases_[std::string(from.asChars().begin(), from.size())] =
        std::string(to.asChars().begin(), to.size());
    return at;
  }
  return nullptr;
}

void Replayer::reportDivergence(kj::StringPtr report) {
  KJ_IF_MAYBE(hook, divergence_) {
    (*hook)(report);
  } else {
    fmt::print(stderr, "sbrun: --replay {}: the program diverged from the recording: {}\n",
               path_.cStr(), report.cStr());
  }
}

void Replayer::diverge(kj::String report) {
  if (!diverged_) {
    diverged_ = true;
    reportDivergence(report);
  }
  // DISCONNECTED: the call fails with EIO, without a message of its own (the report said it).
  kj::throwFatalException(
      KJ_EXCEPTION(DISCONNECTED, "the program diverged from the recording (--replay)"));
}

bool Replayer::finish() {
  if (dataMismatches_ > 0) {
    fmt::print(stderr, "sbrun: --replay {}: {} call(s) passed other data than the recording "
                       "(above)\n", path_.cStr(), dataMismatches_);
  }
  if (diverged_) {
    return false;
  }
  uint64_t unmade = 0;
  kj::Maybe<rec::Call::Reader> first;
  for (auto& rc : calls_) {
    if (!rc.used && rc.call.which() != rec::Call::CANCELLED) {
      if (unmade++ == 0) {
        first = rc.call;
      }
    }
  }
  if (unmade > 0) {
    auto c = KJ_ASSERT_NONNULL(first);
    auto schema = protocolInterface(c.getInterfaceId());
    auto methods = schema.getMethods();
    kj::Maybe<RecordedParams> readable;
    kj::Maybe<capnp::DynamicStruct::Reader> params;
    if (c.getMethodId() < methods.size()) {
      params = readable.emplace(c, methods[c.getMethodId()].getParamType()).params;
    }
    diverged_ = true;
    auto report = kj::str("the program ended with ", unmade,
                          " recorded remote call(s) not made; the first: ",
                          describeCall(schema, c.getMethodId(), params, c.getCap()),
                          " (recorded call ", c.getSeq() + 1, ")");
    reportDivergence(report);
    return false;
  }
  return true;
}

}  // namespace sb
