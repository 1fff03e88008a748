#include "proc_status.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <type_traits>

namespace sb {

namespace {

uint64_t sigBit(int sig) { return uint64_t(1) << (sig - 1); }

// Signals whose default action is to do nothing and that the program does not catch.
uint64_t ignoredByDefault(uint64_t caught) {
  uint64_t quiet = sigBit(SIGCHLD) | sigBit(SIGURG) | sigBit(SIGWINCH) | sigBit(SIGCONT);
  return quiet & ~caught;
}

// The value after "Name:" at the start of a line, or null.
const char* field(kj::StringPtr text, const char* name) {
  size_t n = strlen(name);
  for (const char* line = text.cStr(); *line != '\0';) {
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      return line + n + 1;
    }
    const char* next = strchr(line, '\n');
    if (next == nullptr) {
      break;
    }
    line = next + 1;
  }
  return nullptr;
}

}  // namespace

ProcStatus ProcStatus::parse(kj::StringPtr text) {
  ProcStatus s;
  s.found = true;
  auto num = [&](const char* name, int base, auto& out) {
    if (const char* v = field(text, name)) {
      out = static_cast<std::remove_reference_t<decltype(out)>>(strtoull(v, nullptr, base));
    }
  };
  num("Tgid", 10, s.tgid);
  num("PPid", 10, s.ppid);
  num("TracerPid", 10, s.tracerPid);
  num("Umask", 8, s.umask);
  num("FDSize", 10, s.fdSize);
  num("SigPnd", 16, s.sigPnd);
  num("ShdPnd", 16, s.shdPnd);
  num("SigBlk", 16, s.sigBlk);
  num("SigIgn", 16, s.sigIgn);
  num("SigCgt", 16, s.sigCgt);
  num("CapInh", 16, s.capInh);
  num("CapPrm", 16, s.capPrm);
  num("CapEff", 16, s.capEff);
  // "Uid:\t0\t0\t0\t0", "Groups:\t4 24 27 " (space-separated, maybe empty).
  auto ids = [&](const char* name, uint32_t (&out)[4]) {
    if (const char* v = field(text, name)) {
      char* end = nullptr;
      for (auto& id : out) {
        id = static_cast<uint32_t>(strtoul(v, &end, 10));
        v = end;
      }
    }
  };
  ids("Uid", s.uid);
  ids("Gid", s.gid);
  if (const char* v = field(text, "Groups")) {
    for (;;) {
      while (*v == ' ' || *v == '\t') {
        ++v;
      }
      if (*v < '0' || *v > '9') {
        break;
      }
      char* end = nullptr;
      s.groups.push_back(static_cast<uint32_t>(strtoul(v, &end, 10)));
      v = end;
    }
  }
  return s;
}

ProcStatus ProcStatus::read(pid_t tid) {
  auto path = kj::str("/proc/", tid, "/status");
  FILE* f = fopen(path.cStr(), "re");
  if (f == nullptr) {
    return ProcStatus();
  }
  char buf[8192];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return parse(buf);
}

bool ProcStatus::ignores(int sig) const {
  if (sig < 1 || sig > 64 || sig == SIGKILL || sig == SIGSTOP) {
    return false;
  }
  return ((sigIgn | ignoredByDefault(sigCgt)) & sigBit(sig)) != 0;
}

bool ProcStatus::signalWaiting(uint64_t mask) const {
  return ((sigPnd | shdPnd) & ~mask & ~sigIgn & ~ignoredByDefault(sigCgt)) != 0;
}

bool fdOpenIn(pid_t tid, int fd) {
  if (fd < 0) {
    return false;
  }
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  struct stat st;
  return lstat(path.cStr(), &st) == 0;
}

}  // namespace sb
