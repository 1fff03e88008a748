#include "epoll_set.h"

#include <errno.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd_table.h"
#include "tracee_abi.h"

namespace sb {

namespace abi = sb::x86_64;

void EpollInterest::refreshEdge() {
  if (ioEpoch != file->ioEpoch) {
    ioEpoch = file->ioEpoch;
    lastSeen = 0;
  }
}

EpollRegistry::~EpollRegistry() {
  for (auto& instance : instances) {
    for (auto& i : instance->interests) {
      i.file->epolls = nullptr;
    }
  }
}

kj::Maybe<EpollInstance&> EpollRegistry::find(pid_t tid, int epfd) {
  pid_t self = getpid();
  for (auto& instance : instances) {
    if (syscall(SYS_kcmp, self, tid, KCMP_FILE, instance->copy.get(), epfd) == 0) {
      return *instance;
    }
  }
  return nullptr;
}

int64_t EpollRegistry::ctl(pid_t tid, int epfd, kj::AutoCloseFd copy, int op, RemoteFile& file,
                           int fd, uint32_t events, uint64_t data) {
  EpollInstance* instance = nullptr;
  KJ_IF_MAYBE(found, find(tid, epfd)) {
    instance = found;
  }
  EpollInterest* existing = nullptr;
  if (instance != nullptr) {
    for (auto& i : instance->interests) {
      if (i.file == &file && i.fd == fd) {
        existing = &i;
      }
    }
  }
  // fs/eventpoll.c do_epoll_ctl, from the lookup on.
  switch (op) {
    case abi::K_EPOLL_CTL_ADD: {
      if (existing != nullptr) {
        return -EEXIST;
      }
      if (instance == nullptr) {
        auto fresh = kj::heap<EpollInstance>();
        fresh->copy = kj::mv(copy);
        instance = fresh.get();
        instances.push_back(kj::mv(fresh));
      }
      instance->interests.push_back(
          EpollInterest{&file, fd, events | abi::K_POLLERR | abi::K_POLLHUP, data});
      instance->interests.back().ioEpoch = file.ioEpoch;
      file.epolls = this;
      return 0;
    }
    case abi::K_EPOLL_CTL_DEL:
      if (existing == nullptr) {
        return -ENOENT;
      }
      instance->interests.erase(instance->interests.begin() +
                                (existing - instance->interests.data()));
      dropEmpty();
      return 0;
    case abi::K_EPOLL_CTL_MOD:
      if (existing == nullptr) {
        return -ENOENT;
      }
      if (existing->events & abi::K_EPOLLEXCLUSIVE) {
        return -EINVAL;
      }
      existing->events = events | abi::K_POLLERR | abi::K_POLLHUP;
      existing->data = data;
      existing->disabled = false;
      existing->lastSeen = 0;
      existing->ioEpoch = file.ioEpoch;
      return 0;
    default:
      return -EINVAL;
  }
}

void EpollRegistry::released(RemoteFile& file) {
  for (auto& instance : instances) {
    auto& list = instance->interests;
    for (auto it = list.begin(); it != list.end();) {
      it = it->file == &file ? list.erase(it) : it + 1;
    }
  }
  dropEmpty();
}

void EpollRegistry::dropEmpty() {
  for (auto it = instances.begin(); it != instances.end();) {
    it = (*it)->interests.empty() ? instances.erase(it) : it + 1;
  }
}

}  // namespace sb
