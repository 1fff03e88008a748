#include "control.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <kj/debug.h>
#include <vector>

#include "errno_names.h"
#include "agent_link.h"
#include "task.h"

namespace sb {

namespace {

// Splits "verb rest" at the first space.
std::pair<kj::StringPtr, kj::StringPtr> verbOf(kj::StringPtr line) {
  KJ_IF_MAYBE(space, line.findFirst(' ')) {
    return {kj::StringPtr(line.begin(), *space), line.slice(*space + 1)};
  }
  return {line, kj::StringPtr("")};
}

bool isNumber(kj::StringPtr s) {
  if (s.size() == 0) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace

int64_t applyScopeCommand(kj::ArrayPtr<kj::Own<AgentLink>> targets, Task* task,
                          kj::StringPtr line) {
  auto [verb, arg] = verbOf(line);
  if (verb == "enter") {
    AgentLink* target = nullptr;
    if (arg.size() == 0) {
      target = targets[0].get();
    } else {
      for (auto& t : targets) {
        if (t->name() == arg) {
          target = t.get();
        }
      }
      if (target == nullptr) {
        return -ENOENT;
      }
    }
    if (task != nullptr) {
      task->outer.push_back(task->scope);
      task->scope = target;
    }
    return 0;
  }
  if (verb == "local" && arg.size() == 0) {
    if (task != nullptr) {
      task->outer.push_back(task->scope);
      task->scope = nullptr;
    }
    return 0;
  }
  if (verb == "exit" && arg.size() == 0) {
    if (task != nullptr) {
      if (task->outer.empty()) {
        return -EINVAL;  // Nothing to return to.
      }
      task->scope = task->outer.back();
      task->outer.pop_back();
    }
    return 0;
  }
  return -EINVAL;
}

kj::StringPtr scopeName(Task& task) {
  return task.scope == nullptr ? kj::StringPtr("local") : task.scope->name();
}

ControlChannel::ControlChannel(ScopeHost& tracer, kj::LowLevelAsyncIoProvider& io, int in, int out)
    : tracer(tracer),
      input(io.wrapInputFd(in, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP)),
      out(out),
      buffered(kj::str("")) {}

kj::Promise<void> ControlChannel::run() { return readMore(); }

kj::Promise<void> ControlChannel::readMore() {
  return input->tryRead(chunk, 1, sizeof(chunk)).then([this](size_t n) -> kj::Promise<void> {
    if (n == 0) {
      return kj::READY_NOW;  // The harness closed its end: the program runs on as it is.
    }
    buffered = kj::str(buffered, kj::StringPtr(reinterpret_cast<char*>(chunk), n));
    for (;;) {
      KJ_IF_MAYBE(nl, buffered.findFirst('\n')) {
        auto line = kj::heapString(buffered.slice(0, *nl));
        buffered = kj::str(buffered.slice(*nl + 1));
        handle(line);
      } else {
        break;
      }
    }
    if (buffered.size() > 4096) {
      reply("error EINVAL line too long");
      buffered = kj::str("");
    }
    return readMore();
  });
}

// "enter NAME [TID|all]", "enter", "local [TID|all]", "exit [TID|all]", "scope TID", "detach".
// Without TID/all a command applies to every traced thread.
void ControlChannel::handle(kj::StringPtr rawLine) {
  kj::StringPtr line = rawLine;
  while (line.size() > 0 && (line[line.size() - 1] == '\r' || line[line.size() - 1] == ' ')) {
    line = kj::StringPtr(line.begin(), line.size() - 1);
  }
  if (line.size() == 0) {
    return;
  }
  std::vector<kj::StringPtr> words;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ' ') {
      if (i > start) {
        words.push_back(kj::StringPtr(line.begin() + start, i - start));
      }
      start = i + 1;
    }
  }
  auto verb = words[0];
  if (verb == "detach") {
    int64_t r = tracer.detachAll();
    reply(r == 0 ? kj::str("ok detach")
                 : r == -EOPNOTSUPP
                       ? kj::str("error EOPNOTSUPP detach: a launched program cannot run on "
                                 "without sbrun (its seccomp filter stays); only an attached "
                                 "one (sbrun --pid) can be detached")
                       : kj::str("error ", errnoName(-r), " detach: ", strerror(-r)));
    return;
  }
  if (verb == "scope") {
    if (words.size() != 2 || !isNumber(words[1])) {
      reply("error EINVAL usage: scope TID");
      return;
    }
    KJ_IF_MAYBE(task, tracer.findTask(atoi(words[1].cStr()))) {
      reply(kj::str("ok scope ", words[1], " ", scopeName(*task)));
    } else {
      reply(kj::str("error ESRCH no traced thread ", words[1]));
    }
    return;
  }
  // The scope command itself, and whom it is for: "enter NAME [WHO]", "local [WHO]",
  // "exit [WHO]", WHO being a TID or "all" (the default).
  kj::String command;
  size_t whoAt;
  if (verb == "enter" && words.size() >= 2) {
    command = kj::str("enter ", words[1]);
    whoAt = 2;
  } else if (verb == "local" || verb == "exit") {
    command = kj::str(verb);
    whoAt = 1;
  } else {
    reply(kj::str("error EINVAL unknown command: ", line));
    return;
  }
  kj::StringPtr who = words.size() > whoAt ? words[whoAt] : kj::StringPtr("all");
  if (words.size() > whoAt + 1 || (who != "all" && !isNumber(who))) {
    reply(kj::str("error EINVAL usage: ", verb, verb == "enter" ? " NAME" : "", " [TID|all]"));
    return;
  }
  int64_t r = who == "all" ? tracer.applyToAll(command)
                           : tracer.applyToThread(atoi(who.cStr()), command);
  if (r < 0) {
    reply(kj::str("error ", errnoName(-r), " ", line, ": ",
                  r == -ENOENT ? "no such target" : r == -ESRCH ? "no such traced thread"
                                                                 : strerror(-r)));
  } else {
    reply(kj::str("ok ", line));
  }
}

void ControlChannel::event(kj::StringPtr line) { reply(line); }

void ControlChannel::reply(kj::StringPtr line) {
  if (out < 0) {
    return;
  }
  auto text = kj::str(line, "\n");
  // Status lines are short; a harness that stops reading loses them, never blocks the tracer.
  (void)!::write(out, text.begin(), text.size());
}

}  // namespace sb
