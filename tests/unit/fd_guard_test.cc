#include <doctest.h>

#include "fd_guard.h"

// The interleavings of issue 21, played on the bookkeeping: threads of process 100 at their
// exit stops, each needing the guard for the blocks of its remote fds.
TEST_SUITE("fd_guard") {
  using sb::FdGuards;

  TEST_CASE("a block another thread is installing makes the next thread wait, not run") {
    FdGuards g;
    auto a = g.plan(100, 101, {1});   // A's open made fd 12 remote: A injects block 1
    REQUIRE(a.inject.size() == 1);
    CHECK(a.inject[0] == 1);
    CHECK_FALSE(g.installed(100, 1)); // on its way, not in effect
    auto c = g.plan(100, 103, {1});   // C's open made fd 13 remote before A's guard ran
    CHECK(c.inject.size() == 0);
    CHECK(c.wait);                    // the old code let C run here: EBADF on its write
    g.addWaiter(100, 103);
    auto released = g.injected(100, 101);
    REQUIRE(released.size() == 1);
    CHECK(released[0] == 103);
    CHECK(g.installed(100, 1));
    auto again = g.plan(100, 103, {1});
    CHECK(again.inject.size() == 0);
    CHECK_FALSE(again.wait);
  }

  TEST_CASE("a thread injects what no one installs, then waits for the rest") {
    FdGuards g;
    g.plan(100, 101, {1});
    auto c = g.plan(100, 103, {1, 2});
    REQUIRE(c.inject.size() == 1);
    CHECK(c.inject[0] == 2);
    CHECK(g.injected(100, 103).size() == 0);
    auto after = g.plan(100, 103, {1, 2});  // its own guard is in; A's is not yet
    CHECK(after.wait);
  }

  TEST_CASE("an injector that dies hands its blocks to a waiter") {
    FdGuards g;
    g.plan(100, 101, {0});
    CHECK(g.plan(100, 102, {0}).wait);
    g.addWaiter(100, 102);
    auto released = g.threadGone(100, 101);
    REQUIRE(released.size() == 1);
    auto b = g.plan(100, 102, {0});
    REQUIRE(b.inject.size() == 1);
    CHECK(b.inject[0] == 0);
  }

  TEST_CASE("past MAX_GUARDS blocks the last guard covers every fd") {
    FdGuards g;
    std::set<int> many;
    for (int b = 0; b <= static_cast<int>(FdGuards::MAX_GUARDS); ++b) {
      many.insert(b);
    }
    auto p = g.plan(100, 101, many);
    REQUIRE(p.inject.size() == 1);
    CHECK(p.inject[0] == FdGuards::ALL);
    CHECK(g.plan(100, 102, {3}).wait);
    g.injected(100, 101);
    CHECK(g.installed(100, 5));
    CHECK_FALSE(g.plan(100, 102, {9}).wait);
  }

  TEST_CASE("a fork inherits the guards in effect, never one on its way") {
    FdGuards g;
    g.plan(100, 100, {0});
    g.injected(100, 100);
    g.plan(100, 101, {1});  // pending at the fork
    g.inherit(100, 200, false);
    CHECK(g.installed(200, 0));
    CHECK_FALSE(g.installed(200, 1));
    auto child = g.plan(200, 200, {1});
    REQUIRE(child.inject.size() == 1);  // its own: the parent's pending guard never reaches it
  }

  TEST_CASE("processes sharing an fd table trap every fast call") {
    FdGuards g;
    g.inherit(100, 200, true);
    auto p = g.plan(100, 100, {});
    REQUIRE(p.inject.size() == 1);
    CHECK(p.inject[0] == FdGuards::ALL);
  }

  TEST_CASE("a thread with no remote fds in the fast range runs at once") {
    FdGuards g;
    auto p = g.plan(100, 100, {});
    CHECK(p.inject.size() == 0);
    CHECK_FALSE(p.wait);
  }
}
