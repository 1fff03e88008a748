// Per-syscall handlers (DESIGN D12): each reads its arguments from the tracee, decides where the
// call lives, and answers with an Outcome. Handlers never touch ptrace directly and never print
// except through Tracer::noteOnce, so they do not care which backend trapped the call.
//
// Shapes shared by many syscalls (path resolution, fd lookup, writing a result struct) are
// helpers at the top; the table at the bottom maps syscall numbers to handlers.

#include <errno.h>
#include <limits.h>
#include <linux/xattr.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include <capnp/orphan.h>
#include <fmt/core.h>
#include <kj/debug.h>
#include <kj/io.h>

#include "tracee_abi.h"
#include "tracer.h"

namespace sb {

namespace {

namespace abi = sb::x86_64;

// Largest payload of one request or reply; bigger reads and writes loop.
constexpr uint64_t CHUNK = 4u << 20;
// Linux caps one read/write at this (MAX_RW_COUNT).
constexpr uint64_t MAX_RW = 0x7ffff000;

kj::Promise<Outcome> done(int64_t ret) { return Outcome(Complete{ret}); }
kj::Promise<Outcome> local() { return Outcome(RunLocal{}); }

capnp::Data::Reader bytes(kj::StringPtr s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.begin()), s.size());
}

// Where a path or fd lives, once rules and scope have spoken.
struct Remote {
  AgentLink* target;
  proto::Node::Client dir;  // The node relative paths resolve against (or the fd itself).
  kj::String path;
  // The path named the node itself (/proc/self/fd/N of a remote fd): act on it with emptyPath.
  bool self = false;
};
struct Local {};
struct Failed { int64_t err; };
using Where = kj::OneOf<Local, Remote, Failed>;

proto::Node::Client cwdNode(Task& task, AgentLink& target) {
  auto it = task.fs->cwd.find(&target);
  if (it != task.fs->cwd.end()) {
    return it->second;
  }
  return target.root();
}

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

// The placement of a path given as (dirfd, path string).
Where placePath(Call& call, int dirfd, kj::String path) {
  Task& task = call.task;
  if (path.startsWith("/")) {
    auto abs = normalizePath("/", path);
    if (abs.startsWith("/proc/") || abs.startsWith("/dev/")) {
      KJ_IF_MAYBE(r, procFdPath(task, abs)) {
        return kj::mv(*r);
      }
      // The program's own /proc/PID (and /proc/TID) is this process, like /proc/self.
      for (pid_t id : {task.tgid, task.tid}) {
        if (pathHasPrefix(abs, kj::str("/proc/", id))) {
          return Local{};
        }
      }
    }
    AgentLink* scope = task.scope;
    switch (call.tracer.rules().match(abs)) {
      case Placement::LOCAL:
        return Local{};
      case Placement::REMOTE: {
        auto& target = scope ? *scope : call.tracer.defaultTarget();
        return Remote{&target, target.root(), kj::mv(path)};
      }
      case Placement::FALLBACK:
        if (scope == nullptr || existsLocally(abs)) {
          return Local{};
        }
        call.tracer.verbose(kj::str("fallback: ", abs, " is not here, asking ", scope->name()));
        return Remote{scope, scope->root(), kj::mv(path)};
      case Placement::SCOPE:
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
    if (side == nullptr) {
      return Local{};
    }
    return Remote{side, cwdNode(task, *side), kj::mv(path)};
  }
  KJ_IF_MAYBE(file, task.fds->find(dirfd)) {
    return Remote{&file->target, file->node, kj::mv(path)};
  }
  return Local{};
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

// For *at calls: the dirfd argument as the kernel reads it (an int).
int dirfdOf(Call& call, int idx) { return idx < 0 ? AT_FDCWD : call.fdArg(idx); }

kj::Maybe<RemoteFile&> remoteFd(Call& call, int idx) { return call.task.fds->find(call.fdArg(idx)); }

// Reads the tracee's umask: creation modes are applied here, the agent runs with umask 0.
uint32_t umaskOf(pid_t tid) {
  auto path = kj::str("/proc/", tid, "/status");
  FILE* f = fopen(path.cStr(), "re");
  if (f == nullptr) {
    return 022;
  }
  KJ_DEFER(fclose(f));
  char line[256];
  while (fgets(line, sizeof(line), f)) {
    unsigned mask;
    if (sscanf(line, "Umask: %o", &mask) == 1) {
      return mask;
    }
  }
  return 022;
}

// Writes a result struct to the tracee; the syscall's answer is `ok` or -EFAULT.
template <typename T>
int64_t putStruct(Call& call, uint64_t addr, const T& value, int64_t ok = 0) {
  return call.mem().writeValue(addr, value) < 0 ? -EFAULT : ok;
}

int64_t putBytes(Call& call, uint64_t addr, kj::ArrayPtr<const kj::byte> data, int64_t ok) {
  return call.mem().write(addr, data) < 0 ? -EFAULT : ok;
}

// Remote calls must answer with a target recorded for error mapping.
template <typename Req>
auto send(Call& call, AgentLink& target, Req& req) {
  call.target = &target;
  return req.send();
}

// ---------------------------------------------------------------------------------------------
// open family

kj::Promise<Outcome> openRemote(Call& call, Remote where, uint64_t flags, uint32_t mode,
                                kj::Maybe<uint64_t> resolve) {
  auto req = where.dir.openAtRequest();
  req.setPath(bytes(where.path));
  auto how = req.initHow();
  uint32_t umask = (flags & (O_CREAT | __O_TMPFILE)) ? umaskOf(call.task.tid) : 0;
  abi::decodeOpenFlags(flags, mode & ~umask & 07777, how);
  KJ_IF_MAYBE(r, resolve) {
    if (!abi::decodeResolve(*r, how)) {
      return done(-EINVAL);
    }
  }
  how.setReopen(where.self);
  bool cloexec = flags & O_CLOEXEC;
  auto target = where.target;
  auto path = kj::mv(where.path);
  return send(call, *target, req).then(
      [&call, target, cloexec, path = kj::mv(path)](auto reply) mutable -> Outcome {
        if (reply.getResult() < 0) {
          return Complete{reply.getResult()};
        }
        auto file = kj::refcounted<RemoteFile>(*target, reply.getNode(),
                                               reply.getInfo().getType(), kj::mv(path));
        return call.tracer.installPlaceholder(call, kj::mv(file), cloexec);
      });
}

kj::Promise<Outcome> openCommon(Call& call, int dirfd, uint64_t pathAddr, uint64_t flags,
                                uint32_t mode, kj::Maybe<uint64_t> resolve = nullptr) {
  auto where = resolvePath(call, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) { return openRemote(call, kj::mv(r), flags, mode, resolve); }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hOpen(Call& c) { return openCommon(c, AT_FDCWD, c.arg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hCreat(Call& c) {
  return openCommon(c, AT_FDCWD, c.arg(0), O_CREAT | O_WRONLY | O_TRUNC, c.arg(1));
}
kj::Promise<Outcome> hOpenat(Call& c) {
  return openCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}
kj::Promise<Outcome> hOpenat2(Call& c) {
  // struct open_how may grow; we know the 24-byte version and require unknown tail bytes zero.
  uint64_t size = c.arg(3);
  if (size < sizeof(open_how)) {
    return done(-EINVAL);
  }
  if (size > 4096) {
    return done(-E2BIG);
  }
  auto raw = kj::heapArray<kj::byte>(size);
  if (c.mem().read(c.arg(2), raw) < 0) {
    return done(-EFAULT);
  }
  for (size_t i = sizeof(open_how); i < size; ++i) {
    if (raw[i] != 0) {
      return done(-E2BIG);
    }
  }
  open_how how;
  memcpy(&how, raw.begin(), sizeof(how));
  auto where = resolvePath(c, c.fdArg(0), c.arg(1));
  if (where.is<Remote>()) {
    if (!abi::validOpenat2(how.flags, how.mode)) {
      return done(-EINVAL);
    }
    return openRemote(c, kj::mv(where.get<Remote>()), how.flags, how.mode, how.resolve);
  }
  return where.is<Failed>() ? done(where.get<Failed>().err) : local();
}

// ---------------------------------------------------------------------------------------------
// close, dup family

// The local close of a remote fd; the remote close only when it was the last reference.
kj::Promise<Outcome> closeRest(Call& c, kj::Own<RemoteFile> file) {
  if (file->isShared()) {
    return local();  // Another fd or process still refers to it: only the number goes.
  }
  auto req = file->node.closeRequest();
  return send(c, file->target, req).then([file = kj::mv(file)](auto reply) -> Outcome {
    int64_t remote = reply.getResult();
    if (remote >= 0) {
      return RunLocal{};
    }
    // Close the placeholder, but report the remote error (NFS EIO) as close(2) would.
    return RunLocalThen{[remote](int64_t) { return remote; }};
  });
}

kj::Promise<Outcome> hClose(Call& c) {
  KJ_IF_MAYBE(file, c.task.fds->unbind(c.fdArg(0))) {
    auto& target = (*file)->target;
    kj::Promise<Outcome> closing = nullptr;
    if (c.tracer.holdsLocks(target, c.task.tgid)) {
      // POSIX: closing any fd of a file drops all the process's record locks on it, at once.
      auto release = (*file)->node.releaseLocksRequest();
      release.setOwner(c.task.tgid);
      closing = send(c, target, release).then([&c, file = kj::mv(*file)](auto) mutable {
        return closeRest(c, kj::mv(file));
      });
    } else {
      closing = closeRest(c, kj::mv(*file));
    }
    // Linux always frees the fd number, even when close reports an error: so do we.
    return closing.catch_([&target](kj::Exception&& e) -> Outcome {
      int64_t err = target.failure(e);
      return RunLocalThen{[err](int64_t) { return err; }};
    });
  }
  return local();
}

// dup, dup2, dup3, F_DUPFD*: the kernel duplicates the placeholder; we bind the new number.
kj::Promise<Outcome> dupCommon(Call& c, int oldfd, kj::Maybe<int> newfd) {
  auto& fds = c.task.fds;
  bool oldRemote = fds->isRemote(oldfd);
  bool newRemote = false;
  KJ_IF_MAYBE(n, newfd) { newRemote = *n != oldfd && fds->isRemote(*n); }
  if (!oldRemote && !newRemote) {
    return local();
  }
  Task& task = c.task;
  return Outcome(RunLocalThen{[&task, oldfd, newfd](int64_t ret) {
    if (ret < 0 || ret == oldfd) {
      return ret;
    }
    kj::Own<RemoteFile> source;
    KJ_IF_MAYBE(f, task.fds->find(oldfd)) { source = kj::addRef(*f); }
    // dup2 over a remote fd: the kernel closed the old placeholder, so the number is released.
    task.fds->unbind(static_cast<int>(ret));
    if (source.get() != nullptr) {
      task.fds->bind(static_cast<int>(ret), kj::mv(source));
    }
    (void)newfd;
    return ret;
  }});
}

kj::Promise<Outcome> hDup(Call& c) { return dupCommon(c, c.fdArg(0), nullptr); }
kj::Promise<Outcome> hDup2(Call& c) { return dupCommon(c, c.fdArg(0), c.fdArg(1)); }
kj::Promise<Outcome> hDup3(Call& c) { return dupCommon(c, c.fdArg(0), c.fdArg(1)); }

kj::Promise<Outcome> hCloseRange(Call& c) {
  unsigned first = c.arg(0), last = c.arg(1);
  unsigned flags = c.arg(2);
  if (c.task.fds->size() == 0) {
    return local();
  }
  Task& task = c.task;
  return Outcome(RunLocalThen{[&task, first, last, flags](int64_t ret) {
    if (ret == 0) {
      if (flags & CLOSE_RANGE_UNSHARE) {
        task.fds = task.fds->copy();
      }
      if (!(flags & CLOSE_RANGE_CLOEXEC)) {
        task.fds->unbindRange(first, last);
      }
    }
    return ret;
  }});
}

// ---------------------------------------------------------------------------------------------
// read and write family

struct IoVec {
  uint64_t base;
  uint64_t len;
};

// Reads a tracee iovec array; total length capped like the kernel's (MAX_RW_COUNT).
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

// Scatters `data` into the iovecs; returns bytes placed or -EFAULT when none could be.
int64_t scatter(Call& c, kj::ArrayPtr<const IoVec> iov, kj::ArrayPtr<const kj::byte> data) {
  size_t off = 0;
  for (auto& v : iov) {
    if (off >= data.size()) {
      break;
    }
    size_t n = kj::min(v.len, data.size() - off);
    if (c.mem().write(v.base, data.slice(off, off + n)) < 0) {
      return off > 0 ? static_cast<int64_t>(off) : -EFAULT;
    }
    off += n;
  }
  return off;
}

// Gathers iovec bytes into `out` (exactly total bytes).
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

// One remote read into tracee memory, looping in CHUNK pieces until `count` or a short read.
// offset -1: the file position. The iovecs say where the bytes go.
struct ReadJob : public kj::Refcounted {
  Call& call;
  // Held, not borrowed: another thread may close the fd while this call is in flight.
  kj::Own<RemoteFile> fileRef;
  RemoteFile& file;
  kj::Array<IoVec> iov;
  uint64_t count;
  int64_t offset;
  bool positional;
  bool hasFlags;
  int64_t rwFlags;
  uint64_t doneBytes = 0;
  ReadJob(Call& call, RemoteFile& file, kj::Array<IoVec> iov, uint64_t count, int64_t offset,
          bool positional, bool hasFlags, int64_t rwFlags)
      : call(call), fileRef(kj::addRef(file)), file(*fileRef), iov(kj::mv(iov)), count(count),
        offset(offset),
        positional(positional), hasFlags(hasFlags), rwFlags(rwFlags) {}

  // The tail of the iovecs after `skip` bytes.
  kj::Array<IoVec> tail(uint64_t skip) {
    kj::Vector<IoVec> out;
    for (auto& v : iov) {
      if (skip >= v.len) {
        skip -= v.len;
        continue;
      }
      out.add(IoVec{v.base + skip, v.len - skip});
      skip = 0;
    }
    return out.releaseAsArray();
  }

  kj::Promise<int64_t> step() {
    uint64_t want = kj::min(count - doneBytes, CHUNK);
    auto handle = [this, want](int64_t result, capnp::Data::Reader data) -> kj::Promise<int64_t> {
      if (result < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : result;
      }
      // Never write past the program's buffer, whatever the peer sends.
      KJ_REQUIRE(data.size() <= want, "agent answered a read with more bytes than asked");
      auto dst = tail(doneBytes);
      int64_t placed = scatter(call, dst, data);
      if (placed < 0 || static_cast<uint64_t>(placed) < data.size()) {
        // The kernel would not have consumed bytes it could not deliver: give them back.
        uint64_t lost = data.size() - (placed < 0 ? 0 : placed);
        if (!positional && file.type == proto::FileType::REGULAR) {
          auto seek = file.node.seekRequest();
          seek.setOffset(-static_cast<int64_t>(lost));
          seek.setWhence(proto::Whence::CUR);
          call.tracer.backgroundSend(seek.send().ignoreResult());
        }
        if (placed <= 0 && doneBytes == 0) {
          return int64_t(-EFAULT);
        }
        return static_cast<int64_t>(doneBytes + kj::max(placed, int64_t(0)));
      }
      doneBytes += data.size();
      if (data.size() < want || doneBytes >= count) {
        return static_cast<int64_t>(doneBytes);
      }
      return step();
    };
    if (positional || hasFlags) {
      auto req = file.node.preadRequest();
      req.setCount(want);
      req.setOffset(offset < 0 ? -1 : offset + doneBytes);
      if (hasFlags && !abi::decodeRwFlags(rwFlags, req.initFlags())) {
        return int64_t(-EOPNOTSUPP);
      }
      call.target = &file.target;
      return req.send().then([handle = kj::mv(handle)](auto r) mutable {
        return handle(r.getResult(), r.getData());
      });
    }
    auto req = file.node.readRequest();
    req.setCount(want);
    call.target = &file.target;
    return req.send().then([handle = kj::mv(handle)](auto r) mutable {
      return handle(r.getResult(), r.getData());
    });
  }
};

kj::Promise<Outcome> readCommon(Call& c, RemoteFile& file, kj::Array<IoVec> iov, uint64_t total,
                                int64_t offset, bool positional, bool hasFlags, int64_t flags) {
  if (total == 0) {
    // read(fd, buf, 0) still reports errors such as EISDIR/EBADF: ask with count 0.
  }
  auto job = kj::refcounted<ReadJob>(c, file, kj::mv(iov), total, offset, positional, hasFlags,
                                     flags);
  auto& j = *job;
  return j.step().then([](int64_t r) -> Outcome { return Complete{r}; }).attach(kj::mv(job));
}

kj::Promise<Outcome> hRead(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    uint64_t count = kj::min(c.arg(2), MAX_RW);
    auto iov = kj::heapArray<IoVec>({IoVec{c.arg(1), count}});
    return readCommon(c, *f, kj::mv(iov), count, -1, false, false, 0);
  }
  return local();
}

kj::Promise<Outcome> hPread(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (static_cast<int64_t>(c.arg(3)) < 0) {
      return done(-EINVAL);
    }
    uint64_t count = kj::min(c.arg(2), MAX_RW);
    auto iov = kj::heapArray<IoVec>({IoVec{c.arg(1), count}});
    return readCommon(c, *f, kj::mv(iov), count, c.arg(3), true, false, 0);
  }
  return local();
}

// readv (kind 0), preadv (1), preadv2 (2)
kj::Promise<Outcome> readvCommon(Call& c, int kind) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    kj::Array<IoVec> iov;
    uint64_t total;
    int64_t r = readIovecs(c, c.arg(1), static_cast<int64_t>(c.arg(2)), iov, total);
    if (r < 0) {
      return done(r);
    }
    int64_t offset = kind == 0 ? -1 : static_cast<int64_t>(c.arg(3));
    if (kind == 1 && offset < 0) {
      return done(-EINVAL);
    }
    if (kind == 2 && offset < -1) {
      return done(-EINVAL);
    }
    return readCommon(c, *f, kj::mv(iov), total, offset, kind == 1 || (kind == 2 && offset >= 0),
                      kind == 2, kind == 2 ? c.arg(5) : 0);
  }
  return local();
}
kj::Promise<Outcome> hReadv(Call& c) { return readvCommon(c, 0); }
kj::Promise<Outcome> hPreadv(Call& c) { return readvCommon(c, 1); }
kj::Promise<Outcome> hPreadv2(Call& c) { return readvCommon(c, 2); }

// Writes the iovecs' bytes to the remote file in CHUNK pieces.
struct WriteJob : public kj::Refcounted {
  Call& call;
  // Held, not borrowed: another thread may close the fd while this call is in flight.
  kj::Own<RemoteFile> fileRef;
  RemoteFile& file;
  kj::Array<IoVec> iov;
  uint64_t count;
  int64_t offset;
  bool positional;
  bool hasFlags;
  int64_t rwFlags;
  uint64_t doneBytes = 0;
  WriteJob(Call& call, RemoteFile& file, kj::Array<IoVec> iov, uint64_t count, int64_t offset,
           bool positional, bool hasFlags, int64_t rwFlags)
      : call(call), fileRef(kj::addRef(file)), file(*fileRef), iov(kj::mv(iov)), count(count),
        offset(offset),
        positional(positional), hasFlags(hasFlags), rwFlags(rwFlags) {}

  kj::Promise<int64_t> step() {
    uint64_t want = kj::min(count - doneBytes, CHUNK);
    // Gather the next piece straight into the request (no intermediate copy).
    kj::Vector<IoVec> piece;
    uint64_t skip = doneBytes, left = want;
    for (auto& v : iov) {
      if (left == 0) {
        break;
      }
      if (skip >= v.len) {
        skip -= v.len;
        continue;
      }
      uint64_t n = kj::min(v.len - skip, left);
      piece.add(IoVec{v.base + skip, n});
      left -= n;
      skip = 0;
    }
    auto finish = [this, want](int64_t result) -> kj::Promise<int64_t> {
      if (result < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : result;
      }
      KJ_REQUIRE(static_cast<uint64_t>(result) <= want, "agent wrote more bytes than sent");
      doneBytes += result;
      if (static_cast<uint64_t>(result) < want || doneBytes >= count) {
        return static_cast<int64_t>(doneBytes);
      }
      return step();
    };
    call.target = &file.target;
    if (positional || hasFlags) {
      auto req = file.node.pwriteRequest();
      auto data = req.initData(want);
      if (gather(call, piece, data) < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : int64_t(-EFAULT);
      }
      req.setOffset(offset < 0 ? -1 : offset + doneBytes);
      if (hasFlags && !abi::decodeRwFlags(rwFlags, req.initFlags())) {
        return int64_t(-EOPNOTSUPP);
      }
      return req.send().then([finish = kj::mv(finish)](auto r) mutable {
        return finish(r.getResult());
      });
    }
    auto req = file.node.writeRequest();
    auto data = req.initData(want);
    if (gather(call, piece, data) < 0) {
      return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : int64_t(-EFAULT);
    }
    return req.send().then([finish = kj::mv(finish)](auto r) mutable {
      return finish(r.getResult());
    });
  }
};

kj::Promise<Outcome> writeCommon(Call& c, RemoteFile& file, kj::Array<IoVec> iov, uint64_t total,
                                 int64_t offset, bool positional, bool hasFlags, int64_t flags) {
  auto job = kj::refcounted<WriteJob>(c, file, kj::mv(iov), total, offset, positional, hasFlags,
                                      flags);
  auto& j = *job;
  return j.step().then([](int64_t r) -> Outcome { return Complete{r}; }).attach(kj::mv(job));
}

kj::Promise<Outcome> hWrite(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    uint64_t count = kj::min(c.arg(2), MAX_RW);
    auto iov = kj::heapArray<IoVec>({IoVec{c.arg(1), count}});
    return writeCommon(c, *f, kj::mv(iov), count, -1, false, false, 0);
  }
  return local();
}

kj::Promise<Outcome> hPwrite(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (static_cast<int64_t>(c.arg(3)) < 0) {
      return done(-EINVAL);
    }
    uint64_t count = kj::min(c.arg(2), MAX_RW);
    auto iov = kj::heapArray<IoVec>({IoVec{c.arg(1), count}});
    return writeCommon(c, *f, kj::mv(iov), count, c.arg(3), true, false, 0);
  }
  return local();
}

kj::Promise<Outcome> writevCommon(Call& c, int kind) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    kj::Array<IoVec> iov;
    uint64_t total;
    int64_t r = readIovecs(c, c.arg(1), static_cast<int64_t>(c.arg(2)), iov, total);
    if (r < 0) {
      return done(r);
    }
    int64_t offset = kind == 0 ? -1 : static_cast<int64_t>(c.arg(3));
    if ((kind == 1 && offset < 0) || (kind == 2 && offset < -1)) {
      return done(-EINVAL);
    }
    return writeCommon(c, *f, kj::mv(iov), total, offset,
                       kind == 1 || (kind == 2 && offset >= 0), kind == 2,
                       kind == 2 ? c.arg(5) : 0);
  }
  return local();
}
kj::Promise<Outcome> hWritev(Call& c) { return writevCommon(c, 0); }
kj::Promise<Outcome> hPwritev(Call& c) { return writevCommon(c, 1); }
kj::Promise<Outcome> hPwritev2(Call& c) { return writevCommon(c, 2); }

kj::Promise<Outcome> hLseek(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    auto whence = abi::decodeWhence(static_cast<int64_t>(c.arg(2)));
    if (whence == nullptr) {
      return done(-EINVAL);
    }
    auto req = f->node.seekRequest();
    req.setOffset(c.arg(1));
    req.setWhence(KJ_ASSERT_NONNULL(whence));
    return send(c, f->target, req).then([](auto r) -> Outcome { return Complete{r.getResult()}; });
  }
  return local();
}

// ---------------------------------------------------------------------------------------------
// stat family

enum class StatOut { STAT, STATX };

kj::Promise<Outcome> statRemote(Call& c, proto::Node::Client node, AgentLink& target,
                                kj::StringPtr path, int atFlags, uint32_t mask, StatOut out,
                                uint64_t bufAddr) {
  auto req = node.statAtRequest();
  req.setPath(bytes(path));
  auto flags = req.initFlags();
  flags.setEmptyPath(atFlags & AT_EMPTY_PATH);
  flags.setNoFollow(atFlags & AT_SYMLINK_NOFOLLOW);
  flags.setNoAutomount(atFlags & AT_NO_AUTOMOUNT);
  flags.setForceSync((atFlags & AT_STATX_SYNC_TYPE) == AT_STATX_FORCE_SYNC);
  flags.setDontSync((atFlags & AT_STATX_SYNC_TYPE) == AT_STATX_DONT_SYNC);
  req.setMask(mask);
  return send(c, target, req).then([&c, out, bufAddr](auto r) -> Outcome {
    if (r.getResult() < 0) {
      return Complete{r.getResult()};
    }
    if (out == StatOut::STAT) {
      return Complete{putStruct(c, bufAddr, abi::toStat(r.getStat()))};
    }
    return Complete{putStruct(c, bufAddr, abi::toStatx(r.getStat()))};
  });
}

constexpr uint32_t BASIC = STATX_BASIC_STATS;

kj::Promise<Outcome> statPath(Call& c, int dirfd, uint64_t pathAddr, int atFlags,
                              uint64_t bufAddr) {
  if (atFlags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)) {
    return local();  // The kernel's EINVAL.
  }
  auto where = resolvePath(c, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      return statRemote(c, r.dir, *r.target, r.path, atFlags | (r.self ? AT_EMPTY_PATH : 0),
                        BASIC, StatOut::STAT, bufAddr);
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hStat(Call& c) { return statPath(c, AT_FDCWD, c.arg(0), 0, c.arg(1)); }
kj::Promise<Outcome> hLstat(Call& c) {
  return statPath(c, AT_FDCWD, c.arg(0), AT_SYMLINK_NOFOLLOW, c.arg(1));
}
kj::Promise<Outcome> hNewfstatat(Call& c) {
  int dirfd = c.fdArg(0);
  int flags = c.arg(3);
  // fstatat(fd, NULL or "", AT_EMPTY_PATH) on a remote fd is fstat.
  if ((flags & AT_EMPTY_PATH) && c.arg(1) == 0) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      return statRemote(c, f->node, f->target, "", flags, BASIC, StatOut::STAT, c.arg(2));
    }
    return local();
  }
  return statPath(c, dirfd, c.arg(1), flags, c.arg(2));
}
kj::Promise<Outcome> hFstat(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    return statRemote(c, f->node, f->target, "", AT_EMPTY_PATH, BASIC, StatOut::STAT, c.arg(1));
  }
  return local();
}
kj::Promise<Outcome> hStatx(Call& c) {
  int dirfd = c.fdArg(0);
  int flags = c.arg(2);
  uint32_t mask = c.arg(3);
  if ((mask & STATX__RESERVED) ||
      (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) ||
      (flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE) {
    return done(-EINVAL);
  }
  if ((flags & AT_EMPTY_PATH) && c.arg(1) == 0) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      return statRemote(c, f->node, f->target, "", flags, mask, StatOut::STATX, c.arg(4));
    }
    return local();
  }
  auto where = resolvePath(c, dirfd, c.arg(1));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      return statRemote(c, r.dir, *r.target, r.path, flags | (r.self ? AT_EMPTY_PATH : 0), mask,
                        StatOut::STATX, c.arg(4));
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> statfsRemote(Call& c, proto::Node::Client node, AgentLink& target,
                                  kj::StringPtr path, uint64_t buf) {
  auto req = node.statfsRequest();
  req.setPath(bytes(path));
  return send(c, target, req).then([&c, buf](auto r) -> Outcome {
    if (r.getResult() < 0) {
      return Complete{r.getResult()};
    }
    return Complete{putStruct(c, buf, abi::toStatfs(r.getStatfs()))};
  });
}
kj::Promise<Outcome> hStatfs(Call& c) {
  auto where = resolvePath(c, AT_FDCWD, c.arg(0));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      if (r.path.size() == 0 && !r.self) {
        return done(-ENOENT);
      }
      return statfsRemote(c, r.dir, *r.target, r.path, c.arg(1));
    }
  }
  KJ_UNREACHABLE;
}
kj::Promise<Outcome> hFstatfs(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) { return statfsRemote(c, f->node, f->target, "", c.arg(1)); }
  return local();
}

// ---------------------------------------------------------------------------------------------
// Path operations that answer only a result: one generic runner.

// Resolves (dirfd, path) and, when remote, runs `build` to make and send the request.
template <typename Func>
kj::Promise<Outcome> onPath(Call& c, int dirfd, uint64_t pathAddr, Func&& func) {
  auto where = resolvePath(c, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      c.target = r.target;
      return func(r);
    }
  }
  KJ_UNREACHABLE;
}

template <typename Promise>
kj::Promise<Outcome> resultOf(Promise&& p) {
  return p.then([](auto r) -> Outcome { return Complete{r.getResult()}; });
}

kj::Promise<Outcome> accessCommon(Call& c, int dirfd, uint64_t path, int64_t mode, int flags) {
  if (mode & ~(int64_t)(R_OK | W_OK | X_OK)) {
    return done(-EINVAL);
  }
  if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.accessAtRequest();
    req.setPath(bytes(r.path));
    req.setMode(mode);
    req.setEaccess(flags & AT_EACCESS);
    req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
    req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hAccess(Call& c) { return accessCommon(c, AT_FDCWD, c.arg(0), c.arg(1), 0); }
kj::Promise<Outcome> hFaccessat(Call& c) {
  return accessCommon(c, c.fdArg(0), c.arg(1), c.arg(2), 0);
}
kj::Promise<Outcome> hFaccessat2(Call& c) {
  return accessCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}

kj::Promise<Outcome> readlinkCommon(Call& c, int dirfd, uint64_t path, uint64_t buf,
                                    int64_t size) {
  if (size <= 0) {
    return done(-EINVAL);
  }
  return onPath(c, dirfd, path, [&](Remote& r) -> kj::Promise<Outcome> {
    if (r.self) {
      // readlink of /proc/self/fd/N: the file's path on the target, as the magic link says.
      auto req = r.dir.pathRequest();
      return req.send().then([&c, buf, size](auto reply) -> Outcome {
        if (reply.getResult() < 0) {
          return Complete{reply.getResult()};
        }
        auto path = reply.getPath();
        size_t n = kj::min(path.size(), static_cast<size_t>(size));
        return Complete{putBytes(c, buf, path.slice(0, n), n)};
      });
    }
    auto req = r.dir.readlinkAtRequest();
    req.setPath(bytes(r.path));
    req.setSize(size);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      int64_t n = reply.getResult();
      if (n < 0) {
        return Complete{n};
      }
      auto target = reply.getTarget();
      KJ_REQUIRE(target.size() <= size, "agent answered readlink with more than the buffer");
      return Complete{putBytes(c, buf, target, target.size())};
    });
  });
}
kj::Promise<Outcome> hReadlink(Call& c) {
  return readlinkCommon(c, AT_FDCWD, c.arg(0), c.arg(1), static_cast<int>(c.arg(2)));
}
kj::Promise<Outcome> hReadlinkat(Call& c) {
  return readlinkCommon(c, c.fdArg(0), c.arg(1), c.arg(2), static_cast<int>(c.arg(3)));
}

kj::Promise<Outcome> mkdirCommon(Call& c, int dirfd, uint64_t path, uint32_t mode) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.mkdirAtRequest();
    req.setPath(bytes(r.path));
    req.setMode(mode & ~umaskOf(c.task.tid) & 07777);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hMkdir(Call& c) { return mkdirCommon(c, AT_FDCWD, c.arg(0), c.arg(1)); }
kj::Promise<Outcome> hMkdirat(Call& c) { return mkdirCommon(c, c.fdArg(0), c.arg(1), c.arg(2)); }

kj::Promise<Outcome> mknodCommon(Call& c, int dirfd, uint64_t path, uint32_t mode, uint64_t dev) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.mknodAtRequest();
    req.setPath(bytes(r.path));
    uint32_t type = mode & S_IFMT;
    req.setMode(type | (mode & ~umaskOf(c.task.tid) & 07777));
    // x86-64 dev_t as the kernel decodes it (new_decode_dev of the 32-bit value).
    uint32_t d = dev;
    req.setRdevMajor((d & 0xfff00) >> 8);
    req.setRdevMinor((d & 0xff) | ((d >> 12) & 0xfff00));
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hMknod(Call& c) { return mknodCommon(c, AT_FDCWD, c.arg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hMknodat(Call& c) {
  return mknodCommon(c, c.fdArg(0), c.arg(1), c.arg(2), c.arg(3));
}

kj::Promise<Outcome> unlinkCommon(Call& c, int dirfd, uint64_t path, bool removeDir) {
  return onPath(c, dirfd, path, [&](Remote& r) {
    auto req = r.dir.unlinkAtRequest();
    req.setPath(bytes(r.path));
    req.setRemoveDir(removeDir);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hUnlink(Call& c) { return unlinkCommon(c, AT_FDCWD, c.arg(0), false); }
kj::Promise<Outcome> hRmdir(Call& c) { return unlinkCommon(c, AT_FDCWD, c.arg(0), true); }
kj::Promise<Outcome> hUnlinkat(Call& c) {
  int flags = c.arg(2);
  if (flags & ~AT_REMOVEDIR) {
    return done(-EINVAL);
  }
  return unlinkCommon(c, c.fdArg(0), c.arg(1), flags & AT_REMOVEDIR);
}

// Two-path calls: both sides must live on the same target, else EXDEV as across filesystems.
template <typename Func>
kj::Promise<Outcome> onTwoPaths(Call& c, int olddir, uint64_t oldPath, int newdir,
                                uint64_t newPath, Func&& func) {
  auto a = resolvePath(c, olddir, oldPath);
  if (a.is<Failed>()) {
    return done(a.get<Failed>().err);
  }
  auto b = resolvePath(c, newdir, newPath);
  if (b.is<Failed>()) {
    return done(b.get<Failed>().err);
  }
  if (a.is<Local>() && b.is<Local>()) {
    return local();
  }
  if (a.is<Local>() || b.is<Local>() || a.get<Remote>().target != b.get<Remote>().target) {
    return done(-EXDEV);
  }
  c.target = a.get<Remote>().target;
  return func(a.get<Remote>(), b.get<Remote>());
}

kj::Promise<Outcome> renameCommon(Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                                  unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
    return done(-EINVAL);
  }
  return onTwoPaths(c, olddir, oldp, newdir, newp, [&](Remote& a, Remote& b) {
    auto req = a.dir.renameAtRequest();
    req.setOldPath(bytes(a.path));
    req.setNewDir(b.dir);
    req.setNewPath(bytes(b.path));
    req.setNoReplace(flags & RENAME_NOREPLACE);
    req.setExchange(flags & RENAME_EXCHANGE);
    req.setWhiteout(flags & RENAME_WHITEOUT);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hRename(Call& c) {
  return renameCommon(c, AT_FDCWD, c.arg(0), AT_FDCWD, c.arg(1), 0);
}
kj::Promise<Outcome> hRenameat(Call& c) {
  return renameCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), 0);
}
kj::Promise<Outcome> hRenameat2(Call& c) {
  return renameCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4));
}

kj::Promise<Outcome> linkCommon(Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp,
                                int flags) {
  if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onTwoPaths(c, olddir, oldp, newdir, newp, [&](Remote& a, Remote& b) {
    auto req = a.dir.linkAtRequest();
    req.setOldPath(bytes(a.path));
    req.setNewDir(b.dir);
    req.setNewPath(bytes(b.path));
    req.setFollow(flags & AT_SYMLINK_FOLLOW);
    req.setEmptyPath(flags & AT_EMPTY_PATH);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hLink(Call& c) { return linkCommon(c, AT_FDCWD, c.arg(0), AT_FDCWD, c.arg(1), 0); }
kj::Promise<Outcome> hLinkat(Call& c) {
  return linkCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4));
}

kj::Promise<Outcome> symlinkCommon(Call& c, uint64_t targetAddr, int dirfd, uint64_t path) {
  kj::String target;
  int64_t r = c.mem().readPath(targetAddr, target);
  if (r < 0) {
    return done(r);
  }
  return onPath(c, dirfd, path, [&](Remote& where) {
    auto req = where.dir.symlinkAtRequest();
    req.setTarget(bytes(target));
    req.setPath(bytes(where.path));
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hSymlink(Call& c) { return symlinkCommon(c, c.arg(0), AT_FDCWD, c.arg(1)); }
kj::Promise<Outcome> hSymlinkat(Call& c) { return symlinkCommon(c, c.arg(0), c.fdArg(1), c.arg(2)); }

// chmod family; fd-only variants go through the fd's node with emptyPath.
kj::Promise<Outcome> chmodRemote(Call& c, Remote& r, uint32_t mode, int flags) {
  auto req = r.dir.chmodAtRequest();
  req.setPath(bytes(r.path));
  req.setMode(mode & 07777);
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  c.target = r.target;
  return resultOf(req.send());
}
kj::Promise<Outcome> hChmod(Call& c) {
  uint32_t mode = c.arg(1);
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) { return chmodRemote(c, r, mode, 0); });
}
kj::Promise<Outcome> hFchmodat(Call& c) {
  uint32_t mode = c.arg(2);
  return onPath(c, c.fdArg(0), c.arg(1), [&](Remote& r) { return chmodRemote(c, r, mode, 0); });
}
kj::Promise<Outcome> hFchmodat2(Call& c) {
  uint32_t mode = c.arg(2);
  int flags = c.arg(3);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, c.fdArg(0), c.arg(1), [&](Remote& r) { return chmodRemote(c, r, mode, flags); });
}
kj::Promise<Outcome> hFchmod(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    Remote r{&f->target, f->node, kj::str("")};
    return chmodRemote(c, r, c.arg(1), AT_EMPTY_PATH);
  }
  return local();
}

kj::Promise<Outcome> chownRemote(Call& c, Remote& r, uint64_t uid, uint64_t gid, int flags) {
  auto req = r.dir.chownAtRequest();
  req.setPath(bytes(r.path));
  // The kernel takes 32-bit ids; (uid_t)-1 means "unchanged".
  req.setUid(static_cast<uint32_t>(uid) == UINT32_MAX ? -1 : static_cast<int64_t>(uid & 0xffffffff));
  req.setGid(static_cast<uint32_t>(gid) == UINT32_MAX ? -1 : static_cast<int64_t>(gid & 0xffffffff));
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  c.target = r.target;
  return resultOf(req.send());
}
kj::Promise<Outcome> hChown(Call& c) {
  return onPath(c, AT_FDCWD, c.arg(0),
                [&](Remote& r) { return chownRemote(c, r, c.arg(1), c.arg(2), 0); });
}
kj::Promise<Outcome> hLchown(Call& c) {
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) {
    return chownRemote(c, r, c.arg(1), c.arg(2), AT_SYMLINK_NOFOLLOW);
  });
}
kj::Promise<Outcome> hFchownat(Call& c) {
  int flags = c.arg(4);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  return onPath(c, c.fdArg(0), c.arg(1),
                [&](Remote& r) { return chownRemote(c, r, c.arg(2), c.arg(3), flags); });
}
kj::Promise<Outcome> hFchown(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    Remote r{&f->target, f->node, kj::str("")};
    return chownRemote(c, r, c.arg(1), c.arg(2), AT_EMPTY_PATH);
  }
  return local();
}

kj::Promise<Outcome> hTruncate(Call& c) {
  int64_t length = c.arg(1);
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) {
    auto req = r.dir.truncateAtRequest();
    req.setPath(bytes(r.path));
    req.setLength(length);
    req.setEmptyPath(r.self);
    return resultOf(req.send());
  });
}
kj::Promise<Outcome> hFtruncate(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    auto req = f->node.truncateAtRequest();
    req.setPath(bytes(""));
    req.setLength(c.arg(1));
    req.setEmptyPath(true);
    return resultOf(send(c, f->target, req));
  }
  return local();
}

kj::Promise<Outcome> hFallocate(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    auto req = f->node.fallocateRequest();
    req.setMode(c.arg(1));
    req.setOffset(c.arg(2));
    req.setLength(c.arg(3));
    return resultOf(send(c, f->target, req));
  }
  return local();
}

kj::Promise<Outcome> fsyncCommon(Call& c, bool dataOnly) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    auto req = f->node.fsyncRequest();
    req.setDataOnly(dataOnly);
    return resultOf(send(c, f->target, req));
  }
  return local();
}
kj::Promise<Outcome> hFsync(Call& c) { return fsyncCommon(c, false); }
kj::Promise<Outcome> hFdatasync(Call& c) { return fsyncCommon(c, true); }

// ---------------------------------------------------------------------------------------------
// utime family: every variant becomes utimensAt with two TimeSpecs.

struct Times {
  struct timespec t[2];
  bool given;  // false: both "now" (a NULL times pointer)
};

kj::Promise<Outcome> utimensRemote(Call& c, Remote& r, const Times& times, bool timeval,
                                   int flags) {
  auto req = r.dir.utimensAtRequest();
  req.setPath(bytes(r.path));
  req.setNoFollow(flags & AT_SYMLINK_NOFOLLOW);
  req.setEmptyPath((flags & AT_EMPTY_PATH) || r.self);
  auto set = [&](const struct timespec& ts, proto::TimeSpec::Builder b) {
    if (!times.given) {
      b.setNow();
      return true;
    }
    if (timeval) {
      struct timeval tv = {ts.tv_sec, ts.tv_nsec};
      return abi::decodeTimeval(tv, b);
    }
    return abi::decodeTimespec(ts, b);
  };
  if (!set(times.t[0], req.initAtime()) || !set(times.t[1], req.initMtime())) {
    return done(-EINVAL);
  }
  c.target = r.target;
  return resultOf(req.send());
}

kj::Promise<Outcome> hUtimensat(Call& c) {
  int flags = c.arg(3);
  if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
    return done(-EINVAL);
  }
  Times times{};
  times.given = c.arg(2) != 0;
  if (times.given && c.mem().read(c.arg(2), kj::arrayPtr(times.t, 2).asBytes()) < 0) {
    return done(-EFAULT);
  }
  if (c.arg(1) == 0) {
    // utimensat(fd, NULL, ...) is futimens(fd), which takes no flags.
    int fd = c.fdArg(0);
    if (fd == AT_FDCWD) {
      return local();
    }
    if (flags != 0 && c.task.fds->isRemote(fd)) {
      return done(-EINVAL);
    }
    KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
      Remote r{&f->target, f->node, kj::str("")};
      return utimensRemote(c, r, times, false, AT_EMPTY_PATH);
    }
    return local();
  }
  return onPath(c, c.fdArg(0), c.arg(1),
                [&](Remote& r) { return utimensRemote(c, r, times, false, flags); });
}

kj::Promise<Outcome> timevalCommon(Call& c, int dirfd, uint64_t path, uint64_t tvAddr) {
  Times times{};
  times.given = tvAddr != 0;
  if (times.given) {
    struct timeval tv[2];
    if (c.mem().read(tvAddr, kj::arrayPtr(tv, 2).asBytes()) < 0) {
      return done(-EFAULT);
    }
    for (int i = 0; i < 2; ++i) {
      times.t[i].tv_sec = tv[i].tv_sec;
      times.t[i].tv_nsec = tv[i].tv_usec;  // decodeTimeval reads it back as usec.
    }
  }
  if (path == 0 && dirfd != AT_FDCWD) {
    // futimesat(fd, NULL, tv) acts on the fd itself.
    KJ_IF_MAYBE(f, c.task.fds->find(dirfd)) {
      Remote r{&f->target, f->node, kj::str(""), true};
      return utimensRemote(c, r, times, true, 0);
    }
    return local();
  }
  return onPath(c, dirfd, path, [&](Remote& r) { return utimensRemote(c, r, times, true, 0); });
}
kj::Promise<Outcome> hUtimes(Call& c) { return timevalCommon(c, AT_FDCWD, c.arg(0), c.arg(1)); }
kj::Promise<Outcome> hFutimesat(Call& c) { return timevalCommon(c, c.fdArg(0), c.arg(1), c.arg(2)); }
kj::Promise<Outcome> hUtime(Call& c) {
  Times times{};
  times.given = c.arg(1) != 0;
  if (times.given) {
    struct utimbuf ub;
    if (c.mem().readValue(c.arg(1), ub) < 0) {
      return done(-EFAULT);
    }
    times.t[0] = {ub.actime, 0};
    times.t[1] = {ub.modtime, 0};
  }
  return onPath(c, AT_FDCWD, c.arg(0),
                [&](Remote& r) { return utimensRemote(c, r, times, false, 0); });
}

// ---------------------------------------------------------------------------------------------
// xattrs: path (follow / nofollow) and fd variants share one shape each.

enum class XattrVia { PATH, LPATH, FD };

// Resolves the xattr call's object; fd variants use the node itself.
template <typename Func>
kj::Promise<Outcome> onXattrObject(Call& c, XattrVia via, Func&& func) {
  if (via == XattrVia::FD) {
    KJ_IF_MAYBE(f, remoteFd(c, 0)) {
      Remote r{&f->target, f->node, kj::str("")};
      c.target = r.target;
      return func(r, true);
    }
    return local();
  }
  return onPath(c, AT_FDCWD, c.arg(0), [&](Remote& r) { return func(r, r.self); });
}

int64_t readXattrName(Call& c, uint64_t addr, kj::String& name) {
  int64_t r = c.mem().readString(addr, 255, name);
  if (r == -ENAMETOOLONG) {
    return -ERANGE;
  }
  if (r == 0 && name.size() == 0) {
    return -ERANGE;
  }
  return r;
}

kj::Promise<Outcome> setxattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  uint64_t size = c.arg(3);
  int flags = c.arg(4);
  if (size > XATTR_SIZE_MAX) {
    return done(-E2BIG);
  }
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
    return done(-EINVAL);
  }
  auto value = kj::heapArray<kj::byte>(size);
  if (size > 0 && c.mem().read(c.arg(2), value) < 0) {
    return done(-EFAULT);
  }
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.setXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.setValue(value);
    auto f = req.initFlags();
    f.setNoFollow(via == XattrVia::LPATH);
    f.setCreate(flags & XATTR_CREATE);
    f.setReplace(flags & XATTR_REPLACE);
    req.setEmptyPath(emptyPath);
    return resultOf(req.send());
  });
}

kj::Promise<Outcome> getxattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  uint64_t buf = c.arg(2), size = kj::min(c.arg(3), (uint64_t)XATTR_SIZE_MAX);
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.getXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.setSize(size);
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      int64_t n = reply.getResult();
      if (n < 0 || size == 0) {
        return Complete{n};
      }
      auto value = reply.getValue();
      KJ_REQUIRE(value.size() == static_cast<uint64_t>(n) && value.size() <= size,
                 "agent answered getxattr with a bad size");
      return Complete{putBytes(c, buf, value, n)};
    });
  });
}

kj::Promise<Outcome> listxattrCommon(Call& c, XattrVia via) {
  uint64_t buf = c.arg(1), size = kj::min(c.arg(2), (uint64_t)XATTR_LIST_MAX);
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.listXattrRequest();
    req.setPath(bytes(o.path));
    req.setSize(size);
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return req.send().then([&c, buf, size](auto reply) -> Outcome {
      int64_t n = reply.getResult();
      if (n < 0 || size == 0) {
        return Complete{n};
      }
      auto names = reply.getNames();
      KJ_REQUIRE(names.size() == static_cast<uint64_t>(n) && names.size() <= size,
                 "agent answered listxattr with a bad size");
      return Complete{putBytes(c, buf, names, n)};
    });
  });
}

kj::Promise<Outcome> removexattrCommon(Call& c, XattrVia via) {
  kj::String name;
  int64_t r = readXattrName(c, c.arg(1), name);
  if (r < 0) {
    return done(r);
  }
  return onXattrObject(c, via, [&](Remote& o, bool emptyPath) {
    auto req = o.dir.removeXattrRequest();
    req.setPath(bytes(o.path));
    req.setName(bytes(name));
    req.initFlags().setNoFollow(via == XattrVia::LPATH);
    req.setEmptyPath(emptyPath);
    return resultOf(req.send());
  });
}

kj::Promise<Outcome> hSetxattr(Call& c) { return setxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLsetxattr(Call& c) { return setxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFsetxattr(Call& c) { return setxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hGetxattr(Call& c) { return getxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLgetxattr(Call& c) { return getxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFgetxattr(Call& c) { return getxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hListxattr(Call& c) { return listxattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLlistxattr(Call& c) { return listxattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFlistxattr(Call& c) { return listxattrCommon(c, XattrVia::FD); }
kj::Promise<Outcome> hRemovexattr(Call& c) { return removexattrCommon(c, XattrVia::PATH); }
kj::Promise<Outcome> hLremovexattr(Call& c) { return removexattrCommon(c, XattrVia::LPATH); }
kj::Promise<Outcome> hFremovexattr(Call& c) { return removexattrCommon(c, XattrVia::FD); }

// Advice about the page cache: a remote file has none here, so the answer is what B's kernel
// gives after validating the arguments; durability requests become an fsync on B.

bool isStream(RemoteFile& f) {
  return f.type == proto::FileType::FIFO || f.type == proto::FileType::SOCKET;
}

kj::Promise<Outcome> hFadvise(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    int64_t advice = static_cast<int>(c.arg(3));
    if (isStream(*f)) {
      return done(-ESPIPE);
    }
    if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE ||
        static_cast<int64_t>(c.arg(2)) < 0) {
      return done(-EINVAL);
    }
    return done(0);
  }
  return local();
}

kj::Promise<Outcome> hReadahead(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    return done(f->type == proto::FileType::REGULAR ? 0 : -EINVAL);
  }
  return local();
}

kj::Promise<Outcome> hSyncFileRange(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    unsigned flags = c.arg(3);
    if ((flags & ~(SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                   SYNC_FILE_RANGE_WAIT_AFTER)) ||
        static_cast<int64_t>(c.arg(1)) < 0 || static_cast<int64_t>(c.arg(2)) < 0) {
      return done(-EINVAL);
    }
    if (isStream(*f)) {
      return done(-ESPIPE);
    }
    if (!(flags & SYNC_FILE_RANGE_WRITE)) {
      return done(0);
    }
    auto req = f->node.fsyncRequest();
    req.setDataOnly(true);
    return resultOf(send(c, f->target, req));
  }
  return local();
}

// syncfs on B: the closest request we have is an fsync of the file (TODO(protocol): syncfs).
kj::Promise<Outcome> hSyncfs(Call& c) { return fsyncCommon(c, false); }

// ---------------------------------------------------------------------------------------------
// getdents64

kj::Promise<Outcome> hGetdents64(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    uint64_t buf = c.arg(1);
    // The kernel takes count as an unsigned int: upper register bits are not part of it.
    uint32_t count = kj::min(static_cast<uint32_t>(c.arg(2)), static_cast<uint32_t>(INT32_MAX));
    auto req = f->node.getdentsRequest();
    req.setMaxBytes(kj::min(count, 1u << 20));
    return send(c, f->target, req).then([&c, buf, count](auto reply) -> Outcome {
      if (reply.getResult() < 0) {
        return Complete{reply.getResult()};
      }
      auto entries = reply.getEntries();
      size_t need = 0;
      for (auto e : entries) {
        need += abi::direntSize(e.getName().size());
      }
      // Entries the agent consumed must all be delivered: more than fits is a protocol error.
      KJ_REQUIRE(need <= count, "agent answered getdents with more than the buffer holds");
      auto out = kj::heapArray<kj::byte>(need);
      size_t n = abi::encodeDirents(entries, out);
      return Complete{putBytes(c, buf, out.slice(0, n), n)};
    });
  }
  return local();
}

// ---------------------------------------------------------------------------------------------
// fcntl, flock

kj::Promise<Outcome> lockCommon(Call& c, RemoteFile& f, proto::LockCmd cmd, uint64_t addr) {
  struct flock fl;
  if (c.mem().readValue(addr, fl) < 0) {
    return done(-EFAULT);
  }
  auto req = f.node.lockRequest();
  req.setCmd(cmd);
  req.setOwner(c.task.tgid);
  if (!abi::decodeFlockChecked(fl, req.initLock())) {
    return done(-EINVAL);
  }
  bool isGet = cmd == proto::LockCmd::GET_LK || cmd == proto::LockCmd::OFD_GET_LK;
  bool isPosixSet = cmd == proto::LockCmd::SET_LK || cmd == proto::LockCmd::SET_LK_W;
  auto& target = f.target;
  return send(c, f.target, req).then([&c, &target, addr, isGet, isPosixSet](auto reply) -> Outcome {
    if (isPosixSet && reply.getResult() >= 0) {
      c.tracer.noteLockOwner(target, c.task.tgid);
    }
    if (reply.getResult() < 0 || !isGet) {
      return Complete{reply.getResult()};
    }
    return Complete{putStruct(c, addr, abi::encodeFlock(reply.getLock()), reply.getResult())};
  });
}

kj::Promise<Outcome> hFcntl(Call& c) {
  int fd = c.fdArg(0);
  int cmd = c.arg(1);
  KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
    switch (cmd) {
      case F_DUPFD:
      case F_DUPFD_CLOEXEC:
        return dupCommon(c, fd, nullptr);
      case F_GETFD:
      case F_SETFD:
        return local();  // close-on-exec lives on the local placeholder.
      case F_GETFL: {
        auto req = f->node.getFlagsRequest();
        return send(c, f->target, req).then([](auto reply) -> Outcome {
          if (reply.getResult() < 0) {
            return Complete{reply.getResult()};
          }
          return Complete{static_cast<int64_t>(abi::encodeStatusFlags(reply.getFlags()))};
        });
      }
      case F_SETFL: {
        auto req = f->node.setFlagsRequest();
        abi::decodeStatusFlags(c.arg(2), req.initFlags());
        return resultOf(send(c, f->target, req));
      }
      case F_GETLK: return lockCommon(c, *f, proto::LockCmd::GET_LK, c.arg(2));
      case F_SETLK: return lockCommon(c, *f, proto::LockCmd::SET_LK, c.arg(2));
      case F_SETLKW: return lockCommon(c, *f, proto::LockCmd::SET_LK_W, c.arg(2));
      case F_OFD_GETLK: return lockCommon(c, *f, proto::LockCmd::OFD_GET_LK, c.arg(2));
      case F_OFD_SETLK: return lockCommon(c, *f, proto::LockCmd::OFD_SET_LK, c.arg(2));
      case F_OFD_SETLKW: return lockCommon(c, *f, proto::LockCmd::OFD_SET_LK_W, c.arg(2));
      default:
        c.tracer.noteOnce(kj::str("fcntl", cmd),
                          kj::str("fcntl command ", cmd, " is not supported on remote fds yet ('",
                                  f->path, "'): answering EINVAL"));
        return done(-EINVAL);
    }
  }
  return local();
}

kj::Promise<Outcome> hFlock(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    int op = c.arg(1);
    int kind = op & ~LOCK_NB;
    if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) {
      return done(-EINVAL);
    }
    auto req = f->node.flockRequest();
    req.setExclusive(kind == LOCK_EX);
    req.setUnlock(kind == LOCK_UN);
    req.setNonBlock(op & LOCK_NB);
    return resultOf(send(c, f->target, req));
  }
  return local();
}

// ---------------------------------------------------------------------------------------------
// cwd

kj::Promise<Outcome> setCwd(Call& c, AgentLink& target, proto::Node::Client dir) {
  auto check = dir.chdirCheckRequest();
  Task& task = c.task;
  c.target = &target;
  return check.send().then([&task, &target, dir](auto reply) mutable -> Outcome {
    if (reply.getResult() == 0) {
      task.fs->cwd.insert_or_assign(&target, kj::mv(dir));
      task.fs->side = &target;
    }
    return Complete{reply.getResult()};
  });
}

// A chdir that the kernel performs here moves the cwd to this side once it succeeds.
Outcome localChdir(Call& c) {
  Task& task = c.task;
  return RunLocalThen{[&task](int64_t ret) {
    if (ret == 0) {
      task.fs->side = nullptr;
    }
    return ret;
  }};
}

kj::Promise<Outcome> hChdir(Call& c) {
  auto where = resolvePath(c, AT_FDCWD, c.arg(0));
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return localChdir(c); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      auto req = r.dir.openAtRequest();
      // chdir("/proc/self/fd/N") of a remote directory fd: that directory itself.
      req.setPath(bytes(r.self ? kj::StringPtr(".") : r.path.asPtr()));
      auto how = req.initHow();
      how.setAccess(proto::AccessMode::PATH);
      how.setDirectory(true);
      auto target = r.target;
      return send(c, *target, req).then([&c, target](auto reply) -> kj::Promise<Outcome> {
        if (reply.getResult() < 0) {
          return done(reply.getResult());
        }
        return setCwd(c, *target, reply.getNode());
      });
    }
  }
  KJ_UNREACHABLE;
}

kj::Promise<Outcome> hFchdir(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    // The cwd needs its own open directory: the program may close the fd right after.
    auto req = f->node.openAtRequest();
    req.setPath(bytes("."));
    auto how = req.initHow();
    how.setAccess(proto::AccessMode::PATH);
    how.setDirectory(true);
    auto target = &f->target;
    return send(c, *target, req).then([&c, target](auto reply) -> kj::Promise<Outcome> {
      if (reply.getResult() < 0) {
        return done(reply.getResult());
      }
      return setCwd(c, *target, reply.getNode());
    });
  }
  return localChdir(c);
}

kj::Promise<Outcome> hGetcwd(Call& c) {
  if (c.task.fs->side == nullptr) {
    return local();
  }
  AgentLink& target = *c.task.fs->side;
  uint64_t buf = c.arg(0), size = c.arg(1);
  auto req = cwdNode(c.task, target).pathRequest();
  return send(c, target, req).then([&c, buf, size](auto reply) -> Outcome {
    if (reply.getResult() < 0) {
      return Complete{reply.getResult()};
    }
    auto path = reply.getPath();
    if (path.size() + 1 > size) {
      return Complete{-ERANGE};
    }
    auto out = kj::heapArray<kj::byte>(path.size() + 1);
    memcpy(out.begin(), path.begin(), path.size());
    out[path.size()] = 0;
    return Complete{putBytes(c, buf, out, out.size())};
  });
}

// ---------------------------------------------------------------------------------------------
// sendfile, copy_file_range

kj::Promise<Outcome> copyRemote(Call& c, RemoteFile& in, RemoteFile& out, uint64_t count,
                                uint64_t inOffAddr, uint64_t outOffAddr, proto::CopyKind kind) {
  int64_t inOff = -1, outOff = -1;
  if (inOffAddr != 0 && c.mem().readValue(inOffAddr, inOff) < 0) {
    return done(-EFAULT);
  }
  if (outOffAddr != 0 && c.mem().readValue(outOffAddr, outOff) < 0) {
    return done(-EFAULT);
  }
  if ((inOffAddr && inOff < 0) || (outOffAddr && outOff < 0)) {
    return done(-EINVAL);
  }
  auto req = in.node.copyToRequest();
  req.setDst(out.node);
  req.setCount(kj::min(count, MAX_RW));
  req.setSrcOffset(inOff);
  req.setDstOffset(outOff);
  req.setKind(kind);
  return send(c, in.target, req).then([&c, inOffAddr, outOffAddr](auto reply) -> Outcome {
    int64_t n = reply.getResult();
    if (n < 0) {
      return Complete{n};
    }
    if (inOffAddr && c.mem().writeValue(inOffAddr, reply.getSrcOffset()) < 0) {
      return Complete{-EFAULT};
    }
    if (outOffAddr && c.mem().writeValue(outOffAddr, reply.getDstOffset()) < 0) {
      return Complete{-EFAULT};
    }
    return Complete{n};
  });
}

// One side here, one there: the tracer moves one chunk through itself, reading or writing the
// local side through a copy of the tracee's fd (pidfd_getfd shares the file position). Only a
// regular local file qualifies: the event loop must never block on a pipe or socket, and the
// kernel itself answers EINVAL for what sendfile/copy_file_range cannot take, which sends
// cp and Python back to read/write.
kj::Promise<Outcome> copyMixed(Call& c, int inFd, kj::Maybe<RemoteFile&> in, int outFd,
                               kj::Maybe<RemoteFile&> out, uint64_t count, uint64_t inOffAddr,
                               uint64_t outOffAddr) {
  int64_t inOff = -1, outOff = -1;
  if (inOffAddr != 0 && c.mem().readValue(inOffAddr, inOff) < 0) {
    return done(-EFAULT);
  }
  if (outOffAddr != 0 && c.mem().readValue(outOffAddr, outOff) < 0) {
    return done(-EFAULT);
  }
  if ((inOffAddr && inOff < 0) || (outOffAddr && outOff < 0)) {
    return done(-EINVAL);
  }
  // pidfd_open takes the process (a thread id of a non-leader thread is refused).
  int pidfd = syscall(SYS_pidfd_open, c.task.tgid, 0);
  if (pidfd < 0) {
    return done(-errno);
  }
  KJ_DEFER(close(pidfd));
  int localFd = syscall(SYS_pidfd_getfd, pidfd, in == nullptr ? inFd : outFd, 0);
  if (localFd < 0) {
    return done(-errno);
  }
  auto localOwn = kj::AutoCloseFd(localFd);
  struct stat st;
  if (fstat(localOwn.get(), &st) < 0 || !S_ISREG(st.st_mode)) {
    return done(-EINVAL);
  }
  uint64_t want = kj::min(count, CHUNK);
  if (want == 0) {
    return done(0);
  }
  KJ_IF_MAYBE(src, in) {
    // remote -> local
    auto req = src->node.preadRequest();
    req.setCount(want);
    req.setOffset(inOff);
    c.target = &src->target;
    auto giveBack = [&c, srcNode = src->node, positional = inOffAddr != 0](int64_t lost) mutable {
      if (!positional && lost > 0) {
        auto seek = srcNode.seekRequest();
        seek.setOffset(-lost);
        seek.setWhence(proto::Whence::CUR);
        c.tracer.backgroundSend(seek.send().ignoreResult());
      }
    };
    return req.send().then([&c, fd = kj::mv(localOwn), outOff, inOffAddr, outOffAddr, inOff,
                            giveBack = kj::mv(giveBack)](auto reply) mutable -> Outcome {
      int64_t n = reply.getResult();
      if (n <= 0) {
        return Complete{n};
      }
      auto data = reply.getData();
      ssize_t w = outOff >= 0 ? pwrite(fd.get(), data.begin(), data.size(), outOff)
                              : write(fd.get(), data.begin(), data.size());
      if (w < 0) {
        int err = errno;
        giveBack(n);
        return Complete{-err};
      }
      giveBack(n - w);
      if (inOffAddr) {
        c.mem().writeValue(inOffAddr, inOff + w);
      }
      if (outOffAddr) {
        c.mem().writeValue(outOffAddr, outOff + w);
      }
      return Complete{w};
    });
  }
  // local -> remote
  auto& dst = KJ_ASSERT_NONNULL(out);
  auto req = dst.node.pwriteRequest();
  auto buf = req.initData(want);
  ssize_t n = inOff >= 0 ? pread(localOwn.get(), buf.begin(), want, inOff)
                         : read(localOwn.get(), buf.begin(), want);
  if (n <= 0) {
    return done(n < 0 ? -errno : 0);
  }
  if (static_cast<uint64_t>(n) < want) {
    req.setData(buf.slice(0, n));
  }
  req.setOffset(outOff);
  c.target = &dst.target;
  int rawFd = localOwn.get();
  bool positional = inOff >= 0;
  // Whatever the remote write does not take goes back to the local file position.
  auto restore = kj::defer([fd = kj::mv(localOwn)]() {});
  return req.send()
      .then([&c, n, rawFd, positional, inOff, inOffAddr, outOff, outOffAddr](
                auto reply) -> Outcome {
        int64_t w = reply.getResult();
        if (!positional && (w < 0 ? n : n - w) > 0) {
          lseek(rawFd, w < 0 ? -n : w - n, SEEK_CUR);
        }
        if (w < 0) {
          return Complete{w};
        }
        if (inOffAddr) {
          c.mem().writeValue(inOffAddr, inOff + w);
        }
        if (outOffAddr) {
          c.mem().writeValue(outOffAddr, outOff + w);
        }
        return Complete{w};
      },
      [rawFd, n, positional](kj::Exception&& e) -> Outcome {
        if (!positional) {
          lseek(rawFd, -n, SEEK_CUR);
        }
        kj::throwFatalException(kj::mv(e));
      })
      .attach(kj::mv(restore));
}

kj::Promise<Outcome> copyCommon(Call& c, int inFd, uint64_t inOffAddr, int outFd,
                                uint64_t outOffAddr, uint64_t count, proto::CopyKind kind) {
  auto in = c.task.fds->find(inFd);
  auto out = c.task.fds->find(outFd);
  if (in == nullptr && out == nullptr) {
    return local();
  }
  KJ_IF_MAYBE(i, in) {
    KJ_IF_MAYBE(o, out) {
      if (&i->target != &o->target) {
        // Two machines: no kernel can copy between them in one call.
        return done(kind == proto::CopyKind::COPY_FILE_RANGE ? -EXDEV : -EINVAL);
      }
      return copyRemote(c, *i, *o, count, inOffAddr, outOffAddr, kind);
    }
  }
  if (kind == proto::CopyKind::COPY_FILE_RANGE) {
    // Files on two machines are never on one superblock: the kernel's own cross-fs answer.
    return done(-EXDEV);
  }
  return copyMixed(c, inFd, in, outFd, out, count, inOffAddr, outOffAddr);
}

kj::Promise<Outcome> hSendfile(Call& c) {
  return copyCommon(c, c.fdArg(1), c.arg(2), c.fdArg(0), 0, c.arg(3), proto::CopyKind::SENDFILE);
}
kj::Promise<Outcome> hCopyFileRange(Call& c) {
  if (c.arg(5) != 0) {
    // The kernel checks flags first; a remote fd must not reach the placeholder's EBADF.
    bool remote = c.task.fds->isRemote(c.fdArg(0)) || c.task.fds->isRemote(c.fdArg(2));
    return remote ? done(-EINVAL) : local();
  }
  return copyCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4),
                    proto::CopyKind::COPY_FILE_RANGE);
}

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

kj::Promise<Outcome> hUnknown(Call& c) {
  c.tracer.noteOnce(kj::str("nr", c.nr),
                    kj::str("syscall ", c.nr, " is unknown to sbrun: answering ENOSYS"));
  return done(-ENOSYS);
}

struct Entry {
  int nr;
  Handler handler;
};

const Entry HANDLERS[] = {
    {SYS_read, hRead}, {SYS_write, hWrite}, {SYS_open, hOpen}, {SYS_close, hClose},
    {SYS_stat, hStat}, {SYS_fstat, hFstat}, {SYS_lstat, hLstat}, {SYS_lseek, hLseek},
    {SYS_pread64, hPread}, {SYS_pwrite64, hPwrite}, {SYS_readv, hReadv}, {SYS_writev, hWritev},
    {SYS_access, hAccess}, {SYS_dup, hDup}, {SYS_dup2, hDup2}, {SYS_sendfile, hSendfile},
    {SYS_uname, hUname}, {SYS_fcntl, hFcntl}, {SYS_flock, hFlock}, {SYS_fsync, hFsync},
    {SYS_fdatasync, hFdatasync}, {SYS_truncate, hTruncate}, {SYS_ftruncate, hFtruncate},
    {SYS_getcwd, hGetcwd}, {SYS_chdir, hChdir}, {SYS_fchdir, hFchdir}, {SYS_rename, hRename},
    {SYS_mkdir, hMkdir}, {SYS_rmdir, hRmdir}, {SYS_creat, hCreat}, {SYS_link, hLink},
    {SYS_unlink, hUnlink}, {SYS_symlink, hSymlink}, {SYS_readlink, hReadlink},
    {SYS_chmod, hChmod}, {SYS_fchmod, hFchmod}, {SYS_chown, hChown}, {SYS_fchown, hFchown},
    {SYS_lchown, hLchown}, {SYS_utime, hUtime}, {SYS_mknod, hMknod}, {SYS_statfs, hStatfs},
    {SYS_fstatfs, hFstatfs}, {SYS_sethostname, hIdentityChange},
    {SYS_setdomainname, hIdentityChange}, {SYS_reboot, hIdentityChange},
    {SYS_setxattr, hSetxattr}, {SYS_lsetxattr, hLsetxattr}, {SYS_fsetxattr, hFsetxattr},
    {SYS_getxattr, hGetxattr}, {SYS_lgetxattr, hLgetxattr}, {SYS_fgetxattr, hFgetxattr},
    {SYS_listxattr, hListxattr}, {SYS_llistxattr, hLlistxattr}, {SYS_flistxattr, hFlistxattr},
    {SYS_removexattr, hRemovexattr}, {SYS_lremovexattr, hLremovexattr},
    {SYS_fremovexattr, hFremovexattr}, {SYS_getdents64, hGetdents64}, {SYS_utimes, hUtimes},
    {SYS_openat, hOpenat}, {SYS_mkdirat, hMkdirat}, {SYS_mknodat, hMknodat},
    {SYS_fchownat, hFchownat}, {SYS_futimesat, hFutimesat}, {SYS_newfstatat, hNewfstatat},
    {SYS_unlinkat, hUnlinkat}, {SYS_renameat, hRenameat}, {SYS_linkat, hLinkat},
    {SYS_symlinkat, hSymlinkat}, {SYS_readlinkat, hReadlinkat}, {SYS_fchmodat, hFchmodat},
    {SYS_faccessat, hFaccessat}, {SYS_utimensat, hUtimensat}, {SYS_fallocate, hFallocate},
    {SYS_dup3, hDup3}, {SYS_preadv, hPreadv}, {SYS_pwritev, hPwritev},
    {SYS_renameat2, hRenameat2}, {SYS_copy_file_range, hCopyFileRange},
    {SYS_preadv2, hPreadv2}, {SYS_pwritev2, hPwritev2}, {SYS_statx, hStatx},
    {SYS_close_range, hCloseRange}, {SYS_openat2, hOpenat2}, {SYS_faccessat2, hFaccessat2},
    {452 /* fchmodat2 */, hFchmodat2}, {SYS_fadvise64, hFadvise}, {SYS_readahead, hReadahead},
    {SYS_sync_file_range, hSyncFileRange}, {SYS_syncfs, hSyncfs},
};

}  // namespace

Handler findHandler(int nr) {
  static const auto table = [] {
    auto t = kj::heapArray<Handler>(syscallTableLimit());
    for (auto& h : t) {
      h = nullptr;
    }
    for (auto& row : syscallTable()) {
      if (row.cls == SyscallClass::UNHANDLED) {
        t[row.nr] = hUnhandled;
      }
    }
    for (auto& e : HANDLERS) {
      t[e.nr] = e.handler;
    }
    return t;
  }();
  if (nr < 0 || nr >= (int)table.size() || table[nr] == nullptr) {
    return findSyscall(nr) == nullptr ? hUnknown : nullptr;
  }
  return table[nr];
}

}  // namespace sb
