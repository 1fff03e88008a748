// Connecting the targets at start: one AgentLink per --target, its welcome, and the working
// directory each starts in.

#include "tracer.h"
#include "recorder.h"
#include "replayer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "errno_names.h"
#include "launch.h"
#include "token_file.h"
#include "ptrace.h"

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

void Tracer::connectTargets(kj::WaitScope& ws) {
  kj::String token;
  if (options_.tokenFile.size() > 0) {
    auto read = readTokenFile(options_.tokenFile);
    KJ_REQUIRE(read.error.size() == 0, kj::mv(read.error));
    token = kj::mv(read.token);
  }
  // Only `local` targets spawn an agent: the others need not look for one.
  kj::Maybe<kj::String> agentPath;
  char here[4096];
  kj::StringPtr localCwd = getcwd(here, sizeof(here)) ? kj::StringPtr(here) : "/";
  initialFs = kj::refcounted<FsContext>();
  if (options_.tls.any()) {
    tls_ = makeTlsContext(options_.tls, TlsRole::CLIENT);
  }
  for (auto& url : options_.targets) {
    kj::StringPtr agent = "";
    if (url.kind == TargetUrl::Kind::LOCAL && replayer_.get() == nullptr) {
      KJ_IF_MAYBE(path, agentPath) {
        agent = *path;
      } else {
        agent = agentPath.emplace(findAgent());
      }
    }
    auto link = kj::heap<AgentLink>(parseTargetUrl(url.text), kj::str(url.name), kj::str(token),
                                    options_.reconnect);
    if (tls_.get() != nullptr && url.kind == TargetUrl::Kind::TCP) {
      link->useTls(*tls_);
    }
    if (url.kind == TargetUrl::Kind::SSH) {
      link->useDeploy(options_.deploy);
    }
    auto index = uint16_t(targets_.size());
    if (recorder_.get() != nullptr) {
      link->useRecorder(*recorder_, index);
    }
    if (replayer_.get() != nullptr) {
      link->useReplay(*replayer_, index);
    }
    link->connect(io, agent).wait(ws);
    auto w = link->welcome();
    verbose(kj::str("target '", link->name(), "': ", w.getUname().getNodename(), " (",
                    w.getArch(), ", Linux ", w.getKernel(), "), root ", w.getRoot().asChars(),
                    w.getReadOnly() ? ", read-only" : ""));

    // The remote cwd: --remote-cwd, else the same path as here when it exists there.
    bool explicitCwd = options_.remoteCwd.size() > 0;
    kj::StringPtr want = explicitCwd ? options_.remoteCwd.asPtr() : localCwd;
    auto req = link->session().openPathRequest();
    req.setPath(want.asBytes());
    auto reply = req.send().wait(ws);
    if (reply.getResult() >= 0) {
      initialFs->cwd.emplace(link.get(),
                             RemoteCwd{reply.getDir(), link->generation(), kj::str(want)});
      verbose(kj::str("target '", link->name(), "': working directory ", want));
    } else if (explicitCwd) {
      KJ_FAIL_REQUIRE(kj::str("--remote-cwd ", want, " on target '", link->name(),
                              "': ", strerror(-reply.getResult())));
    } else {
      verbose(kj::str("target '", link->name(), "': ", want, " does not exist there (",
                      strerror(-reply.getResult()), "): working directory is its root"));
    }
    targets_.add(kj::mv(link));
  }
}

}  // namespace sb
