// Big reads of a remote regular file in pipelined chunks (DESIGN D9; docs/architecture.md,
// "Speed").
//
// One `read(fd, buf, 1 MiB)` done as one 1 MiB RPC is strictly serial: the agent reads it all,
// the transport moves it all, then the tracer copies it all into the tracee. Split into chunks
// that are all sent at once, the three overlap: the tracer copies chunk 1 while the agent reads
// chunk 2 and the transport carries it.
//
// At the file position the chunks are consecutive `Node.read`s: the agent runs reads of regular
// files inline on its event loop, in arrival order, and the chunks leave in one turn of the
// tracer's loop, so no other call on the connection comes between them. At an offset they are
// `Node.pread`s at offset, offset + chunk, ...
//
// The answer is what one read of the whole count would have given: the bytes up to the first
// chunk that came back short (end of file as the agent saw it then), failed, or could not be
// placed in the program's buffer. Nothing after that point is placed. At the file position the
// agent's offset may then be ahead of the program's (a later chunk read bytes after a short one
// because the file grew between the two, or bytes could not be placed): `excess` says by how
// much, for the caller to give back with one seek.
//
// Used only with --read-chunk (off by default): on the 2-vCPU machine where it was measured,
// the extra messages' wake-ups cost more than the overlap saves (docs/performance.md,
// "Pipelined big reads").

#pragma once

#include <kj/async.h>
#include <kj/function.h>

#include "splitbrain.capnp.h"

namespace sb {

struct ChunkedReadResult {
  // Bytes placed in the program's buffer, or -errno when none were (the first chunk's error, or
  // -EFAULT); 0 at end of file.
  int64_t result;
  // At the file position: bytes the agent's reads moved its offset past start + result (0 for a
  // read at an offset).
  uint64_t excess;
};

// Places `data`, the bytes at `at` from the start of the read, in the program's buffer: returns
// how many it placed, fewer than data.size() (or -EFAULT) when the buffer faulted.
using PlaceFn = kj::Function<int64_t(uint64_t at, kj::ArrayPtr<const kj::byte> data)>;

// Reads `count` bytes of `node` at `offset` (-1: the file position) in chunks of `chunk` bytes,
// all sent before this returns, and places each answer as it arrives, in order. Rejects with the
// first chunk's exception when that chunk failed so (a lost connection) and nothing was placed;
// a later chunk's exception ends the read like an error does.
kj::Promise<ChunkedReadResult> chunkedRead(proto::Node::Client node, int64_t offset,
                                           uint64_t count, uint64_t chunk, PlaceFn place);

}  // namespace sb
