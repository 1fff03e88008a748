// Per-syscall handlers (DESIGN D12): each reads its arguments from the tracee, decides where the
// call lives, and answers with an Outcome. Handlers never touch ptrace directly and never print
// except through Tracer::noteOnce, so they do not care which backend trapped the call.
//
// The families live in handlers_fd.cc, handlers_io.cc and handlers_path.cc, each with its own
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

// seccomp: trapped only so that sbrun can recognise the guard filter it injects itself
// (Tracer::onInjectedSeccomp); the program's own calls run as they are.
kj::Promise<Outcome> hSeccomp(Call&) { return local(); }

// ---------------------------------------------------------------------------------------------
// Calls with no remote implementation yet.

bool isTerminalQuery(uint64_t request) {
  return request == TCGETS || request == TIOCGWINSZ || request == TIOCGPGRP;
}

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
    // isatty() on a remote file: not a terminal is the exact answer for non-devices.
    if (c.nr == SYS_ioctl && isTerminalQuery(c.arg(1)) &&
        f->type != proto::FileType::CHAR_DEVICE) {
      return done(-ENOTTY);
    }
  }
  c.tracer.noteOnce(kj::str(row.name, c.nr == SYS_ioctl ? kj::str(":", c.arg(1)) : kj::str()),
                    kj::str(row.name,
                            c.nr == SYS_ioctl ? kj::str(" request 0x", kj::hex(c.arg(1))) : kj::str(),
                            " on remote ", what, " is not supported yet: answering ",
                            strerrorname_np(row.remoteErrno)));
  return done(-row.remoteErrno);
}


const HandlerEntry HERE_HANDLERS[] = {
    {SYS_uname, hUname},
    {SYS_sethostname, hIdentityChange},
    {SYS_setdomainname, hIdentityChange},
    {SYS_reboot, hIdentityChange},
    {SYS_unshare, hUnshare},
    {SYS_seccomp, hSeccomp},
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
        handler::pathHandlers(), handler::execHandlers()};
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
