#include "fd_guard.h"

#include <algorithm>

namespace sb {

FdGuards::Plan FdGuards::plan(pid_t tgid, pid_t tid, const std::set<int>& needed) {
  Plan out;
  Process& p = processes[tgid];
  if (p.allInstalled) {
    return out;
  }
  bool allPending = p.pending.count(ALL) > 0;
  if (!p.wantAll && needed.empty()) {
    return out;
  }
  if (allPending) {
    out.wait = true;  // The every-fd guard is on its way: it covers whatever this thread needs.
    return out;
  }
  kj::Vector<int> fresh;
  bool othersPending = false;
  if (!p.wantAll) {
    for (int block : needed) {
      if (p.installed.count(block) > 0) {
        continue;
      }
      if (p.pending.count(block) > 0) {
        othersPending = true;
      } else {
        fresh.add(block);
      }
    }
  }
  size_t blocks = p.installed.size() + p.pending.size() + fresh.size();
  if (p.wantAll || (fresh.size() > 0 && blocks > MAX_GUARDS)) {
    // A long stack of guards would slow every syscall: the last one traps every fast call.
    out.inject.add(ALL);
    p.pending[ALL] = tid;
    return out;
  }
  if (fresh.size() > 0) {
    for (int block : fresh) {
      p.pending[block] = tid;
    }
    out.inject = kj::mv(fresh);
    return out;  // Blocks others are installing: planned again when this injection is over.
  }
  out.wait = othersPending;
  return out;
}

kj::Vector<pid_t> FdGuards::release(Process& p) {
  kj::Vector<pid_t> again = kj::mv(p.waiters);
  p.waiters = kj::Vector<pid_t>();
  return again;
}

kj::Vector<pid_t> FdGuards::injected(pid_t tgid, pid_t tid) {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return {};
  }
  Process& p = it->second;
  for (auto e = p.pending.begin(); e != p.pending.end();) {
    if (e->second != tid) {
      ++e;
      continue;
    }
    if (e->first == ALL) {
      p.allInstalled = true;
    } else {
      p.installed.insert(e->first);
    }
    e = p.pending.erase(e);
  }
  return release(p);
}

void FdGuards::addWaiter(pid_t tgid, pid_t tid) {
  auto& waiters = processes[tgid].waiters;
  if (std::find(waiters.begin(), waiters.end(), tid) == waiters.end()) {
    waiters.add(tid);
  }
}

kj::Vector<pid_t> FdGuards::threadGone(pid_t tgid, pid_t tid) {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return {};
  }
  Process& p = it->second;
  bool freed = false;
  for (auto e = p.pending.begin(); e != p.pending.end();) {
    if (e->second == tid) {
      e = p.pending.erase(e);
      freed = true;
    } else {
      ++e;
    }
  }
  kj::Vector<pid_t> rest;
  for (pid_t w : p.waiters) {
    if (w != tid) {
      rest.add(w);
    }
  }
  p.waiters = kj::mv(rest);
  return freed ? release(p) : kj::Vector<pid_t>();
}

void FdGuards::inherit(pid_t parent, pid_t child, bool sharesFiles) {
  Process& from = processes[parent];
  Process& to = processes[child];
  to = Process();
  to.installed = from.installed;
  to.allInstalled = from.allInstalled;
  if (sharesFiles) {
    from.wantAll = true;
    to.wantAll = true;
  }
}

bool FdGuards::installed(pid_t tgid, int block) const {
  auto it = processes.find(tgid);
  if (it == processes.end()) {
    return false;
  }
  return it->second.allInstalled || (block != ALL && it->second.installed.count(block) > 0);
}

}  // namespace sb
