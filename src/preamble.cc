#include "preamble.h"

#include <cstring>

#include <kj/debug.h>
#include <kj/vector.h>

#include "tls_setup.h"

namespace sb {

namespace {

[[noreturn]] void failWith(kj::String message) {
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::mv(message)));
}

// The first bytes of a TLS record from a server: an alert (21) or a handshake (22), version 3.x.
bool looksLikeTls(kj::ArrayPtr<const kj::byte> bytes) {
  return bytes.size() >= 2 && (bytes[0] == 21 || bytes[0] == 22) && bytes[1] == 3;
}

kj::String printable(kj::ArrayPtr<const kj::byte> bytes) {
  kj::Vector<char> out;
  for (kj::byte b: bytes.slice(0, kj::min(bytes.size(), size_t(80)))) {
    out.add(b >= 0x20 && b < 0x7f ? char(b) : '?');
  }
  out.add('\0');
  return kj::String(out.releaseAsArray());
}

// Reads the answer line one byte at a time: nothing may be consumed past the newline, which the
// RPC layer reads next.
kj::Promise<kj::Array<kj::byte>> readAnswer(kj::AsyncIoStream& stream,
                                            kj::Own<kj::Vector<kj::byte>> line) {
  auto buffer = kj::heapArray<kj::byte>(1);
  auto* at = buffer.begin();
  return stream.tryRead(at, 1, 1).then(
      [&stream, line = kj::mv(line), buffer = kj::mv(buffer)](size_t n) mutable
      -> kj::Promise<kj::Array<kj::byte>> {
        if (n == 0 || buffer[0] == '\n' || line->size() >= MAX_ANSWER) {
          if (n == 1 && buffer[0] == '\n') {
            line->add('\n');
          }
          return line->releaseAsArray();
        }
        line->add(buffer[0]);
        if (looksLikeTls(*line)) {
          return line->releaseAsArray();  // No newline will come.
        }
        return readAnswer(stream, kj::mv(line));
      });
}

}  // namespace

kj::Promise<void> presentToken(kj::AsyncIoStream& stream, kj::ArrayPtr<const kj::byte> token) {
  KJ_REQUIRE(token.size() <= MAX_TOKEN, "the token is longer than the agent accepts",
             token.size(), MAX_TOKEN);
  auto message = kj::heapArray<kj::byte>(sizeof(PREAMBLE_MAGIC) + 4 + token.size());
  memcpy(message.begin(), PREAMBLE_MAGIC, sizeof(PREAMBLE_MAGIC));
  uint32_t size = uint32_t(token.size());
  for (int i = 0; i < 4; ++i) {
    message[sizeof(PREAMBLE_MAGIC) + i] = kj::byte(size >> (8 * i));
  }
  if (token.size() > 0) {
    memcpy(message.begin() + sizeof(PREAMBLE_MAGIC) + 4, token.begin(), token.size());
  }
  auto write = stream.write(message.begin(), message.size());
  return write.attach(kj::mv(message))
      .then([&stream]() { return readAnswer(stream, kj::heap<kj::Vector<kj::byte>>()); })
      .then([](kj::Array<kj::byte> line) {
        // Not NUL-terminated: an ArrayPtr, never a StringPtr (which reads one byte past it).
        auto text = kj::arrayPtr(reinterpret_cast<const char*>(line.begin()), line.size());
        if (line.size() == 3 && memcmp(line.begin(), "ok\n", 3) == 0) {
          return;
        }
        if (line.size() == 0) {
          failWith(kj::str(
              "the agent closed the connection before admitting this client (its log says "
              "why; an agent that uses TLS closes a plain connection like this: then give "
              "sbrun --tls-ca, --tls-cert and --tls-key)"));
        }
        if (looksLikeTls(line)) {
          failWith(kj::str("the agent speaks TLS on this port: give sbrun --tls-ca (the CA that "
                           "signed the agent's certificate) and --tls-cert/--tls-key (a client "
                           "certificate that CA signed)"));
        }
        kj::StringPtr refused = "refused: ";
        if (line.back() == '\n' && text.size() > refused.size() &&
            memcmp(text.begin(), refused.begin(), refused.size()) == 0) {
          failWith(kj::str("the agent refused the connection: ",
                           kj::heapString(text.begin() + refused.size(),
                                          line.size() - refused.size() - 1)));
        }
        failWith(kj::str("the peer did not answer like an sbagent (\"", printable(line),
                         "\"): is this the address of an agent started with --listen?"));
      });
}

kj::Promise<kj::Own<kj::AsyncIoStream>> admitAsClient(kj::Own<kj::AsyncIoStream> stream,
                                                      kj::Maybe<kj::TlsContext&> tls,
                                                      kj::StringPtr host,
                                                      kj::ArrayPtr<const kj::byte> token) {
  kj::Promise<kj::Own<kj::AsyncIoStream>> secured = nullptr;
  KJ_IF_MAYBE(t, tls) {
    secured = t->wrapClient(kj::mv(stream), host);
  } else {
    secured = kj::mv(stream);
  }
  bool usesTls = tls != nullptr;
  return secured
      .then([token](kj::Own<kj::AsyncIoStream> s) {
        auto& ref = *s;
        return presentToken(ref, token).then([s = kj::mv(s)]() mutable { return kj::mv(s); });
      })
      .catch_([usesTls](kj::Exception&& e) -> kj::Own<kj::AsyncIoStream> {
        // With TLS 1.3 the agent checks the client's certificate after the client has finished
        // its handshake: a refusal shows up as an alert when reading the preamble's answer.
        if (usesTls) {
          kj::throwFatalException(kj::Exception(e.getType(), __FILE__, __LINE__,
                                                describeTlsFailure(e, TlsRole::CLIENT)));
        }
        kj::throwFatalException(kj::mv(e));
      });
}

kj::Promise<kj::Array<kj::byte>> readPreamble(kj::AsyncIoStream& stream) {
  auto header = kj::heapArray<kj::byte>(sizeof(PREAMBLE_MAGIC) + 4);
  auto* at = header.begin();
  size_t size = header.size();
  return stream.tryRead(at, size, size).then(
      [&stream, header = kj::mv(header)](size_t n) mutable -> kj::Promise<kj::Array<kj::byte>> {
        if (n < header.size()) {
          failWith(kj::str("closed the connection after ", n,
                           " bytes, before presenting the admission preamble"));
        }
        if (memcmp(header.begin(), PREAMBLE_MAGIC, sizeof(PREAMBLE_MAGIC)) != 0) {
          if (header[0] == 22 && header[1] == 3) {
            failWith(kj::str("a TLS client on a plain port (start the agent with --tls-cert, "
                             "--tls-key and --tls-ca, or connect without TLS)"));
          }
          failWith(kj::str("not a splitbrain client: no admission preamble (sbrun older than "
                           "this agent, or something else entirely): \"",
                           printable(header), "\""));
        }
        uint32_t tokenSize = 0;
        for (int i = 0; i < 4; ++i) {
          tokenSize |= uint32_t(header[sizeof(PREAMBLE_MAGIC) + i]) << (8 * i);
        }
        if (tokenSize > MAX_TOKEN) {
          failWith(kj::str("announced a token of ", tokenSize, " bytes (at most ", MAX_TOKEN,
                           ")"));
        }
        auto token = kj::heapArray<kj::byte>(tokenSize);
        if (tokenSize == 0) {
          return kj::mv(token);
        }
        auto* tokenAt = token.begin();
        return stream.tryRead(tokenAt, tokenSize, tokenSize)
            .then([token = kj::mv(token)](size_t got) mutable -> kj::Array<kj::byte> {
              if (got < token.size()) {
                failWith(kj::str("closed the connection in the middle of its token"));
              }
              return kj::mv(token);
            });
      });
}

kj::Promise<void> answerPreamble(kj::AsyncIoStream& stream, kj::StringPtr refusal) {
  kj::String line = refusal.size() == 0 ? kj::str("ok\n") : kj::str("refused: ", refusal, "\n");
  if (line.size() > MAX_ANSWER) {
    line = kj::str(kj::heapString(line.begin(), MAX_ANSWER - 1), "\n");
  }
  // Newlines inside the reason would end the line early: the client prints what it gets.
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    if (line[i] == '\n') {
      line[i] = ' ';
    }
  }
  auto* at = line.begin();
  size_t size = line.size();
  return stream.write(at, size).attach(kj::mv(line));
}

}  // namespace sb
