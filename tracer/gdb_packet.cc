#include "gdb_packet.h"

namespace sb::gdb {

namespace {

constexpr char HEX_DIGITS[] = "0123456789abcdef";

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool needsEscape(kj::byte b) { return b == '#' || b == '$' || b == '}' || b == '*'; }

// Run-length encoding applies to these only: they are what hex replies repeat, and none of them
// is special to the framing.
bool encodable(char c) { return hexValue(c) >= 0 || c == 'x'; }

}  // namespace

uint8_t checksum(kj::ArrayPtr<const char> payload) {
  uint8_t sum = 0;
  for (char c : payload) {
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  }
  return sum;
}

kj::Vector<Incoming> PacketReader::feed(kj::ArrayPtr<const kj::byte> bytes) {
  kj::Vector<Incoming> out;
  for (kj::byte b : bytes) {
    char c = static_cast<char>(b);
    switch (state) {
      case State::IDLE:
        if (c == '$') {
          payload.clear();
          tooLong = false;
          state = State::PAYLOAD;
        } else if (b == 0x03) {
          out.add(Incoming{Incoming::INTERRUPT, kj::str("")});
        }
        // `+`, `-` and anything else between packets: nothing to do.
        break;
      case State::PAYLOAD:
        if (c == '#') {
          state = State::CHECKSUM1;
        } else if (payload.size() < MAX_PACKET) {
          payload.add(c);
        } else {
          tooLong = true;
        }
        break;
      case State::CHECKSUM1:
        cs1 = c;
        state = State::CHECKSUM2;
        break;
      case State::CHECKSUM2: {
        state = State::IDLE;
        int hi = hexValue(cs1), lo = hexValue(c);
        bool good = !tooLong && hi >= 0 && lo >= 0 && (hi * 16 + lo) == checksum(payload);
        if (good) {
          out.add(Incoming{Incoming::PACKET, kj::heapString(payload.begin(), payload.size())});
        } else {
          out.add(Incoming{Incoming::BAD_PACKET, kj::str("")});
        }
        break;
      }
    }
  }
  return out;
}

kj::String framePacket(kj::StringPtr payload) {
  kj::Vector<char> body(payload.size() + 4);
  size_t i = 0;
  while (i < payload.size()) {
    char c = payload[i];
    size_t run = 1;
    while (i + run < payload.size() && payload[i + run] == c) {
      ++run;
    }
    if (!encodable(c) || run < 4) {
      for (size_t k = 0; k < run; ++k) {
        body.add(c);
      }
      i += run;
      continue;
    }
    // `c*N` stands for c and N-29 more copies; N is printable from ' ' (3 more) to '~' (97
    // more), except '#' and '$' (6 and 7 more), which would end or start a packet.
    size_t repeat = run - 1;
    if (repeat > 97) {
      repeat = 97;
    }
    if (repeat == 6 || repeat == 7) {
      repeat = 5;
    }
    body.add(c);
    body.add('*');
    body.add(static_cast<char>(repeat + 29));
    i += repeat + 1;
  }
  uint8_t sum = checksum(body);
  return kj::str("$", kj::ArrayPtr<const char>(body.begin(), body.size()), "#",
                 HEX_DIGITS[sum >> 4], HEX_DIGITS[sum & 15]);
}

kj::String escapeBinary(kj::ArrayPtr<const kj::byte> data) {
  kj::Vector<char> out(data.size() + 8);
  for (kj::byte b : data) {
    if (needsEscape(b)) {
      out.add('}');
      out.add(static_cast<char>(b ^ 0x20));
    } else {
      out.add(static_cast<char>(b));
    }
  }
  return kj::heapString(out.begin(), out.size());
}

kj::Maybe<kj::Array<kj::byte>> unescapeBinary(kj::ArrayPtr<const char> text) {
  kj::Vector<kj::byte> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') {
      if (i + 1 == text.size()) {
        return nullptr;
      }
      out.add(static_cast<kj::byte>(text[++i] ^ 0x20));
    } else {
      out.add(static_cast<kj::byte>(text[i]));
    }
  }
  return out.releaseAsArray();
}

kj::String toHex(kj::ArrayPtr<const kj::byte> data) {
  auto out = kj::heapString(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = HEX_DIGITS[data[i] >> 4];
    out[2 * i + 1] = HEX_DIGITS[data[i] & 15];
  }
  return out;
}

kj::Maybe<kj::Array<kj::byte>> fromHex(kj::ArrayPtr<const char> text) {
  if (text.size() % 2 != 0) {
    return nullptr;
  }
  auto out = kj::heapArray<kj::byte>(text.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hexValue(text[2 * i]), lo = hexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return nullptr;
    }
    out[i] = static_cast<kj::byte>(hi * 16 + lo);
  }
  return kj::mv(out);
}

kj::Maybe<uint64_t> parseHex(kj::ArrayPtr<const char> text) {
  if (text.size() == 0 || text.size() > 16) {
    return nullptr;
  }
  uint64_t value = 0;
  for (char c : text) {
    int v = hexValue(c);
    if (v < 0) {
      return nullptr;
    }
    value = value * 16 + static_cast<uint64_t>(v);
  }
  return value;
}

kj::Maybe<int64_t> parseThreadId(kj::ArrayPtr<const char> text) {
  if (text.size() == 2 && text[0] == '-' && text[1] == '1') {
    return int64_t(-1);
  }
  KJ_IF_MAYBE(v, parseHex(text)) {
    if (*v <= 0x7fffffff) {
      return static_cast<int64_t>(*v);
    }
  }
  return nullptr;
}

kj::String hexLittleEndian(uint64_t value, size_t bytes) {
  kj::byte buf[8];
  for (size_t i = 0; i < 8; ++i) {
    buf[i] = static_cast<kj::byte>(value >> (8 * i));
  }
  return toHex(kj::arrayPtr(buf, bytes > 8 ? 8 : bytes));
}

namespace {

// Linux signal n (1-31) -> gdb's number; 16 (SIGSTKFLT) has none.
constexpr int LINUX_TO_GDB[32] = {
    0,  1,  2,  3,  4,  5,  6,  10, 8,  9,  30, 11, 31, 13, 14, 15,
    GDB_SIGNAL_UNKNOWN, 20, 19, 17, 18, 21, 22, 16, 24, 25, 26, 27, 28, 23, 32, 12,
};

}  // namespace

int toGdbSignal(int linuxSig) {
  if (linuxSig >= 0 && linuxSig < 32) {
    return LINUX_TO_GDB[linuxSig];
  }
  // Real-time signals: 32 and 64 sit apart from 33-63, gdb having numbered them later.
  if (linuxSig == 32) {
    return 77;
  }
  if (linuxSig >= 33 && linuxSig <= 63) {
    return 45 + (linuxSig - 33);
  }
  if (linuxSig == 64) {
    return 78;
  }
  return GDB_SIGNAL_UNKNOWN;
}

int fromGdbSignal(int gdbSig) {
  for (int s = 0; s < 32; ++s) {
    if (LINUX_TO_GDB[s] == gdbSig && gdbSig != GDB_SIGNAL_UNKNOWN) {
      return s;
    }
  }
  for (int s = 32; s <= 64; ++s) {
    if (toGdbSignal(s) == gdbSig) {
      return s;
    }
  }
  return 0;
}

kj::Vector<kj::ArrayPtr<const char>> splitFields(kj::ArrayPtr<const char> text, char sep) {
  kj::Vector<kj::ArrayPtr<const char>> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      out.add(text.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

}  // namespace sb::gdb
