#include "lock_owner.h"

#include <linux/close_range.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <kj/debug.h>
#include <kj/vector.h>

#include "credentials.h"
#include "node.h"

namespace sb {

namespace {

// A traced process rarely has more threads waiting for locks at once; past this, its next
// wait queues behind one of them.
constexpr size_t MAX_OWNER_WORKERS = 64;

// Whether the "lock:" lines of an fdinfo file name a lock overlapping [start, end], e.g.
// "lock:\t1: POSIX  ADVISORY  WRITE 4242 fd:01:42 0 EOF". The kernel lists there the locks the
// table owns that were taken through this very description.
bool fdinfoShowsOverlap(const char* path, int64_t start, int64_t end) {
  FILE* f = fopen(path, "re");
  if (f == nullptr) {
    return false;
  }
  KJ_DEFER(fclose(f));
  char line[512];
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "lock:", 5) != 0) {
      continue;
    }
    char kind[32], mode[32], type[32], dev[64], endText[32];
    long long pid, from;
    if (sscanf(line, "lock: %*d: %31s %31s %31s %lld %63s %lld %31s", kind, mode, type, &pid, dev,
               &from, endText) != 7) {
      continue;
    }
    int64_t to = strcmp(endText, "EOF") == 0 ? -1 : strtoll(endText, nullptr, 10);
    bool beforeEnd = end < 0 || from <= end;
    bool afterStart = to < 0 || to >= start;
    if (beforeEnd && afterStart) {
      return true;
    }
  }
  return false;
}

}  // namespace

LockOwner::LockOwner(kj::Timer& timer, int64_t& error) {
  error = 0;
  home = std::thread([this, &error]() { homeMain(error); });
  std::unique_lock<std::mutex> lock(mutex);
  wake.wait(lock, [this]() { return ready; });
  if (error == 0) {
    workers = kj::heap<Executor>(timer, MAX_OWNER_WORKERS, static_cast<ThreadStarter&>(*this));
  }
}

LockOwner::~LockOwner() noexcept(false) {
  // The workers first: they use the home thread's table, and the executor interrupts any wait.
  workers = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  home.join();
  // `held` goes now, on the loop thread, where closing a node's fd closes the agent's.
}

void LockOwner::homeMain(int64_t& error) {
  // Born with the credentials of the loop thread, which may be acting for a caller.
  adoptOwnCredentials();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  // A table of our own with fds 0-2 only: copying the agent's other fds (the sessions' sockets,
  // pipes) would hold them open.
  int64_t result = 0;
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_UNSHARE) < 0) {
    result = -int64_t(errno);
  } else {
    homeTid = gettid();
    pidfd = int(syscall(SYS_pidfd_open, getpid(), 0));
    if (pidfd < 0) {
      result = -int64_t(errno);
    }
  }
  std::unique_lock<std::mutex> lock(mutex);
  error = result;
  ready = true;
  wake.notify_all();
  for (;;) {
    wake.wait(lock, [this]() { return stopping || toStart; });
    if (stopping) {
      break;
    }
    started = std::thread(kj::mv(toStart));
    toStart = nullptr;
    wake.notify_all();
  }
  // The workers are gone. Closing the dups drops the locks now: the table itself is released
  // only after join() has returned (the kernel wakes joiners before it lets go of the files).
  for (auto& entry : dups) {
    ::close(entry.second.fd);
  }
  dups.clear();
  ::close(pidfd);
}

std::thread LockOwner::start(std::function<void()> body) {
  std::unique_lock<std::mutex> lock(mutex);
  toStart = kj::mv(body);
  wake.notify_all();
  wake.wait(lock, [this]() { return started != nullptr; });
  std::thread t = kj::mv(KJ_ASSERT_NONNULL(started));
  started = nullptr;
  return t;
}

void LockOwner::hold(const FdRef& node) {
  if (held.count(&node) == 0) {
    held.emplace(&node, kj::atomicAddRef(node));
  }
}

int64_t LockOwner::fdFor(const FdRef& node) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = dups.find(&node);
  if (it != dups.end()) {
    return it->second.fd;
  }
  // The same description, in this (the owner's) table; close-on-exec is set by the kernel.
  int fd = int(syscall(SYS_pidfd_getfd, pidfd, node.get(), 0));
  if (fd < 0) {
    return -int64_t(errno);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int64_t e = -int64_t(errno);
    ::close(fd);
    return e;
  }
  dups.emplace(&node, Dup{st.st_dev, st.st_ino, fd});
  return fd;
}

void LockOwner::closeFile(dev_t dev, ino_t ino) {
  std::lock_guard<std::mutex> lock(mutex);
  for (auto it = dups.begin(); it != dups.end();) {
    if (it->second.dev == dev && it->second.ino == ino) {
      ::close(it->second.fd);
      closed.push_back(it->first);
      it = dups.erase(it);
    } else {
      ++it;
    }
  }
}

void LockOwner::releaseClosed() {
  std::vector<const FdRef*> nodes;
  {
    std::lock_guard<std::mutex> lock(mutex);
    nodes.swap(closed);
  }
  for (auto node : nodes) {
    held.erase(node);
  }
}

bool LockOwner::holdsOverlap(dev_t dev, ino_t ino, int64_t start, int64_t end) {
  kj::Vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& entry : dups) {
      if (entry.second.dev == dev && entry.second.ino == ino) {
        fds.add(entry.second.fd);
      }
    }
  }
  for (int fd : fds) {
    char path[96];
    snprintf(path, sizeof(path), "/proc/self/task/%d/fdinfo/%d", int(homeTid), fd);
    if (fdinfoShowsOverlap(path, start, end)) {
      return true;
    }
  }
  return false;
}

}  // namespace sb
