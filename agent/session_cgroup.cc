#include "session_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <kj/debug.h>

namespace sb {

namespace {

// A whole small file (cgroup control files, /proc/self/...), or "" when unreadable.
std::string readSmall(int dirFd, const char* name) {
  int fd = openat(dirFd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return {};
  }
  kj::AutoCloseFd owner(fd);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, size_t(n));
  }
  return out;
}

// Writes `text` to a control file; 0 or errno.
int writeControl(int dirFd, const char* name, const std::string& text) {
  int fd = openat(dirFd, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  kj::AutoCloseFd owner(fd);
  if (::write(fd, text.data(), text.size()) != ssize_t(text.size())) {
    return errno;
  }
  return 0;
}

bool hasWord(const std::string& list, const char* word) {
  size_t len = strlen(word);
  for (size_t at = 0; (at = list.find(word, at)) != std::string::npos; at += len) {
    bool startOk = at == 0 || list[at - 1] == ' ' || list[at - 1] == ',';
    char after = at + len < list.size() ? list[at + len] : ' ';
    if (startOk && (after == ' ' || after == ',' || after == '\n')) {
      return true;
    }
  }
  return false;
}

struct Mounts {
  std::string v2;       // cgroup2 mount point
  std::string v1Pids;   // the v1 hierarchy with the pids controller
};

// From /proc/self/mountinfo: "... MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTIONS".
Mounts findMounts() {
  Mounts m;
  std::string info = readSmall(AT_FDCWD, "/proc/self/mountinfo");
  size_t start = 0;
  while (start < info.size()) {
    size_t end = info.find('\n', start);
    if (end == std::string::npos) end = info.size();
    std::string line = info.substr(start, end - start);
    start = end + 1;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    // Fields before the dash: id parent major:minor root mountpoint ...
    size_t f = 0;
    std::string fields[5];
    size_t at = 0;
    while (f < 5 && at < dash) {
      size_t sp = line.find(' ', at);
      if (sp == std::string::npos || sp > dash) sp = dash;
      fields[f++] = line.substr(at, sp - at);
      at = sp + 1;
    }
    std::string rest = line.substr(dash + 3);
    size_t sp1 = rest.find(' ');
    std::string fstype = rest.substr(0, sp1);
    size_t sp2 = sp1 == std::string::npos ? std::string::npos : rest.find(' ', sp1 + 1);
    std::string super = sp2 == std::string::npos ? "" : rest.substr(sp2 + 1);
    // Mount points with spaces come octal-escaped; cgroup mounts do not have them.
    if (fstype == "cgroup2" && m.v2.empty()) {
      m.v2 = fields[4];
    } else if (fstype == "cgroup" && hasWord(super, "pids") && m.v1Pids.empty()) {
      m.v1Pids = fields[4];
    }
  }
  return m;
}

// The agent's own cgroup path in the v2 hierarchy ("0::/x") or in the v1 one with `controller`.
std::string ownCgroup(const char* controller) {
  std::string text = readSmall(AT_FDCWD, "/proc/self/cgroup");
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    bool match = controller == nullptr ? line.compare(0, 3, "0::") == 0
                                       : hasWord(controllers, controller);
    if (match) {
      return line.substr(c2 + 1);
    }
  }
  return {};
}

kj::AutoCloseFd openDir(const std::string& path) {
  return kj::AutoCloseFd(::open(path.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
}

// Makes the v2 cgroup `dir` able to hold session cgroups with the pids controller (and memory
// when `memory`): "+pids" in its subtree_control. A non-root cgroup with processes in it cannot
// have controllers for its children ("no internal processes"), so the agent first moves itself
// into a leaf beside the sessions. Returns 0 or errno.
int delegateV2(int dir, bool memory, const Log& log) {
  std::string enable = memory ? "+pids +memory" : "+pids";
  int error = writeControl(dir, "cgroup.subtree_control", enable);
  if (error == EBUSY) {
    if (mkdirat(dir, "sbagent", 0755) < 0 && errno != EEXIST) {
      return errno;
    }
    int leaf = openat(dir, "sbagent", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (leaf < 0) {
      return errno;
    }
    kj::AutoCloseFd leafOwner(leaf);
    error = writeControl(leaf, "cgroup.procs", "0");
    if (error != 0) {
      return error;
    }
    log.info("cgroup v2: moved the agent into the leaf cgroup sbagent, so that session "
             "cgroups can have controllers");
    error = writeControl(dir, "cgroup.subtree_control", enable);
  }
  return error;
}

}  // namespace

kj::Own<CgroupParent> CgroupParent::probe(uint64_t maxMemory, const Log& log) {
  Mounts mounts = findMounts();
  std::string why;
  if (!mounts.v2.empty()) {
    std::string path = mounts.v2 + ownCgroup(nullptr);
    kj::AutoCloseFd dir = openDir(path);
    std::string controllers = dir.get() >= 0 ? readSmall(dir.get(), "cgroup.controllers") : "";
    if (dir.get() >= 0 && hasWord(controllers, "pids")) {
      bool memory = maxMemory > 0 && hasWord(controllers, "memory");
      int error = delegateV2(dir.get(), memory, log);
      if (error == 0) {
        if (maxMemory > 0 && !memory) {
          log.warn("cgroup v2 at {} has no memory controller: --max-memory is not enforced",
                   path);
        }
        log.info("sessions get cgroup v2 cgroups under {} (pids.max, cgroup.kill{})", path,
                 memory ? ", memory.max" : "");
        return kj::heap<CgroupParent>(Kind::V2, kj::heapString(path.c_str()), kj::mv(dir),
                                      memory, log);
      }
      why = "cannot enable the pids controller in " + path + ": " + strerror(error);
    } else {
      why = "cgroup v2 at " + path + " offers no pids controller";
    }
  } else {
    why = "no cgroup v2 file system is mounted";
  }
  if (!mounts.v1Pids.empty()) {
    std::string path = mounts.v1Pids + ownCgroup("pids");
    kj::AutoCloseFd dir = openDir(path);
    if (dir.get() >= 0 && faccessat(dir.get(), ".", W_OK, AT_EACCESS) == 0) {
      // A fact about this host (with -v), unless the user asked for what it cannot give.
      if (maxMemory > 0) {
        log.warn("{}: --max-memory is not enforced (cgroup v2 only)", why);
      }
      log.info("{}: sessions get cgroup v1 pids cgroups under {} (--max-procs counts every "
               "process and thread of a session); their end is their pid namespace's",
               why, path);
      return kj::heap<CgroupParent>(Kind::V1_PIDS, kj::heapString(path.c_str()), kj::mv(dir),
                                    false, log);
    }
    why += "; the v1 pids hierarchy " + path + " is not writable";
  }
  log.warn("{}: sessions run without a cgroup: --max-procs counts only the programs the agent "
           "starts itself{}", why, maxMemory > 0 ? ", and --max-memory is not enforced" : "");
  return kj::heap<CgroupParent>(Kind::NONE, kj::heapString(""), kj::AutoCloseFd(), false, log);
}

CgroupParent::CgroupParent(Kind kind, kj::String path, kj::AutoCloseFd dir, bool memory,
                           const Log& log)
    : kind_(kind), path_(kj::mv(path)), dir(kj::mv(dir)), memory(memory), log(log),
      removals(*this) {
  if (kind_ != Kind::NONE) {
    removeStale();
  }
}

CgroupParent::~CgroupParent() noexcept(false) {
  // The agent is exiting with removals still being retried: its sessions' processes were killed
  // a moment ago. A last short wait (at most 1 s) for them, so no directory is left behind.
  for (int i = 0; i < 100 && !retiring.empty(); ++i) {
    for (auto it = retiring.begin(); it != retiring.end();) {
      it = tryRemove(*it) == EBUSY ? std::next(it) : retiring.erase(it);
    }
    if (!retiring.empty()) {
      usleep(10000);
    }
  }
  for (auto& name: retiring) {
    log.warn("left the session cgroup {}/{} behind: it still has members", path_.cStr(), name);
  }
}

int CgroupParent::tryRemove(const std::string& name) {
  if (unlinkat(dir.get(), name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
    return 0;
  }
  return errno;
}

void CgroupParent::removeStale() {
  int fd = openat(dir.get(), ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return;
  }
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return;
  }
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    int pid = 0;
    unsigned long n = 0;
    if (sscanf(e->d_name, "sb-session-%d-%lu", &pid, &n) == 2 && pid > 0 && pid != getpid() &&
        ::kill(pid, 0) < 0 && errno == ESRCH) {
      stale.push_back(e->d_name);
    }
  }
  closedir(d);
  for (auto& name: stale) {
    if (tryRemove(name) == 0) {
      log.info("removed the session cgroup {}/{} of an agent that is gone", path_.cStr(), name);
    }
  }
}

kj::Maybe<kj::Own<SessionCgroup>> CgroupParent::create(uint64_t maxTasks, uint64_t maxMemory) {
  if (kind_ == Kind::NONE) {
    return nullptr;
  }
  auto name = kj::str("sb-session-", getpid(), "-", ++next);
  if (mkdirat(dir.get(), name.cStr(), 0755) < 0) {
    log.warn("cannot create the session cgroup {}/{}: {}; this session runs without one",
             path_.cStr(), name.cStr(), strerror(errno));
    return nullptr;
  }
  int fd = openat(dir.get(), name.cStr(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  int error = fd < 0 ? errno : 0;
  kj::AutoCloseFd sessionDir(fd);
  if (error == 0) {
    error = writeControl(fd, "pids.max", std::to_string(maxTasks));
  }
  if (error == 0 && memory && maxMemory > 0) {
    error = writeControl(fd, "memory.max", std::to_string(maxMemory));
  }
  int procs = error == 0 ? openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC) : -1;
  if (error == 0 && procs < 0) {
    error = errno;
  }
  if (error != 0) {
    log.warn("cannot set up the session cgroup {}/{}: {}; this session runs without one",
             path_.cStr(), name.cStr(), strerror(error));
    unlinkat(dir.get(), name.cStr(), AT_REMOVEDIR);
    return nullptr;
  }
  return kj::heap<SessionCgroup>(*this, kj::mv(name), kj::mv(sessionDir),
                                 kj::AutoCloseFd(procs));
}

void CgroupParent::useTimer(kj::Timer& t) { timer = t; }

void CgroupParent::retire(kj::String name) {
  int error = tryRemove(name.cStr());
  if (error == 0) {
    return;
  }
  if (error != EBUSY || timer == nullptr) {
    log.warn("cannot remove the session cgroup {}/{}: {}", path_.cStr(), name.cStr(),
             strerror(error));
    return;
  }
  retiring.insert(name.cStr());
  removals.add(removeLater(kj::mv(name), 500));
}

kj::Promise<void> CgroupParent::removeLater(kj::String name, int attemptsLeft) {
  KJ_IF_MAYBE(t, timer) {
    return t->afterDelay(20 * kj::MILLISECONDS)
        .then([this, name = kj::mv(name), attemptsLeft]() mutable -> kj::Promise<void> {
          int error = tryRemove(name.cStr());
          if (error != EBUSY || attemptsLeft <= 1) {
            retiring.erase(name.cStr());
            if (error != 0) {
              log.warn("cannot remove the session cgroup {}/{}: {}", path_.cStr(), name.cStr(),
                       strerror(error));
            }
            return kj::READY_NOW;
          }
          return removeLater(kj::mv(name), attemptsLeft - 1);
        });
  }
  return kj::READY_NOW;
}

void CgroupParent::taskFailed(kj::Exception&& exception) {
  log.warn("removing a session cgroup: {}", exception.getDescription().cStr());
}

SessionCgroup::SessionCgroup(CgroupParent& parent, kj::String name, kj::AutoCloseFd dir,
                             kj::AutoCloseFd procs)
    : parent(parent), name_(kj::mv(name)), dir(kj::mv(dir)), procs(kj::mv(procs)) {}

SessionCgroup::~SessionCgroup() noexcept(false) {
  if (parent.canKill()) {
    // Every member, wherever it moved its process group or session to.
    writeControl(dir.get(), "cgroup.kill", "1");
  }
  procs = kj::AutoCloseFd();
  dir = kj::AutoCloseFd();
  parent.retire(kj::mv(name_));
}

long SessionCgroup::members() const {
  std::string text = readSmall(dir.get(), "cgroup.procs");
  if (dir.get() < 0) {
    return -1;
  }
  long n = 0;
  for (char c: text) {
    n += c == '\n';
  }
  return n;
}

}  // namespace sb
