// Taking on a traced thread's credentials on an agent thread (agent/credentials.h, issue 16):
// the change holds for the scope and for that thread only, and is undone after. Needs root
// (CAP_SETUID, CAP_SETGID); skipped otherwise.

#include <doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <kj/async-io.h>

#include "credentials.h"
#include "executor.h"

namespace sb {
namespace {

kj::Own<const CallerCredentials> nobody() {
  auto c = kj::atomicRefcounted<CallerCredentials>();
  c->uid = c->euid = c->suid = c->fsuid = 65534;
  c->gid = c->egid = c->sgid = c->fsgid = 65534;
  c->groups = kj::heapArray<gid_t>({65534});
  return c;
}

struct RootOnlyDir {
  std::string path;
  RootOnlyDir() {
    char tmpl[] = "/tmp/sb-creds-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    REQUIRE(chmod(path.c_str(), 0755) == 0);
  }
  ~RootOnlyDir() {
    unlink((path + "/f").c_str());
    rmdir(path.c_str());
  }
  int create() {
    int fd = open((path + "/f").c_str(), O_CREAT | O_WRONLY, 0644);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
      close(fd);
      unlink((path + "/f").c_str());
    }
    return err;
  }
};

TEST_SUITE("agent credentials") {
  TEST_CASE("a scope makes this thread nobody, and only for the scope") {
    if (!canAssumeCredentials()) {
      MESSAGE("not root: skipped");
      return;
    }
    RootOnlyDir dir;
    CHECK(dir.create() == 0);
    auto creds = nobody();
    {
      AssumedCredentials as(creds.get());
      CHECK(dir.create() == EACCES);
      CHECK(access(dir.path.c_str(), W_OK) == 0);  // real ids: still root's
      CHECK(faccessat(AT_FDCWD, dir.path.c_str(), W_OK, AT_EACCESS) == -1);
      // A thread started now would be nobody too: the executor's workers start as the agent.
      kj::AsyncIoContext io = kj::setupAsyncIo();
      Executor executor(io.provider->getTimer());
      auto job = executor.run([&]() {
        WorkResult w;
        w.result = dir.create();
        return w;
      });
      CHECK(job.wait(io.waitScope).result == 0);
      CHECK(ptrOf(currentCaller()) == creds.get());
    }
    CHECK(dir.create() == 0);
    CHECK(ptrOf(currentCaller()) == nullptr);
  }

  TEST_CASE("access(2)'s set: real ids as fs ids, no capabilities unless root by real uid") {
    auto c = kj::atomicRefcounted<CallerCredentials>();
    c->uid = 1000;
    c->euid = c->fsuid = 0;
    c->capEffective = c->capPermitted = ~uint64_t(0) >> 23;
    auto a = c->forAccess();
    CHECK(a->fsuid == 1000);
    CHECK(a->capEffective == 0);
    c->uid = 0;
    c->euid = c->fsuid = 1000;
    CHECK(c->forAccess()->capEffective == c->capPermitted);
  }

  TEST_CASE("nested scopes come back to the enclosing set") {
    if (!canAssumeCredentials()) {
      return;
    }
    RootOnlyDir dir;
    auto creds = nobody();
    auto root = kj::atomicRefcounted<CallerCredentials>();  // uid 0 with every capability
    root->capEffective = root->capPermitted = ~uint64_t(0) >> 23;
    {
      AssumedCredentials outer(creds.get());
      {
        AssumedCredentials inner(root.get());
        CHECK(dir.create() == 0);
      }
      CHECK(dir.create() == EACCES);
    }
    CHECK(dir.create() == 0);
  }
}

}  // namespace
}  // namespace sb
