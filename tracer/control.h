// Scopes and their control (DESIGN D6): each thread's stack of targets, and the two channels
// that move it — the control fd the program itself writes to (SB_CONTROL_FD), and the harness's
// `--control-fd` channel from outside. docs/protocol.md describes both protocols.

#pragma once

#include <kj/async-io.h>
#include <kj/string.h>
#include <sys/types.h>

namespace sb {

struct Task;
class AgentLink;

// What the control channel asks of the tracer (Tracer implements it): an interface, so that
// control.cc does not depend on the tracer that depends on it.
class ScopeHost {
 public:
  // The targets, the default first.
  virtual kj::ArrayPtr<kj::Own<AgentLink>> targets() = 0;
  virtual kj::Maybe<Task&> findTask(pid_t tid) = 0;
  // A scope command for every thread, or for one: 0 or -errno.
  virtual int64_t applyToAll(kj::StringPtr command) = 0;
  virtual int64_t applyToThread(pid_t tid, kj::StringPtr command) = 0;
  // --pid: let go of the program (0), or -EOPNOTSUPP for a launched one.
  virtual int64_t detachAll() = 0;

 protected:
  ~ScopeHost() = default;
};

// One scope command for one thread: "enter NAME", "enter" (the first of `targets`), "local",
// "exit". 0, or -ENOENT (no target NAME), -EINVAL (malformed; exit with nothing to return to).
// With no task, only checks the command.
int64_t applyScopeCommand(kj::ArrayPtr<kj::Own<AgentLink>> targets, Task* task,
                          kj::StringPtr line);

// The thread's current scope as the control fd reads it: the target's name, or "local".
kj::StringPtr scopeName(Task& task);

// The `--control-fd` channel: reads one command per line from `in`, answers one status line per
// command (and event lines) on `out` when there is one.
class ControlChannel {
 public:
  ControlChannel(ScopeHost& tracer, kj::LowLevelAsyncIoProvider& io, int in, int out);
  // Runs until the channel's input ends (the harness closed it).
  kj::Promise<void> run();
  // An event line ("disconnected NAME"), written when there is an output.
  void event(kj::StringPtr line);

 private:
  ScopeHost& tracer;
  kj::Own<kj::AsyncInputStream> input;
  int out;
  kj::String buffered;
  kj::byte chunk[4096];

  kj::Promise<void> readMore();
  void handle(kj::StringPtr line);
  void reply(kj::StringPtr line);
};

}  // namespace sb
