// The files a trapped call touches; see call_paths.h.

#include "call_paths.h"

#include <fcntl.h>
#include <unistd.h>

#include "agent_link.h"
#include "fd_table.h"
#include "task.h"
#include "trace_format.h"

namespace sb {

namespace {

// The file of a local fd of thread `tid`, as /proc shows it, or "".
kj::String localFdPath(pid_t tid, int fd) {
  char link[64];
  snprintf(link, sizeof(link), "/proc/%d/fd/%d", tid, fd);
  char target[4096];
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  return n > 0 ? kj::heapString(target, static_cast<size_t>(n)) : kj::str();
}

}  // namespace

kj::String fdNote(const Call& call, int fd) {
  if (fd < 0) {
    return kj::str();
  }
  KJ_IF_MAYBE(file, call.task.fds->find(fd)) {
    return kj::str(file->target.name(), ":", file->path);
  }
  return localFdPath(call.task.tid, fd);
}

kj::Vector<kj::String> callPaths(const Call& call) {
  kj::Vector<kj::String> paths;
  uint8_t pathArgs = pathArgMask(call.nr), fdArgs = fdArgMask(call.nr);
  auto mem = call.mem();
  for (int i = 0; i < 6; ++i) {
    if (pathArgs & (1u << i)) {
      kj::String path;
      if (call.arg(i) != 0 && mem.readPath(call.arg(i), path) >= 0) {
        paths.add(kj::mv(path));
      }
    } else if (fdArgs & (1u << i)) {
      int fd = call.fdArg(i);
      if (fd == AT_FDCWD) {
        continue;
      }
      KJ_IF_MAYBE(file, call.task.fds->find(fd)) {
        paths.add(kj::str(file->path));
      } else {
        auto path = localFdPath(call.task.tid, fd);
        if (path.size() > 0) {
          paths.add(kj::mv(path));
        }
      }
    }
  }
  return paths;
}

bool touchesAny(const Call& call, kj::ArrayPtr<const kj::String> wanted) {
  for (auto& path : callPaths(call)) {
    for (auto& w : wanted) {
      if (path == w) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace sb
