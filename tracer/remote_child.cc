// The programs that run on a target in place of a local exec (DESIGN D7), by the tgid of the
// sb-stub that stands in for each, and the signals the stub forwards to them.

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
#include "ptrace.h"

namespace sb {

namespace {

using ptrace::getRegs;
using ptrace::setRegs;

}  // namespace

// At a signal-delivery stop of a stub (DESIGN D7): signals meant for the program it stands for
// go to the remote process. Returns true when the signal is not to be delivered here.
bool Tracer::forwardToRemote(Task& task, int sig) {
  RemoteChild* child = nullptr;
  KJ_IF_MAYBE(c, remoteChild(task.tgid)) {
    child = c;
  }
  if (child == nullptr || !child->execDone || child->ended) {
    return false;
  }
  siginfo_t si;
  if (!ptrace::signalInfo(task.tid, si)) {
    return false;
  }
  // Sent by someone (kill, a shell) other than the stub itself; or by the terminal (^C, ^Z,
  // hangup, resize). The kernel's own (SIGPIPE of the stub's write, SIGTTIN of its pump) are
  // the stub's.
  bool sent = si.si_code <= 0 && si.si_pid != task.tgid;
  bool terminal = si.si_code == SI_KERNEL &&
                  (sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP || sig == SIGHUP ||
                   sig == SIGWINCH);
  if (!sent && !terminal) {
    return false;
  }
  // A program with a pseudo-terminal there gets its window size from that terminal: the stub
  // sets it (TIOCSWINSZ on the master), and B's kernel sends the SIGWINCH.
  if (sig == SIGWINCH && child->terminal) {
    return false;
  }
  auto req = child->process.killRequest();
  req.setSignal(sig);
  background.add(req.send().ignoreResult());
  // Stop and continue apply to the stub too, so its parent's job control sees them.
  bool stopOrCont = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU ||
                    sig == SIGCONT;
  return !stopOrCont;
}

void Tracer::addRemoteChild(pid_t tgid, kj::Own<RemoteChild> child) {
  remoteChildren[tgid] = kj::mv(child);
}

kj::Maybe<RemoteChild&> Tracer::remoteChild(pid_t tgid) {
  auto it = remoteChildren.find(tgid);
  if (it == remoteChildren.end()) {
    return nullptr;
  }
  return *it->second;
}

void Tracer::dropRemoteChild(pid_t tgid) { remoteChildren.erase(tgid); }

}  // namespace sb
