#include "thread_creds.h"

#include <kj/debug.h>

#include "agent_link.h"
#include "call.h"
#include "proc_status.h"
#include "task.h"

namespace sb {

kj::Maybe<ThreadCredentials> ThreadCredentials::read(pid_t tid) {
  ProcStatus status = ProcStatus::read(tid);
  if (!status.found) {
    return nullptr;
  }
  ThreadCredentials c;
  for (int i = 0; i < 4; ++i) {
    c.uid[i] = status.uid[i];
    c.gid[i] = status.gid[i];
  }
  c.groups = kj::mv(status.groups);
  c.capEffective = status.capEff;
  c.capPermitted = status.capPrm;
  c.capInheritable = status.capInh;
  return kj::mv(c);
}

void ThreadCredentials::toWire(proto::Credentials::Builder wire) const {
  wire.setUid(uid[0]);
  wire.setEuid(uid[1]);
  wire.setSuid(uid[2]);
  wire.setFsuid(uid[3]);
  wire.setGid(gid[0]);
  wire.setEgid(gid[1]);
  wire.setSgid(gid[2]);
  wire.setFsgid(gid[3]);
  auto list = wire.initGroups(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    list.set(i, groups[i]);
  }
  wire.setCapEffective(capEffective);
  wire.setCapPermitted(capPermitted);
  wire.setCapInheritable(capInheritable);
}

uint32_t CredentialsRegistry::idOf(const ThreadCredentials& creds) {
  for (size_t i = 0; i < sets.size(); ++i) {
    if (sets[i] == creds) {
      return static_cast<uint32_t>(i);
    }
  }
  // Few sets ever exist (a program drops to one or two identities), so a list will do.
  sets.push_back(creds);
  return static_cast<uint32_t>(sets.size() - 1);
}

void CredentialsRegistry::refresh(Task& task) {
  KJ_IF_MAYBE(creds, ThreadCredentials::read(task.tid)) {
    if (sets.empty()) {
      setBaseline(kj::mv(*creds));
    }
    task.credsId = idOf(*creds);
  }
}

uint32_t CredentialsRegistry::usable(Task& task, AgentLink& target) {
  uint32_t id = task.credsId;
  if (id == 0 || target.away()) {
    return 0;  // Away: the call fails anyway, and the next session is defined afresh.
  }
  if (!target.welcome().getAssumesCredentials()) {
    if (toldCannot.insert(&target).second) {
      KJ_IF_MAYBE(hook, cannotAssume) {
        (*hook)(target);
      }
    }
    return 0;
  }
  Defined& d = defined[&target];
  if (d.generation != target.generation()) {
    d.generation = target.generation();
    d.ids.clear();
  }
  if (d.ids.insert(id).second) {
    // Sent before the call that uses it, on the same connection: the agent sees it first.
    auto req = target.session().defineCredentialsRequest();
    req.setId(id);
    sets[id].toWire(req.initCredentials());
    target.background(req.send().then([&target, id](auto&& answer) {
      if (answer.getResult() < 0) {
        target.note(kj::str("credentials ", id),
                    kj::str("target ", target.name(), " refused the program's credentials (",
                            answer.getResult(), "): its calls fail"));
      }
    }));
  }
  return id;
}

proto::Node::Client CredentialsRegistry::asCaller(Call& call, AgentLink& target,
                                                  proto::Node::Client node) {
  uint32_t id = usable(call.task, target);
  if (id == 0) {
    return node;
  }
  auto req = node.asCallerRequest();
  req.setCredentials(id);
  return req.send().getNode();
}

uint32_t CredentialsRegistry::forSpawn(Call& call, AgentLink& target) {
  return usable(call.task, target);
}

}  // namespace sb
