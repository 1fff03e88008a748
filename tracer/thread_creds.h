// Thread credentials (issue 16): which identity each traced thread has, so that its calls on B
// are made with it.
//
// Each thread's real/effective/saved/fs uids and gids, supplementary groups and capability sets
// are read from /proc/TID/status when they can have changed: at the start, at the exit stop of
// each set*id/setgroups/capset call the thread makes (the seccomp filter traps that family;
// glibc's setuid reaches every thread of a process through a signal, and each thread's own
// syscall is trapped), and after an exec. A new thread or process inherits its creator's.
//
// Each distinct set gets a small id in a registry; id 0 is the set the program started with.
// A thread in set 0 — the common case — costs nothing: its calls run as the agent's user, as
// they always did. Another set is defined once per session (Session.defineCredentials) and the
// thread's node calls go through Node.asCaller(id), pipelined. An agent that cannot assume
// credentials (Welcome.assumesCredentials false) is told nothing: its calls run as its own
// user, which -v says once.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include <kj/function.h>

#include "splitbrain.capnp.h"

namespace sb {

class AgentLink;
struct Call;
struct Task;

struct ThreadCredentials {
  uint32_t uid[4] = {};  // real, effective, saved, fs
  uint32_t gid[4] = {};
  std::vector<uint32_t> groups;
  uint64_t capEffective = 0, capPermitted = 0, capInheritable = 0;

  bool operator==(const ThreadCredentials&) const = default;
  // The thread's set now; nothing when the thread is gone.
  static kj::Maybe<ThreadCredentials> read(pid_t tid);
  void toWire(proto::Credentials::Builder wire) const;
};

class CredentialsRegistry {
 public:
  // The set of the program as it started: id 0. Once, before any other lookup.
  void setBaseline(ThreadCredentials creds) { sets.assign(1, kj::mv(creds)); }
  // Reads `task`'s set again and records its id.
  void refresh(Task& task);
  // `node`, or the node as seen by `task`'s credentials on `target` (Node.asCaller) when they
  // are not the program's first and the agent can assume them.
  proto::Node::Client asCaller(Call& call, AgentLink& target, proto::Node::Client node);
  // The id for SpawnRequest.credentials (0: the agent's own), defined on `target` if need be.
  uint32_t forSpawn(Call& call, AgentLink& target);
  // For -v: called with what to say, once per target, when a thread's credentials cannot
  // follow it there.
  void onCannotAssume(kj::Function<void(AgentLink&)> hook) { cannotAssume = kj::mv(hook); }

 private:
  std::vector<ThreadCredentials> sets;  // by id
  // The ids each target's current session knows, and that session's generation.
  struct Defined {
    uint64_t generation = 0;
    std::set<uint32_t> ids;
  };
  std::map<AgentLink*, Defined> defined;
  std::set<AgentLink*> toldCannot;
  kj::Maybe<kj::Function<void(AgentLink&)>> cannotAssume;

  uint32_t idOf(const ThreadCredentials& creds);
  // The id of `task`'s set usable on `target` (defined there by now), or 0.
  uint32_t usable(Task& task, AgentLink& target);
};

}  // namespace sb
