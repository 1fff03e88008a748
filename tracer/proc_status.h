// What /proc/TID/status says of a tracee thread, parsed in one place: its process and parent,
// its tracer, umask, fd table size and signal sets. Read fresh for each question (the program
// changes them without a trapped call: sigprocmask, umask are not redirected).

#pragma once

#include <kj/string.h>
#include <stdint.h>
#include <sys/types.h>

#include <vector>

namespace sb {

struct ProcStatus {
  bool found = false;  // The file could be read (the thread exists).
  pid_t tgid = 0;
  pid_t ppid = 0;
  pid_t tracerPid = 0;
  uint32_t umask = 022;  // 022 when the kernel does not say (before 4.7).
  int64_t fdSize = INT32_MAX;
  // Signal sets, bit sig-1: pending for the thread and for the process, blocked, ignored,
  // caught.
  uint64_t sigPnd = 0, shdPnd = 0, sigBlk = 0, sigIgn = 0, sigCgt = 0;
  // Credentials: real, effective, saved and fs ids; supplementary groups; capability sets
  // (bit N: capability N).
  uint32_t uid[4] = {}, gid[4] = {};
  std::vector<uint32_t> groups;
  uint64_t capInh = 0, capPrm = 0, capEff = 0;

  static ProcStatus read(pid_t tid);
  static ProcStatus parse(kj::StringPtr text);

  // Whether delivering `sig` would do nothing: ignored, or ignored by default and not caught
  // (the kernel's sig_kernel_ignore()). SIGKILL and SIGSTOP never are.
  bool ignores(int sig) const;
  // Whether a signal that `mask` does not block is pending and would do something.
  bool signalWaiting(uint64_t mask) const;
};

// Whether fd `fd` of thread `tid` is open now, as the kernel's table says (/proc/TID/fd).
bool fdOpenIn(pid_t tid, int fd);

}  // namespace sb
