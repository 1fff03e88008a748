// What the per-syscall handlers share (DESIGN D12): where a path or fd lives (path rules, the
// cwd's side, /proc/self/fd of remote fds), and the small shapes every handler repeats —
// answering, sending a remote call so its failure maps to the target's errno, writing a result
// struct into the tracee. The handlers themselves live in handlers_*.cc, one file per family,
// each with a table of the syscalls it answers; handlers.cc joins the tables.

#pragma once

#include <errno.h>
#include <fcntl.h>

#include "tracee_abi.h"
#include "tracer.h"

namespace sb::handler {

namespace abi = sb::x86_64;

// Largest payload of one request or reply; bigger reads and writes loop.
constexpr uint64_t CHUNK = 4u << 20;
// Linux caps one read/write at this (MAX_RW_COUNT).
constexpr uint64_t MAX_RW = 0x7ffff000;

inline kj::Promise<Outcome> done(int64_t ret) { return Outcome(Complete{ret}); }
inline kj::Promise<Outcome> local() { return Outcome(RunLocal{}); }

inline capnp::Data::Reader bytes(kj::StringPtr s) {
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

// The node the cwd of `task` is on `target` (the target's root until a chdir there). After a
// reconnect the old node is stale: the directory is found again by the path the agent last
// reported for it, once per process; if it is gone (or its path was never learnt), the root,
// with a note (docs/failure-semantics.md). While the target is away: a promise of that.
proto::Node::Client cwdNode(Task& task, AgentLink& target);
// A successful chdir there: `dir` becomes the cwd of `fs` on `target`, and its path is asked
// for in the background (for cwdNode after a reconnect).
void rememberCwd(kj::Own<FsContext> fs, AgentLink& target, proto::Node::Client dir);

// A call on an fd whose session is gone (agent_link.h) fails with EIO whatever it is, without
// its handler: the answer, or null for other calls and for those that act on the fd number
// only (close, dup, F_GETFD/F_SETFD), which keep working so that the program can let go.
kj::Maybe<int64_t> staleFd(Call& c);

// Where the path at `pathAddr`, relative to `dirfd` (AT_FDCWD or an fd), lives. Failed carries
// the errno the kernel gives for an unreadable or too long path.
Where resolvePath(Call& call, int dirfd, uint64_t pathAddr);
// The same for a call whose kernel resolves the whole path from `dirfd`, absolute or not
// (openat2 with RESOLVE_IN_ROOT or RESOLVE_BENEATH): the path lives where `dirfd` (or the cwd)
// does, whatever the rules say of an absolute one.
Where resolvePathFromDir(Call& call, int dirfd, uint64_t pathAddr);

// For *at calls: the dirfd argument as the kernel reads it (an int).
inline int dirfdOf(Call& call, int idx) { return idx < 0 ? AT_FDCWD : call.fdArg(idx); }

// Whether IO on a file of this type can wait indefinitely (a FIFO, socket or device), so that
// a signal must be able to interrupt it (Call::interruptible).
inline bool mayBlock(proto::FileType type) {
  return type == proto::FileType::FIFO || type == proto::FileType::SOCKET ||
         type == proto::FileType::CHAR_DEVICE;
}

inline kj::Maybe<RemoteFile&> remoteFd(Call& call, int idx) {
  return call.task.fds->find(call.fdArg(idx));
}

// The tracee's umask: creation modes are applied here, the agent runs with umask 0.
uint32_t umaskOf(pid_t tid);

// Writes a result struct to the tracee; the syscall's answer is `ok` or -EFAULT.
template <typename T>
int64_t putStruct(Call& call, uint64_t addr, const T& value, int64_t ok = 0) {
  return call.mem().writeValue(addr, value) < 0 ? -EFAULT : ok;
}

int64_t putBytes(Call& call, uint64_t addr, kj::ArrayPtr<const kj::byte> data, int64_t ok);

// A tracee iovec (struct iovec on x86-64).
struct IoVec {
  uint64_t base;
  uint64_t len;
};

// Reads a tracee iovec array; total length capped like the kernel's (MAX_RW_COUNT). -EINVAL for
// a count outside 0..IOV_MAX or a negative length, -EFAULT for an unreadable array.
int64_t readIovecs(Call& c, uint64_t addr, int64_t count, kj::Array<IoVec>& out, uint64_t& total);
// Scatters `data` into the iovecs; returns bytes placed or -EFAULT when none could be.
int64_t scatter(Call& c, kj::ArrayPtr<const IoVec> iov, kj::ArrayPtr<const kj::byte> data);
// Gathers iovec bytes into `out` (exactly out.size() bytes): 0 or -EFAULT.
int64_t gather(Call& c, kj::ArrayPtr<const IoVec> iov, kj::ArrayPtr<kj::byte> out);
// The iovecs' bytes from `skip` on, at most `limit` of them.
kj::Array<IoVec> sliceIovecs(kj::ArrayPtr<const IoVec> iov, uint64_t skip, uint64_t limit);

// Remote calls must answer with a target recorded for error mapping.
template <typename Req>
auto send(Call& call, AgentLink& target, Req& req) {
  call.target = &target;
  return req.send();
}

// `node` for a call that B's kernel must check with the calling thread's credentials (a path
// lookup, a create, a change of owner or mode ...): the node itself while the thread has the
// program's first credentials, else the node seen by its own (thread_creds.h).
inline proto::Node::Client asCaller(Call& c, AgentLink& target, proto::Node::Client node) {
  return c.tracer.credentials().asCaller(c, target, kj::mv(node));
}

// Resolves (dirfd, path) and, when remote, runs `build` to make and send the request; `r.dir`
// acts with the calling thread's credentials (asCaller).
template <typename Func>
kj::Promise<Outcome> onPath(Call& c, int dirfd, uint64_t pathAddr, Func&& func) {
  auto where = resolvePath(c, dirfd, pathAddr);
  KJ_SWITCH_ONEOF(where) {
    KJ_CASE_ONEOF(l, Local) { return local(); }
    KJ_CASE_ONEOF(f, Failed) { return done(f.err); }
    KJ_CASE_ONEOF(r, Remote) {
      c.target = r.target;
      r.dir = asCaller(c, *r.target, kj::mv(r.dir));
      return func(r);
    }
  }
  KJ_UNREACHABLE;
}

// The program's RLIMIT_FSIZE (RLIM_INFINITY: none), read at each call: setrlimit is not trapped.
// The agent applies it on B (Node.write, truncateAt, fallocate fileSizeLimit).
uint64_t fileSizeLimitOf(pid_t tgid);

// A call that sets a file's size to `size` (truncate, ftruncate, fallocate): EFBIG for a size
// past the program's RLIMIT_FSIZE comes with SIGXFSZ, as from the kernel's inode_newsize_ok.
template <typename Promise>
kj::Promise<Outcome> withSizeSignal(Promise&& p, int64_t size, uint64_t limit) {
  return p.then([size, limit](auto r) -> Outcome {
    int64_t result = r.getResult();
    bool past = limit != UINT64_MAX && size >= 0 && uint64_t(size) > limit;
    return Complete{result, result == -EFBIG && past ? SIGXFSZ : 0};
  });
}

template <typename Promise>
kj::Promise<Outcome> resultOf(Promise&& p) {
  return p.then([](auto r) -> Outcome { return Complete{r.getResult()}; });
}

// Read-ahead (fd_table.h ReadAhead). Before a call that observes or moves the file offset or
// reads the file another way: waits for a fetch in flight, then gives the unread window back
// (one seek, sent before anything the caller sends next on the file) and drops it.
kj::Promise<void> settleReadAhead(Tracer& tracer, RemoteFile& file);
// The description is about to be shared with a process on the agent (remote exec, SCM_RIGHTS),
// which would see the agent's offset: gives the window back now and reads ahead no more.
void shareReadAhead(Tracer& tracer, RemoteFile& file);

// One family's handlers: the syscall numbers each answers.
struct HandlerEntry {
  int nr;
  Handler handler;
};
kj::ArrayPtr<const HandlerEntry> fdHandlers();
kj::ArrayPtr<const HandlerEntry> ioHandlers();
kj::ArrayPtr<const HandlerEntry> pathHandlers();
kj::ArrayPtr<const HandlerEntry> execHandlers();
kj::ArrayPtr<const HandlerEntry> mmapHandlers();
kj::ArrayPtr<const HandlerEntry> pollHandlers();
kj::ArrayPtr<const HandlerEntry> netHandlers();
kj::ArrayPtr<const HandlerEntry> spliceHandlers();
// A syscall number sbrun does not know: ENOSYS, explained once.
kj::Promise<Outcome> hUnknown(Call& c);
// sb-stub's requests (stub_protocol.h), under a syscall number no kernel has.
kj::Promise<Outcome> stubCall(Call& c);

}  // namespace sb::handler
