#include "observer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <fmt/core.h>
#include <kj/vector.h>
#include <string_view>
#include <unordered_map>

#include "tracee_regs.h"
#include <vector>

#include "errno_names.h"

namespace sb {

namespace {

// How a syscall's arguments print: how many there are, and which of them are strings or fds
// beyond the table's own pathArg/fdArg/dirfdArg columns.
struct ArgShape {
  int8_t count;
  uint8_t strings = 0;  // bit i: argument i is a NUL-terminated string
  uint8_t fds = 0;      // bit i: argument i is an fd (or AT_FDCWD)
  int8_t openFlags = -1;
};

const std::unordered_map<std::string_view, ArgShape>& shapes() {
  static const std::unordered_map<std::string_view, ArgShape> SHAPES = {
      {"read", {3}}, {"write", {3}}, {"open", {3, 0, 0, 1}}, {"close", {1}}, {"stat", {2}},
      {"fstat", {2}}, {"lstat", {2}}, {"lseek", {3}}, {"pread64", {4}}, {"pwrite64", {4}},
      {"readv", {3}}, {"writev", {3}}, {"access", {2}}, {"dup", {1}}, {"dup2", {2, 0, 0b10}},
      {"sendfile", {4, 0, 0b11}}, {"uname", {1}}, {"fcntl", {3}}, {"flock", {2}},
      {"fsync", {1}}, {"fdatasync", {1}}, {"truncate", {2}}, {"ftruncate", {2}},
      {"getcwd", {2}}, {"chdir", {1}}, {"fchdir", {1}}, {"rename", {2, 0b10}}, {"mkdir", {2}},
      {"rmdir", {1}}, {"creat", {2}}, {"link", {2, 0b10}}, {"unlink", {1}},
      {"symlink", {2, 0b01}}, {"readlink", {3}}, {"chmod", {2}}, {"fchmod", {2}},
      {"chown", {3}}, {"fchown", {3}}, {"lchown", {3}}, {"utime", {2}}, {"mknod", {3}},
      {"statfs", {2}}, {"fstatfs", {2}}, {"setxattr", {5, 0b10}}, {"lsetxattr", {5, 0b10}},
      {"fsetxattr", {5, 0b10}}, {"getxattr", {4, 0b10}}, {"lgetxattr", {4, 0b10}},
      {"fgetxattr", {4, 0b10}}, {"listxattr", {3}}, {"llistxattr", {3}}, {"flistxattr", {3}},
      {"removexattr", {2, 0b10}}, {"lremovexattr", {2, 0b10}}, {"fremovexattr", {2, 0b10}},
      {"getdents64", {3}}, {"utimes", {2}}, {"openat", {4, 0, 0, 2}}, {"mkdirat", {3}},
      {"mknodat", {4}}, {"fchownat", {5}}, {"futimesat", {3}}, {"newfstatat", {4}},
      {"unlinkat", {3}}, {"renameat", {4, 0b1000, 0b100}}, {"linkat", {5, 0b1000, 0b100}},
      {"symlinkat", {3, 0b1}}, {"readlinkat", {4}}, {"fchmodat", {3}}, {"faccessat", {3}},
      {"utimensat", {4}}, {"fallocate", {4}}, {"dup3", {3, 0, 0b10}}, {"preadv", {4}},
      {"pwritev", {4}}, {"renameat2", {5, 0b1000, 0b100}}, {"copy_file_range", {6, 0, 0b101}},
      {"preadv2", {6}}, {"pwritev2", {6}}, {"statx", {5}}, {"close_range", {3}},
      {"openat2", {4}}, {"faccessat2", {4}}, {"fchmodat2", {4}}, {"fadvise64", {4}},
      {"readahead", {3}}, {"sync_file_range", {4}}, {"syncfs", {1}}, {"ioctl", {3}},
      {"mmap", {6}}, {"sethostname", {2}}, {"setdomainname", {2}}, {"reboot", {4}},
      {"unshare", {1}},
  };
  return SHAPES;
}

kj::String openFlagNames(uint64_t flags) {
  // Composite flags first (O_SYNC includes O_DSYNC, O_TMPFILE includes O_DIRECTORY).
  static const std::pair<uint64_t, const char*> NAMES[] = {
      {O_SYNC, "O_SYNC"}, {O_TMPFILE, "O_TMPFILE"}, {O_CREAT, "O_CREAT"}, {O_EXCL, "O_EXCL"},
      {O_NOCTTY, "O_NOCTTY"}, {O_TRUNC, "O_TRUNC"}, {O_APPEND, "O_APPEND"},
      {O_NONBLOCK, "O_NONBLOCK"}, {O_DSYNC, "O_DSYNC"}, {O_DIRECT, "O_DIRECT"},
      {0100000, "O_LARGEFILE"}, {O_DIRECTORY, "O_DIRECTORY"}, {O_NOFOLLOW, "O_NOFOLLOW"},
      {O_NOATIME, "O_NOATIME"}, {O_CLOEXEC, "O_CLOEXEC"}, {O_PATH, "O_PATH"},
      {FASYNC, "O_ASYNC"},
  };
  kj::Vector<kj::String> parts;
  if (!(flags & O_PATH)) {
    switch (flags & O_ACCMODE) {
      case O_RDONLY: parts.add(kj::str("O_RDONLY")); break;
      case O_WRONLY: parts.add(kj::str("O_WRONLY")); break;
      case O_RDWR: parts.add(kj::str("O_RDWR")); break;
      default: parts.add(kj::str("O_ACCMODE")); break;
    }
  }
  uint64_t rest = flags & ~uint64_t(O_ACCMODE);
  for (auto& [bit, name] : NAMES) {
    if (bit != 0 && (rest & bit) == bit) {
      parts.add(kj::str(name));
      rest &= ~bit;
    }
  }
  if (rest != 0) {
    parts.add(kj::str("0x", kj::hex(rest)));
  }
  return kj::strArray(parts, "|");
}

// Bits by name, as strace prints them; unknown bits in hex. `zero` names a value of 0.
kj::String bitNames(uint64_t value, kj::ArrayPtr<const std::pair<uint64_t, const char*>> names,
                    const char* zero) {
  if (value == 0) {
    return kj::str(zero);
  }
  kj::Vector<kj::String> parts;
  for (auto& [bit, name] : names) {
    if ((value & bit) == bit) {
      parts.add(kj::str(name));
      value &= ~bit;
    }
  }
  if (value != 0) {
    parts.add(kj::str("0x", kj::hex(value)));
  }
  return kj::strArray(parts, "|");
}

// mmap(addr, length, prot, flags, fd, offset): the only trapped call with flag words of its own.
kj::String mmapArgs(const uint64_t args[6]) {
  static const std::pair<uint64_t, const char*> PROT[] = {
      {PROT_READ, "PROT_READ"}, {PROT_WRITE, "PROT_WRITE"}, {PROT_EXEC, "PROT_EXEC"}};
  static const std::pair<uint64_t, const char*> TYPE[] = {
      {MAP_SHARED_VALIDATE, "MAP_SHARED_VALIDATE"}, {MAP_SHARED, "MAP_SHARED"},
      {MAP_PRIVATE, "MAP_PRIVATE"}};
  static const std::pair<uint64_t, const char*> FLAGS[] = {
      {MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"}, {MAP_FIXED, "MAP_FIXED"},
      {MAP_ANONYMOUS, "MAP_ANONYMOUS"}, {MAP_DENYWRITE, "MAP_DENYWRITE"},
      {MAP_NORESERVE, "MAP_NORESERVE"}, {MAP_POPULATE, "MAP_POPULATE"},
      {MAP_LOCKED, "MAP_LOCKED"}, {MAP_STACK, "MAP_STACK"}, {MAP_32BIT, "MAP_32BIT"}};
  uint64_t flags = args[3];
  auto type = bitNames(flags & MAP_TYPE, TYPE, "0");
  auto rest = flags & ~uint64_t(MAP_TYPE);
  return kj::str(args[0] == 0 ? kj::str("NULL") : kj::str("0x", kj::hex(args[0])), ", ", args[1],
                 ", ", bitNames(args[2], PROT, "PROT_NONE"), ", ", type,
                 rest ? kj::str("|", bitNames(rest, FLAGS, "0")) : kj::str(), ", ",
                 static_cast<int>(args[4]), ", 0x", kj::hex(args[5]));
}

// A string as strace shows it: quoted, escaped, cut after 96 bytes.
kj::String quoteText(kj::StringPtr s) {
  kj::Vector<char> out;
  out.add('"');
  size_t shown = 0;
  for (char c : s) {
    if (++shown > 96) {
      out.addAll(kj::StringPtr("\"..."));
      return kj::heapString(out.begin(), out.size());
    }
    if (c == '"' || c == '\\') {
      out.add('\\');
      out.add(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out.add(c);
    } else {
      auto esc = fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
      out.addAll(esc.begin(), esc.end());
    }
  }
  out.add('"');
  return kj::heapString(out.begin(), out.size());
}

kj::String quoted(const TraceeMemory& mem, uint64_t addr) {
  if (addr == 0) {
    return kj::str("NULL");
  }
  kj::String s;
  if (mem.readString(addr, 4095, s) < 0) {
    return kj::str("0x", kj::hex(addr));
  }
  return quoteText(s);
}

}  // namespace

kj::String formatArgs(const SyscallRow* row, int nr, const user_regs_struct& regs,
                      const TraceeMemory& mem) {
  uint64_t args[6];
  for (int i = 0; i < 6; ++i) {
    args[i] = abi::arg(regs, i);
  }
  ArgShape shape{6};
  if (row != nullptr) {
    auto it = shapes().find(row->name);
    if (it != shapes().end()) {
      shape = it->second;
    }
    if (row->pathArg >= 0) {
      shape.strings |= 1u << row->pathArg;
    }
    if (row->fdArg >= 0) {
      shape.fds |= 1u << row->fdArg;
    }
    if (row->dirfdArg >= 0) {
      shape.fds |= 1u << row->dirfdArg;
    }
  }
  if (nr == SYS_mmap) {
    return mmapArgs(args);
  }
  kj::Vector<kj::String> parts;
  for (int i = 0; i < shape.count; ++i) {
    uint64_t a = args[i];
    if (shape.strings & (1u << i)) {
      parts.add(quoted(mem, a));
    } else if (shape.fds & (1u << i)) {
      int fd = static_cast<int>(a);
      parts.add(fd == AT_FDCWD ? kj::str("AT_FDCWD") : kj::str(fd));
    } else if (i == shape.openFlags) {
      parts.add(openFlagNames(a));
      // As strace: the mode only when the flags create something, in octal.
      if (!(a & (O_CREAT | O_TMPFILE)) || i + 1 >= shape.count) {
        break;
      }
      parts.add(kj::str(fmt::format("{:#o}", args[i + 1]).c_str()));
      ++i;
    } else if (a < 0x10000 || (static_cast<int64_t>(a) > -0x10000 && static_cast<int64_t>(a) < 0)) {
      parts.add(kj::str(static_cast<int64_t>(a)));
    } else {
      parts.add(kj::str("0x", kj::hex(a)));
    }
  }
  return kj::strArray(parts, ", ");
}

TraceWriter::~TraceWriter() noexcept(false) {
  if (owned) {
    fclose(out);
  } else {
    fflush(out);
  }
}

void TraceWriter::onCall(const CallRecord& call) {
  if (!call.remote && (!explain || call.why.size() == 0)) {
    // The trace is of what went to a target (with -v, also path calls that stayed here, and
    // why); --stats counts the rest.
    return;
  }
  auto name = syscallName(call.nr);
  // Addresses in hex, as strace prints them.
  kj::String result = !call.resultKnown ? kj::str("?")
                      : call.nr == SYS_mmap && call.result >= 0
                          ? kj::str("0x", kj::hex(static_cast<uint64_t>(call.result)))
                          : formatSysResult(call.result);
  kj::String where = call.remote ? kj::str(call.where, call.cached ? " cached " : " ",
                                           call.micros, "us")
                                 : kj::str("local");
  fmt::print(out, "[pid {}] {}({}) = {} <{}>{}{}{}\n", call.tid, name.cStr(), call.args.cStr(),
             result.cStr(), where.cStr(), call.why.size() > 0 ? " (" : "", call.why.cStr(),
             call.why.size() > 0 ? ")" : "");
  fflush(out);
}

void TraceWriter::onRemoteStart(const RemoteStart& start) {
  kj::Vector<kj::String> args;
  for (auto& a : start.argv) {
    args.add(quoteText(a));
  }
  fmt::print(out, "[pid {}] started on {}: [{}] = pid {} <{} {}us> ({})\n", start.tid,
             start.where.cStr(), kj::strArray(args, ", ").cStr(), start.remotePid,
             start.where.cStr(), start.micros, start.why.cStr());
  fflush(out);
}

StatsCollector::~StatsCollector() noexcept(false) {
  if (owned) {
    fclose(out);
  }
}

void StatsCollector::onCall(const CallRecord& call) {
  auto& row = rows[{call.nr, call.cached ? 2 : call.remote ? 1 : 0}];
  ++row.calls;
  if (call.resultKnown && call.result < 0) {
    ++row.errors;
  }
  // The calls whose result counts bytes moved.
  static const int DATA[] = {SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_readv,
                             SYS_writev, SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2,
                             SYS_sendfile, SYS_copy_file_range};
  if (call.resultKnown && call.result > 0 &&
      std::find(std::begin(DATA), std::end(DATA), call.nr) != std::end(DATA)) {
    row.bytes += call.result;
  }
  row.micros += call.micros;
}

void StatsCollector::finish() {
  uint64_t totalMicros = 0, totalCalls = 0, totalErrors = 0;
  for (auto& [key, row] : rows) {
    totalMicros += row.micros;
    totalCalls += row.calls;
    totalErrors += row.errors;
  }
  // Most time first, as strace -c sorts.
  std::vector<std::pair<std::pair<int, int>, Row>> sorted(rows.begin(), rows.end());
  static const char* const WHERE[] = {"local", "remote", "cached"};
  std::stable_sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) {
    return a.second.micros != b.second.micros ? a.second.micros > b.second.micros
                                              : a.second.calls > b.second.calls;
  });
  if (json) {
    fmt::print(out, "{{\"syscalls\": [");
    bool first = true;
    for (auto& [key, row] : sorted) {
      fmt::print(out, "{}\n  {{\"name\": \"{}\", \"where\": \"{}\", \"calls\": {}, \"errors\": {}, "
                 "\"bytes\": {}, \"seconds\": {:.6f}}}",
                 first ? "" : ",", syscallName(key.first).cStr(), WHERE[key.second],
                 row.calls, row.errors, row.bytes, row.micros / 1e6);
      first = false;
    }
    fmt::print(out, "\n], \"calls\": {}, \"errors\": {}, \"seconds\": {:.6f}}}\n", totalCalls,
               totalErrors, totalMicros / 1e6);
  } else {
    fmt::print(out, "% time     seconds  usecs/call     calls    errors       bytes syscall"
                    "              where\n");
    fmt::print(out, "------ ----------- ----------- --------- --------- ----------- "
                    "-------------------- ------\n");
    for (auto& [key, row] : sorted) {
      fmt::print(out, "{:6.2f} {:11.6f} {:11} {:9} {:>9} {:11} {:<20} {}\n",
                 totalMicros ? 100.0 * row.micros / totalMicros : 0.0, row.micros / 1e6,
                 row.calls ? row.micros / row.calls : 0, row.calls,
                 row.errors ? kj::str(row.errors).cStr() : "", row.bytes,
                 syscallName(key.first).cStr(), WHERE[key.second]);
    }
    fmt::print(out, "------ ----------- ----------- --------- --------- ----------- "
                    "-------------------- ------\n");
    fmt::print(out, "100.00 {:11.6f} {:11} {:9} {:>9} {:>11} {}\n", totalMicros / 1e6,
               totalCalls ? totalMicros / totalCalls : 0, totalCalls, totalErrors, "", "total");
  }
  fflush(out);
}

}  // namespace sb
