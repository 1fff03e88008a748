// An agent of another protocol version, for the integration case ssh-version-mismatch: on
// --stdio (two pipes from sshd, or a socket) it answers the handshake as a real sbagent of
// version PROTOCOL_VERSION + 1 does (agent/session.cc): it refuses, in the same words. sbrun
// must then say how to get matching versions (tracer/agent_link.cc, mismatchHint).

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/main.h>

#include "splitbrain.capnp.h"

namespace {

class OtherAgent final : public sb::proto::Agent::Server {
 protected:
  kj::Promise<void> handshake(HandshakeContext context) override {
    auto hello = context.getParams().getHello();
    KJ_FAIL_REQUIRE(kj::str(
        "protocol version mismatch: the client (", hello.getClientName(), ") speaks version ",
        hello.getProtocolVersion(), ", this sbagent speaks version ",
        sb::proto::PROTOCOL_VERSION + 1, "; upgrade sbrun or sbagent so they match"));
  }
};

// stdin and stdout as one stream (ssh gives the agent two pipes).
class Stdio final : public kj::AsyncIoStream {
 public:
  Stdio(kj::Own<kj::AsyncInputStream> in, kj::Own<kj::AsyncOutputStream> out)
      : in_(kj::mv(in)), out_(kj::mv(out)) {}
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return in_->tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return out_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return out_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return out_->whenWriteDisconnected(); }
  void shutdownWrite() override { out_ = nullptr; }

 private:
  kj::Own<kj::AsyncInputStream> in_;
  kj::Own<kj::AsyncOutputStream> out_;
};

}  // namespace

int main() {
  auto io = kj::setupAsyncIo();
  Stdio stream(io.lowLevelProvider->wrapInputFd(0), io.lowLevelProvider->wrapOutputFd(1));
  capnp::TwoPartyVatNetwork network(stream, capnp::rpc::twoparty::Side::SERVER);
  auto rpc = capnp::makeRpcServer(network, kj::heap<OtherAgent>());
  network.onDisconnect().wait(io.waitScope);
  return 0;
}
