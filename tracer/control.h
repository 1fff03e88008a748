// Scopes and their control (DESIGN D6): each thread's stack of targets, and the two channels
// that move it — the control fd the program itself writes to (SB_CONTROL_FD), and the harness's
// `--control-fd` channel from outside. docs/protocol.md describes both protocols.

#pragma once

#include <kj/async-io.h>
#include <kj/string.h>

namespace sb {

class Tracer;
struct Task;
class AgentLink;

// One scope command for one thread: "enter NAME", "enter" (the first target), "local", "exit".
// 0, or -ENOENT (no target NAME), -EINVAL (malformed; exit with nothing to return to). With no
// task, only checks the command.
int64_t applyScopeCommand(Tracer& tracer, Task* task, kj::StringPtr line);

// The thread's current scope as the control fd reads it: the target's name, or "local".
kj::StringPtr scopeName(Task& task);

// The `--control-fd` channel: reads one command per line from `in`, answers one status line per
// command (and event lines) on `out` when there is one.
class ControlChannel {
 public:
  ControlChannel(Tracer& tracer, kj::LowLevelAsyncIoProvider& io, int in, int out);
  // Runs until the channel's input ends (the harness closed it).
  kj::Promise<void> run();
  // An event line ("disconnected NAME"), written when there is an output.
  void event(kj::StringPtr line);

 private:
  Tracer& tracer;
  kj::Own<kj::AsyncInputStream> input;
  int out;
  kj::String buffered;
  kj::byte chunk[4096];

  kj::Promise<void> readMore();
  void handle(kj::StringPtr line);
  void reply(kj::StringPtr line);
};

}  // namespace sb
