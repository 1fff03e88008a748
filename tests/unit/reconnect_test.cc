#include <doctest.h>

#include <errno.h>

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/debug.h>

#include "agent_link.h"
#include "fd_table.h"
#include "reconnect.h"

namespace {

kj::TimePoint at(int64_t ms) { return kj::origin<kj::TimePoint>() + ms * kj::MILLISECONDS; }

}  // namespace

TEST_SUITE("reconnect") {
  TEST_CASE("backoff doubles from 0.1 s to its cap and starts over") {
    sb::Backoff b(1 * kj::SECONDS);
    CHECK(b.next() == 100 * kj::MILLISECONDS);
    CHECK(b.next() == 200 * kj::MILLISECONDS);
    CHECK(b.next() == 400 * kj::MILLISECONDS);
    CHECK(b.next() == 800 * kj::MILLISECONDS);
    CHECK(b.next() == 1 * kj::SECONDS);
    CHECK(b.next() == 1 * kj::SECONDS);
    b.reset();
    CHECK(b.next() == 100 * kj::MILLISECONDS);
  }

  TEST_CASE("a peer silent from just after a sign of life is declared dead within the period") {
    // period 2 s: ticks every 0.5 s.
    sb::Liveness l(2 * kj::SECONDS, at(0));
    CHECK(l.tick() == 500 * kj::MILLISECONDS);
    CHECK(l.onTick(at(500)) == sb::Liveness::Verdict::PING);
    l.pingAnswered(at(510));  // the last sign of life; the peer freezes now
    int64_t dead = -1;
    for (int64_t t = 1000; t <= 4000 && dead < 0; t += 500) {
      auto v = l.onTick(at(t));
      if (v == sb::Liveness::Verdict::DEAD) {
        dead = t;
      }
    }
    REQUIRE(dead > 0);
    CHECK(dead - 510 <= 2000);
    CHECK(dead - 510 >= 1500 - 10);  // not before period - tick of silence
  }

  TEST_CASE("a peer that answers every ping is never declared dead") {
    sb::Liveness l(1 * kj::SECONDS, at(0));
    for (int64_t t = 250; t < 60000; t += 250) {
      auto v = l.onTick(at(t));
      CHECK(v != sb::Liveness::Verdict::DEAD);
      if (v == sb::Liveness::Verdict::PING) {
        l.pingAnswered(at(t + 200));  // slow, but within the tick
      }
    }
  }

  TEST_CASE("traffic counts as a sign of life while a ping waits behind it") {
    sb::Liveness l(1 * kj::SECONDS, at(0));
    CHECK(l.onTick(at(250)) == sb::Liveness::Verdict::PING);
    // No answer for 10 s, but bytes keep arriving (a big transfer on a slow link).
    for (int64_t t = 500; t < 10000; t += 250) {
      l.sign(at(t - 100));
      CHECK(l.onTick(at(t)) == sb::Liveness::Verdict::WAIT);
    }
    // Then silence (the last bytes came at 9.65 s): dead within the period.
    CHECK(l.onTick(at(10250)) == sb::Liveness::Verdict::WAIT);
    CHECK(l.onTick(at(10500)) == sb::Liveness::Verdict::DEAD);
  }

  TEST_CASE("a late tick (sbrun itself stalled) gives no verdict") {
    sb::Liveness l(1 * kj::SECONDS, at(0));
    CHECK(l.onTick(at(250)) == sb::Liveness::Verdict::PING);
    // The event loop did not run for 5 s: the answer may be sitting unread in the socket.
    CHECK(l.onTick(at(5250)) == sb::Liveness::Verdict::WAIT);
    // The next tick on time judges.
    CHECK(l.onTick(at(5500)) == sb::Liveness::Verdict::DEAD);
  }

  TEST_CASE("errors of an away target map to EIO, past the timeout to ETIMEDOUT") {
    sb::AgentLink link(sb::parseTargetUrl("local"), kj::str("b"), kj::str(""));
    auto away = sb::awayError("b", false);
    auto timedOut = sb::awayError("b", true);
    CHECK(sb::isConnectionLoss(away));
    CHECK_FALSE(sb::isReconnectTimeout(away));
    CHECK(sb::isReconnectTimeout(timedOut));
    CHECK(link.failure(away) == -EIO);
    CHECK(link.failure(timedOut) == -ETIMEDOUT);
    CHECK(link.failure(KJ_EXCEPTION(DISCONNECTED, "Peer disconnected.")) == -EIO);
  }

  TEST_CASE("a file of a session that is gone is stale; the control fd never is") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    // Never connected: no session is up, so everything made now belongs to a gone one.
    sb::AgentLink link(sb::parseTargetUrl("local"), kj::str("b"), kj::str(""));
    auto node = capnp::Capability::Client(KJ_EXCEPTION(FAILED, "not called"))
                    .castAs<sb::proto::Node>();
    auto file = kj::refcounted<sb::RemoteFile>(link, node, sb::proto::FileType::REGULAR,
                                               kj::str("/x"));
    CHECK(link.away());
    CHECK(file->isStale());
    file->control = true;
    CHECK_FALSE(file->isStale());
  }
}
