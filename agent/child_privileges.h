// What a program spawned by a root agent under --root may still do (issue 17). Prepared once by
// the agent; applied by the vfork child between chroot and exec, with raw syscalls only.
//
//   - The capability bounding set is cut to what a program serving files as root needs
//     (kKeptCapabilities: chown, DAC override, fowner, fsetid, kill, setuid/setgid, setfcap,
//     binding low ports, audit write; mknod only with --allow-devices). Gone are, among others,
//     CAP_SYS_ADMIN (mount, namespaces), CAP_SYS_CHROOT (the classic chroot escape),
//     CAP_DAC_READ_SEARCH (open_by_handle_at reaches files outside any chroot), CAP_SYS_PTRACE,
//     CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF. A root
//     program's exec gives it the bounding set as its permitted set, so cutting the bounding set
//     is what holds; the ambient set is cleared too.
//   - no_new_privs comes from the agent itself (landlock.h sets it for the whole process), so
//     setuid and file-capability programs gain nothing; --spawn-privileged turns off both.
//   - Landlock's abstract unix socket scope (ABI 6, Linux 6.12): the program and its
//     descendants may connect only to abstract sockets made inside their own Landlock domain.
//     The agent itself refuses abstract addresses under --root (node_socket.cc). Each spawned
//     program is its own domain: two programs spawned separately cannot meet on an abstract
//     name either.

#pragma once

#include <cstdint>

#include "log.h"

namespace sb {

struct ChildPrivileges {
  bool limitCapabilities = false;
  uint64_t keptCapabilities = 0;  // bit N: capability N stays in the bounding set
  int scopeRuleset = -1;          // a Landlock ruleset to restrict to (-1: none)
};

// The set for a root agent under --root. `allowDevices` keeps CAP_MKNOD. Logs once what it
// could not do (an old kernel without the Landlock scope).
ChildPrivileges confinedChildPrivileges(bool allowDevices, const Log& log);

// In the vfork child: applies `p`. Returns 0 or an errno. Async-signal-safe.
int applyChildPrivileges(const ChildPrivileges& p);

}  // namespace sb
