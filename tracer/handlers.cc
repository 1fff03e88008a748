// Per-syscall handlers (DESIGN D12): each reads its arguments from the tracee, decides where the
// call lives, and answers with an Outcome. Handlers never touch ptrace directly and never print
// except through Tracer::noteOnce, so they do not care which backend trapped the call.
//
// The families live in handlers_fd.cc, handlers_io.cc, handlers_path.cc, handlers_exec.cc and
// handlers_poll.cc, each with its own
// table; this file holds host identity, the calls with no remote implementation yet, and joins
// the tables into the one lookup the tracer uses.

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <kj/debug.h>

#include "handler_support.h"
#include "handlers_net.h"
#include "ioctl_table.h"
#include "stub_protocol.h"

namespace sb {
namespace handler {

namespace {

// ---------------------------------------------------------------------------------------------
// identity

kj::Promise<Outcome> hUname(Call& c) {
  if (c.task.scope == nullptr) {
    return local();
  }
  auto& target = *c.task.scope;
  auto req = target.session().unameRequest();
  uint64_t buf = c.arg(0);
  return send(c, target, req).then([&c, buf](auto reply) -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    return Complete{putStruct(c, buf, abi::toUtsname(reply.getUname()))};
  });
}

kj::Promise<Outcome> hIdentityChange(Call& c) {
  if (c.task.scope == nullptr) {
    return local();
  }
  // Changing the target's identity (or rebooting it) is not forwarded yet; never do it here.
  c.tracer.noteOnce(kj::str(c.row->name),
                    kj::str(c.row->name, " inside a remote scope is not forwarded to '",
                            c.task.scope->name(), "' yet: answering EPERM"));
  return done(-EPERM);
}

// ---------------------------------------------------------------------------------------------
// unshare: CLONE_FILES gives the thread its own copy of the fd table, CLONE_FS its own cwd.

kj::Promise<Outcome> hUnshare(Call& c) {
  uint64_t flags = c.arg(0);
  if (!(flags & (CLONE_FILES | CLONE_FS))) {
    return local();
  }
  Task& task = c.task;
  return Outcome(RunLocalThen{[&task, flags](int64_t ret) {
    if (ret == 0) {
      if (flags & CLONE_FILES) {
        task.fds = task.fds->copy();
      }
      if (flags & CLONE_FS) {
        task.fs = task.fs->copy();
      }
    }
    return ret;
  }});
}

// set*id, setgroups, capset: run locally; at their exit the thread's credentials are read again
// (thread_creds.h), whatever the result (setfsuid answers the old id even when it changed nothing).

kj::Promise<Outcome> hCredentialsChange(Call& c) {
  Task& task = c.task;
  Tracer& tracer = c.tracer;
  return Outcome(RunLocalThen{[&task, &tracer](int64_t ret) {
    tracer.credentials().refresh(task);
    return ret;
  }});
}

// ioctl (ioctl_table.h): marshalled to the agent when the table or the request's encoding says
// exactly what its payload is; otherwise ENOTTY and a note, never a guess.
kj::Promise<Outcome> hIoctl(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (f->pathOnly) {
      return done(-EBADF);  // The kernel refuses an O_PATH fd before it looks at the request.
    }
    uint64_t request = c.arg(1);
    uint64_t arg = c.arg(2);
    auto plan = planIoctl(request);
    auto refuse = [&](kj::StringPtr why) {
      c.tracer.noteOnce(kj::str("ioctl:", ioctlName(request)),
                        kj::str("ioctl ", ioctlName(request), " on remote '", f->path, "' ", why,
                                ": answering ENOTTY"));
      return done(-ENOTTY);
    };
    switch (plan.kind) {
      case IoctlKind::LOCAL:
        return local();
      case IoctlKind::REFUSE:
        return done(-plan.err);
      case IoctlKind::UNKNOWN:
        return refuse("is not marshalled (sbrun does not know its payload)");
      case IoctlKind::VALUE:
      case IoctlKind::POINTER:
        break;
    }
    if (f->target.welcome().getArch() != "x86_64") {
      // Request numbers and payload layouts are the ABI's: raw bytes only between equal ones.
      return refuse(kj::str("cannot cross to an agent of another ABI (",
                            f->target.welcome().getArch(), ")"));
    }
    if (f->control) {
      return done(-ENOTTY);
    }
    // FIONREAD of a regular file answers size minus offset: the offset must be the program's.
    if (f->readAhead.fetching) {
      return settleReadAhead(c.tracer, *f).then([&c]() { return hIoctl(c); });
    }
    (void)settleReadAhead(c.tracer, *f);
    auto req = f->node.ioctlRequest();
    req.setRequest(static_cast<uint32_t>(request));
    req.setArg(arg);
    bool pointer = plan.kind == IoctlKind::POINTER;
    req.setPointer(pointer);
    if (pointer && plan.in > 0) {
      auto data = req.initData(plan.in);
      if (c.mem().read(arg, data) < 0) {
        return done(-EFAULT);
      }
    }
    if (pointer && plan.out > 0) {
      // The kernel would fail on an unwritable buffer before acting: so do we.
      kj::byte probe;
      if (c.mem().read(arg, kj::arrayPtr(&probe, 1)) < 0) {
        return done(-EFAULT);
      }
    }
    req.setOutSize(pointer ? plan.out : 0);
    c.interruptible = mayBlock(f->type);  // TCSETSW, TCSBRK and TIOCMIWAIT wait for the line
    if (c.interruptible) {
      // Two-phase (Tracer::onParkedSignal): a signal ends only a request that waits on B (the
      // agent runs these on a tracked worker); a slow TCGETS answer is never an EINTR.
      c.interruptNode = f->node;
    }
    uint32_t out = plan.out;
    return send(c, f->target, req).then([&c, arg, out, pointer](auto reply) -> Outcome {
      int64_t r = reply.getResult();
      if (r < 0 || !pointer || out == 0) {
        return Complete{r};
      }
      auto data = reply.getData();
      KJ_REQUIRE(data.size() <= out, "agent answered an ioctl with more bytes than asked");
      return Complete{putBytes(c, arg, data, r)};
    });
  }
  return local();
}

// seccomp: trapped only so that sbrun can recognise the guard filter it injects itself
// (Tracer::onInjectedSeccomp); the program's own calls run as they are.
kj::Promise<Outcome> hSeccomp(Call&) { return local(); }

// ---------------------------------------------------------------------------------------------
// Calls with no remote implementation yet.

kj::Promise<Outcome> hUnhandled(Call& c) {
  const SyscallRow& row = *c.row;
  kj::Maybe<RemoteFile&> file;
  if (row.fdArg >= 0) {
    file = c.task.fds->find(c.fdArg(row.fdArg));
  }
  bool remote = file != nullptr;
  kj::String what;
  if (!remote && row.pathArg >= 0) {
    auto where = resolvePath(c, dirfdOf(c, row.dirfdArg), c.arg(row.pathArg));
    if (where.is<Failed>()) {
      return local();  // Let the kernel report the bad pointer itself.
    }
    KJ_IF_MAYBE(r, where.tryGet<Remote>()) {
      remote = true;
      what = kj::str("'", r->path, "'");
    }
  }
  if (!remote) {
    return local();
  }
  KJ_IF_MAYBE(f, file) {
    what = kj::str("'", f->path, "'");
  }
  c.tracer.noteOnce(kj::str(row.name), kj::str(row.name, " on remote ", what,
                                               " is not supported yet: answering ",
                                               strerrorname_np(row.remoteErrno)));
  return done(-row.remoteErrno);
}


const HandlerEntry HERE_HANDLERS[] = {
    {SYS_uname, hUname},
    {SYS_sethostname, hIdentityChange},
    {SYS_setdomainname, hIdentityChange},
    {SYS_reboot, hIdentityChange},
    {SYS_unshare, hUnshare},
    {SYS_setuid, hCredentialsChange},
    {SYS_setgid, hCredentialsChange},
    {SYS_setreuid, hCredentialsChange},
    {SYS_setregid, hCredentialsChange},
    {SYS_setresuid, hCredentialsChange},
    {SYS_setresgid, hCredentialsChange},
    {SYS_setfsuid, hCredentialsChange},
    {SYS_setfsgid, hCredentialsChange},
    {SYS_setgroups, hCredentialsChange},
    {SYS_capset, hCredentialsChange},
    {SYS_seccomp, hSeccomp},
    {SYS_ioctl, hIoctl},
};

}  // namespace

kj::Promise<Outcome> hUnknown(Call& c) {
  c.tracer.noteOnce(kj::str("nr", c.nr),
                    kj::str("syscall ", c.nr, " is unknown to sbrun: answering ENOSYS"));
  return done(-ENOSYS);
}

}  // namespace handler

Handler findHandler(int nr) {
  static const auto table = [] {
    auto t = kj::heapArray<Handler>(syscallTableLimit());
    for (auto& h : t) {
      h = nullptr;
    }
    for (auto& row : syscallTable()) {
      if (row.cls == SyscallClass::UNHANDLED) {
        t[row.nr] = handler::hUnhandled;
      }
    }
    kj::ArrayPtr<const handler::HandlerEntry> families[] = {
        handler::HERE_HANDLERS, handler::fdHandlers(), handler::ioHandlers(),
        handler::pathHandlers(), handler::execHandlers(), handler::mmapHandlers(),
        handler::pollHandlers(), handler::netHandlers(),
        handler::sockMsgHandlers(), handler::spliceHandlers()};
    for (auto family : families) {
      for (auto& e : family) {
        // A syscall answered by two families would depend on the order of this list.
        KJ_ASSERT(t[e.nr] == nullptr || t[e.nr] == handler::hUnhandled, "two handlers", e.nr);
        t[e.nr] = e.handler;
      }
    }
    return t;
  }();
  if (nr == SB_STUB_SYSCALL) {
    return handler::stubCall;
  }
  if (nr < 0 || nr >= (int)table.size() || table[nr] == nullptr) {
    return findSyscall(nr) == nullptr ? handler::hUnknown : nullptr;
  }
  return table[nr];
}

}  // namespace sb
