// FdTable: which of a tracee's fd numbers are remote, keyed by file-table identity (DESIGN D4).
//
// Only remote fds are recorded; every other number is the kernel's business. A remote fd owns a
// real local fd number (an O_PATH placeholder), so the kernel keeps choosing numbers: lowest-free,
// dup2, fork and O_CLOEXEC behave exactly as the program expects. Threads and CLONE_FILES
// children share one FdTable (kj::addRef); fork copies it. RemoteFile is shared by every fd that
// refers to the same remote open file description (dup, fork): the remote close happens when the
// last reference goes.

#pragma once

#include <kj/async.h>
#include <kj/refcount.h>
#include <capnp/capability.h>
#include <kj/string.h>
#include <map>

#include "splitbrain.capnp.h"

namespace sb {

class AgentLink;
class EpollRegistry;

// What the tracer remembers of a remote socket (handlers_net.cc).
struct SocketInfo {
  proto::SockFamily family;
  proto::SockType type;
  // SO_RCVTIMEO / SO_SNDTIMEO are set: a signal makes a blocking call fail with EINTR even
  // under SA_RESTART (socket(7)).
  bool receiveTimeout = false;
  bool sendTimeout = false;
};

// Read-ahead of one open file description (handlers_io.cc; docs/architecture.md, "Speed"): a
// regular file opened read-only that the program reads in small sequential read()s gets larger
// windows of it with one `read` RPC each, and the following reads are answered from the window.
// The window is bytes the agent has already read: the remote file offset is past them, ahead of
// the program's offset by window.size(). Anything that observes or moves the offset, or reads the
// content another way, first gives the unread bytes back (one seek) and drops the window.
struct ReadAhead {
  ReadAhead() = default;
  KJ_DISALLOW_COPY(ReadAhead);
  ~ReadAhead() noexcept(false) { drop(); }

  // Set at open when the file qualifies (and --no-read-ahead is not given); cleared for good
  // once the description is shared with a process on the agent (remote exec, SCM_RIGHTS) or
  // gets O_DIRECT.
  bool allowed = false;
  // Consecutive small read()s since the open or the last reset (lseek, pread, a drop).
  uint32_t sequential = 0;
  // How much the next fetch asks for (grows from the first size to the largest).
  uint64_t nextSize = 0;
  // The unread part of the window, inside `held`.
  kj::ArrayPtr<const kj::byte> window;
  // AgentLink::contentChanges() when the window's fetch was sent: a write through sbrun to
  // that target since then makes the window stale.
  uint64_t epoch = 0;
  // A remote read is in flight that moves the agent's offset to where the program's will not
  // necessarily be: a window fetch, or a pipelined big read whose answers are not all in (it may
  // have to give bytes back, handlers_io.cc). Calls that see or move the offset wait for `fetch`
  // (settleReadAhead), as the kernel's read holds the description's position lock. `fetch`
  // resolves to the read's result (bytes or -errno), or fails.
  bool fetching = false;

  // Keeps the reply the window points into (counted against a per-process budget).
  void hold(capnp::Response<proto::Node::ReadResults>&& reply, uint64_t atEpoch);
  // Forgets the window; returns how many unread bytes it had.
  uint64_t drop();
  // The program took `n` bytes of the window.
  void consume(size_t n);
  // Bytes held in windows by all files, and the most they may hold.
  static size_t totalHeld;
  static constexpr size_t BUDGET = 32u << 20;

  kj::Maybe<capnp::Response<proto::Node::ReadResults>> reply;
  size_t heldBytes = 0;
  kj::Maybe<kj::ForkedPromise<int64_t>> fetch;  // Last: goes first.
};

// One open file description on an agent.
class RemoteFile : public kj::Refcounted {
 public:
  RemoteFile(AgentLink& target, proto::Node::Client node, proto::FileType type, kj::String path);
  // The last reference is gone (every fd closed): the file leaves the epoll interest sets it was
  // in, as the kernel's epoll forgets a released file.
  ~RemoteFile() noexcept(false);

  AgentLink& target;
  proto::Node::Client node;
  // The target's session the description lives in: once that session is gone (a disconnect),
  // the fd is stale and every call on it fails with EIO until it is closed (agent_link.h).
  uint64_t generation;
  proto::FileType type;
  kj::String path;  // As the program named it, for messages.
  // The control fd (SB_CONTROL_FD, control.h): read and write speak the control protocol.
  bool control = false;
  // Set once the file is in some epoll instance's interest set (epoll_set.h).
  EpollRegistry* epolls = nullptr;
  // Counts the program's reads and writes on the file: after one, an EPOLLET interest treats
  // the next readiness it sees as a new edge (an edge-triggered program reads until EAGAIN).
  uint32_t ioEpoch = 0;
  // Set for the sockets sbrun made on the target (socket, socketpair, accept).
  kj::Maybe<SocketInfo> socket;
  // Opened for writing (O_WRONLY, O_RDWR): its close may report a deferred write error (NFS,
  // FUSE), so it waits for the target's answer; other closes of files and directories do not.
  bool writable = false;
  // Read-ahead state (see ReadAhead).
  ReadAhead readAhead;
  // Big reads may go in pipelined chunks (chunked_read.h): a regular file opened for reading,
  // not O_DIRECT, whose content the agent says is stored (NodeInfo.readAhead). Cleared with
  // O_DIRECT and once the description is shared with a process on the agent, whose reads could
  // fall between the chunks.
  bool pipelineReads = false;

  bool isStale() const;
};

class FdTable : public kj::Refcounted {
 public:
  kj::Maybe<RemoteFile&> find(int fd);
  bool isRemote(int fd) { return find(fd) != nullptr; }

  // Records fd as remote, replacing what was there.
  void bind(int fd, kj::Own<RemoteFile> file);
  // Forgets fd; returns the reference it held (null if fd was not remote).
  kj::Maybe<kj::Own<RemoteFile>> unbind(int fd);
  // close_range(first, last): forgets every remote fd in [first, last].
  void unbindRange(unsigned first, unsigned last);
  // Keeps only the fds for which `stillOpen(fd)` is true (after exec closed O_CLOEXEC ones).
  template <typename Func>
  void retainIf(Func&& stillOpen) {
    for (auto it = fds.begin(); it != fds.end();) {
      if (stillOpen(it->first)) {
        ++it;
      } else {
        it = fds.erase(it);
      }
    }
  }

  // Calls `func(fd, file)` for every remote fd, in fd order.
  template <typename Func>
  void forEach(Func&& func) {
    for (auto& [fd, file] : fds) {
      func(fd, *file);
    }
  }

  // fork(): a new table sharing every RemoteFile.
  kj::Own<FdTable> copy();

  size_t size() const { return fds.size(); }

 private:
  std::map<int, kj::Own<RemoteFile>> fds;
};

}  // namespace sb
