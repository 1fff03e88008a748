#include "peer_check.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace sb {

namespace {

// A decimal id, or null when `text` is not one.
kj::Maybe<unsigned long> parseId(kj::StringPtr text) {
  if (text.size() == 0 || text[0] < '0' || text[0] > '9') {
    return nullptr;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long value = strtoul(text.cStr(), &end, 10);
  // (uid_t)-1 means "no change" to chown and friends: not an id anyone has.
  if (*end != '\0' || errno != 0 || value >= 0xFFFFFFFFul) {
    return nullptr;
  }
  return value;
}

}  // namespace

kj::Maybe<PeerCredentials> unixPeerCredentials(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    return nullptr;
  }
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  // SO_PEERGROUPS (Linux 4.13): the groups the peer had when it connected. ERANGE tells the
  // size needed; anything else (an older kernel) leaves only the primary group to check.
  socklen_t size = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, nullptr, &size) < 0 && errno == ERANGE &&
      size > 0) {
    peer.groups.resize(size / sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer.groups.data(), &size) < 0) {
      peer.groups.clear();
    } else {
      peer.groups.resize(size / sizeof(gid_t));
    }
  }
  return peer;
}

kj::String peerRefusal(const PeerPolicy& policy, const PeerCredentials& peer) {
  if (peer.uid == 0 || peer.uid == policy.agentUid) {
    return kj::str();
  }
  if (std::find(policy.uids.begin(), policy.uids.end(), peer.uid) != policy.uids.end()) {
    return kj::str();
  }
  for (gid_t g: policy.gids) {
    if (peer.gid == g || std::find(peer.groups.begin(), peer.groups.end(), g) !=
                             peer.groups.end()) {
      return kj::str();
    }
  }
  return kj::str("uid ", peer.uid, " is not allowed on this socket (only uid ", policy.agentUid,
                 policy.agentUid == 0 ? "" : " and root",
                 "; widen with sbagent --allow-uid/--allow-gid)");
}

kj::Maybe<uid_t> parseUser(kj::StringPtr text, kj::String& error) {
  KJ_IF_MAYBE(id, parseId(text)) {
    return uid_t(*id);
  }
  struct passwd* pw = getpwnam(text.cStr());
  if (pw == nullptr) {
    error = kj::str("--allow-uid ", text, ": no such user (give a user name or a number)");
    return nullptr;
  }
  return pw->pw_uid;
}

kj::Maybe<gid_t> parseGroup(kj::StringPtr text, kj::String& error) {
  KJ_IF_MAYBE(id, parseId(text)) {
    return gid_t(*id);
  }
  struct group* gr = getgrnam(text.cStr());
  if (gr == nullptr) {
    error = kj::str(text, ": no such group (give a group name or a number)");
    return nullptr;
  }
  return gr->gr_gid;
}

}  // namespace sb
