// Syscall sets as strace writes them; see syscall_set.h.

#include "syscall_set.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <kj/vector.h>
#include <string_view>
#include <unordered_map>

#include "syscall_table.h"

namespace sb {

namespace {

struct ClassRow {
  const char* name;
  uint32_t classes;
};

// strace's class flags of each x86-64 syscall that has any (its syscallent tables, checked
// against `strace -e trace=%CLASS` on Debian 12's strace 6.1 for the common calls). A syscall
// not listed is in no class.
kj::ArrayPtr<const ClassRow> classRows() {
  constexpr uint32_t F = SC_FILE, D = SC_DESC, N = SC_NETWORK, P = SC_PROCESS, S = SC_SIGNAL,
                     M = SC_MEMORY, I = SC_IPC, C = SC_CREDS, CL = SC_CLOCK, ST = SC_STAT,
                     LST = SC_LSTAT, FST = SC_FSTAT, STA = SC_STAT_ANY, SF = SC_STATFS,
                     FSF = SC_FSTATFS, SFA = SC_STATFS_ANY, PU = SC_PURE;
  static const ClassRow ROWS[] = {
      {"read", D}, {"write", D}, {"open", D | F}, {"close", D}, {"stat", F | ST | STA},
      {"fstat", D | FST | STA}, {"lstat", F | LST | STA}, {"poll", D}, {"lseek", D},
      {"mmap", D | M}, {"mprotect", M}, {"munmap", M}, {"brk", M}, {"rt_sigaction", S},
      {"rt_sigprocmask", S}, {"rt_sigreturn", S}, {"ioctl", D}, {"pread64", D},
      {"pwrite64", D}, {"readv", D}, {"writev", D}, {"access", F}, {"pipe", D}, {"select", D},
      {"mremap", M}, {"msync", M}, {"mincore", M}, {"madvise", M}, {"shmget", I},
      {"shmat", I | M}, {"shmctl", I}, {"dup", D}, {"dup2", D}, {"pause", S}, {"getpid", PU},
      {"sendfile", D | N}, {"socket", N}, {"connect", N}, {"accept", N}, {"sendto", N},
      {"recvfrom", N}, {"sendmsg", N}, {"recvmsg", N}, {"shutdown", N}, {"bind", N},
      {"listen", N}, {"getsockname", N}, {"getpeername", N}, {"socketpair", N},
      {"setsockopt", N}, {"getsockopt", N}, {"clone", P}, {"fork", P}, {"vfork", P},
      {"execve", F | P}, {"exit", P}, {"wait4", P}, {"kill", S | P}, {"semget", I},
      {"semop", I}, {"semctl", I}, {"shmdt", I | M}, {"msgget", I}, {"msgsnd", I},
      {"msgrcv", I}, {"msgctl", I}, {"fcntl", D}, {"flock", D}, {"fsync", D},
      {"fdatasync", D}, {"truncate", F}, {"ftruncate", D}, {"getdents", D}, {"getcwd", F},
      {"chdir", F}, {"fchdir", D}, {"rename", F}, {"mkdir", F}, {"rmdir", F},
      {"creat", D | F}, {"link", F}, {"unlink", F}, {"symlink", F}, {"readlink", F},
      {"chmod", F}, {"fchmod", D}, {"chown", F}, {"fchown", D}, {"lchown", F},
      {"gettimeofday", CL}, {"getuid", C | PU}, {"getgid", C | PU}, {"setuid", C},
      {"setgid", C}, {"geteuid", C | PU}, {"getegid", C | PU}, {"getppid", PU},
      {"getpgrp", PU}, {"setreuid", C}, {"setregid", C}, {"getgroups", C}, {"setgroups", C},
      {"setresuid", C}, {"getresuid", C}, {"setresgid", C}, {"getresgid", C}, {"setfsuid", C},
      {"setfsgid", C}, {"capget", C}, {"capset", C}, {"rt_sigpending", S},
      {"rt_sigtimedwait", S}, {"rt_sigqueueinfo", S | P}, {"rt_sigsuspend", S},
      {"sigaltstack", S}, {"utime", F}, {"mknod", F}, {"uselib", F}, {"ustat", SFA},
      {"statfs", F | SF | SFA}, {"fstatfs", D | FSF | SFA}, {"mlock", M}, {"munlock", M},
      {"mlockall", M}, {"munlockall", M}, {"pivot_root", F}, {"prctl", C}, {"adjtimex", CL},
      {"chroot", F}, {"acct", F}, {"settimeofday", CL}, {"mount", F}, {"umount2", F},
      {"swapon", F}, {"swapoff", F}, {"quotactl", F}, {"getpmsg", N}, {"putpmsg", N},
      {"gettid", PU}, {"readahead", D}, {"setxattr", F}, {"lsetxattr", F}, {"fsetxattr", D},
      {"getxattr", F}, {"lgetxattr", F}, {"fgetxattr", D}, {"listxattr", F},
      {"llistxattr", F}, {"flistxattr", D}, {"removexattr", F}, {"lremovexattr", F},
      {"fremovexattr", D}, {"tkill", S | P}, {"time", CL}, {"io_setup", M},
      {"io_destroy", M}, {"epoll_create", D}, {"remap_file_pages", M}, {"getdents64", D},
      {"semtimedop", I}, {"fadvise64", D}, {"clock_settime", CL}, {"clock_gettime", CL},
      {"clock_getres", CL}, {"exit_group", P}, {"epoll_wait", D}, {"epoll_ctl", D},
      {"tgkill", S | P}, {"utimes", F}, {"mbind", M}, {"set_mempolicy", M},
      {"get_mempolicy", M}, {"mq_open", D}, {"mq_timedsend", D}, {"mq_timedreceive", D},
      {"mq_notify", D}, {"mq_getsetattr", D}, {"waitid", P}, {"inotify_init", D},
      {"inotify_add_watch", D | F}, {"inotify_rm_watch", D}, {"migrate_pages", M},
      {"openat", D | F}, {"mkdirat", D | F}, {"mknodat", D | F}, {"fchownat", D | F},
      {"futimesat", D | F}, {"newfstatat", D | F | FST | STA}, {"unlinkat", D | F},
      {"renameat", D | F}, {"linkat", D | F}, {"symlinkat", D | F}, {"readlinkat", D | F},
      {"fchmodat", D | F}, {"faccessat", D | F}, {"pselect6", D}, {"ppoll", D},
      {"splice", D}, {"tee", D}, {"sync_file_range", D}, {"vmsplice", D}, {"move_pages", M},
      {"utimensat", D | F}, {"epoll_pwait", D}, {"signalfd", D | S}, {"timerfd_create", D},
      {"eventfd", D}, {"fallocate", D}, {"timerfd_settime", D}, {"timerfd_gettime", D},
      {"accept4", N}, {"signalfd4", D | S}, {"eventfd2", D}, {"epoll_create1", D},
      {"dup3", D}, {"pipe2", D}, {"inotify_init1", D}, {"preadv", D}, {"pwritev", D},
      {"rt_tgsigqueueinfo", P | S}, {"perf_event_open", D}, {"recvmmsg", N},
      {"fanotify_init", D}, {"fanotify_mark", D | F}, {"name_to_handle_at", D | F},
      {"open_by_handle_at", D}, {"clock_adjtime", CL}, {"syncfs", D}, {"sendmmsg", N},
      {"setns", D}, {"finit_module", D}, {"renameat2", D | F}, {"memfd_create", D},
      {"kexec_file_load", D}, {"bpf", D}, {"execveat", D | F | P}, {"userfaultfd", D},
      {"mlock2", M}, {"copy_file_range", D}, {"preadv2", D}, {"pwritev2", D},
      {"pkey_mprotect", M}, {"statx", D | F | FST | STA}, {"pidfd_send_signal", D | S | P},
      {"io_uring_setup", D}, {"io_uring_enter", D | S}, {"io_uring_register", D | M},
      {"open_tree", D | F}, {"move_mount", D | F}, {"fsopen", D}, {"fsconfig", D | F},
      {"fsmount", D}, {"fspick", D | F}, {"pidfd_open", D}, {"clone3", P},
      {"openat2", D | F}, {"pidfd_getfd", D}, {"faccessat2", D | F}, {"process_madvise", D},
      {"epoll_pwait2", D}, {"mount_setattr", D | F}, {"quotactl_fd", D},
      {"landlock_create_ruleset", D}, {"landlock_add_rule", D},
      {"landlock_restrict_self", D}, {"memfd_secret", D}, {"process_mrelease", D},
      {"set_mempolicy_home_node", M}, {"cachestat", D}, {"fchmodat2", D | F},
      {"map_shadow_stack", M},
  };
  return kj::arrayPtr(ROWS, kj::size(ROWS));
}

// The class names strace accepts after `%` (and, deprecated, without it).
struct ClassName {
  const char* name;
  uint32_t classes;
};
constexpr ClassName CLASS_NAMES[] = {
    {"file", SC_FILE}, {"desc", SC_DESC}, {"net", SC_NETWORK}, {"network", SC_NETWORK},
    {"process", SC_PROCESS}, {"signal", SC_SIGNAL}, {"memory", SC_MEMORY}, {"ipc", SC_IPC},
    {"creds", SC_CREDS}, {"clock", SC_CLOCK}, {"stat", SC_STAT}, {"lstat", SC_LSTAT},
    {"fstat", SC_FSTAT}, {"%stat", SC_STAT_ANY}, {"statfs", SC_STATFS},
    {"fstatfs", SC_FSTATFS}, {"%statfs", SC_STATFS_ANY}, {"pure", SC_PURE},
};

// Adds to `set` the syscalls one element names; false (and `error`) when it is malformed or,
// without `?`, matches nothing.
bool addElement(kj::StringPtr element, SyscallSet& set, kj::String& error) {
  bool optional = element.startsWith("?");
  kj::StringPtr what = optional ? element.slice(1) : element;
  size_t before = set.count();
  bool regexSyntaxOk = false;
  if (what == "all") {
    for (auto& row : syscallTable()) {
      set.add(row.nr);
    }
    return true;
  }
  if (what == "none") {
    return true;
  }
  if (what.startsWith("/")) {
    regex_t re;
    int rc = regcomp(&re, what.slice(1).cStr(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char msg[256];
      regerror(rc, &re, msg, sizeof(msg));
      error = kj::str("bad regular expression '", what, "': ", msg);
      return false;
    }
    for (auto& row : syscallTable()) {
      if (regexec(&re, row.name, 0, nullptr, 0) == 0) {
        set.add(row.nr);
      }
    }
    regfree(&re);
    regexSyntaxOk = true;
  } else if (what.size() > 0 && what[0] >= '0' && what[0] <= '9') {
    char* end = nullptr;
    long nr = strtol(what.cStr(), &end, 10);
    if (*end == 0 && findSyscall(static_cast<int>(nr)) != nullptr) {
      set.add(static_cast<int>(nr));
      return true;
    }
  } else {
    kj::StringPtr cls = what.startsWith("%") ? what.slice(1) : what;
    for (auto& c : CLASS_NAMES) {
      // A bare class name ("file") is strace's deprecated spelling; a syscall of the same
      // name ("stat") wins over it.
      if (cls == c.name && (what.startsWith("%") || findSyscallByName(what) < 0)) {
        for (auto& row : classRows()) {
          if (row.classes & c.classes) {
            set.add(findSyscallByName(row.name));
          }
        }
        return true;
      }
    }
    int nr = findSyscallByName(what);
    if (nr >= 0) {
      set.add(nr);
      return true;
    }
  }
  if (set.count() > before || optional) {
    return true;
  }
  if (regexSyntaxOk) {
    error = kj::str("regular expression '", what, "' matches no syscall");
    return false;
  }
  error = what.startsWith("%")
              ? kj::str("unknown syscall class '", what,
                        "' (classes: %file %desc %net %network %process %memory %signal %ipc "
                        "%creds %clock %stat %lstat %fstat %%stat %statfs %fstatfs %%statfs %pure)")
              : kj::str("unknown syscall '", what, "' (an x86-64 syscall name such as openat, "
                        "a number, %class, /regex, all or none; ?name ignores unknown names)");
  return false;
}

}  // namespace

uint32_t straceClasses(int nr) {
  static const auto byNr = [] {
    std::unordered_map<int, uint32_t> m;
    for (auto& row : classRows()) {
      m[findSyscallByName(row.name)] = row.classes;
    }
    return m;
  }();
  auto it = byNr.find(nr);
  return it == byNr.end() ? 0 : it->second;
}

void SyscallSet::invert() {
  std::bitset<LIMIT> known;
  for (auto& row : syscallTable()) {
    known.set(row.nr);
  }
  bits = ~bits & known;
}

kj::Maybe<SyscallSet> parseSyscallSet(kj::StringPtr text, kj::String& error) {
  bool negate = text.startsWith("!");
  kj::StringPtr rest = negate ? text.slice(1) : text;
  if (rest.size() == 0) {
    error = kj::str("empty syscall set '", text, "'");
    return nullptr;
  }
  SyscallSet set;
  std::string_view all(rest.cStr(), rest.size());
  size_t pos = 0;
  while (true) {
    size_t comma = all.find(',', pos);
    auto piece = all.substr(pos, comma == std::string_view::npos ? all.npos : comma - pos);
    if (piece.empty()) {
      error = kj::str("empty element in syscall set '", text, "'");
      return nullptr;
    }
    if (!addElement(kj::heapString(piece.data(), piece.size()), set, error)) {
      return nullptr;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    pos = comma + 1;
  }
  if (negate) {
    set.invert();
  }
  return set;
}

}  // namespace sb
