// Node: the server side of proto::Node, one open file description on the agent (a file, a
// directory, an O_PATH handle, a FIFO ...). Every method answers the kernel's own `ret` or
// `-errno` as data and never throws for an errno; a bad request (wrong sizes, unknown enum values,
// an operation on the wrong file type) gets the errno the kernel gives, or EINVAL.
//
// Ownership: a NodeImpl belongs to capnp (dropping the last client reference destroys it) and
// owns its fd through an FdRef it shares only with worker calls still in flight; the fd is closed
// when the last of them lets go, so nothing a connection opened survives it. It keeps its session
// alive through SessionState, which the session's other nodes share.
//
// Where the work happens: regular files and directories are served inline on the event loop;
// calls that can block (see NodeImpl::mayBlock) go to the Executor. Path arguments all go through
// Confinement. The I/O methods live in node.cc, the path methods in node_path.cc.

#pragma once

#include <capnp/capability.h>
#include <kj/refcount.h>
#include <kj/io.h>
#include <cerrno>
#include <fcntl.h>
#include <deque>
#include <map>
#include <mutex>
#include <sys/stat.h>

#include "confinement.h"
#include "credentials.h"
#include "executor.h"
#include "lock_owner.h"
#include "resource_limits.h"
#include "splitbrain.capnp.h"

namespace sb {

class Reaper;
class LeaseBreaks;

// Agent-wide services every session and node borrows. Owned by main (or a test).
class SessionIsolation;

struct AgentContext {
  Confinement& confinement;
  Executor& executor;
  Reaper& reaper;  // reaps every process any session spawned (process.h)
  bool readOnly = false;
  Limits limits = {};
  // --allow-devices: under --root, mknod of character and block devices is refused (EPERM)
  // without it.
  bool allowDevices = false;
  // Cgroups, pid namespaces and reduced privileges for spawned programs (session_isolation.h);
  // null: programs run as the agent's children in its own namespaces (tests, the fuzzer).
  kj::Maybe<SessionIsolation&> isolation = nullptr;
  // Brings B's lease breaks to the clients holding the leases (lease_breaks.h); null: leases B
  // would grant are refused with EINVAL (Node.lease).
  kj::Maybe<LeaseBreaks&> leaseBreaks = nullptr;
};

// An fd shared by a node and its in-flight worker calls. Worker threads drop their references,
// hence the atomic refcount. A worker never uses a dup: closing a dup would drop the process's
// POSIX record locks on the file (PITFALLS #18).
class FdRef final: public kj::AtomicRefcounted {
public:
  explicit FdRef(int fd): fd(fd) {}
  ~FdRef() noexcept(false);
  KJ_DISALLOW_COPY(FdRef);

  int get() const { return fd; }
  // close(2) now and report its result; only valid when no worker shares the fd.
  int64_t closeNow();

private:
  int fd;
};

// What a session's nodes share: the agent services and the server set that recognises this
// session's own nodes when a client passes one back (copyTo, renameAt, linkAt).
class SessionState final: public kj::Refcounted {
public:
  explicit SessionState(AgentContext& agent): agent(agent) {}

  AgentContext& agent;
  capnp::CapabilityServerSet<proto::Node> nodes;
  // The session's Nodes alive now, counted by NodeImpl itself (Limits::maxNodes).
  size_t liveNodes = 0;

  // -EMFILE when `more` new nodes would pass --max-fds, else 0: call before opening.
  int64_t nodeRoom(size_t more = 1) const {
    return liveNodes + more > agent.limits.maxNodes ? -EMFILE : 0;
  }

  // Wraps an open fd (ownership passes to the node) in a new Node of this session. `exitWatch`:
  // see NodeImpl::exitWatch.
  proto::Node::Client newNode(int fd, proto::FileType& typeOut,
                              kj::Maybe<kj::Own<FdRef>> exitWatch = nullptr);
  // Whether a client may read the file behind `fd` ahead of the program (NodeInfo.readAhead):
  // a regular file with a size above 0 on a file system that stores content, not one that makes
  // it at each read (proc, sysfs, debugfs, tracefs, securityfs, configfs, cgroup, efivarfs...).
  static bool readAheadSafe(int fd);

  // POSIX record locks belong to processes (PITFALLS #18): each traced process that locks a
  // remote file is a LockOwner of its own (lock_owner.h), so B's kernel keeps the processes'
  // locks apart and detects deadlocks between them.
  //
  // The owner for the traced process `owner` (made on first use); null with -errno in `error`:
  // ENOLCK past MAX_LOCK_OWNERS, or what the kernel said when making one.
  kj::Maybe<LockOwner&> lockOwner(int32_t owner, int64_t& error);
  // The traced process `owner` exited: its locks go with its LockOwner.
  void releaseOwner(int32_t owner);
  // F_GETLK names the holder: the traced process, other than `requester`, whose owner holds a
  // lock on the file behind `fd` overlapping `conflict`, or -1.
  int32_t ownerOfConflict(int fd, int32_t requester, const struct flock& conflict);

  // A traced process holds locks on few files at a time, a session few lock-taking processes at
  // once; each owner costs threads (two at least), so a client cannot ask for unbounded many.
  static constexpr size_t MAX_LOCK_OWNERS = 128;
  std::map<int32_t, kj::Own<LockOwner>> lockOwners;

public:
  // The credential sets the client defined (Session.defineCredentials), by id; bounded by
  // MAX_CREDENTIALS (a program has few distinct identities; a client that keeps inventing new
  // ones gets EINVAL rather than the agent's memory).
  static constexpr size_t MAX_CREDENTIALS = 1024;
  std::map<uint32_t, kj::Own<const CallerCredentials>> credentials;
};

// The program's RLIMIT_FSIZE for a call that sets the size of the file behind `fd` to `size`
// (truncate, fallocate; Node.truncateAt/fallocate fileSizeLimit): -EFBIG when it is a regular
// file that would grow past `limit`, else 0 (inode_newsize_ok). The caller has made the
// kernel's earlier checks of its call.
int64_t growthPastLimit(int fd, int64_t size, uint64_t limit);

// Results of blocking socket calls (node_socket.cc). A worker puts what it took from the kernel
// (a connection, bytes) here instead of returning it, and the call's continuation takes it back
// out. When the RPC was cancelled (the program got a signal just as the connection or the bytes
// arrived) the continuation never runs, and the next accept or recv on the node answers from
// here first: the kernel's own calls never lose them either.
struct SocketStash: public kj::AtomicRefcounted {
  std::mutex mutex;
  std::deque<WorkResult> results;

  void put(WorkResult&& w) {
    std::lock_guard<std::mutex> lock(mutex);
    results.push_back(kj::mv(w));
  }
  kj::Maybe<WorkResult> take() {
    std::lock_guard<std::mutex> lock(mutex);
    if (results.empty()) {
      return nullptr;
    }
    WorkResult w = kj::mv(results.front());
    results.pop_front();
    return kj::mv(w);
  }
};

// Blocking accepts and recvs whose RPC was cancelled keep running on their worker until the
// executor's interrupt lands, and may still put a connection or bytes into the stash after the
// next call on the node looked there; that call then waited in the kernel for what was already
// taken (sock_eintr hung this way on a loaded CI machine). The gate counts such calls, and the
// next stash reader waits until they are done. Event-loop thread only.
class StashGate: public kj::Refcounted {
public:
  // `workDone` resolves (or breaks, for work that never ran) once the cancelled call's work is over.
  void addCancelled(kj::Promise<void> workDone);
  // Null when no cancelled call is still running; else resolves once none is.
  kj::Maybe<kj::Promise<void>> settled();

private:
  size_t running = 0;
  kj::Maybe<kj::ForkedPromise<void>> allDone;
};

class NodeImpl final: public proto::Node::Server {
public:
  NodeImpl(kj::Own<SessionState> session, kj::Own<FdRef> fd, bool blockingKind, kj::Maybe<kj::Own<FdRef>> exitWatch = nullptr);
  ~NodeImpl() noexcept(false);

  // The fd, or -EBADF after close(): for sibling nodes of this session (copyTo, renameAt).
  int fdOrError() const;
  // A reference on the fd, or null after close(): for a spawned process that inherits it.
  kj::Maybe<kj::Own<FdRef>> shareFd();

  kj::Promise<void> close(CloseContext context) override;
  kj::Promise<void> info(InfoContext context) override;
  kj::Promise<void> openAt(OpenAtContext context) override;
  kj::Promise<void> read(ReadContext context) override;
  kj::Promise<void> pread(PreadContext context) override;
  kj::Promise<void> write(WriteContext context) override;
  kj::Promise<void> pwrite(PwriteContext context) override;
  kj::Promise<void> seek(SeekContext context) override;
  kj::Promise<void> statAt(StatAtContext context) override;
  kj::Promise<void> statfs(StatfsContext context) override;
  kj::Promise<void> accessAt(AccessAtContext context) override;
  kj::Promise<void> getdents(GetdentsContext context) override;
  kj::Promise<void> readlinkAt(ReadlinkAtContext context) override;
  kj::Promise<void> mkdirAt(MkdirAtContext context) override;
  kj::Promise<void> mknodAt(MknodAtContext context) override;
  kj::Promise<void> unlinkAt(UnlinkAtContext context) override;
  kj::Promise<void> renameAt(RenameAtContext context) override;
  kj::Promise<void> linkAt(LinkAtContext context) override;
  kj::Promise<void> symlinkAt(SymlinkAtContext context) override;
  kj::Promise<void> chmodAt(ChmodAtContext context) override;
  kj::Promise<void> chownAt(ChownAtContext context) override;
  kj::Promise<void> truncateAt(TruncateAtContext context) override;
  kj::Promise<void> fallocate(FallocateContext context) override;
  kj::Promise<void> fsync(FsyncContext context) override;
  kj::Promise<void> utimensAt(UtimensAtContext context) override;
  kj::Promise<void> getXattr(GetXattrContext context) override;
  kj::Promise<void> setXattr(SetXattrContext context) override;
  kj::Promise<void> listXattr(ListXattrContext context) override;
  kj::Promise<void> removeXattr(RemoveXattrContext context) override;
  kj::Promise<void> getFlags(GetFlagsContext context) override;
  kj::Promise<void> setFlags(SetFlagsContext context) override;
  kj::Promise<void> lock(LockContext context) override;
  kj::Promise<void> flock(FlockContext context) override;
  kj::Promise<void> copyTo(CopyToContext context) override;
  kj::Promise<void> path(PathContext context) override;
  kj::Promise<void> chdirCheck(ChdirCheckContext context) override;
  kj::Promise<void> releaseLocks(ReleaseLocksContext context) override;
  kj::Promise<void> lease(LeaseContext context) override;
  kj::Promise<void> ioctl(IoctlContext context) override;
  // Sockets (node_socket.cc).
  kj::Promise<void> bind(BindContext context) override;
  kj::Promise<void> connect(ConnectContext context) override;
  kj::Promise<void> listen(ListenContext context) override;
  kj::Promise<void> accept(AcceptContext context) override;
  kj::Promise<void> sendMsg(SendMsgContext context) override;
  kj::Promise<void> recvMsg(RecvMsgContext context) override;
  kj::Promise<void> shutdown(ShutdownContext context) override;
  kj::Promise<void> getSockOpt(GetSockOptContext context) override;
  kj::Promise<void> setSockOpt(SetSockOptContext context) override;
  kj::Promise<void> sockName(SockNameContext context) override;
  // Interrupts the blocking calls in flight (runBlocking) without cancelling them.
  kj::Promise<void> interrupt(InterruptContext context) override;
  // This node for calls with a defined set of credentials (node_caller.cc).
  kj::Promise<void> asCaller(AsCallerContext context) override;

private:
  kj::Own<SessionState> session;
  kj::Maybe<kj::Own<FdRef>> fd;  // null after close()
  // A FIFO, socket or character device (other than the memory devices): I/O on it may block.
  bool blockingKind;
  // The pidfd of the process writing this pipe (Session.spawn's pipeFromChild): a read returns
  // EOF once that process has exited and the pipe is empty, even while a descendant it left
  // behind still holds the write end, so `cmd &` in a remote shell does not hang its reader.
  kj::Maybe<kj::Own<FdRef>> exitWatch;
  // The description holds a lease whose breaks LeaseBreaks passes on (Node.lease): its holder
  // is forgotten before the fd can close and its number be reused.
  bool leaseHeld = false;
  void forgetLease();

  // The unix path this socket was bound to, as the program named it: getsockname answers it
  // (the kernel knows only the name the agent bound, relative to a confined directory).
  kj::Maybe<kj::Array<kj::byte>> boundPath;
  // The blocking calls in flight on this node (runBlocking), for interrupt(). Shared with the
  // calls' promises, which remove their own entry when they go.
  struct BlockingJobs: public kj::Refcounted {
    std::map<uint64_t, kj::Own<Executor::JobHandle>> jobs;
    uint64_t next = 0;
  };
  kj::Own<BlockingJobs> blockingJobs = kj::refcounted<BlockingJobs>();

  kj::Maybe<kj::Own<SocketStash>> stash;  // made by the first blocking accept or recv
  kj::Own<StashGate> stashGate = kj::refcounted<StashGate>();
  SocketStash& socketStash();
  // Runs `work` (which puts what it takes into the stash) like runBlocking; should the call be
  // cancelled before the work is over, the stash gate holds later readers until it is.
  kj::Promise<WorkResult> runStashing(kj::Function<WorkResult(int fd)> work);

  Confinement& confinement() const { return session->agent.confinement; }
  Executor& executor() const { return session->agent.executor; }
  bool readOnly() const { return session->agent.readOnly; }

  // True when an I/O call on this node may block: a blocking kind without O_NONBLOCK.
  bool mayBlock() const;
  // The exit watch for a worker to hold, or null; its fd for an inline call, or -1.
  kj::Maybe<kj::Own<FdRef>> shareExitWatch();
  int exitWatchFd() const;
  // Runs `work` on the executor with a reference on this node's fd (the fd must be open). The
  // caller must have made its RPC cancellable (context.allowCancellation()).
  kj::Promise<WorkResult> runBlocking(kj::Function<WorkResult(int fd)> work);
  // Runs `work` on the executor as one of this node's blocking calls (interrupt() reaches it);
  // on `on` instead of the agent's executor when given (a lock owner's).
  kj::Promise<WorkResult> runTracked(kj::Function<WorkResult()> work,
                                     kj::Maybe<Executor&> on = nullptr);

  // Unwraps a Node of this session (for copyTo, renameAt, linkAt): null for a foreign node.
  kj::Promise<kj::Maybe<NodeImpl&>> sameSessionNode(proto::Node::Client client);

  // What a name syscall (mkdir, unlink, rename ...) will act on: Confinement::parent(). In
  // read-only mode the lookup still happens, so a missing parent says ENOENT and an existing
  // name to create says EEXIST, and only then EROFS, as on a read-only mount; the result is then
  // always < 0.
  enum class NameUse { CREATE, REMOVE, REPLACE };
  int64_t nameTarget(int dirFd, kj::StringPtr path, NameUse use, PathTarget& out) const;

  // The directory fd a call's `dir` names (the root when absent), for unix paths; -EBADF for a
  // foreign or closed node.
  kj::Promise<int> dirFdOf(proto::Node::Client dir, bool has);

  // Shared by renameAt and linkAt once the destination directory is known.
  int64_t renameIn(kj::StringPtr oldPath, int newDirFd, kj::StringPtr newPath, unsigned flags);
  // throughFd: linkat of this node's /proc/self/fd magic link with AT_SYMLINK_FOLLOW (linkAt's
  // throughFd), oldPath unused.
  int64_t linkIn(kj::StringPtr oldPath, bool follow, bool emptyPath, bool throughFd,
                 int newDirFd, kj::StringPtr newPath);
};

}  // namespace sb
