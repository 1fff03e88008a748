// Limits: what one connection, and one session, may make the agent hold (issue 7, PITFALLS #20).
// (Not named limits.h: this directory is on the include path, and that would shadow <limits.h>.)
// An authenticated client is trusted to act on the files, not to exhaust the agent: every
// resource a peer's bytes can make the agent allocate has a bound here, and going past it gives
// the tracee the errno the kernel would give (EMFILE, EAGAIN) or drops the connection, never an
// agent crash.

#pragma once

#include <cstddef>
#include <cstdint>

#include "host_wire.h"

namespace sb {

struct Limits {
  // --max-sessions: connections admitted at once (past the preamble); more are refused with a
  // sentence the client prints.
  size_t maxSessions = 64;
  // Connections still in their TLS handshake or admission preamble. Counted apart from the
  // sessions, so that strangers who never finish a handshake cannot take the session slots.
  size_t maxPending = 64;
  // --max-pending-per-peer: of those, how many one peer (a uid on a unix socket, an address on
  // TCP) may have, counted until its Agent.handshake is done. Past it, a further connection of
  // that peer is closed at once: one stranger cannot take every pending slot (issue 17).
  size_t maxPendingPerPeer = 8;
  // A peer at that cap that opens another connection: its oldest pending connection is closed
  // to make room if it has been pending this long (a real client's handshake takes
  // milliseconds), else the new one is refused. So a flood that holds its places for the
  // handshake timeout cannot keep out a client of the same peer (the same uid, or every local
  // TCP client, which share 127.0.0.1).
  uint32_t evictPendingAfterMs = 1000;
  // Before the Agent.handshake has succeeded, a frame may be at most this big, and the peer may
  // send at most preAuthBytes in all: a peer that has proved nothing cannot make the agent
  // allocate (and keep) the 64 MiB a session's big writes may use.
  uint64_t preAuthMessageBytes = 64 << 10;
  uint64_t preAuthBytes = 256 << 10;
  // --max-fds: Nodes (open files, directories, pipes) one session holds; openat, openPath and
  // spawn answer EMFILE past it, as open(2) does past RLIMIT_NOFILE. No cap unless the user sets
  // one: the program's own RLIMIT_NOFILE (its placeholders are local fds) and the agent's own
  // open-file limit (raised to its hard limit at start) bound it as the kernels do (issue 16: a
  // hidden 4096 made remote opens fail with EMFILE near 4,094 whatever the program's limit).
  size_t maxNodes = SIZE_MAX;
  // --max-procs: processes one session has running (spawned, not yet reaped); spawn answers
  // EAGAIN past it, as fork(2) does past RLIMIT_NPROC.
  size_t maxProcs = 256;

  // The largest message the agent reads: one maximal write (MAX_TRANSFER) plus room for the
  // rest of the call. Checked from the frame's segment table, before anything is allocated.
  uint64_t maxMessageWords = (MAX_TRANSFER + (1 << 20)) / 8;
  // At most this many segments per message (capnp's own limit is 512; our messages have a few).
  uint32_t maxSegments = 64;
  // Reader limits: every pointer traversal counts, so amplification (far pointers and lists of
  // structs that point at the same bytes again and again) stops at this many words per message.
  uint64_t traversalLimitWords = (2 * MAX_TRANSFER) / 8;
  int nestingLimit = 64;
  // Calls in flight per connection (RpcSystem::setFlowLimit): past this many words of requests
  // without an answer, the agent stops reading from the connection.
  uint64_t flowLimitWords = (2 * MAX_TRANSFER) / 8;
  // Answers written but not yet taken by the peer: past this the agent stops reading new
  // requests, so a client that never reads cannot grow the agent's memory.
  size_t maxUnsentBytes = 2 * MAX_TRANSFER;
  // After the peer's last byte (EOF, or input the guard refused), the session has this long to
  // send its last answers and end; then it is dropped, whatever the RPC layer is waiting for.
  uint32_t endGraceSeconds = 5;
};

}  // namespace sb
