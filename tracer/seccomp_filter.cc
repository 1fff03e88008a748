#include "seccomp_filter.h"

#include <algorithm>

#include <errno.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kj/debug.h>
#include <kj/vector.h>

#include "syscall_table.h"

namespace sb {

namespace {

kj::Array<kj::byte> drain(int fd) {
  kj::Vector<kj::byte> out;
  KJ_SYSCALL(lseek(fd, 0, SEEK_SET));
  kj::byte buf[4096];
  for (;;) {
    ssize_t n;
    KJ_SYSCALL(n = ::read(fd, buf, sizeof(buf)));
    if (n == 0) {
      break;
    }
    out.addAll(buf, buf + n);
  }
  return out.releaseAsArray();
}

void check(int rc, const char* what) {
  KJ_REQUIRE(rc == 0, "libseccomp failed to build the filter", what, strerror(-rc));
}

// An owned libseccomp filter context.
class Context {
 public:
  explicit Context(uint32_t defaultAction) : ctx(seccomp_init(defaultAction)) {
    KJ_REQUIRE(ctx != nullptr, "seccomp_init failed");
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc != 0) {
      seccomp_release(ctx);  // No destructor runs for a constructor that throws.
      check(rc, "badarch");
    }
  }
  ~Context() { seccomp_release(ctx); }
  KJ_DISALLOW_COPY(Context);
  operator scmp_filter_ctx() const { return ctx; }

 private:
  scmp_filter_ctx ctx;
};

// The BPF program of `ctx`.
kj::Array<sock_filter> exportBpf(scmp_filter_ctx ctx) {
  int fd = memfd_create("sb-seccomp", MFD_CLOEXEC);
  KJ_SYSCALL(fd, "memfd_create");
  KJ_DEFER(close(fd));
  check(seccomp_export_bpf(ctx, fd), "export");
  auto bytes = drain(fd);
  KJ_ASSERT(bytes.size() % sizeof(sock_filter) == 0);
  auto insns = kj::heapArray<sock_filter>(bytes.size() / sizeof(sock_filter));
  memcpy(insns.begin(), bytes.begin(), bytes.size());
  return insns;
}

// The main filter's rules (see build()).
void addRules(scmp_filter_ctx ctx, int fastLimit, kj::ArrayPtr<const int> alsoTrap) {
  // A binary tree over syscall numbers instead of ~370 sequential comparisons: every syscall
  // of the program runs this filter, trapped or not.
  check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize");

  for (auto& row : syscallTable()) {
    if (row.trapOnlyRealFd) {
      // A negative fd (as a signed 32-bit int: bit 31 set) cannot name a remote file: anonymous
      // mmap (fd -1) never stops, whatever the row's class.
      struct scmp_arg_cmp negative =
          SCMP_CMP32(static_cast<unsigned>(row.fdArg), SCMP_CMP_MASKED_EQ, 0x80000000u,
                     0x80000000u);
      check(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, row.nr, 1, &negative), row.name);
    }
    if (row.localFast) {
      // Untrapped below the limit (as an unsigned 32-bit int: negative fds are above it and
      // stop, to get their EBADF from the kernel after all) until a guard says otherwise.
      struct scmp_arg_cmp below =
          SCMP_CMP32(static_cast<unsigned>(row.fdArg), SCMP_CMP_LT, static_cast<uint32_t>(fastLimit),
                     0u /* datum_b: unused by LT, given so no field is left uninitialised */);
      check(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, row.nr, 1, &below), row.name);
      continue;
    }
    if (std::find(alsoTrap.begin(), alsoTrap.end(), row.nr) != alsoTrap.end()) {
      continue;  // The default action: trace.
    }
    switch (row.cls) {
      case SyscallClass::LOCAL:
      case SyscallClass::PROCESS:
        check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, row.nr, 0), row.name);
        break;
      case SyscallClass::REFUSED:
        check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), row.nr, 0), row.name);
        break;
      case SyscallClass::UNHANDLED:
      case SyscallClass::PATH:
      case SyscallClass::FD:
      case SyscallClass::IDENTITY:
      case SyscallClass::TRACKED:
      case SyscallClass::SCOPE:
        break;  // The default action: trace.
    }
  }
}

}  // namespace

SeccompFilter SeccompFilter::build(int fastLimit, kj::ArrayPtr<const int> alsoTrap) {
  KJ_REQUIRE(fastLimit >= 0 && fastLimit % BLOCK == 0, "fast limit must be a multiple of 8");
  Context ctx(SCMP_ACT_TRACE(0));
  addRules(ctx, fastLimit, alsoTrap);
  SeccompFilter filter;
  filter.fastLimit_ = fastLimit;
  filter.alsoTrap_ = kj::heapArray(alsoTrap);
  filter.insns = exportBpf(ctx);
  return filter;
}

kj::String SeccompFilter::pfc() const {
  // Built again from the same rules: every sbrun start would otherwise pay for ~57 KB of text
  // that only reviews and tests read.
  Context ctx(SCMP_ACT_TRACE(0));
  addRules(ctx, fastLimit_, alsoTrap_);
  int fd = memfd_create("sb-seccomp-pfc", MFD_CLOEXEC);
  KJ_SYSCALL(fd, "memfd_create");
  KJ_DEFER(close(fd));
  check(seccomp_export_pfc(ctx, fd), "export pfc");
  auto text = drain(fd);
  return kj::heapString(reinterpret_cast<const char*>(text.begin()), text.size());
}

kj::Array<sock_filter> SeccompFilter::blockGuard(kj::ArrayPtr<const int> blocks) {
  Context guard(SCMP_ACT_ALLOW);
  for (auto& row : syscallTable()) {
    if (!row.localFast) {
      continue;
    }
    if (blocks.size() == 0) {
      check(seccomp_rule_add(guard, SCMP_ACT_TRACE(0), row.nr, 0), row.name);
      continue;
    }
    for (int block : blocks) {
      struct scmp_arg_cmp in =
          SCMP_CMP32(static_cast<unsigned>(row.fdArg), SCMP_CMP_MASKED_EQ,
                     ~static_cast<uint32_t>(BLOCK - 1), static_cast<uint32_t>(block * BLOCK));
      check(seccomp_rule_add_array(guard, SCMP_ACT_TRACE(0), row.nr, 1, &in), row.name);
    }
  }
  return exportBpf(guard);
}

int SeccompFilter::install() const {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return -errno;
  }
  struct sock_fprog prog = {static_cast<unsigned short>(insns.size()),
                            const_cast<sock_filter*>(insns.begin())};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return -errno;
  }
  return 0;
}

}  // namespace sb
