// The task model: one tracee thread as sbrun sees it (its fd table, working directories, scope
// stack, and the call of ours it is in), what CLONE_FS shares, and the remote programs sb-stubs
// stand in for.

#pragma once

#include <kj/async.h>
#include <kj/refcount.h>
#include <kj/vector.h>
#include <linux/filter.h>
#include <map>
#include <sys/types.h>
#include <vector>

#include "call.h"
#include "fd_table.h"

namespace sb {

// What CLONE_FS shares: the working directory on each target, and which side the process's
// current directory is on (the last successful chdir decides: relative paths and getcwd follow
// it, whatever the scope).
// The working directory on one target: a directory node of session `generation`, and its path
// there as the agent last reported it ("" while unknown), by which it is found again after a
// reconnect (cwdNode, handler_support.h).
struct RemoteCwd {
  proto::Node::Client node;
  uint64_t generation;
  kj::String path;
  uint64_t serial = 0;  // Which chdir the path answers (a later one supersedes it).
};

class FsContext : public kj::Refcounted {
 public:
  std::map<AgentLink*, RemoteCwd> cwd;
  AgentLink* side = nullptr;  // null: the local cwd
  kj::Own<FsContext> copy() {
    auto fs = kj::refcounted<FsContext>();
    for (auto& [target, c] : cwd) {
      fs->cwd.emplace(target, RemoteCwd{c.node, c.generation, kj::str(c.path), c.serial});
    }
    fs->side = side;
    return fs;
  }
};


// One tracee thread.
struct Task {
  pid_t tid;
  pid_t tgid;
  kj::Own<FdTable> fds;
  kj::Own<FsContext> fs;
  // The active target; null = local. `outer` holds the scopes it was entered from, innermost
  // last (DESIGN D6): `enter` pushes, `exit` pops (see control.h).
  AgentLink* scope = nullptr;
  std::vector<AgentLink*> outer;
  // Its credentials (thread_creds.h): 0 while they are those the program started with.
  uint32_t credsId = 0;

  // Set while the thread is stopped in a trapped syscall awaiting its outcome; destroying it
  // cancels the remote call (the thread died). `call` is that syscall; it lives as long as
  // `pending` does, because an outcome's continuations may refer to it.
  kj::Maybe<kj::Promise<void>> pending;
  kj::Own<Call> call;
  // Parking (see Tracer::park): an interruptible call whose answer is slow lets the thread wait
  // in pause(2), where signals reach it. `parkTimer` runs until then; `parkedOutcome` holds an
  // answer that arrived while parked, until the pause's exit stop, or the delivery stop of a
  // signal that woke it, applies it. A parked thread runs under PTRACE_SYSCALL.
  kj::Maybe<kj::Promise<void>> parkTimer;
  bool parked = false;
  kj::Maybe<Outcome> parkedOutcome;
  // Two-phase interrupt (Tracer::onParkedSignal): the thread is held in the delivery stop of
  // `interruptSig` while the agent interrupts its call; the call's answer (settle) ends it, or
  // `interruptWait` gives up (Node.interrupt failed, or no answer in time) and drops the call.
  bool interrupting = false;
  int interruptSig = 0;
  kj::Maybe<kj::Promise<void>> interruptWait;
  // An outcome that must run the original syscall after all (RunLocal...): applied when the
  // thread, restarted at its syscall instruction, traps again with these registers.
  kj::Maybe<user_regs_struct> replay;
  kj::Maybe<Outcome> replayOutcome;
  // The thread is between sbrun's exec of the launched program and its first image: that exec
  // is sbrun's own and always local.
  bool launching = false;
  // The thread belongs to the process sbrun launched or attached to, which keeps running here
  // through its own exec chain (--spawn=chain, exec_rules.h). Threads share it; a process made
  // by fork, vfork or clone (posix_spawn, subprocess) never has it, nor do its descendants.
  bool execChainHead = false;
  // Its place in the program's family, the same in every run of the same program: "1" the
  // launched program, "1.2" the second thread or process it made, and so on (--record and
  // --replay key what ran here by it, as tids differ from run to run).
  kj::String lineage;
  uint32_t offspring = 0;
  // Set after a PTRACE_SYSCALL resume: what to do at the syscall-exit stop.
  kj::Maybe<kj::Function<void(user_regs_struct&)>> atExit;
  // Set while a seccomp(2) call that stacks a guard filter is being injected: the registers to
  // restore once it is done, where its sock_fprog goes, and the program (see injectGuard).
  kj::Maybe<user_regs_struct> injecting;
  uint64_t injectProg = 0;
  kj::Array<sock_filter> injectInsns;
  // Set while a Sequence's next syscall waits to trap: its registers, the program's own (to
  // restore at the end), and the sequence's continuation (see Tracer::stepSequence).
  struct SequenceState {
    user_regs_struct step;
    user_regs_struct orig;
    kj::Function<Sequence::Step(int64_t)> next;
    kj::Function<void(int64_t)> reporter;
  };
  kj::Maybe<SequenceState> sequence;
  bool stepRunning = false;  // A step is between its entry and exit stops.
  // The first stop of a new thread may arrive before its parent's clone event.
  bool seenFirstStop = false;
  bool attached = false;  // its parent's clone event has set it up
  // Attach mode: sbrun is letting go of this thread (detach) at its next quiet stop.
  bool detached = false;
};

// A program running on a target in place of a local exec (DESIGN D7), seen from the local
// sb-stub process that stands in for it.
struct RemoteChild {
  AgentLink& target;
  proto::Process::Client process;
  // The agent's ends of the pipes for the remote fds 0-2 that the stub pumps; handed to the
  // stub (SB_STUB_FD) once each.
  kj::Maybe<proto::Node::Client> pipes[3];
  kj::String program;  // As exec named it, for messages.
  // It has a pseudo-terminal on the target (stdin is a terminal here): pipes[0] is its master,
  // and the stub resizes it on SIGWINCH itself.
  bool terminal = false;
  bool execDone = false;  // The local exec of the stub succeeded.
  bool ended = false;     // Its status has reached the stub: signals are the stub's own again.
};

inline TraceeMemory Call::mem() const { return TraceeMemory(task.tid); }
inline int64_t Call::writeScratch(uint64_t addr, kj::ArrayPtr<const kj::byte> bytes) {
  scratch.add(addr, kj::heapArray(bytes));
  return mem().write(addr, bytes);
}


}  // namespace sb
