// --record / --replay (recorder.h, replayer.h) on a real capability served in process, and the
// --link-fault parser (link_fault.h). The whole path, with a real agent and real programs, is
// in the integration cases record-replay, replay-diverge and link-fault-*.

#include <doctest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/debug.h>

#include "link_fault.h"
#include "recorder.h"
#include "replayer.h"
#include "splitbrain.capnp.h"

namespace sb {
namespace {

// A Process whose answers depend on the question: pid() is 42, kill(N) answers -N (so a
// replayed answer shows which recorded call it came from), wait() fails with DISCONNECTED.
class FakeProcess final : public proto::Process::Server {
 protected:
  kj::Promise<void> pid(PidContext context) override {
    context.getResults().setPid(42);
    return kj::READY_NOW;
  }
  kj::Promise<void> kill(KillContext context) override {
    context.getResults().setResult(-context.getParams().getSignal());
    return kj::READY_NOW;
  }
  kj::Promise<void> wait(WaitContext) override {
    return KJ_EXCEPTION(DISCONNECTED, "the agent went away");
  }
};

struct TempFile {
  std::string path;
  TempFile() {
    char tmpl[] = "/tmp/sb-replay-test-XXXXXX";
    int fd = mkstemp(tmpl);
    KJ_ASSERT(fd >= 0);
    close(fd);
    path = tmpl;
  }
  ~TempFile() { unlink(path.c_str()); }
};

int64_t killWith(proto::Process::Client& p, int sig, kj::WaitScope& ws) {
  auto req = p.killRequest();
  req.setSignal(sig);
  return req.send().wait(ws).getResult();
}

void recordSome(const std::string& path, kj::WaitScope& ws) {
  kj::String argv[] = {kj::str("prog")};
  Recorder::Target targets[] = {{"b", "local"}};
  auto recorder = Recorder::create(path.c_str(), argv, targets);
  auto client = recorder->wrap(kj::heap<FakeProcess>(), 0, 1).castAs<proto::Process>();
  CHECK(client.pidRequest().send().wait(ws).getPid() == 42);
  CHECK(killWith(client, 9, ws) == -9);
  CHECK(killWith(client, 15, ws) == -15);
  CHECK_THROWS(client.waitRequest().send().wait(ws));
  CHECK(recorder->finish());
}

TEST_CASE("replay: the recorded answers come back, per capability in any order") {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  TempFile file;
  recordSome(file.path, ws);
  struct stat st;
  REQUIRE(stat(file.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto replayer = Replayer::open(file.path.c_str());
  CHECK(replayer->header().getTargets()[0].getName() == "b");
  kj::String report;
  replayer->onDivergence([&](kj::StringPtr r) { report = kj::str(r); });
  auto client = replayer->bootstrap(0, 1).castAs<proto::Process>();
  // Asked in another order than recorded: each gets its own recorded answer.
  CHECK(killWith(client, 15, ws) == -15);
  CHECK(client.pidRequest().send().wait(ws).getPid() == 42);
  CHECK(killWith(client, 9, ws) == -9);
  // The recorded exception, of the recorded kind.
  auto failed = kj::runCatchingExceptions([&]() { client.waitRequest().send().wait(ws); });
  REQUIRE(failed != nullptr);
  CHECK(KJ_ASSERT_NONNULL(failed).getType() == kj::Exception::Type::DISCONNECTED);
  CHECK(report == nullptr);
  CHECK(replayer->finish());
  CHECK_THROWS(replayer->bootstrap(0, 2));  // no second connection was recorded
}

TEST_CASE("replay: a call the recording does not have is a divergence") {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  TempFile file;
  recordSome(file.path, ws);
  auto replayer = Replayer::open(file.path.c_str());
  kj::String report;
  replayer->onDivergence([&](kj::StringPtr r) { report = kj::str(r); });
  auto client = replayer->bootstrap(0, 1).castAs<proto::Process>();
  CHECK(killWith(client, 9, ws) == -9);
  CHECK_THROWS(killWith(client, 3, ws));  // never recorded
  REQUIRE(report != nullptr);
  std::string text = report.cStr();
  CHECK(text.find("kill(signal = 3)") != std::string::npos);
  CHECK(text.find("has next on that capability: Process.pid()") != std::string::npos);
  CHECK(text.find("signal = 3 (recorded: 15)") != std::string::npos);
  CHECK(replayer->diverged());
  CHECK_FALSE(replayer->finish());
}

TEST_CASE("replay: recorded calls left unmade are reported at the end") {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  TempFile file;
  recordSome(file.path, ws);
  auto replayer = Replayer::open(file.path.c_str());
  kj::String report;
  replayer->onDivergence([&](kj::StringPtr r) { report = kj::str(r); });
  auto client = replayer->bootstrap(0, 1).castAs<proto::Process>();
  CHECK(client.pidRequest().send().wait(ws).getPid() == 42);
  CHECK_FALSE(replayer->finish());
  REQUIRE(report != nullptr);
  CHECK(std::string(report.cStr()).find("3 recorded remote call(s) not made") !=
        std::string::npos);
}

TEST_CASE("replay: files that are not recordings are refused with a message") {
  TempFile file;
  CHECK_THROWS_WITH(Replayer::open(file.path.c_str()), doctest::Contains("empty"));
  int fd = open(file.path.c_str(), O_WRONLY | O_TRUNC);
  REQUIRE(fd >= 0);
  const char junk[] = "this is not a recording at all, just text\n";
  REQUIRE(write(fd, junk, sizeof(junk)) == sizeof(junk));
  close(fd);
  CHECK_THROWS_WITH(Replayer::open(file.path.c_str()), doctest::Contains("--replay"));
  CHECK_THROWS_WITH(Replayer::open("/nonexistent/x.sbrec"),
                    doctest::Contains("No such file"));
}

TEST_CASE("link faults: specs") {
  kj::String error;
  auto delay = parseLinkFault("delay=50ms", error);
  REQUIRE(delay != nullptr);
  CHECK(KJ_ASSERT_NONNULL(delay).kind == LinkFault::Kind::DELAY);
  CHECK(KJ_ASSERT_NONNULL(delay).duration == 50 * kj::MILLISECONDS);
  auto drop = parseLinkFault("drop=7:target=b", error);
  REQUIRE(drop != nullptr);
  CHECK(KJ_ASSERT_NONNULL(drop).afterCalls == 7);
  CHECK(KJ_ASSERT_NONNULL(drop).target == "b");
  auto freeze = parseLinkFault("freeze=3:for=1.5s", error);
  REQUIRE(freeze != nullptr);
  CHECK(KJ_ASSERT_NONNULL(freeze).kind == LinkFault::Kind::FREEZE);
  CHECK(KJ_ASSERT_NONNULL(freeze).duration == 1500 * kj::MILLISECONDS);
  for (const char* bad : {"", "delay", "delay=", "delay=5", "delay=-1s", "drop=0", "drop=-2",
                          "drop=1x", "freeze=2", "freeze=2:for=", "drop=1:target=",
                          "drop=1:for=2s", "jitter=5ms", "delay=5ms:target"}) {
    error = nullptr;
    CHECK_MESSAGE(parseLinkFault(bad, error) == nullptr, bad);
    CHECK_MESSAGE(error.size() > 0, bad);
  }
}

}  // namespace
}  // namespace sb
