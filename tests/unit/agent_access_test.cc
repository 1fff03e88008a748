// Who may connect and what an unauthenticated peer can cost (issue 17): the SO_PEERCRED policy,
// the parsing of --allow-uid/--allow-gid, the frame bound before the handshake and the per-peer
// cap on connections that have not completed it. Real listener over kj's in-process pipes, real
// unix socketpairs for the credentials.

#include <doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <kj/async-io.h>

#include "confinement.h"
#include "executor.h"
#include "listener.h"
#include "log.h"
#include "peer_check.h"
#include "process.h"
#include "session.h"

namespace sb {
namespace {

struct AccessAgent {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::WaitScope& ws = io.waitScope;
  kj::Own<Confinement> confinement = Confinement::unconfined();
  Executor executor{io.provider->getTimer()};
  Reaper reaper{executor};
  AgentContext context;
  Log log;
  AgentOptions options;
  Listener listener;

  explicit AccessAgent(Limits limits = {})
      : context{*confinement, executor, reaper, false, limits},
        options{nullptr, log},
        listener(io, context, options) {
    options.handshakeTimeout = 5 * kj::SECONDS;
  }

  bool endsWithin(kj::Promise<void>& done, int millis) {
    return done.then([]() { return true; })
        .exclusiveJoin(io.provider->getTimer().afterDelay(millis * kj::MILLISECONDS).then(
            []() { return false; }))
        .wait(ws);
  }
};

TEST_CASE("peer policy: the agent's uid and root by default, --allow-uid/--allow-gid widen") {
  PeerPolicy policy;
  policy.agentUid = 1000;
  PeerCredentials peer;
  peer.uid = 0;
  CHECK(peerRefusal(policy, peer).size() == 0);
  peer.uid = 1000;
  CHECK(peerRefusal(policy, peer).size() == 0);
  peer.uid = 65534;
  peer.gid = 65534;
  kj::String why = peerRefusal(policy, peer);
  CHECK(std::string(why.cStr()).find("uid 65534 is not allowed") != std::string::npos);
  policy.uids.push_back(65534);
  CHECK(peerRefusal(policy, peer).size() == 0);
  policy.uids.clear();
  policy.gids.push_back(4242);
  CHECK(peerRefusal(policy, peer).size() > 0);
  peer.groups = {10, 4242};  // a supplementary group is enough
  CHECK(peerRefusal(policy, peer).size() == 0);
  peer.groups.clear();
  peer.gid = 4242;           // and so is the primary one
  CHECK(peerRefusal(policy, peer).size() == 0);
}

TEST_CASE("--allow-uid/--allow-gid take names and numbers, and refuse unknown names") {
  kj::String error;
  CHECK(KJ_ASSERT_NONNULL(parseUser("root", error)) == 0);
  CHECK(KJ_ASSERT_NONNULL(parseUser("4321", error)) == 4321);
  CHECK(KJ_ASSERT_NONNULL(parseGroup("0", error)) == 0);
  CHECK(parseUser("no-such-user-sbtest", error) == nullptr);
  CHECK(std::string(error.cStr()).find("no such user") != std::string::npos);
  CHECK(parseGroup("no-such-group-sbtest", error) == nullptr);
  CHECK(parseUser("4294967295", error) == nullptr);  // (uid_t)-1 is nobody's id
}

TEST_CASE("SO_PEERCRED: the credentials of the other end of a unix socket") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  auto cred = KJ_ASSERT_NONNULL(unixPeerCredentials(sv[0]));
  CHECK(cred.pid == getpid());
  CHECK(cred.uid == getuid());
  CHECK(cred.gid == getgid());
  ::close(sv[0]);
  ::close(sv[1]);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  CHECK(unixPeerCredentials(fds[0]) == nullptr);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("before the handshake a frame of more than 64 KiB drops the connection at its header") {
  // One segment of 1 MiB announced, nothing of it sent: a session may send that, a stranger not.
  AccessAgent agent;
  auto pipe = agent.io.provider->newTwoWayPipe();
  auto done = agent.listener.serve(kj::mv(pipe.ends[0]), kj::str("test"));
  uint32_t header[2] = {0, (1u << 20) / 8};
  pipe.ends[1]->write(header, sizeof(header)).wait(agent.ws);
  CHECK(agent.endsWithin(done, 2000));
}

TEST_CASE("a peer may have --max-pending-per-peer connections before their handshake, no more") {
  Limits limits;
  limits.maxPendingPerPeer = 2;
  AccessAgent agent(limits);
  // In-process pipes are socketpairs of this process: all of them are the same peer (uid).
  bool ended[4] = {};
  kj::Vector<kj::Own<kj::AsyncIoStream>> clients;
  kj::Vector<kj::Promise<void>> served;
  auto connect = [&](int i) {
    auto pipe = agent.io.provider->newTwoWayPipe();
    served.add(agent.listener.admit(kj::mv(pipe.ends[0]), kj::str("silent ", i))
                   .then([&ended, i]() { ended[i] = true; })
                   .eagerlyEvaluate(nullptr));
    clients.add(kj::mv(pipe.ends[1]));
  };
  auto settle = [&]() {
    agent.io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(agent.ws);
  };
  for (int i = 0; i < 3; ++i) connect(i);
  settle();
  CHECK(agent.listener.pendingCount() == 2);
  CHECK(ended[2]);                 // the third is closed at once
  CHECK((!ended[0] && !ended[1]));  // the first two wait for their handshake
  // One goes: its place is free again.
  clients[0] = nullptr;
  for (int i = 0; i < 20 && !ended[0]; ++i) settle();
  CHECK(ended[0]);
  connect(3);
  settle();
  CHECK(!ended[3]);
  CHECK(agent.listener.pendingCount() == 2);
}

TEST_CASE("a peer at its cap: its oldest pending connection makes room once it is old enough") {
  Limits limits;
  limits.maxPendingPerPeer = 2;
  limits.evictPendingAfterMs = 300;
  AccessAgent agent(limits);
  bool ended[4] = {};
  kj::Vector<kj::Own<kj::AsyncIoStream>> clients;
  kj::Vector<kj::Promise<void>> served;
  auto connect = [&](int i) {
    auto pipe = agent.io.provider->newTwoWayPipe();
    served.add(agent.listener.admit(kj::mv(pipe.ends[0]), kj::str("silent ", i))
                   .then([&ended, i]() { ended[i] = true; })
                   .eagerlyEvaluate(nullptr));
    clients.add(kj::mv(pipe.ends[1]));
  };
  auto settle = [&](int ms) {
    agent.io.provider->getTimer().afterDelay(ms * kj::MILLISECONDS).wait(agent.ws);
  };
  connect(0);
  connect(1);
  settle(50);
  connect(2);  // the others are young: this one is refused
  settle(50);
  CHECK((ended[2] && !ended[0] && !ended[1]));
  settle(300);
  connect(3);  // now the oldest (0) goes, and 3 waits for its handshake
  settle(50);
  CHECK((ended[0] && !ended[1] && !ended[3]));
  CHECK(agent.listener.pendingCount() == 2);
}

}  // namespace
}  // namespace sb
