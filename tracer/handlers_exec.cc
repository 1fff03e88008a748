// Exec (DESIGN D7): where an execve runs is decided by exec_rules.h (--exec-here/--exec-there,
// the path's side, --spawn and whether the process heads sbrun's exec chain). Here: the kernel
// runs it (the path rewritten to this machine's copy when the program named it relative to a
// remote cwd). There: the program runs on the target, and the exec'ing process becomes sb-stub,
// which stands in for it here (stub.c). Also the stub's own requests (stub_protocol.h).
//
// The agent spawns the program first, so exec's errors (ENOENT, EACCES, ENOEXEC, E2BIG) are the
// target's and come back to the program as execve's own; only then is the trapped execve
// rewritten into an exec of the stub, so vfork and posix_spawn parents are released as usual.

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include <chrono>

#include <kj/debug.h>

#include "handler_support.h"
#include "launch.h"
#include "stub_protocol.h"

namespace sb::handler {

namespace {

// The kernel's limits on exec arguments (fs/exec.c): one string, and all of them together (a
// quarter of the default 8 MiB stack).
constexpr size_t MAX_ARG_STRLEN = 32 * 4096;
constexpr size_t MAX_ARG_TOTAL = 2u << 20;

// Reads a NULL-terminated array of string pointers (argv or envp) as execve does: a NULL array
// is empty. 0, -EFAULT or -E2BIG.
int64_t readStrings(Call& c, uint64_t addr, kj::Vector<kj::String>& out, size_t& total) {
  if (addr == 0) {
    return 0;
  }
  for (uint64_t i = 0;; ++i) {
    uint64_t ptr;
    if (c.mem().readValue(addr + i * sizeof(uint64_t), ptr) < 0) {
      return -EFAULT;
    }
    if (ptr == 0) {
      return 0;
    }
    kj::String s;
    int64_t r = c.mem().readString(ptr, MAX_ARG_STRLEN - 1, s);
    if (r < 0) {
      return r == -ENAMETOOLONG ? -E2BIG : r;
    }
    total += s.size() + 1 + sizeof(uint64_t);
    if (total > MAX_ARG_TOTAL) {
      return -E2BIG;
    }
    out.add(kj::mv(s));
  }
}

// Whether the tracee's fd is close-on-exec (from /proc: the placeholder carries the flag).
bool isCloexec(pid_t tid, int fd) {
  auto path = kj::str("/proc/", tid, "/fdinfo/", fd);
  FILE* f = fopen(path.cStr(), "re");
  if (f == nullptr) {
    return true;  // Gone: nothing to pass on.
  }
  KJ_DEFER(fclose(f));
  char line[128];
  while (fgets(line, sizeof(line), f)) {
    unsigned long flags;
    if (sscanf(line, "flags: %lo", &flags) == 1) {
      return flags & O_CLOEXEC;
    }
  }
  return true;
}

enum class LocalStdio { CLOSED, DEV_NULL, TERMINAL, OTHER };

// Terminal devices by major number (Documentation/admin-guide/devices.txt): virtual consoles
// and serial ttys (4), /dev/tty and /dev/console (5), Unix98 pty slaves (136-143).
bool isTerminalDevice(dev_t rdev) {
  unsigned m = major(rdev);
  return m == 4 || m == 5 || (m >= 136 && m <= 143);
}

LocalStdio localStdio(pid_t tid, int fd, dev_t* rdev = nullptr) {
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  struct stat st;
  if (stat(path.cStr(), &st) != 0) {
    return errno == ENOENT ? LocalStdio::CLOSED : LocalStdio::OTHER;
  }
  if (rdev != nullptr) {
    *rdev = st.st_rdev;
  }
  // /dev/null behaves the same on every machine: the remote process gets its own, no pump.
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
    return LocalStdio::DEV_NULL;
  }
  if (S_ISCHR(st.st_mode) && isTerminalDevice(st.st_rdev)) {
    return LocalStdio::TERMINAL;
  }
  return LocalStdio::OTHER;
}

// The window size of the tracee's terminal on fd `fd` ({0, 0} when it cannot be read).
struct winsize terminalSize(pid_t tid, int fd) {
  struct winsize size = {};
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  // O_NOCTTY: looking must not make it sbrun's controlling terminal.
  int t = open(path.cStr(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (t >= 0) {
    if (ioctl(t, TIOCGWINSZ, &size) < 0) {
      size = {};
    }
    close(t);
  }
  return size;
}

// One fd of the remote process and where it comes from.
struct ChildFdPlan {
  int fd;
  kj::Maybe<RemoteFile&> file;  // a remote fd kept in place
  LocalStdio local;            // else: fd 0-2 here (DEV_NULL; TERMINAL: the remote process's
                               // pseudo-terminal; OTHER: a pipe the stub pumps)
  int sameAs = -1;             // fd 2 on the same local description as fd 1 (2>&1)
};

// Whether two fds of the tracee share one open file description (kcmp(2)).
bool sameDescription(pid_t tid, int a, int b) {
  return syscall(SYS_kcmp, tid, tid, KCMP_FILE, a, b) == 0;
}

// The fds the remote process starts with: the process's remote fds on that target that survive
// exec, at their numbers; and for its fds 0-2 that are here (or on another target), /dev/null,
// a pseudo-terminal on the target (when stdin is a terminal here, as `ssh -t` does: then the
// fds on that same terminal share it), or a pipe the stub pumps. Local fds above 2 cannot
// follow it (documented).
kj::Vector<ChildFdPlan> planFds(Task& task, AgentLink& target) {
  kj::Vector<ChildFdPlan> plan;
  bool stdinTerminal = false;  // fd 0 is a terminal here: `terminalDev`
  dev_t terminalDev = 0;
  task.fds->forEach([&](int fd, RemoteFile& file) {
    if (&file.target == &target && !file.control && !isCloexec(task.tid, fd)) {
      plan.add(ChildFdPlan{fd, file, LocalStdio::OTHER});
    }
  });
  for (int fd = 0; fd < 3; ++fd) {
    bool placed = false;
    for (auto& p : plan) {
      placed = placed || p.fd == fd;
    }
    if (placed) {
      continue;
    }
    bool remote = task.fds->isRemote(fd);
    dev_t rdev = 0;
    auto local = remote ? LocalStdio::OTHER : localStdio(task.tid, fd, &rdev);
    if (local == LocalStdio::TERMINAL) {
      if (fd == 0) {
        stdinTerminal = true;
        terminalDev = rdev;
      } else if (!stdinTerminal || terminalDev != rdev) {
        local = LocalStdio::OTHER;  // stdin is no terminal, or another one: pumped as before
      }
    }
    if (local != LocalStdio::CLOSED) {
      plan.add(ChildFdPlan{fd, nullptr, local});
      // One pipe for stdout and stderr when they are one description here, so their order
      // survives (the stub pumps each pipe on its own).
      if (fd == 2 && !remote && local == LocalStdio::OTHER && !task.fds->isRemote(1) &&
          sameDescription(task.tid, 1, 2)) {
        plan.back().sameAs = 1;
      }
    }
  }
  return plan;
}

kj::Promise<Outcome> spawnRemote(Call& c, Remote where, uint64_t argvAddr, uint64_t envpAddr,
                                 int flags, kj::StringPtr why) {
  kj::Vector<kj::String> argv, envp;
  size_t total = 0;
  int64_t r = readStrings(c, argvAddr, argv, total);
  if (r == 0) {
    r = readStrings(c, envpAddr, envp, total);
  }
  if (r < 0) {
    return done(r);
  }
  // Without its local stand-in a program on B would run unwatched: refuse before it starts.
  if (c.tracer.stubPath().size() == 0) {
    c.tracer.noteOnce("stubexec", kj::str("cannot run programs on the target: ", stubNotFound()));
    return done(-ENOEXEC);
  }
  auto& target = *where.target;
  auto req = target.session().spawnRequest();
  auto spec = req.initRequest();
  spec.setDir(where.dir);
  spec.setPath(bytes(where.path));
  spec.setEmptyPath(where.self || (where.path.size() == 0 && (flags & AT_EMPTY_PATH)));
  spec.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  auto a = spec.initArgv(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    a.set(i, bytes(argv[i]));
  }
  // The control fd is sbrun's, here: a program on B has none (and must not write scope
  // commands into whatever fd has that number there).
  kj::Vector<capnp::Data::Reader> passed;
  for (auto& var : envp) {
    if (!var.startsWith("SB_CONTROL_FD=")) {
      passed.add(bytes(var));
    }
  }
  auto e = spec.initEnvp(passed.size());
  for (size_t i = 0; i < passed.size(); ++i) {
    e.set(i, passed[i]);
  }
  spec.setCwd(cwdNode(c.task, target));
  spec.setUmask(umaskOf(c.task.tid));
  // It starts with the spawning thread's credentials (0: the agent's own).
  spec.setCredentials(c.tracer.credentials().forSpawn(c, target));
  auto plan = planFds(c.task, target);
  auto list = spec.initFds(plan.size());
  bool terminal = false;
  for (size_t i = 0; i < plan.size(); ++i) {
    auto entry = list[i];
    entry.setFd(plan[i].fd);
    KJ_IF_MAYBE(file, plan[i].file) {
      shareReadAhead(c.tracer, *file);  // The process there sees the agent's offset.
      entry.setNode(file->node);
    } else if (plan[i].sameAs >= 0) {
      entry.setSameAs(plan[i].sameAs);
    } else if (plan[i].local == LocalStdio::DEV_NULL) {
      entry.setDevNull();
    } else if (plan[i].local == LocalStdio::TERMINAL) {
      entry.setTerminal();
      if (!terminal) {
        terminal = true;
        auto size = terminalSize(c.task.tid, plan[i].fd);
        spec.setTerminalRows(size.ws_row);
        spec.setTerminalCols(size.ws_col);
      }
    } else if (plan[i].fd == 0) {
      entry.setPipeToChild();
      // A regular file here: the stub gives back what the program leaves unread (stub.c).
      struct stat st;
      auto path = kj::str("/proc/", c.task.tid, "/fd/0");
      spec.setKeepStdinReader(stat(path.cStr(), &st) == 0 && S_ISREG(st.st_mode));
    } else {
      entry.setPipeFromChild();
    }
  }

  auto program = kj::mv(where.path);
  kj::Promise<void> ready = kj::READY_NOW;
  if (c.task.fs->side == nullptr) {
    // The working directory is here: the program runs in the same path on the target when it
    // has one (as sbrun's own start does), else in the process's directory there.
    char cwd[PATH_MAX];
    auto link = kj::str("/proc/", c.task.tid, "/cwd");
    ssize_t n = readlink(link.cStr(), cwd, sizeof(cwd) - 1);
    if (n > 0) {
      auto open = target.session().openPathRequest();
      open.setPath(kj::arrayPtr(reinterpret_cast<const kj::byte*>(cwd), n));
      ready = open.send().then([spec](auto reply) mutable {
        if (reply.getResult() >= 0) {
          spec.setCwd(reply.getDir());
        }
      });
    }
  }
  return ready.then([&c, &target, req = kj::mv(req)]() mutable { return send(c, target, req); })
      .then([&c, &target, program = kj::mv(program), argv = kj::mv(argv), why, terminal](
                                        auto reply) mutable -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    // The exec itself is never reported (a successful one has no exit stop): its start is,
    // when the exec is observed (-e trace= may leave it out).
    if (c.observation.get() != nullptr) {
      auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - c.observation->start).count();
      c.tracer.reportRemoteStart(RemoteStart{c.task.tid, target.name(), argv.asPtr(),
                                             reply.getPid(), static_cast<uint64_t>(micros), why});
    }
    auto child = kj::heap<RemoteChild>(RemoteChild{target, reply.getProcess(), {}, kj::mv(program)});
    child->terminal = terminal;
    for (auto pipe : reply.getStdio()) {
      int fd = pipe.getFd();
      KJ_REQUIRE(fd >= 0 && fd < 3, "agent answered a spawn with a pipe for an fd not asked", fd);
      child->pipes[fd] = pipe.getNode();
    }
    // exec sb-stub instead, with the same argv and envp (ps shows the program's argv).
    kj::StringPtr stub = c.tracer.stubPath();
    uint64_t scratch = abi::scratchBelow(c.regs, stub.size() + 1 + 16);
    if (c.writeScratch(scratch, kj::arrayPtr(reinterpret_cast<const kj::byte*>(stub.cStr()),
                                             stub.size() + 1)) < 0) {
      c.tracer.noteOnce("scratch", "cannot write to the program's stack to exec sb-stub");
      child->process.killRequest().send().detach([](kj::Exception&&) {});
      return Complete{-ENOMEM};
    }
    bool at = c.nr == SYS_execveat;
    // execve(stub, argv, envp); execveat's argv and envp are its 3rd and 4th arguments.
    auto regs = abi::syscallRegs(c.regs, SYS_execve,
                                 {scratch, c.arg(at ? 2 : 1), c.arg(at ? 3 : 2)});
    pid_t tgid = c.task.tgid;
    auto& tracer = c.tracer;
    tracer.addRemoteChild(tgid, kj::mv(child));
    // Runs only when the local exec failed (a successful exec has no syscall-exit stop here).
    return Rewrite{regs, [&tracer, tgid](int64_t ret) {
                     if (ret < 0) {
                       tracer.noteOnce("stubexec", kj::str("cannot exec sb-stub (",
                                                           tracer.stubPath(), "): ",
                                                           strerror(static_cast<int>(-ret))));
                       tracer.dropRemoteChild(tgid);
                     }
                     return ret;
                   }};
  });
}

// The target of a symlink of ours in /proc ("" when it cannot be read).
kj::String procLink(kj::StringPtr path) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path.cStr(), buf, sizeof(buf) - 1);
  return n > 0 ? kj::heapString(buf, n) : kj::str();
}

// The program's absolute path as far as sbrun can tell, for exec rules and for looking on this
// machine: an absolute path as it is; a relative one joined to the directory it resolves
// against (the cwd on its side, or a local dirfd). "" when that directory's path is unknown (a
// remote dirfd, a remote cwd whose path the agent has not reported yet).
kj::String absoluteExecPath(Call& c, int dirfd, kj::StringPtr path) {
  if (path.startsWith("/")) {
    return normalizePath("/", path);
  }
  kj::String base;
  if (dirfd == AT_FDCWD && c.task.fs->side != nullptr) {
    auto it = c.task.fs->cwd.find(c.task.fs->side);
    if (it != c.task.fs->cwd.end()) {
      base = kj::str(it->second.path);
    }
  } else if (dirfd == AT_FDCWD) {
    base = procLink(kj::str("/proc/", c.task.tid, "/cwd"));
  } else if (!c.task.fds->isRemote(dirfd)) {
    base = procLink(kj::str("/proc/", c.task.tid, "/fd/", dirfd));
  }
  if (!base.startsWith("/")) {
    return kj::str();
  }
  return normalizePath(base, path);
}

// Whether this machine has a file at `abs`, as the tracee's root sees it.
bool existsHere(pid_t tid, kj::StringPtr abs) {
  if (abs.size() == 0) {
    return false;
  }
  auto seen = kj::str("/proc/", tid, "/root", abs);
  return access(seen.cStr(), F_OK) == 0;
}

// The exec runs here although its path was placed on a target: the kernel resolves it, so a
// path relative to a remote cwd becomes this machine's `abs` (unless the local cwd is the same
// directory by name, when the program's own spelling, and so a script's $0, is kept).
kj::Promise<Outcome> execHere(Call& c, kj::StringPtr given, kj::StringPtr abs, bool at) {
  if (given.startsWith("/") || abs.size() == 0) {
    return local();
  }
  auto localCwd = procLink(kj::str("/proc/", c.task.tid, "/cwd"));
  if (localCwd.startsWith("/") && normalizePath(localCwd, given) == abs) {
    return local();
  }
  uint64_t scratch = abi::scratchBelow(c.regs, abs.size() + 1 + 16);
  if (c.writeScratch(scratch, kj::arrayPtr(reinterpret_cast<const kj::byte*>(abs.cStr()),
                                           abs.size() + 1)) < 0) {
    return local();  // No stack to write on: the kernel's own resolution, relative to here.
  }
  // execveat(AT_FDCWD, abs, argv, envp, flags) says the same for both calls.
  auto regs = at ? abi::syscallRegs(c.regs, SYS_execveat,
                                    {uint64_t(int64_t(AT_FDCWD)), scratch, c.arg(2), c.arg(3),
                                     c.arg(4)})
                 : abi::syscallRegs(c.regs, SYS_execve, {scratch, c.arg(1), c.arg(2)});
  return Outcome(Rewrite{regs, [](int64_t ret) { return ret; }});
}

kj::Promise<Outcome> hExec(Call& c) {
  if (c.task.launching) {
    return local();  // sbrun's own exec of the program it launches.
  }
  bool at = c.nr == SYS_execveat;
  int dirfd = at ? c.fdArg(0) : AT_FDCWD;
  uint64_t pathAddr = c.arg(at ? 1 : 0);
  uint64_t argvAddr = c.arg(at ? 2 : 1);
  uint64_t envpAddr = c.arg(at ? 3 : 2);
  int flags = at ? static_cast<int>(c.arg(4)) : 0;
  if (flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
    return done(-EINVAL);
  }
  auto where = resolvePath(c, dirfd, pathAddr);
  if (where.is<Failed>()) {
    return done(where.get<Failed>().err);
  }
  kj::String given;
  c.mem().readPath(pathAddr, given);
  auto abs = absoluteExecPath(c, dirfd, given);
  bool remotePath = where.is<Remote>();
  auto& tracer = c.tracer;
  auto choice = decideExec(tracer.execRules(), tracer.options().spawn,
                           ExecFacts{remotePath, c.task.execChainHead,
                                     abs.size() > 0 ? abs.asPtr() : given.asPtr(),
                                     remotePath && existsHere(c.task.tid, abs)});
  auto shown = kj::str(abs.size() > 0 ? abs.asPtr() : given.asPtr());
  if (choice.side == ExecSide::HERE) {
    if (remotePath || choice.rule != nullptr) {
      tracer.verbose(kj::str("exec of ", shown, " by pid ", c.task.tgid, " stays here (",
                             choice.why, ")"));
    }
    return remotePath ? execHere(c, given, abs, at) : local();
  }
  if (!remotePath) {
    // An --exec-there rule for a path that is here: the program of that name on the target.
    auto& target = c.task.scope != nullptr ? *c.task.scope : tracer.defaultTarget();
    if (abs.size() == 0) {
      tracer.noteOnce("exec-there-path",
                      kj::str("--exec-there: cannot tell the absolute path of ", given,
                              " (exec'd relative to a directory fd), so it runs here"));
      return local();
    }
    where = Remote{&target, target.root(), kj::mv(abs)};
  }
  auto& r = where.get<Remote>();
  c.target = r.target;
  if (r.path.size() == 0 && !(flags & AT_EMPTY_PATH) && !r.self) {
    return done(-ENOENT);
  }
  tracer.verbose(kj::str("exec of ", shown, " by pid ", c.task.tgid, " runs on ",
                         r.target->name(), " (", choice.why, ")"));
  return spawnRemote(c, kj::mv(r), argvAddr, envpAddr, flags, choice.why);
}

const HandlerEntry EXEC_HANDLERS[] = {
    {SYS_execve, hExec},
    {SYS_execveat, hExec},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> execHandlers() { return EXEC_HANDLERS; }

// The calls of sb-stub (stub_protocol.h); in any other process the number is unknown.
kj::Promise<Outcome> stubCall(Call& c) {
  KJ_IF_MAYBE(child, c.tracer.remoteChild(c.task.tgid)) {
    c.target = &child->target;
    switch (c.arg(0)) {
      case SB_STUB_FD: {
        uint64_t n = c.arg(1);
        if (n > 2) {
          return done(-EINVAL);
        }
        if (child->terminal && n == 0) {
          return done(-ENOENT);  // The terminal's master: SB_STUB_TERMINAL.
        }
        KJ_IF_MAYBE(node, child->pipes[n]) {
          auto file = kj::refcounted<RemoteFile>(child->target, kj::mv(*node),
                                                 proto::FileType::FIFO,
                                                 kj::str("pipe:", n, " of ", child->program));
          child->pipes[n] = nullptr;
          return c.tracer.installPlaceholder(c, kj::mv(file), true);
        }
        return done(-ENOENT);
      }
      case SB_STUB_TERMINAL: {
        // The master comes in the stdio slot of the lowest terminal fd: fd 0 (planFds).
        KJ_IF_MAYBE(node, child->pipes[0]) {
          if (child->terminal) {
            auto file = kj::refcounted<RemoteFile>(child->target, kj::mv(*node),
                                                   proto::FileType::CHAR_DEVICE,
                                                   kj::str("terminal of ", child->program));
            child->pipes[0] = nullptr;
            return c.tracer.installPlaceholder(c, kj::mv(file), true);
          }
        }
        return done(-ENOENT);
      }
      case SB_STUB_STDIN_UNREAD: {
        auto req = child->process.stdinUnreadRequest();
        return send(c, child->target, req)
            .then([](auto reply) -> Outcome { return Complete{reply.getResult()}; })
            .catch_([](kj::Exception&& e) -> Outcome {
              if (e.getType() == kj::Exception::Type::UNIMPLEMENTED || isConnectionLoss(e)) {
                return Complete{-ENOENT};  // An older agent, or a lost one, counts nothing.
              }
              kj::throwFatalException(kj::mv(e));
            });
      }
      case SB_STUB_WAIT: {
        c.interruptible = true;
        auto req = child->process.waitRequest();
        pid_t tgid = c.task.tgid;
        auto& tracer = c.tracer;
        return send(c, child->target, req)
            .then([&tracer, tgid](auto reply) -> Outcome {
              if (reply.getResult() < 0) {
                return Complete{reply.getResult()};
              }
              auto status = reply.getStatus();
              int64_t encoded;
              if (status.isExited()) {
                encoded = int64_t(status.getExited()) << 8;
              } else {
                encoded = (status.getSignaled() & 0x7f) | (status.getCoreDumped() ? 0x80 : 0);
              }
              KJ_IF_MAYBE(ch, tracer.remoteChild(tgid)) {
                ch->ended = true;
              }
              return Complete{encoded};
            })
            .catch_([&tracer, tgid](kj::Exception&& e) -> Outcome {
              if (!isConnectionLoss(e)) {
                kj::throwFatalException(kj::mv(e));
              }
              // The connection went, and the process with its session (the agent kills what a
              // session spawned): the stub ends as killed by SIGHUP, the hangup of the line it
              // ran over, like a job of a terminal that went away (docs/failure-semantics.md).
              KJ_IF_MAYBE(ch, tracer.remoteChild(tgid)) {
                ch->ended = true;
                ch->target.note("lost-children",
                                kj::str("remote programs that ran on '", ch->target.name(),
                                        "' when the connection was lost end as killed by SIGHUP "
                                        "(the first: ", ch->program, ")"));
              }
              return Complete{SIGHUP};
            });
      }
    }
    return done(-EINVAL);
  }
  return hUnknown(c);  // Not a stub: the number means nothing here.
}

}  // namespace sb::handler
