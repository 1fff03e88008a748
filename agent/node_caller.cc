// Node.asCaller: a node seen through a traced thread's credentials (credentials.h). The answer
// is a thin server that dispatches every call to the node itself inside an AssumedCredentials
// scope, so the node's methods need not know: what they do inline runs with the set, and what
// they hand to a worker (runTracked) or to a continuation (keepCaller) takes the set along.

#include "node.h"

#include <kj/debug.h>

namespace sb {

namespace {

class CallerNode final: public proto::Node::Server {
public:
  CallerNode(proto::Node::Client keep, NodeImpl& node, kj::Own<const CallerCredentials> creds)
      : keep(kj::mv(keep)), node(node), creds(kj::mv(creds)) {}

  DispatchCallResult dispatchCall(uint64_t interfaceId, uint16_t methodId,
                                  capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer>
                                      context) override {
    AssumedCredentials as(creds.get());
    return static_cast<capnp::Capability::Server&>(node).dispatchCall(interfaceId, methodId,
                                                                      context);
  }

private:
  proto::Node::Client keep;  // keeps `node` alive
  NodeImpl& node;
  kj::Own<const CallerCredentials> creds;
};

}  // namespace

kj::Promise<void> NodeImpl::asCaller(AsCallerContext context) {
  uint32_t id = context.getParams().getCredentials();
  auto found = session->credentials.find(id);
  KJ_REQUIRE(found != session->credentials.end(), "asCaller: no credentials with this id", id);
  context.getResults().setNode(
      kj::heap<CallerNode>(thisCap(), *this, kj::atomicAddRef(*found->second)));
  return kj::READY_NOW;
}

}  // namespace sb
