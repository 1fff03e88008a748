// The admission preamble: the first bytes on a connection to a *listening* agent (unix socket or
// TCP; after TLS when the agent uses it), before any Cap'n Proto message (DESIGN D8, PITFALLS #20).
//
//   client -> agent   "SBAUTH1\n", the token's length (4 bytes, little endian, at most
//                     MAX_TOKEN) and the token's bytes (empty when sbrun has none)
//   agent -> client   one text line of at most MAX_ANSWER bytes: "ok\n", or "refused: WHY\n"
//
// Why a preamble and not only the token in Handshake.hello: Cap'n Proto 0.9.2 still has bugs
// reachable from peer input (PITFALLS #20), so a peer that has not shown the token must never
// reach the RPC layer; and a refusal that is not an authentication matter (the agent is full,
// --max-sessions) reaches the client as a sentence it can print, not as a broken RPC. The token is
// still sent in the hello as well, which is what --stdio agents (ssh, exec:, local) check: there
// the transport itself decides who may talk, and no preamble is used.

#pragma once

#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <kj/string.h>

namespace sb {

constexpr kj::byte PREAMBLE_MAGIC[8] = {'S', 'B', 'A', 'U', 'T', 'H', '1', '\n'};
constexpr size_t MAX_TOKEN = 4096;
constexpr size_t MAX_ANSWER = 1024;

// Client side: sends the preamble with `token` and reads the agent's answer. Resolves when the
// agent said "ok"; otherwise throws a FAILED exception whose description says what happened and
// what to do ("the agent refused the connection: bad token ...", "the agent speaks TLS here ...").
kj::Promise<void> presentToken(kj::AsyncIoStream& stream, kj::ArrayPtr<const kj::byte> token);

// Client side, all of it: TLS first when `tls` is given (the agent's certificate must name
// `host`), then presentToken(). Resolves to the stream to speak RPC on; failures are described
// for people (describeTlsFailure).
kj::Promise<kj::Own<kj::AsyncIoStream>> admitAsClient(kj::Own<kj::AsyncIoStream> stream,
                                                      kj::Maybe<kj::TlsContext&> tls,
                                                      kj::StringPtr host,
                                                      kj::ArrayPtr<const kj::byte> token);

// Agent side: reads a client's preamble and returns the token it presented. Throws a FAILED
// exception with a log-worthy description when the bytes are not a preamble (a TLS client on a
// plain port, an old sbrun, garbage) or the token is longer than MAX_TOKEN; the caller then answers
// nothing and closes.
kj::Promise<kj::Array<kj::byte>> readPreamble(kj::AsyncIoStream& stream);

// Agent side: writes "ok\n" (when `refusal` is empty) or "refused: REFUSAL\n", cut to MAX_ANSWER.
kj::Promise<void> answerPreamble(kj::AsyncIoStream& stream, kj::StringPtr refusal);

}  // namespace sb
