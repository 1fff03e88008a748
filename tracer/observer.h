// Observers of trapped syscalls: --trace (one strace-style line per redirected call, with the
// target and the latency) and --stats (a `strace -c`-like table at exit, local and remote apart).
// The tracer reports; observers only format. Handlers never print (DESIGN D11).

#pragma once

#include <chrono>
#include <kj/string.h>
#include <kj/vector.h>
#include <map>
#include <string>
#include <tuple>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/user.h>

#include "options.h"
#include "syscall_table.h"
#include "trace_format.h"
#include "tracee_memory.h"

namespace sb {


// One trapped syscall once its result is known (or known to be the kernel's own).
struct CallRecord {
  pid_t tid;
  int nr;
  kj::StringPtr where;  // The target's name, or "local".
  bool remote;
  bool resultKnown;     // false: the kernel ran it and sbrun did not look at the result
  int64_t result;
  uint64_t micros;      // From the seccomp stop to the answer.
  kj::StringPtr args;   // strace-style arguments, when an observer asked for them
  bool cached = false;  // A remote read answered from the read-ahead window, without an RPC.
  kj::StringPtr why = "";  // -v: why it went where it went (Call::why)
  bool injected = false;   // -e inject= answered it (not performed) or signalled it
  bool delayed = false;    // -e inject= delayed it
  bool performed = true;   // false: an injected error or retval, run neither here nor there
  kj::StringPtr resultNote = "";  // after the result, as strace: ` (left {...})`
};

// A program that started on a target in place of a local exec (DESIGN D7). The exec's own
// CallRecord never comes: a successful exec has no syscall-exit stop.
struct RemoteStart {
  pid_t tid;                          // the exec'ing thread here (now sb-stub)
  kj::StringPtr where;                // the target's name
  kj::ArrayPtr<const kj::String> argv;
  int32_t remotePid;                  // as the agent sees it; 0 from an older agent
  uint64_t micros;                    // from the seccomp stop to the agent's answer
  kj::StringPtr why;                  // why it runs there (exec_rules.h)
};

class SyscallObserver {
 public:
  virtual ~SyscallObserver() noexcept(false) = default;
  virtual bool wantsArgs() const { return false; }
  virtual void onCall(const CallRecord& call) = 0;
  virtual void onRemoteStart(const RemoteStart&) {}
  // At exit: print whatever is printed at the end.
  virtual void finish() {}
};

// --trace, -o FILE: `[pid N] openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3 <b 84us>` for every
// call that went to a target (arguments decoded as strace does: trace_format.h); a read answered
// from the read-ahead window shows `<b cached 3us>`. With -e trace=SET every trapped call in SET
// is traced, those that ran here as `<local>`. -T adds strace's `<0.000084>` (seconds from the
// stop to the answer) before that; an injected call shows `(INJECTED)` or `(DELAYED)` after its
// result, and `<not run>` when its answer was injected. With -v (`explain`), trapped calls
// that ran here are traced too, and every line whose handler said why ends with it:
// `(rule: remote /dev/ttyS0)`, `(scope: b)`. A program that starts on a target gets a line of
// its own: `[pid N] started on b: ["uname", "-n"] = pid 4242 <b 2310us> (a child process in a
// remote scope)`.
class TraceWriter final : public SyscallObserver {
 public:
  // Writes to `out` (not owned when it is stderr). `showLocal`: -e trace= was given.
  TraceWriter(FILE* out, bool owned, bool explain = false, bool showLocal = false,
              bool showTime = false)
      : out(out), owned(owned), explain(explain), showLocal(showLocal), showTime(showTime) {}
  ~TraceWriter() noexcept(false);
  bool wantsArgs() const override { return true; }
  void onCall(const CallRecord& call) override;
  void onRemoteStart(const RemoteStart& start) override;

 private:
  FILE* out;
  bool owned;
  bool explain;
  bool showLocal;
  bool showTime;
};

// --stats[=FILE], -c: counts, errors, injections, bytes moved and time per syscall and where it
// ran (local, each target, each target's read-ahead hits), sorted as strace's -S says.
class StatsCollector final : public SyscallObserver {
 public:
  StatsCollector(FILE* out, bool owned, bool json, StatsSort sort = StatsSort::TIME)
      : out(out), owned(owned), json(json), sort(sort) {}
  ~StatsCollector() noexcept(false);
  void onCall(const CallRecord& call) override;
  void finish() override;

 private:
  struct Row {
    uint64_t calls = 0;
    uint64_t errors = 0;
    uint64_t injected = 0;
    uint64_t bytes = 0;
    uint64_t micros = 0;
  };
  // Where a call ran: here, on a target, answered from that target's read-ahead window, or
  // nowhere (an injected error or retval).
  enum Side { LOCAL, REMOTE, CACHED, NOT_RUN };
  struct Key {
    int nr;
    Side side;
    std::string target;  // "" for LOCAL
    bool operator<(const Key& o) const {
      return std::tie(nr, side, target) < std::tie(o.nr, o.side, o.target);
    }
  };
  FILE* out;
  bool owned;
  bool json;
  StatsSort sort;
  std::map<Key, Row> rows;
};

}  // namespace sb
