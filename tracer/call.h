// The handler ABI: what a handler sees of one trapped syscall (Call) and what it answers
// (Outcome: complete it, let it run, rewrite it, or run a Sequence of syscalls in the tracee).
// trapped_call.cc carries the answer out. Handlers must not care which backend trapped the call
// (DESIGN D12).

#pragma once

#include <chrono>
#include <kj/async.h>
#include <kj/function.h>
#include <kj/one-of.h>
#include <kj/string.h>
#include <sys/user.h>

#include "splitbrain.capnp.h"
#include "syscall_table.h"
#include "trace_format.h"
#include "tracee_memory.h"

namespace sb {

class AgentLink;
class Tracer;
struct Task;

// What the observers need of one trapped call, taken at its stop. A call has one only when some
// observer wants it (-e trace= and -P choose), so unobserved calls cost nothing more.
struct CallObservation {
  pid_t tid;
  int nr;
  uint64_t args[6];
  std::chrono::steady_clock::time_point start;
  kj::Array<kj::String> fdNotes;  // -y: per argument, taken before the call (a close ends it)
  CallEntry entry;                // what the line needs that the call overwrites (trace_format.h)
  bool injected = false;          // -e inject= answered (or signalled) it: (INJECTED)
  bool delayed = false;           // -e inject= delayed it: (DELAYED)
  bool notRun = false;            // -e inject= answered it: performed neither here nor there
};

// What a handler decided for one trapped syscall.
struct Complete {                   // skip the syscall; return ret (-errno on failure)
  int64_t ret;
  // A signal the kernel would raise at the calling thread with this answer (SIGPIPE for EPIPE
  // from a send or write on a socket or FIFO, unless MSG_NOSIGNAL), or 0.
  int signal = 0;
};
struct RunLocal {                   // let the kernel run it as it is
  // For observers only: the answer when it is already known (a remote close that succeeded,
  // before the kernel closes the placeholder).
  kj::Maybe<int64_t> known = nullptr;
};
struct RunLocalThen {               // let it run, then see (and may change) its result
  kj::Function<int64_t(int64_t)> after;
};
struct Rewrite {                    // run another syscall instead; registers are restored after
  user_regs_struct regs;
  kj::Function<int64_t(int64_t)> after;
};
// Several syscalls run in the tracee on the program's behalf, one after another, before its own
// call returns (mmap of a remote file: open sbrun's copy, map it, close it). `regs` is the first
// one (it replaces the trapped call); after each, `next` sees its result and names the next
// syscall or ends the sequence with the program's answer. Steps after the first run from the
// syscall instruction again, so the filter must trap them (openat, close and mmap of an fd are
// trapped) and a signal handler may run in between: they must not rely on tracee memory written
// before the step (the scratch area below the stack may be a handler's frame by then).
struct Sequence {
  struct Next { user_regs_struct regs; };
  struct Done { int64_t ret; };
  using Step = kj::OneOf<Next, Done>;
  user_regs_struct regs;
  kj::Function<Step(int64_t)> next;
};
using Outcome = kj::OneOf<Complete, RunLocal, RunLocalThen, Rewrite, Sequence>;


// One trapped syscall, as the handler sees it.
struct Call {
  Tracer& tracer;
  Task& task;
  user_regs_struct regs;
  int nr;
  const SyscallRow* row;
  // The target of the remote call in flight, so a failure maps to its errno policy (EIO).
  AgentLink* target = nullptr;
  // For observers (--trace, --stats): what they need of this stop; null when none wants the
  // call (none is on, or -e trace= and -P leave it out).
  kj::Own<CallObservation> observation = {};

  // Set by the handler: the call may wait indefinitely (a pipe read, a lock wait), so a signal
  // must interrupt it as the kernel's would (Tracer::park).
  bool interruptible = false;
  // Bytes a chunked transfer has completed so far: what an interrupted call returns.
  int64_t progress = 0;
  // What a signal that ends the wait makes of the call (Tracer::onParkedSignal): the result
  // (-ERESTARTSYS and friends included) and any register change (a restarted poll's remaining
  // timeout). Unset: `progress`, or -ERESTARTSYS.
  kj::Maybe<kj::Function<int64_t(user_regs_struct&)>> onInterrupt = nullptr;
  // Tracee address of a sigset to wait under while parked (ppoll, pselect6, epoll_pwait: the
  // temporary mask applies during the wait): parking uses rt_sigsuspend instead of pause.
  uint64_t parkMask = 0;
  // What a signal does to the interrupted call when it handled nothing yet: restart it under
  // SA_RESTART (-ERESTARTSYS), or always fail with EINTR (a socket call with a timeout set,
  // socket(7)).
  bool restartOnSignal = true;
  // Set by the handler of an interruptible call on a remote Node (a recv, an accept, a FIFO
  // read ...): a signal that ends the wait first asks the agent to interrupt the call
  // (Node.interrupt) and takes whatever it then returns (Tracer::onParkedSignal), so bytes or a
  // connection B's kernel already gave are not lost. Unset: the call is dropped.
  kj::Maybe<proto::Node::Client> interruptNode = nullptr;
  // With -v and --trace (Tracer::explains): why the call went local or remote, e.g.
  // "rule: local /usr (default)", "scope: target1", "relative to the cwd on target1".
  kj::String why = {};
  // Set by a read answered from a read-ahead window without a remote call of its own (for
  // --trace and --stats, which show it as "cached").
  bool readAheadHit = false;
  // The handler's outcome has come (Tracer::settle): no longer waiting for a target.
  bool settled = false;
  // What the outcome's registers point at below the stack (a placeholder's "/", sb-stub's path,
  // a local copy's name: abi::scratchBelow). Written again when a parked call's outcome is
  // applied after a signal handler ran on that stack (Tracer::onReplay).
  kj::Vector<std::pair<uint64_t, kj::Array<kj::byte>>> scratch = {};

  uint64_t arg(int i) const;
  // An answer of -EINTR although sbrun interrupted nothing: another thread's signal interrupted
  // every blocking call on the same node (Node.interrupt). The kernel never woke this call, so
  // it must run again.
  bool wokenByOther(const Outcome& o) const;
  int fdArg(int i) const { return static_cast<int>(arg(i)); }
  TraceeMemory mem() const;
  // Writes `bytes` at `addr` below the stack for the outcome's registers, and keeps them (see
  // `scratch`). 0 or -errno, as TraceeMemory::write.
  int64_t writeScratch(uint64_t addr, kj::ArrayPtr<const kj::byte> bytes);
};

using Handler = kj::Promise<Outcome> (*)(Call& call);
// The handler for a syscall number, or null (see handlers.cc).
Handler findHandler(int nr);

}  // namespace sb
