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
#include <kj/vector.h>
#include <map>
#include <string>

#include "lease_signals.h"
#include "splitbrain.capnp.h"

namespace sb {

class AgentLink;
class RemoteFile;

// Told when a RemoteFile's last reference goes (every fd closed). The epoll registry is one
// (epoll_set.h): a released file leaves the interest sets it was in, as the kernel's epoll
// forgets a released file. An interface, so the fd table does not depend on epoll.
class ReleaseWatcher {
 public:
  virtual void released(RemoteFile& file) = 0;

 protected:
  ~ReleaseWatcher() = default;
};

// What the tracer remembers of a remote socket (handlers_net.cc).
struct SocketInfo {
  proto::SockFamily family;
  proto::SockType type;
  // SO_RCVTIMEO / SO_SNDTIMEO are set: a signal makes a blocking call fail with EINTR even
  // under SA_RESTART (socket(7)).
  bool receiveTimeout = false;
  bool sendTimeout = false;
  // -yy: the endpoints as B sees them ("10.0.0.2:40000", "[::1]:80", "\"/run/x.sock\""),
  // learnt when bind, connect and accept succeed (with -yy only); "" while unknown.
  std::string localEnd = std::string();
  std::string peerEnd = std::string();
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
  ReleaseWatcher* epolls = nullptr;
  // Counts the program's reads and writes on the file: after one, an EPOLLET interest treats
  // the next readiness it sees as a new edge (an edge-triggered program reads until EAGAIN).
  uint32_t ioEpoch = 0;
  // Set for the sockets sbrun made on the target (socket, socketpair, accept).
  kj::Maybe<SocketInfo> socket;
  // -yy: a device's type and numbers on B ("char 1:3"), asked at its open under -yy only.
  std::string device = std::string();
  // Opened for writing (O_WRONLY, O_RDWR): its close may report a deferred write error (NFS,
  // FUSE), so it waits for the target's answer; other closes of files and directories do not.
  bool writable = false;
  // Opened with O_PATH: the calls that need a real open file (fchmod, fchown, the f*xattr calls)
  // fail with EBADF here, where the agent, which acts on the file by its path, would succeed.
  bool pathOnly = false;
  // Read-ahead state (see ReadAhead).
  ReadAhead readAhead;
  // Big reads may go in pipelined chunks (chunked_read.h): a regular file opened for reading,
  // not O_DIRECT, whose content the agent says is stored (NodeInfo.readAhead). Cleared with
  // O_DIRECT and once the description is shared with a process on the agent, whose reads could
  // fall between the chunks.
  bool pipelineReads = false;
  // F_SETSIG, F_SETOWN and the lease's fd, for the signal a lease break on B raises
  // (lease_signals.h). Shared with the lease's holder, which may outlive the file.
  kj::Own<FileSignals> signals = kj::refcounted<FileSignals>();

  bool isStale() const;
};

// The invariants, for every path that installs, duplicates or releases an fd (issue 21):
//
// I1. An fd is in the table exactly while the kernel's file table holds a placeholder for it
//     that sbrun made or duplicated for that RemoteFile. The kernel changes its table while the
//     thread runs the syscall; the tracer records the change at a stop of that same thread, so
//     each record is made where no other thread can have reused the number in between:
//       - a new number (open's placeholder, dup*, F_DUPFD*, socket, accept, socketpair,
//         SCM_RIGHTS received) is bound at the syscall's exit stop: the kernel holds the number
//         from before that stop, so no other thread can be given it;
//       - a number close() releases is unbound at its entry stop, while the kernel still holds
//         it (the placeholder goes when the kernel runs the close);
//       - numbers the kernel releases that the tracer can only confirm afterwards (close_range,
//         dup2 over a remote fd) are released at the exit stop *only if they still hold the
//         binding seen at entry* (Binding::serial): once the kernel freed a number, another
//         thread's open may already have taken it and bound its own file there.
// I2. What a duplicate refers to is taken at the entry stop (dup's source), not looked up
//     again at the exit, when another thread may have closed the source since.
// I3. A thread returns to its program only once the guard filter for the blocks of its remote
//     fds is in effect (fd_guard.h): an fd whose calls do not trap reaches the placeholder.
// I4. fork copies the table at the fork event and exec's close-on-exec sweep asks the kernel
//     (/proc/PID/fd) which numbers survived. Known limit: a fork racing another thread's
//     open or close of a remote fd (the kernel copies its table mid-syscall) may give the child
//     a placeholder with no binding or a binding whose remote file the close let go; the child
//     cannot know those numbers from the program's own logic, so correct programs do not see it.
//
// Everything here runs on the tracer's one event-loop thread (DESIGN D1): "concurrent" means
// interleaved stops of the tracee's threads, never two threads of sbrun.
class FdTable : public kj::Refcounted {
 public:
  // A binding of an fd, as seen at one moment: `serial` tells it apart from a later binding
  // of the same number (another thread's open after the kernel freed it).
  struct Binding {
    int fd;
    uint64_t serial;
  };

  kj::Maybe<RemoteFile&> find(int fd);
  bool isRemote(int fd) { return find(fd) != nullptr; }

  // Records fd as remote, replacing what was there.
  void bind(int fd, kj::Own<RemoteFile> file);
  // Forgets fd; returns the reference it held (null if fd was not remote).
  kj::Maybe<kj::Own<RemoteFile>> unbind(int fd);
  // The bindings of [first, last] now (for a release confirmed at the exit stop).
  kj::Vector<Binding> bindingsIn(unsigned first, unsigned last);
  // Forgets `b.fd` if it still holds that very binding (I1); returns whether it did.
  bool unbindIfSame(Binding b);
  // Keeps only the fds for which `stillOpen(fd)` is true (after exec closed O_CLOEXEC ones);
  // the files of the others go to `dropped`.
  template <typename Func>
  void retainIf(Func&& stillOpen, kj::Vector<kj::Own<RemoteFile>>& dropped) {
    for (auto it = fds.begin(); it != fds.end();) {
      if (stillOpen(it->first)) {
        ++it;
      } else {
        dropped.add(kj::addRef(*it->second.file));
        it = fds.erase(it);
      }
    }
  }

  // Calls `func(fd, file)` for every remote fd, in fd order.
  template <typename Func>
  void forEach(Func&& func) {
    for (auto& [fd, entry] : fds) {
      func(fd, *entry.file);
    }
  }

  // fork(): a new table sharing every RemoteFile (and the bindings' serials).
  kj::Own<FdTable> copy();

  size_t size() const { return fds.size(); }

 private:
  struct Entry {
    kj::Own<RemoteFile> file;
    uint64_t serial;
  };
  std::map<int, Entry> fds;
  // Serials are unique across every table, so a copy's bindings compare with the original's.
  static uint64_t nextSerial;
};

}  // namespace sb
