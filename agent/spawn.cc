// Process, part 2: Session.spawn. The request's nodes are resolved to this session's fds, the
// pipes and /dev/null are made, and a child is forked that sets itself up and execs. Its exec's
// outcome comes back through a CLOEXEC pipe: EOF means the exec succeeded, four bytes are the
// errno it failed with. So the tracer gets exactly what execve(2) would have said.
//
// Why execveat on the request's path rather than on an fd opened here: a `#!` script runs with
// the path it was exec'ed by as $0, and an interpreter cannot open a CLOEXEC fd's /dev/fd/N.
// For the same reason a relative path whose `dir` is the working directory is exec'ed from the
// working directory (AT_FDCWD): the kernel would name the script /dev/fd/N/PATH otherwise.
//
// `terminal` fds get the slave of a new pseudo-terminal, made here before the fork, and the child
// starts a session of its own with it as the controlling terminal (as sshd does for `ssh -t`):
// the tracer asks for one when the exec'ing process's stdin is a terminal on A.
//
// Under --root the child chroots to the root before anything resolves, which confines the
// program, its interpreter and its libraries like every other path the agent serves. chroot
// needs CAP_SYS_CHROOT: an agent without it answers EPERM (documented in sbagent(1)).

#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include <kj/debug.h>

#include "child_privileges.h"
#include "credentials.h"
#include "host_wire.h"
#include "session_isolation.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

namespace sb {

namespace {

// One fd of the new process.
struct Slot {
  enum class Kind { NODE, TO_CHILD, FROM_CHILD, DEV_NULL, SAME_AS, TERMINAL };
  int target = -1;
  Kind kind = Kind::DEV_NULL;
  int sameAs = -1;           // SAME_AS: the fd it shares, then the index of that fd's slot
  kj::Own<FdRef> node;       // NODE, once resolved
  kj::AutoCloseFd childEnd;  // what the child gets, for the other kinds
  kj::AutoCloseFd agentEnd;  // pipes: the agent's end, answered as a Node in `stdio`

  // Answered in `stdio`: a pipe's agent end, or a pseudo-terminal's master.
  bool isPipe() const {
    return kind == Kind::TO_CHILD || kind == Kind::FROM_CHILD || kind == Kind::TERMINAL;
  }
  int source() const { return kind == Kind::NODE ? node->get() : childEnd.get(); }
};

// A decoded request. On the heap: node lookups resolve into it.
struct SpawnPlan {
  kj::String path;
  kj::Vector<kj::String> argv;
  kj::Vector<kj::String> envp;
  bool emptyPath = false;
  bool noFollow = false;
  bool keepStdinReader = false;
  kj::AutoCloseFd stdinReader;  // keepStdinReader: a reader of fd 0's pipe that never reads
  mode_t umask = 022;
  kj::Own<const CallerCredentials> creds;  // null: the agent's own
  kj::Own<FdRef> dir;        // null: the request names none
  kj::Own<FdRef> cwd;        // null: the agent's root
  std::vector<Slot> slots;   // sorted by target
  int terminal = -1;         // the target of the (first) terminal slot, or -1
  struct winsize size = {};  // the terminal's window size, when known
  kj::Own<FdRef> exitWatch;  // the child's pidfd, for the pipeFromChild nodes
};

int64_t decodeStrings(capnp::List<capnp::Data>::Reader list, kj::Vector<kj::String>& out) {
  for (auto item: list) {
    if (memchr(item.begin(), '\0', item.size()) != nullptr) {
      return -EINVAL;  // a C caller cannot pass one
    }
    out.add(kj::heapString(item.asChars()));
  }
  return 0;
}

int64_t decodeRequest(proto::SpawnRequest::Reader request, SpawnPlan& plan) {
  int64_t r = pathFromWire(request.getPath(), plan.path);
  if (r >= 0) r = decodeStrings(request.getArgv(), plan.argv);
  if (r >= 0) r = decodeStrings(request.getEnvp(), plan.envp);
  if (r < 0) {
    return r;
  }
  plan.emptyPath = request.getEmptyPath();
  plan.noFollow = request.getNoFollow();
  plan.keepStdinReader = request.getKeepStdinReader();
  plan.umask = mode_t(request.getUmask() & 0777);
  for (auto fd: request.getFds()) {
    Slot slot;
    slot.target = fd.getFd();
    if (slot.target < 0) {
      return -EBADF;  // what dup2 says about a negative fd
    }
    switch (fd.which()) {
      case proto::ChildFd::NODE:
        if (!fd.hasNode()) {
          return -EBADF;
        }
        slot.kind = Slot::Kind::NODE;
        break;
      case proto::ChildFd::PIPE_TO_CHILD:
        slot.kind = Slot::Kind::TO_CHILD;
        break;
      case proto::ChildFd::PIPE_FROM_CHILD:
        slot.kind = Slot::Kind::FROM_CHILD;
        break;
      case proto::ChildFd::DEV_NULL:
        slot.kind = Slot::Kind::DEV_NULL;
        break;
      case proto::ChildFd::SAME_AS:
        slot.kind = Slot::Kind::SAME_AS;
        slot.sameAs = fd.getSameAs();
        break;
      case proto::ChildFd::TERMINAL:
        slot.kind = Slot::Kind::TERMINAL;
        break;
      default:
        return -EINVAL;  // a kind from a newer peer
    }
    plan.slots.push_back(kj::mv(slot));
  }
  // Sorted, the child can close the gaps between targets in one pass.
  std::stable_sort(plan.slots.begin(), plan.slots.end(),
                   [](const Slot& a, const Slot& b) { return a.target < b.target; });
  for (size_t i = 1; i < plan.slots.size(); ++i) {
    if (plan.slots[i].target == plan.slots[i - 1].target) {
      return -EINVAL;
    }
  }
  // A sameAs (`2>&1`) names another listed fd that is not a sameAs: resolved to its slot.
  for (auto& slot: plan.slots) {
    if (slot.kind != Slot::Kind::SAME_AS) {
      continue;
    }
    auto other = std::find_if(plan.slots.begin(), plan.slots.end(),
                              [&](const Slot& s) { return s.target == slot.sameAs; });
    if (other == plan.slots.end() || other->kind == Slot::Kind::SAME_AS) {
      return -EINVAL;
    }
    slot.sameAs = int(other - plan.slots.begin());
  }
  // One pseudo-terminal for every terminal fd: the lowest makes it, the others share its slave.
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    auto& slot = plan.slots[i];
    if (slot.kind != Slot::Kind::TERMINAL) {
      continue;
    }
    if (plan.terminal < 0) {
      plan.terminal = slot.target;
      plan.size.ws_row = request.getTerminalRows();
      plan.size.ws_col = request.getTerminalCols();
      continue;
    }
    auto first = std::find_if(plan.slots.begin(), plan.slots.end(),
                              [&](const Slot& s) { return s.target == plan.terminal; });
    slot.kind = Slot::Kind::SAME_AS;
    slot.sameAs = int(first - plan.slots.begin());
  }
  return 0;
}

// A new pseudo-terminal: the master for the agent, the slave for the child (both CLOEXEC, and
// the slave not our controlling terminal). 0 or -errno.
int64_t openTerminal(Slot& slot, const struct winsize& size) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) {
    return -int64_t(errno);
  }
  slot.agentEnd = kj::AutoCloseFd(master);
  char name[64];
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0) {
    return -int64_t(errno);
  }
  if (size.ws_row > 0 && size.ws_col > 0 && ioctl(master, TIOCSWINSZ, &size) < 0) {
    return -int64_t(errno);
  }
  int slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    return -int64_t(errno);
  }
  slot.childEnd = kj::AutoCloseFd(slave);
  return 0;
}

// This session's node behind `client`, as a reference on its fd; null for another session's
// node (or another agent's) and for a closed one.
kj::Promise<kj::Maybe<kj::Own<FdRef>>> lookUp(SessionState& session, proto::Node::Client client) {
  return session.nodes.getLocalServer(client).then(
      [](kj::Maybe<proto::Node::Server&> server) -> kj::Maybe<kj::Own<FdRef>> {
        KJ_IF_MAYBE(s, server) {
          // The set only ever holds NodeImpls.
          return static_cast<NodeImpl&>(*s).shareFd();
        }
        return nullptr;
      });
}

// Whether a relative path resolves the same from `a` as from `b` (same directory, same mount).
bool sameDirectory(int a, int b) {
  struct statx x, y;
  unsigned mask = STATX_INO | STATX_MNT_ID;
  if (statx(a, "", AT_EMPTY_PATH, mask, &x) < 0 || statx(b, "", AT_EMPTY_PATH, mask, &y) < 0) {
    return false;
  }
  bool sameMount = !(x.stx_mask & y.stx_mask & STATX_MNT_ID) || x.stx_mnt_id == y.stx_mnt_id;
  return sameMount && x.stx_dev_major == y.stx_dev_major && x.stx_dev_minor == y.stx_dev_minor &&
         x.stx_ino == y.stx_ino;
}

// Everything the child needs, ready before fork. After fork only async-signal-safe calls may run
// (another agent thread may have held the malloc lock), so the child neither allocates nor
// formats: it makes syscalls on these values.
struct ChildPlan {
  pid_t parent;  // as getppid() shows it: 0 in a session's pid namespace (the agent is outside)
  int cgroupProcs;                    // the session's cgroup.procs, or -1
  const ChildPrivileges* privileges;  // what to give up before exec, or null
  int report;  // write end of the exec-status pipe (CLOEXEC)
  int terminal;  // the fd that becomes the controlling terminal (a new session), or -1
  int rootFd;  // chroot here first when >= 0 (a confined agent)
  int cwdFd;
  int dirFd;   // execveat's dirfd, or AT_FDCWD
  const char* path;
  char* const* argv;
  char* const* envp;
  int execFlags;
  mode_t umask;
  const CallerCredentials* creds;  // null: the agent's own
  const int* targets;  // ascending
  const int* sources;  // sources[i] goes to targets[i]
  int* moved;          // room for `count` fds
  size_t count;
  struct sigaction defaultAction;
};

[[noreturn]] void childFail(int report, int error) {
  // Four bytes into a pipe are written whole; if the agent is gone nobody listens anyway.
  ssize_t ignored = ::write(report, &error, sizeof(error));
  (void)ignored;
  _exit(127);
}

[[noreturn]] void runChild(const ChildPlan& p) {
  int report = p.report;
  // exec keeps ignored signals and the mask: the agent's (SIGPIPE ignored, SIGTERM blocked for
  // the event loop) are not the program's.
  for (int sig = 1; sig < NSIG; ++sig) {
    sigaction(sig, &p.defaultAction, nullptr);  // EINVAL for SIGKILL, SIGSTOP: nothing to reset
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Its own process group, so the session's end reaches its descendants too; with a terminal,
  // a session of its own too (which makes that group), so that the terminal can be its
  // controlling one.
  if ((p.terminal >= 0 ? setsid() : setpgid(0, 0)) < 0) childFail(report, errno);
  // And it dies with the agent. The death signal belongs to the forking thread: the event loop's.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) childFail(report, errno);
  if (getppid() != p.parent) _exit(127);  // the agent died before the prctl
  // Into the session's cgroup before anything it runs can fork.
  if (p.cgroupProcs >= 0 && ::write(p.cgroupProcs, "0", 1) != 1) childFail(report, errno);
  umask(p.umask);
  if (p.rootFd >= 0 && (fchdir(p.rootFd) < 0 || chroot(".") < 0)) childFail(report, errno);
  // After the chroot, which needs CAP_SYS_CHROOT, the first capability to go.
  if (p.privileges != nullptr) {
    int error = applyChildPrivileges(*p.privileges);
    if (error != 0) childFail(report, error);
  }
  // The spawning thread's identity, once nothing needs the agent's privileges any more; the
  // working directory is then entered as the program would enter it (search permission).
  if (p.creds != nullptr) {
    int error = becomeCaller(*p.creds);
    if (error != 0) childFail(report, error);
  }
  if (fchdir(p.cwdFd) < 0) childFail(report, errno);

  // Every fd still needed goes above the highest target first, so that placing one target can
  // never overwrite a source or the status pipe still to be used...
  int base = p.count > 0 ? p.targets[p.count - 1] + 1 : 0;
  report = fcntl(report, F_DUPFD_CLOEXEC, base);
  if (report < 0) childFail(p.report, errno);
  int dir = p.dirFd;
  if (dir >= 0 && (dir = fcntl(dir, F_DUPFD_CLOEXEC, base)) < 0) childFail(report, errno);
  for (size_t i = 0; i < p.count; ++i) {
    if ((p.moved[i] = fcntl(p.sources[i], F_DUPFD_CLOEXEC, base)) < 0) childFail(report, errno);
  }
  // ...then each is placed (dup2 clears CLOEXEC on the copy)...
  for (size_t i = 0; i < p.count; ++i) {
    if (dup2(p.moved[i], p.targets[i]) < 0) childFail(report, errno);
  }
  // ...what lies between the targets is closed, and everything above them closes on exec.
  unsigned next = 0;
  for (size_t i = 0; i < p.count; ++i) {
    unsigned target = unsigned(p.targets[i]);
    if (target > next && syscall(SYS_close_range, next, target - 1, 0) < 0) {
      childFail(report, errno);
    }
    next = target + 1;
  }
  if (syscall(SYS_close_range, unsigned(base), ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    childFail(report, errno);
  }
  // ^C, ^Z and window changes on the terminal now reach its foreground group: this process.
  if (p.terminal >= 0 && ioctl(p.terminal, TIOCSCTTY, 0) < 0) childFail(report, errno);
  syscall(SYS_execveat, dir, p.path, p.argv, p.envp, p.execFlags);
  // execveat is missing before Linux 3.19 and under qemu-user 7.2 (Debian 12's), where a board's
  // agent is tested. Where execve means exactly the same (no flags, and a path that does not
  // depend on the dirfd: absolute, or relative to the cwd set above) it stands in.
  if (errno == ENOSYS && p.execFlags == 0 && (dir == AT_FDCWD || p.path[0] == '/')) {
    execve(p.path, p.argv, p.envp);
  }
  childFail(report, errno);
}

// Makes the pipes and /dev/null and forks the child. Returns its pid, or -errno with nothing
// left running; `status` gets the read end of the exec-status pipe.
int64_t forkChild(SpawnPlan& plan, const Confinement& conf, SessionJail* jail,
                  const ChildPrivileges* privileges, kj::AutoCloseFd& status) {
  int pidns = jail != nullptr ? jail->pidNamespaceFd() : -1;
  if (pidns == -2) {
    return -EAGAIN;  // the session's namespace is gone; fork(2) there would say ENOMEM
  }
  for (auto& slot: plan.slots) {
    int ends[2];
    switch (slot.kind) {
      case Slot::Kind::NODE:
      case Slot::Kind::SAME_AS:
        break;
      case Slot::Kind::TO_CHILD:
      case Slot::Kind::FROM_CHILD: {
        if (pipe2(ends, O_CLOEXEC) < 0) {
          return -int64_t(errno);
        }
        bool toChild = slot.kind == Slot::Kind::TO_CHILD;
        slot.childEnd = kj::AutoCloseFd(ends[toChild ? 0 : 1]);
        slot.agentEnd = kj::AutoCloseFd(ends[toChild ? 1 : 0]);
        if (toChild && slot.target == 0 && plan.keepStdinReader) {
          int reader = fcntl(ends[0], F_DUPFD_CLOEXEC, 3);
          if (reader < 0) {
            return -int64_t(errno);
          }
          plan.stdinReader = kj::AutoCloseFd(reader);
        }
        break;
      }
      case Slot::Kind::DEV_NULL: {
        int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
          return -int64_t(errno);
        }
        slot.childEnd = kj::AutoCloseFd(fd);
        break;
      }
      case Slot::Kind::TERMINAL: {
        int64_t r = openTerminal(slot, plan.size);
        if (r < 0) {
          return r;
        }
        break;
      }
    }
  }
  int statusPipe[2];
  if (pipe2(statusPipe, O_CLOEXEC) < 0) {
    return -int64_t(errno);
  }
  status = kj::AutoCloseFd(statusPipe[0]);
  kj::AutoCloseFd report(statusPipe[1]);

  kj::Vector<char*> argv;
  kj::Vector<char*> envp;
  for (auto& s: plan.argv) argv.add(s.begin());
  for (auto& s: plan.envp) envp.add(s.begin());
  argv.add(nullptr);
  envp.add(nullptr);
  std::vector<int> targets, sources, moved(plan.slots.size());
  for (auto& slot: plan.slots) {
    targets.push_back(slot.target);
    sources.push_back(slot.kind == Slot::Kind::SAME_AS ? plan.slots[slot.sameAs].source()
                                                       : slot.source());
  }
  int cwdFd = plan.cwd ? plan.cwd->get() : conf.rootFd();
  bool useDir = plan.dir && (plan.path.size() == 0 ||
                             (plan.path[0] != '/' && !sameDirectory(plan.dir->get(), cwdFd)));
  ChildPlan child{};
  child.parent = pidns >= 0 ? 0 : getpid();
  child.cgroupProcs = jail != nullptr ? jail->cgroupProcsFd() : -1;
  child.privileges = privileges;
  child.report = report.get();
  child.terminal = plan.terminal;
  child.rootFd = conf.isConfined() ? conf.rootFd() : -1;
  child.cwdFd = cwdFd;
  child.dirFd = useDir ? plan.dir->get() : AT_FDCWD;
  child.path = plan.path.cStr();
  child.argv = argv.begin();
  child.envp = envp.begin();
  child.execFlags = (plan.emptyPath ? AT_EMPTY_PATH : 0) | (plan.noFollow ? AT_SYMLINK_NOFOLLOW : 0);
  child.umask = plan.umask;
  child.creds = plan.creds.get();
  child.targets = targets.data();
  child.sources = sources.data();
  child.moved = moved.data();
  child.count = targets.size();
  child.defaultAction.sa_handler = SIG_DFL;
  sigemptyset(&child.defaultAction.sa_mask);

  // vfork, as posix_spawn does: fork would copy the agent's page tables, whose size grows with
  // the message memory it keeps (main.cc), on every spawn. The child shares our memory until it
  // execs, so it only makes syscalls and writes its own stack and `moved`; every signal stays
  // blocked until it has reset the handlers, so none of the agent's can run in it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid;
  int error;
  {
    // The child is born in the session's pid namespace; this thread's later children are not.
    std::optional<PidNamespaceEntry> entry;
    if (pidns >= 0) {
      entry.emplace(pidns);
      if (entry->error() != 0) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return -int64_t(entry->error());
      }
    }
    pid = vfork();
    if (pid == 0) {
      runChild(child);
    }
    error = errno;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // The child has its copies; the agent keeps only its own ends.
  for (auto& slot: plan.slots) {
    slot.childEnd = kj::AutoCloseFd();
  }
  return pid < 0 ? -int64_t(error) : int64_t(pid);
}

// The answer once the exec-status pipe has spoken (`execResult`: 0 or -errno).
kj::Promise<void> answer(SpawnContext context, SessionState& session,
                         SpawnPlan& plan, kj::Own<Child> child, int64_t execResult) {
  if (execResult < 0) {
    // The child _exits right after reporting: answer once it is reaped, so that no zombie
    // outlives the call.
    return child->whenReaped().then(
        [context, execResult]() mutable { context.getResults().setResult(execResult); });
  }
  auto results = context.getResults();
  results.setResult(0);
  results.setPid(child->pid());
  size_t pipes = std::count_if(plan.slots.begin(), plan.slots.end(),
                               [](const Slot& s) { return s.isPipe(); });
  auto stdio = results.initStdio(pipes);
  size_t i = 0;
  for (auto& slot: plan.slots) {
    if (!slot.isPipe()) {
      continue;
    }
    kj::Maybe<kj::Own<FdRef>> watch;
    if (slot.kind == Slot::Kind::FROM_CHILD || slot.kind == Slot::Kind::TERMINAL) {
      watch = kj::atomicAddRef(*plan.exitWatch);
    }
    proto::FileType type;
    stdio[i].setFd(slot.target);
    stdio[i].setNode(session.newNode(slot.agentEnd.release(), type, kj::mv(watch)));
    ++i;
  }
  results.setProcess(kj::heap<ProcessImpl>(kj::mv(child), kj::mv(plan.stdinReader)));
  return kj::READY_NOW;
}

// Forks and execs the resolved plan, and answers.
kj::Promise<void> start(SpawnContext context, kj::Own<SessionState> session,
                        SessionProcesses& processes, kj::Own<SpawnPlan> plan) {
  kj::AutoCloseFd status;
  SessionJail* jail = processes.jailFor(session->agent);
  const ChildPrivileges* privileges = nullptr;
  KJ_IF_MAYBE(isolation, session->agent.isolation) {
    privileges = &isolation->childPrivileges();
  }
  int64_t pid = forkChild(*plan, session->agent.confinement, jail, privileges, status);
  if (pid < 0) {
    context.getResults().setResult(pid);
    return kj::READY_NOW;
  }
  int pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  if (pidfd < 0) {
    int error = errno;
    // Unwatchable: end it now. It is still ours to reap and dies at once (it has at most just
    // begun the exec), so this short wait is the only one the loop ever makes.
    ::kill(pid_t(pid), SIGKILL);
    while (waitpid(pid_t(pid), nullptr, 0) < 0 && errno == EINTR) {
    }
    context.getResults().setResult(-int64_t(error));
    return kj::READY_NOW;
  }
  auto pidfdRef = kj::atomicRefcounted<FdRef>(pidfd);
  // Taken now: the child may well be reaped before the exec status arrives.
  plan->exitWatch = kj::atomicAddRef(*pidfdRef);
  auto child = kj::refcounted<Child>(pid_t(pid), kj::mv(pidfdRef));
  processes.add(kj::addRef(*child));
  session->agent.reaper.watch(kj::addRef(*child));

  // Reading the status waits for the exec, which may take its time (a binary on a slow NFS).
  auto statusRef = kj::atomicRefcounted<FdRef>(status.release());
  return session->agent.executor
      .run([statusRef = kj::mv(statusRef)]() {
        int error = 0;
        ssize_t n;
        // Retried: the read ends as soon as the child has exec'd or died anyway, and an interrupt
        // (a stray one, or the connection going) must not pass for the exec's errno.
        do {
          n = ::read(statusRef->get(), &error, sizeof(error));
        } while (n < 0 && errno == EINTR);
        WorkResult w;
        w.result = n < 0                           ? -int64_t(errno)
                   : n == ssize_t(sizeof(error))   ? -int64_t(error)
                                                   : 0;  // EOF: the exec succeeded
        return w;
      })
      .then([context, session = kj::mv(session), plan = kj::mv(plan),
             child = kj::mv(child)](WorkResult&& w) mutable {
        return answer(context, *session, *plan, kj::mv(child), w.result);
      });
}

}  // namespace

kj::Promise<void> spawn(SessionState& session, SessionProcesses& processes,
                        SpawnContext context) {
  auto request = context.getParams().getRequest();
  auto plan = kj::heap<SpawnPlan>();
  // A read-only agent runs no programs: any of them could write. EACCES is what execve says
  // for a file system mounted noexec.
  int64_t r = session.agent.readOnly ? -EACCES : decodeRequest(request, *plan);
  if (r >= 0 && request.getCredentials() != 0) {
    auto found = session.credentials.find(request.getCredentials());
    if (found == session.credentials.end()) {
      r = -EINVAL;  // never defined: the client's bug, answered rather than ignored
    } else {
      plan->creds = kj::atomicAddRef(*found->second);
    }
  }
  if (r < 0) {
    context.getResults().setResult(r);
    return kj::READY_NOW;
  }

  // Resolve every node the request names into the plan.
  kj::Vector<kj::Promise<kj::Maybe<kj::Own<FdRef>>>> lookups;
  kj::Vector<kj::Own<FdRef>*> destinations;
  if (request.hasDir()) {
    lookups.add(lookUp(session, request.getDir()));
    destinations.add(&plan->dir);
  }
  if (request.hasCwd()) {
    lookups.add(lookUp(session, request.getCwd()));
    destinations.add(&plan->cwd);
  }
  auto fds = request.getFds();
  for (auto& slot: plan->slots) {
    if (slot.kind != Slot::Kind::NODE) {
      continue;
    }
    for (auto fd: fds) {
      if (fd.getFd() == slot.target) {
        lookups.add(lookUp(session, fd.getNode()));
        destinations.add(&slot.node);
        break;
      }
    }
  }
  return kj::joinPromises(lookups.releaseAsArray())
      .then([context, session = kj::addRef(session), &processes, plan = kj::mv(plan),
             destinations = destinations.releaseAsArray()](
                kj::Array<kj::Maybe<kj::Own<FdRef>>> found) mutable -> kj::Promise<void> {
        for (size_t i = 0; i < found.size(); ++i) {
          KJ_IF_MAYBE(ref, found[i]) {
            *destinations[i] = kj::mv(*ref);
          } else {
            context.getResults().setResult(-EBADF);  // a foreign or closed node
            return kj::READY_NOW;
          }
        }
        // `processes` is the SessionImpl's, which capnp keeps alive while this call runs.
        return start(context, kj::mv(session), processes, kj::mv(plan));
      });
}

}  // namespace sb
