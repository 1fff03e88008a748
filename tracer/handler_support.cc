#include "handler_support.h"

#include <sys/resource.h>

#include "proc_status.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <kj/vector.h>

namespace sb::handler {

namespace {

bool existsLocally(kj::StringPtr abs) {
  struct stat st;
  return lstat(abs.cStr(), &st) == 0 || errno != ENOENT;
}

// /proc/self/fd/N (or thread-self, or the process's own pid) where N is remote names the file on
// the target, not the local placeholder (glibc's fchmodat and tar reach files that way).
// (Also /dev/fd/N and /dev/std{in,out,err}, which name the same thing.)
kj::Maybe<Remote> procFdPath(Task& task, kj::StringPtr abs) {
  kj::StringPtr rest;
  auto own = [&](kj::StringPtr prefix) {
    if (abs.startsWith(prefix)) {
      rest = abs.slice(prefix.size());
      return true;
    }
    return false;
  };
  // /dev/stdin, /dev/stdout and /dev/stderr are symlinks to /proc/self/fd/0..2.
  static const char* const STDIO[] = {"/dev/stdin", "/dev/stdout", "/dev/stderr"};
  for (int i = 0; i < 3; ++i) {
    if (abs == kj::StringPtr(STDIO[i])) {
      KJ_IF_MAYBE(file, task.fds->find(i)) {
        return Remote{&file->target, file->node, kj::str(""), true};
      }
      return nullptr;
    }
  }
  auto pidPrefix = kj::str("/proc/", task.tgid, "/fd/");
  auto tidPrefix = kj::str("/proc/", task.tgid, "/task/", task.tid, "/fd/");
  if (!own("/proc/self/fd/") && !own("/proc/thread-self/fd/") && !own("/dev/fd/") &&
      !own(pidPrefix) && !own(tidPrefix)) {
    return nullptr;
  }
  size_t digits = 0;
  int fd = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 9) {
    fd = fd * 10 + (rest[digits] - '0');
    ++digits;
  }
  if (digits == 0 || (digits < rest.size() && rest[digits] != '/')) {
    return nullptr;
  }
  KJ_IF_MAYBE(file, task.fds->find(fd)) {
    auto sub = digits < rest.size() ? rest.slice(digits + 1) : kj::StringPtr("");
    return Remote{&file->target, file->node, kj::str(sub), sub.size() == 0};
  }
  return nullptr;
}

// For -v with --trace: the rule that placed `abs`, as --print-rules names it.
kj::String ruleWhy(Call& call, kj::StringPtr abs) {
  KJ_IF_MAYBE(rule, call.tracer.rules().matchRule(abs)) {
    return kj::str("rule: ", placementName(rule->placement), " ", rule->prefix,
                   rule->isDefault ? " (default)" : "");
  }
  return kj::str("no rule: the scope decides");
}

// The placement of a path given as (dirfd, path string).
Where placePath(Call& call, int dirfd, kj::String path) {
  Task& task = call.task;
  bool explain = call.tracer.explains();
  if (path.startsWith("/")) {
    auto abs = normalizePath("/", path);
    if (abs.startsWith("/proc/") || abs.startsWith("/dev/")) {
      KJ_IF_MAYBE(r, procFdPath(task, abs)) {
        if (explain) {
          call.why = kj::str("a magic link to a remote fd");
        }
        return kj::mv(*r);
      }
      // The program's own /proc/PID (and /proc/TID) is this process, like /proc/self.
      for (pid_t id : {task.tgid, task.tid}) {
        if (pathHasPrefix(abs, kj::str("/proc/", id))) {
          if (explain) {
            call.why = kj::str("/proc/", id, " is the program itself");
          }
          return Local{};
        }
      }
    }
    AgentLink* scope = task.scope;
    if (explain) {
      call.why = ruleWhy(call, abs);
    }
    switch (call.tracer.rules().match(abs)) {
      case Placement::LOCAL:
        return Local{};
      case Placement::REMOTE: {
        auto& target = scope ? *scope : call.tracer.defaultTarget();
        return Remote{&target, target.root(), kj::mv(path)};
      }
      case Placement::FALLBACK:
        if (scope == nullptr || existsLocally(abs)) {
          if (explain) {
            call.why = kj::str(call.why, scope == nullptr ? ", outside any target" : ", found here");
          }
          return Local{};
        }
        call.tracer.verbose(kj::str("fallback: ", abs, " is not here, asking ", scope->name()));
        if (explain) {
          call.why = kj::str(call.why, ", not here");
        }
        return Remote{scope, scope->root(), kj::mv(path)};
      case Placement::SCOPE:
        if (explain) {
          call.why = scope == nullptr ? kj::str("no rule; outside any target")
                                      : kj::str("no rule; in the scope of ", scope->name());
        }
        if (scope == nullptr) {
          return Local{};
        }
        return Remote{scope, scope->root(), kj::mv(path)};
    }
    KJ_UNREACHABLE;
  }
  // Relative (or empty): against the directory fd, or the cwd on whichever side it is.
  if (dirfd == AT_FDCWD) {
    AgentLink* side = task.fs->side;
    if (explain) {
      call.why = side == nullptr ? kj::str("relative; the cwd is here")
                                 : kj::str("relative; the cwd is on ", side->name());
    }
    if (side == nullptr) {
      return Local{};
    }
    return Remote{side, cwdNode(task, *side), kj::mv(path)};
  }
  kj::StringPtr how = path.size() == 0 ? "" : "relative to ";
  KJ_IF_MAYBE(file, task.fds->find(dirfd)) {
    if (explain) {
      call.why = kj::str(how, "fd ", dirfd, " on ", file->target.name());
    }
    return Remote{&file->target, file->node, kj::mv(path)};
  }
  if (explain) {
    call.why = kj::str(how, "fd ", dirfd, ", a local fd");
  }
  return Local{};
}

}  // namespace

namespace {

proto::Node::Client cwdOf(kj::Own<FsContext> fs, AgentLink& target) {
  auto it = fs->cwd.find(&target);
  if (it == fs->cwd.end()) {
    return target.root();
  }
  RemoteCwd& cwd = it->second;
  if (!target.isStale(cwd.generation)) {
    return cwd.node;
  }
  if (target.away()) {
    // Waits (or fails) as any new remote operation does, then finds the directory again.
    return target.ready().then(
        [fs = kj::mv(fs), &target]() mutable { return cwdOf(kj::mv(fs), target); });
  }
  // A newer session: find the directory again by its path, once for this FsContext.
  uint64_t gen = target.generation();
  cwd.generation = gen;
  if (cwd.path.size() == 0) {
    target.note(kj::str("cwd-unknown ", gen),
                kj::str("target '", target.name(), "' is back; a working directory there was "
                        "never reported by the agent: relative paths resolve against its root"));
    cwd.node = target.root();
    return cwd.node;
  }
  auto req = target.session().openPathRequest();
  req.setPath(cwd.path.asBytes());
  cwd.node = req.send().then([&target, gen, path = kj::str(cwd.path)](
                                 auto reply) -> proto::Node::Client {
    if (reply.getResult() >= 0) {
      return reply.getDir();
    }
    target.note(kj::str("cwd-gone ", gen, " ", path),
                kj::str("target '", target.name(), "' is back, but the working directory ", path,
                        " is not (", strerror(static_cast<int>(-reply.getResult())),
                        "): relative paths resolve against its root"));
    return target.root();
  });
  return cwd.node;
}

}  // namespace

proto::Node::Client cwdNode(Task& task, AgentLink& target) {
  return cwdOf(kj::addRef(*task.fs), target);
}

void rememberCwd(kj::Own<FsContext> fs, AgentLink& target, proto::Node::Client dir) {
  uint64_t serial = 1;
  auto it = fs->cwd.find(&target);
  if (it != fs->cwd.end()) {
    serial = it->second.serial + 1;
  }
  fs->cwd.insert_or_assign(&target, RemoteCwd{dir, target.generation(), kj::str(""), serial});
  auto req = dir.pathRequest();
  target.background(req.send().then(
      [fs = kj::mv(fs), &target, serial](auto reply) mutable {
        auto it = fs->cwd.find(&target);
        if (it != fs->cwd.end() && it->second.serial == serial && reply.getResult() >= 0) {
          it->second.path = kj::heapString(reply.getPath().asChars());
        }
      },
      [](kj::Exception&&) {
        // The connection went first: after a reconnect the cwd falls back to the root, with a
        // note (cwdOf).
      }));
}

kj::Maybe<int64_t> staleFd(Call& c) {
  if (c.row == nullptr || c.row->fdArg < 0) {
    return nullptr;
  }
  KJ_IF_MAYBE(file, c.task.fds->find(c.fdArg(c.row->fdArg))) {
    if (!file->isStale()) {
      return nullptr;
    }
    switch (c.nr) {
      case SYS_close:
      case SYS_dup:
      case SYS_dup2:
      case SYS_dup3:
        return nullptr;
      case SYS_fcntl: {
        int cmd = static_cast<int>(c.arg(1));
        if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC || cmd == F_GETFD || cmd == F_SETFD) {
          return nullptr;
        }
        break;
      }
      default:
        break;
    }
    c.target = &file->target;
    return int64_t(-EIO);
  }
  return nullptr;
}

Where resolvePath(Call& call, int dirfd, uint64_t pathAddr) {
  kj::String path;
  int64_t r = call.mem().readPath(pathAddr, path);
  if (r < 0) {
    // The kernel would fail the same way before looking at anything else; for a local call we
    // still let it, so the answer stays the kernel's own.
    return Failed{r};
  }
  return placePath(call, dirfd, kj::mv(path));
}

Where resolvePathFromDir(Call& call, int dirfd, uint64_t pathAddr) {
  kj::String path;
  int64_t r = call.mem().readPath(pathAddr, path);
  if (r < 0) {
    return Failed{r};
  }
  if (!path.startsWith("/")) {
    return placePath(call, dirfd, kj::mv(path));
  }
  if (call.tracer.explains()) {
    call.why = kj::str("absolute, resolved from the dirfd (RESOLVE_IN_ROOT/RESOLVE_BENEATH)");
  }
  if (dirfd == AT_FDCWD) {
    AgentLink* side = call.task.fs->side;
    if (side == nullptr) {
      return Local{};
    }
    return Remote{side, cwdNode(call.task, *side), kj::mv(path)};
  }
  KJ_IF_MAYBE(file, call.task.fds->find(dirfd)) {
    return Remote{&file->target, file->node, kj::mv(path)};
  }
  return Local{};
}

// The program's RLIMIT_FSIZE (RLIM_INFINITY: none), read at each write: setrlimit is not
// trapped. The agent applies it on B (Node.write fileSizeLimit), where the kernel knows only
// the agent's.
uint64_t fileSizeLimitOf(pid_t tgid) {
  struct rlimit lim;
  if (prlimit(tgid, RLIMIT_FSIZE, nullptr, &lim) == 0) {
    return uint64_t(lim.rlim_cur);
  }
  // prlimit needs matching ids or CAP_SYS_RESOURCE, which a program that changed its
  // credentials, or a sbrun in a container, may not give; the limits file is readable by all.
  auto path = kj::str("/proc/", tgid, "/limits");
  FILE* f = fopen(path.cStr(), "re");
  if (f == nullptr) {
    return uint64_t(RLIM_INFINITY);
  }
  uint64_t limit = uint64_t(RLIM_INFINITY);
  char line[256];
  while (fgets(line, sizeof(line), f) != nullptr) {
    // "Max file size             unlimited            unlimited            bytes"
    if (strncmp(line, "Max file size", 13) == 0) {
      const char* soft = line + 13;
      while (*soft == ' ') {
        ++soft;
      }
      if (*soft >= '0' && *soft <= '9') {
        limit = strtoull(soft, nullptr, 10);
      }
      break;
    }
  }
  fclose(f);
  return limit;
}

// Reads the tracee's umask: creation modes are applied here, the agent runs with umask 0.
uint32_t umaskOf(pid_t tid) { return ProcStatus::read(tid).umask; }

int64_t putBytes(Call& call, uint64_t addr, kj::ArrayPtr<const kj::byte> data, int64_t ok) {
  return call.mem().write(addr, data) < 0 ? -EFAULT : ok;
}

int64_t readIovecs(Call& c, uint64_t addr, int64_t count, kj::Array<IoVec>& out, uint64_t& total) {
  if (count < 0 || count > IOV_MAX) {
    return -EINVAL;
  }
  out = kj::heapArray<IoVec>(count);
  if (count > 0 && c.mem().read(addr, out.asBytes()) < 0) {
    return -EFAULT;
  }
  total = 0;
  for (auto& v : out) {
    if (static_cast<int64_t>(v.len) < 0) {
      return -EINVAL;
    }
    if (total + v.len > MAX_RW) {
      v.len = MAX_RW - total;
    }
    total += v.len;
  }
  return 0;
}

int64_t scatter(Call& c, kj::ArrayPtr<const IoVec> iov, kj::ArrayPtr<const kj::byte> data) {
  size_t off = 0;
  for (auto& v : iov) {
    if (off >= data.size()) {
      break;
    }
    size_t n = kj::min(v.len, data.size() - off);
    int64_t w = c.mem().writeSome(v.base, data.slice(off, off + n));
    if (w < static_cast<int64_t>(n)) {
      off += kj::max(w, int64_t(0));
      return off > 0 ? static_cast<int64_t>(off) : -EFAULT;
    }
    off += n;
  }
  return off;
}

int64_t gather(Call& c, kj::ArrayPtr<const IoVec> iov, kj::ArrayPtr<kj::byte> out) {
  size_t off = 0;
  for (auto& v : iov) {
    if (off >= out.size()) {
      break;
    }
    size_t n = kj::min(v.len, out.size() - off);
    if (n > 0 && c.mem().read(v.base, out.slice(off, off + n)) < 0) {
      return -EFAULT;
    }
    off += n;
  }
  return 0;
}

kj::Array<IoVec> sliceIovecs(kj::ArrayPtr<const IoVec> iov, uint64_t skip, uint64_t limit) {
  kj::Vector<IoVec> out;
  for (auto& v : iov) {
    if (limit == 0) {
      break;
    }
    if (skip >= v.len) {
      skip -= v.len;
      continue;
    }
    uint64_t n = kj::min(v.len - skip, limit);
    out.add(IoVec{v.base + skip, n});
    limit -= n;
    skip = 0;
  }
  return out.releaseAsArray();
}

}  // namespace sb::handler
