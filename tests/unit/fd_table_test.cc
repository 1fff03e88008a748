#include <doctest.h>

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/debug.h>

#include "agent_link.h"
#include "fd_table.h"

namespace {

// A RemoteFile needs a target and a node; these tests only look at table semantics, so the
// target is never connected and the node is a broken capability that would fail if anything
// called it.
kj::Own<sb::RemoteFile> file(kj::StringPtr path) {
  static sb::AgentLink target(sb::parseTargetUrl("local"), kj::str("t"), kj::str(""));
  return kj::refcounted<sb::RemoteFile>(
      target, capnp::Capability::Client(KJ_EXCEPTION(FAILED, "not called")).castAs<sb::proto::Node>(),
      sb::proto::FileType::REGULAR, kj::str(path));
}

}  // namespace

TEST_SUITE("fd_table") {
  TEST_CASE("only bound fds are remote") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    t->bind(3, file("/a"));
    CHECK(t->isRemote(3));
    CHECK_FALSE(t->isRemote(4));
    CHECK(KJ_ASSERT_NONNULL(t->find(3)).path == "/a");
  }

  TEST_CASE("dup shares one remote file and the last unbind is the last reference") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    t->bind(3, file("/a"));
    t->bind(4, kj::addRef(KJ_ASSERT_NONNULL(t->find(3))));
    auto first = KJ_ASSERT_NONNULL(t->unbind(3));
    CHECK(first->isShared());
    first = nullptr;
    auto last = KJ_ASSERT_NONNULL(t->unbind(4));
    CHECK_FALSE(last->isShared());
  }

  TEST_CASE("dup2 over a remote fd replaces its binding") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    t->bind(3, file("/a"));
    t->bind(5, file("/b"));
    t->bind(5, kj::addRef(KJ_ASSERT_NONNULL(t->find(3))));
    CHECK(KJ_ASSERT_NONNULL(t->find(5)).path == "/a");
    CHECK(t->size() == 2);
  }

  TEST_CASE("fork copies the table and both share each file until one closes") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto parent = kj::refcounted<sb::FdTable>();
    parent->bind(3, file("/a"));
    auto child = parent->copy();
    CHECK(child->isRemote(3));
    auto c = KJ_ASSERT_NONNULL(child->unbind(3));
    CHECK(c->isShared());  // The parent still holds it: no remote close yet.
    CHECK(parent->isRemote(3));
    CHECK_FALSE(child->isRemote(3));
  }

  TEST_CASE("close_range forgets exactly the remote fds in range") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    for (int fd : {3, 5, 7, 9}) {
      t->bind(fd, file("/x"));
    }
    for (auto b : t->bindingsIn(5, 7)) {
      CHECK(t->unbindIfSame(b));
    }
    CHECK(t->isRemote(3));
    CHECK_FALSE(t->isRemote(5));
    CHECK_FALSE(t->isRemote(7));
    CHECK(t->isRemote(9));
    for (auto b : t->bindingsIn(4, ~0u)) {
      t->unbindIfSame(b);
    }
    CHECK(t->size() == 1);
    CHECK(t->bindingsIn(0x80000000u, ~0u).size() == 0);
  }

  // Issue 21: thread A's close_range(5, 5) frees number 5 in the kernel; before A's exit stop,
  // thread B's open gets 5 and binds its own file there. A's exit must leave B's binding alone.
  TEST_CASE("a release confirmed at the exit stop spares a number another thread took since") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    t->bind(5, file("/a"));
    auto seenAtEntry = t->bindingsIn(5, 5);     // A's entry stop
    REQUIRE(seenAtEntry.size() == 1);
    t->bind(5, file("/b"));                      // B's exit stop: the kernel gave B number 5
    CHECK_FALSE(t->unbindIfSame(seenAtEntry[0])); // A's exit stop
    CHECK(KJ_ASSERT_NONNULL(t->find(5)).path == "/b");
    // The same number dup'ed back to the same file is a new binding too.
    auto again = t->bindingsIn(5, 5);
    t->bind(5, kj::addRef(KJ_ASSERT_NONNULL(t->find(5))));
    CHECK_FALSE(t->unbindIfSame(again[0]));
    CHECK(t->isRemote(5));
  }

  TEST_CASE("a fork's copy keeps the bindings' identities") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto parent = kj::refcounted<sb::FdTable>();
    parent->bind(4, file("/a"));
    auto seen = parent->bindingsIn(4, 4);
    auto child = parent->copy();
    // close_range(4, 4, CLOSE_RANGE_UNSHARE): the caller's new private table releases it.
    CHECK(child->unbindIfSame(seen[0]));
    CHECK(parent->isRemote(4));
  }

  TEST_CASE("exec keeps only the fds that are still open") {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    auto t = kj::refcounted<sb::FdTable>();
    t->bind(3, file("/keep"));
    t->bind(4, file("/cloexec"));
    kj::Vector<kj::Own<sb::RemoteFile>> dropped;
    t->retainIf([](int fd) { return fd == 3; }, dropped);
    CHECK(t->isRemote(3));
    CHECK_FALSE(t->isRemote(4));
    // The closed ones' files, for the locks their close drops (Tracer::releaseLocksOn).
    REQUIRE(dropped.size() == 1);
    CHECK(dropped[0]->path == "/cloexec");
  }
}
