// Who may talk to a listening agent on its unix socket (issue 17). The socket file's mode is the
// first gate (0600 by default: only the agent's own uid can connect(2) at all); this is the
// second, which holds whatever the mode or the directory allows: every accepted unix connection
// is checked with SO_PEERCRED (and SO_PEERGROUPS) before a byte is read from it. By default
// only the agent's own uid and root are let in; --allow-uid and --allow-gid widen that.
//
// TCP peers are not checked here: off loopback they need TLS client certificates, and a token
// (--token-file) is the gate for loopback TCP.

#pragma once

#include <sys/types.h>

#include <vector>

#include <kj/string.h>

namespace sb {

struct PeerPolicy {
  uid_t agentUid = 0;          // the agent's own (real) uid: always allowed, like root
  std::vector<uid_t> uids;     // --allow-uid
  std::vector<gid_t> gids;     // --allow-gid: a peer whose primary or supplementary group is one
};

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;   // supplementary groups (SO_PEERGROUPS), when the kernel tells
};

// The credentials of the process at the other end of the unix socket `fd`; null (errno set) when
// `fd` is not a connected unix socket.
kj::Maybe<PeerCredentials> unixPeerCredentials(int fd);

// Why `peer` may not connect under `policy` ("" when it may).
kj::String peerRefusal(const PeerPolicy& policy, const PeerCredentials& peer);

// Parses a --allow-uid/--allow-gid value: a number or a user/group name. On a bad value returns
// null and sets `error`.
kj::Maybe<uid_t> parseUser(kj::StringPtr text, kj::String& error);
kj::Maybe<gid_t> parseGroup(kj::StringPtr text, kj::String& error);

}  // namespace sb
