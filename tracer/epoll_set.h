// EpollRegistry: the remote fds a program registered in its epoll instances.
//
// An epoll instance is a local kernel object; a remote fd is an O_PATH placeholder the kernel's
// epoll refuses. So epoll_ctl on a remote fd is answered here: the interest is recorded against
// the epoll instance, with the kernel's errnos, and epoll_wait on an instance that has remote
// interests waits on the instance itself (sbrun's pidfd_getfd copy of it: local interests stay
// the kernel's, EPOLLET and EPOLLONESHOT included) together with the agents' Session.poll for
// the remote interests (handlers_poll.cc).
//
// Identity: an instance is its open file description, not an fd number, so dups, fork and
// CLONE_FILES share it. sbrun holds a copy of each instance that has remote interests and finds
// an instance with kcmp(KCMP_FILE) against the tracee's fd. The copy keeps the instance alive
// until its last remote interest goes (the program closes that remote file, or EPOLL_CTL_DEL).
//
// Interests are keyed as the kernel keys them, by (open file description, fd number): a
// RemoteFile tells the registry when its last reference goes (RemoteFile::~RemoteFile), and
// its interests disappear, as the kernel drops a file's epoll items when the file is released.

#pragma once

#include <kj/io.h>
#include <kj/refcount.h>
#include <sys/types.h>
#include <vector>

#include "fd_table.h"

namespace sb {


struct EpollInterest {
  RemoteFile* file;  // Not owned: the file removes its interests when it is released.
  int fd;
  uint32_t events;  // As registered, with EPOLLERR | EPOLLHUP added as the kernel does.
  uint64_t data;
  bool disabled = false;  // EPOLLONESHOT after an event, until EPOLL_CTL_MOD
  uint16_t lastSeen = 0;  // EPOLLET: the poll bits seen high last time (edge detection)
  uint32_t ioEpoch = 0;   // EPOLLET: the file's ioEpoch when lastSeen was taken

  // EPOLLET: forgets what was seen if the program did IO on the file since (see ioEpoch).
  void refreshEdge();
};

struct EpollInstance {
  kj::AutoCloseFd copy;  // sbrun's reference to the instance (same open file description)
  std::vector<EpollInterest> interests;

  bool hasEnabled() const {
    for (auto& i : interests) {
      if (!i.disabled) {
        return true;
      }
    }
    return false;
  }
};

class EpollRegistry final : public ReleaseWatcher {
 public:
  EpollRegistry() = default;
  ~EpollRegistry();
  KJ_DISALLOW_COPY(EpollRegistry);

  bool empty() const { return instances.empty(); }

  // The instance the tracee thread's `epfd` refers to, if it has remote interests.
  kj::Maybe<EpollInstance&> find(pid_t tid, int epfd);

  // EPOLL_CTL_ADD / MOD / DEL of a remote fd on the instance `epfd` (which the caller has
  // checked is an epoll fd), once the kernel's earlier checks passed. `copy` is a fresh copy
  // of epfd, kept if the instance is new. Returns 0, -EEXIST, -ENOENT or -EINVAL.
  int64_t ctl(pid_t tid, int epfd, kj::AutoCloseFd copy, int op, RemoteFile& file, int fd,
              uint32_t events, uint64_t data);

  // `file` is being released: its interests go.
  void released(RemoteFile& file) override;

 private:
  std::vector<kj::Own<EpollInstance>> instances;
  void dropEmpty();
};

}  // namespace sb
