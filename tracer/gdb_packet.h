// The GDB remote serial protocol's framing, pure (no sockets, no ptrace): what goes between `$`
// and `#cs`, checksums, the `}` escape of binary data, run-length encoding of replies, hex.
// gdb_server.cc speaks the protocol; this file only cuts and builds packets, so every rule of
// the wire format is unit-tested on bytes (tests/unit/gdb_packet_test.cc).
//
// From gdb to us the stream holds packets `$payload#xx`, acknowledgements `+`/`-`, and the
// interrupt byte 0x03 (Ctrl-C) between packets. From us to gdb: `+` for a good packet, `-` for
// a bad checksum (gdb sends it again), and packets of our own.

#pragma once

#include <kj/array.h>
#include <kj/common.h>
#include <kj/string.h>
#include <kj/vector.h>
#include <stdint.h>

namespace sb::gdb {

// The modulo-256 sum of the payload's bytes, as `#xx` carries it.
uint8_t checksum(kj::ArrayPtr<const char> payload);

// One thing read from gdb.
struct Incoming {
  enum Kind {
    PACKET,     // `payload`, with a good checksum
    BAD_PACKET, // a bad checksum or a packet too long: answer `-`
    INTERRUPT,  // 0x03: stop the program
  };
  Kind kind;
  kj::String payload;
};

// Cuts the byte stream from gdb into Incoming items. Acknowledgements (`+`, `-`) and noise
// between packets are dropped: we never resend, because gdb over TCP does not lose bytes.
class PacketReader {
 public:
  // Longer packets are refused (BAD_PACKET) rather than buffered without end.
  static constexpr size_t MAX_PACKET = 1 << 20;

  // Feeds bytes; returns what they completed, in order.
  kj::Vector<Incoming> feed(kj::ArrayPtr<const kj::byte> bytes);

 private:
  enum class State { IDLE, PAYLOAD, CHECKSUM1, CHECKSUM2 };
  State state = State::IDLE;
  kj::Vector<char> payload;
  bool tooLong = false;
  char cs1 = 0;
};

// `$payload#xx` ready to send. Runs of a repeated hex digit or 'x' of more than 3 are
// run-length encoded (`0*"`: a `0` plus 5 more), which shrinks `g` replies of zeroed registers;
// counts that would give `#` or `$` are avoided. Binary payloads (escapeBinary) are framed as
// they are.
kj::String framePacket(kj::StringPtr payload);

// Binary data escaped for a packet: `#`, `$`, `}` and `*` become `}` then the byte ^ 0x20.
kj::String escapeBinary(kj::ArrayPtr<const kj::byte> data);
// The bytes of an escaped binary field (an `X` packet's data); null when a `}` ends it.
kj::Maybe<kj::Array<kj::byte>> unescapeBinary(kj::ArrayPtr<const char> text);

kj::String toHex(kj::ArrayPtr<const kj::byte> data);
// The bytes of an even-length hex string; null for anything else.
kj::Maybe<kj::Array<kj::byte>> fromHex(kj::ArrayPtr<const char> text);
// A hex number (1 to 16 digits, no prefix), e.g. an address or a thread id; null otherwise.
kj::Maybe<uint64_t> parseHex(kj::ArrayPtr<const char> text);
// The same for a thread id, which may also be -1 ("all threads") or 0 ("any thread").
kj::Maybe<int64_t> parseThreadId(kj::ArrayPtr<const char> text);

// A little-endian value as the hex of its bytes (how registers travel).
kj::String hexLittleEndian(uint64_t value, size_t bytes);

// Signal numbers: the protocol has its own (gdb's signals.def), which differ from Linux's
// above 15 and for SIGBUS, SIGUSR1/2, SIGSYS. 0 maps to 0; a number with no counterpart maps to
// gdb's "unknown signal" (143) one way and to 0 the other.
int toGdbSignal(int linuxSig);
int fromGdbSignal(int gdbSig);
constexpr int GDB_SIGNAL_UNKNOWN = 143;

// Splits `text` at every `sep` (a packet's `;`- or `,`-separated fields).
kj::Vector<kj::ArrayPtr<const char>> splitFields(kj::ArrayPtr<const char> text, char sep);

}  // namespace sb::gdb
