// Scopes (DESIGN D6): the stack a thread starts with, and the commands of the control fd and of
// the --control-fd channel (control.h), applied to one thread or to all.

#include "tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "errno_names.h"
#include "handler_support.h"
#include "ptrace.h"

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

// The scope stack a program starts with: inside the first target for --mode remote (entered from
// local, so `exit` returns there), else empty.
void Tracer::startScope(Task& task) {
  task.scope = nullptr;
  task.outer.clear();
  if (options_.startRemote) {
    applyScopeCommand(targets(), &task, "enter");
  }
}

int64_t Tracer::applyToThread(pid_t tid, kj::StringPtr command) {
  KJ_IF_MAYBE(task, findTask(tid)) {
    return applyScopeCommand(targets(), task, command);
  }
  return -ESRCH;
}

int64_t Tracer::applyToAll(kj::StringPtr command) {
  // Checked first, so that an unknown name changes nobody.
  int64_t r = applyScopeCommand(targets(), nullptr, command);
  if (r < 0) {
    return r;
  }
  int64_t result = 0;
  for (auto& [tid, task] : tasks) {
    int64_t one = applyScopeCommand(targets(), task.get(), command);
    result = result < 0 ? result : one;  // `exit` on a thread with nothing to leave: EINVAL.
  }
  return result;
}

void Tracer::startControlChannel() {
  int in = options_.controlFd;
  if (in < 0) {
    return;
  }
  int out = options_.statusFd;
  struct stat st;
  if (out < 0 && fstat(in, &st) == 0 && S_ISSOCK(st.st_mode)) {
    out = in;  // A socket answers on itself.
  }
  // The harness's fds are sbrun's, never the program's.
  fcntl(in, F_SETFD, FD_CLOEXEC);
  if (out >= 0) {
    fcntl(out, F_SETFD, FD_CLOEXEC);
    // Answers must never block the tracer (and every traced thread with it).
    int flags = fcntl(out, F_GETFL);
    if (flags >= 0) {
      fcntl(out, F_SETFL, flags | O_NONBLOCK);
    }
  }
  auto channel = kj::heap<ControlChannel>(*this, *io.lowLevelProvider, in, out);
  auto& ch = *channel;
  for (auto& t : targets_) {
    // "disconnected NAME", "reconnected NAME".
    t->onEvent([&ch](AgentLink& link, kj::StringPtr what) {
      ch.event(kj::str(what, " ", link.name()));
    });
  }
  controlRunning = ch.run().eagerlyEvaluate([](kj::Exception&& e) {
    fmt::print(stderr, "sbrun: --control-fd: {}\n", e.getDescription().cStr());
  });
  controlChannel = kj::mv(channel);
}

}  // namespace sb
