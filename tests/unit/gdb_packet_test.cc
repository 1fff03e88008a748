#include <doctest.h>

#include <signal.h>
#include <string.h>

#include <kj/debug.h>

#include "gdb_packet.h"
#include "gdb_regs.h"

namespace {

kj::ArrayPtr<const kj::byte> gdbBytes(kj::StringPtr s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.begin()), s.size());
}

kj::ArrayPtr<const char> gdbChars(kj::StringPtr s) { return s.asArray(); }

// Expands a framed packet the way gdb's reader does: checks the checksum over the body, then
// undoes run-length encoding (c*N: N-29 more copies of c).
kj::String unframe(kj::StringPtr framed) {
  REQUIRE(framed.size() >= 4);
  REQUIRE(framed[0] == '$');
  REQUIRE(framed[framed.size() - 3] == '#');
  auto body = framed.slice(1).asArray().slice(0, framed.size() - 4);
  auto cs = sb::gdb::parseHex(framed.slice(framed.size() - 2).asArray());
  REQUIRE(cs != nullptr);
  CHECK(KJ_ASSERT_NONNULL(cs) == sb::gdb::checksum(body));
  kj::Vector<char> out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '*') {
      REQUIRE(i + 1 < body.size());
      CHECK(body[i + 1] != '#');
      CHECK(body[i + 1] != '$');
      char c = out.back();
      for (int k = 0; k < body[i + 1] - 29; ++k) {
        out.add(c);
      }
      ++i;
    } else {
      out.add(body[i]);
    }
  }
  return kj::heapString(out.begin(), out.size());
}

}  // namespace

TEST_SUITE("gdb_packet") {
  using namespace sb::gdb;

  TEST_CASE("a packet is cut out of the stream with its checksum checked, acks dropped") {
    PacketReader r;
    auto got = r.feed(gdbBytes("+$qSupported:multiprocess+#c6+$g#67"));
    REQUIRE(got.size() == 2);
    CHECK(got[0].kind == Incoming::PACKET);
    CHECK(got[0].payload == "qSupported:multiprocess+");
    CHECK(got[1].kind == Incoming::PACKET);
    CHECK(got[1].payload == "g");
  }

  TEST_CASE("a packet split across reads comes out once whole") {
    PacketReader r;
    CHECK(r.feed(gdbBytes("$m4010")).size() == 0);
    CHECK(r.feed(gdbBytes("00,4#")).size() == 0);
    auto got = r.feed(gdbBytes("f2"));
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "m401000,4");
    CHECK(checksum(gdbChars("m401000,4")) == 0xf2);
  }

  TEST_CASE("a bad checksum asks for the packet again; the next one still parses") {
    PacketReader r;
    auto got = r.feed(gdbBytes("$g#00$g#67$?#zz"));
    REQUIRE(got.size() == 3);
    CHECK(got[0].kind == Incoming::BAD_PACKET);
    CHECK(got[1].kind == Incoming::PACKET);
    CHECK(got[2].kind == Incoming::BAD_PACKET);  // not even hex
  }

  TEST_CASE("Ctrl-C between packets is an interrupt") {
    PacketReader r;
    kj::byte stream[] = {'+', 0x03, '$', 'c', '#', '6', '3'};
    auto got = r.feed(stream);
    REQUIRE(got.size() == 2);
    CHECK(got[0].kind == Incoming::INTERRUPT);
    CHECK(got[1].kind == Incoming::PACKET);
    CHECK(got[1].payload == "c");
  }

  TEST_CASE("a packet longer than the limit is refused, not buffered") {
    PacketReader r;
    auto big = kj::heapString(PacketReader::MAX_PACKET + 10);
    memset(big.begin(), 'a', big.size());
    auto got = r.feed(gdbBytes(kj::str("$", big, "#00")));
    REQUIRE(got.size() == 1);
    CHECK(got[0].kind == Incoming::BAD_PACKET);
  }

  TEST_CASE("framing adds the checksum") {
    CHECK(framePacket("OK") == "$OK#9a");
    CHECK(framePacket("") == "$#00");
  }

  TEST_CASE("run-length encoding shrinks runs and never writes # or $ as a count") {
    for (size_t run = 1; run < 200; ++run) {
      auto payload = kj::str("T05", kj::repeat('0', run), "x");
      auto framed = framePacket(payload);
      CHECK(unframe(framed) == payload);
      if (run >= 8) {
        CHECK(framed.size() < payload.size() + 4);
      }
    }
    // Only hex digits and 'x' are encoded: text keeps its runs.
    CHECK(framePacket("Wxyzzzzzz").startsWith("$Wxyzzzzzz#"));
  }

  TEST_CASE("binary data is escaped and unescaped") {
    kj::byte data[] = {'a', '#', '$', '}', '*', 0, 0xff};
    auto escaped = escapeBinary(data);
    CHECK(escaped.size() == kj::size(data) + 4);
    CHECK(escaped.findFirst('#') == nullptr);
    CHECK(escaped.findFirst('$') == nullptr);
    auto back = unescapeBinary(escaped.asArray());
    REQUIRE(back != nullptr);
    auto& b = KJ_ASSERT_NONNULL(back);
    REQUIRE(b.size() == kj::size(data));
    CHECK(memcmp(b.begin(), data, b.size()) == 0);
    CHECK(unescapeBinary(gdbChars("ab}")) == nullptr);  // an escape cut off
  }

  TEST_CASE("hex conversions refuse what is not hex") {
    kj::byte data[] = {0x00, 0x7f, 0xcc};
    CHECK(toHex(data) == "007fcc");
    auto back = fromHex(gdbChars("007FcC"));
    REQUIRE(back != nullptr);
    CHECK(KJ_ASSERT_NONNULL(back)[2] == 0xcc);
    CHECK(fromHex(gdbChars("abc")) == nullptr);
    CHECK(fromHex(gdbChars("zz")) == nullptr);
    CHECK(KJ_ASSERT_NONNULL(parseHex(gdbChars("7ffff7fe3290"))) == 0x7ffff7fe3290ull);
    CHECK(parseHex(gdbChars("")) == nullptr);
    CHECK(parseHex(gdbChars("12345678901234567")) == nullptr);  // more than 64 bits
    CHECK(parseHex(gdbChars("-1")) == nullptr);
    CHECK(KJ_ASSERT_NONNULL(parseThreadId(gdbChars("-1"))) == -1);
    CHECK(KJ_ASSERT_NONNULL(parseThreadId(gdbChars("0"))) == 0);
    CHECK(KJ_ASSERT_NONNULL(parseThreadId(gdbChars("1f40"))) == 8000);
    CHECK(parseThreadId(gdbChars("p1.2")) == nullptr);
    CHECK(hexLittleEndian(0x401136, 8) == "3611400000000000");
  }

  TEST_CASE("fields split at their separator, empty ones kept") {
    auto f = splitFields(gdbChars("vCont;s:1f;c"), ';');
    REQUIRE(f.size() == 3);
    CHECK(kj::str(f[1]) == "s:1f");
    CHECK(splitFields(gdbChars(""), ';').size() == 1);
    CHECK(splitFields(gdbChars("a;;b"), ';').size() == 3);
  }

  TEST_CASE("signals are translated between Linux and gdb numbering both ways") {
    CHECK(toGdbSignal(SIGTRAP) == 5);
    CHECK(toGdbSignal(SIGINT) == 2);
    CHECK(toGdbSignal(SIGSEGV) == 11);
    CHECK(toGdbSignal(SIGUSR1) == 30);
    CHECK(toGdbSignal(SIGUSR2) == 31);
    CHECK(toGdbSignal(SIGCHLD) == 20);
    CHECK(toGdbSignal(SIGSTOP) == 17);
    CHECK(toGdbSignal(SIGBUS) == 10);
    CHECK(toGdbSignal(SIGSYS) == 12);
    CHECK(toGdbSignal(SIGRTMIN) >= 45);
    CHECK(toGdbSignal(SIGSTKFLT) == GDB_SIGNAL_UNKNOWN);
    for (int s = 1; s <= 64; ++s) {
      if (s == SIGSTKFLT) {
        continue;
      }
      CHECK(fromGdbSignal(toGdbSignal(s)) == s);
    }
    CHECK(fromGdbSignal(GDB_SIGNAL_UNKNOWN) == 0);
    CHECK(fromGdbSignal(0) == 0);
  }
}

TEST_SUITE("gdb_regs") {
  using namespace sb::x86_64;

  TEST_CASE("the target description names every register in g-packet order") {
    auto xml = gdbTargetXml();
    CHECK(xml.startsWith("<?xml"));
    CHECK(strstr(xml.cStr(), "<architecture>i386:x86-64</architecture>") != nullptr);
    CHECK(strstr(xml.cStr(), "org.gnu.gdb.i386.core") != nullptr);
    CHECK(strstr(xml.cStr(), "org.gnu.gdb.i386.sse") != nullptr);
    CHECK(strstr(xml.cStr(), "org.gnu.gdb.i386.linux") != nullptr);
    CHECK(strstr(xml.cStr(), "name=\"rip\" bitsize=\"64\" type=\"code_ptr\" regnum=\"16\"") !=
          nullptr);
    CHECK(strstr(xml.cStr(), "name=\"orig_rax\"") != nullptr);
    CHECK(gdbRegisterCount() == 60);
    size_t total = 0;
    for (size_t n = 0; n < gdbRegisterCount(); ++n) {
      total += gdbRegisterSize(n);
    }
    // 16 + rip = 17 x 8, eflags + 6 segments = 7 x 4, 8 x 10, 8 x 4, 16 x 16, 4, 3 x 8.
    CHECK(total == 17 * 8 + 7 * 4 + 80 + 32 + 256 + 4 + 24);
    CHECK(gdbRegisterSize(60) == 0);
  }

  TEST_CASE("registers read and write through the kernel's register sets") {
    GdbRegs r = {};
    r.gp.rip = 0x401136;
    r.gp.rsp = 0x7ffc0000;
    r.gp.eflags = 0x246;
    r.gp.orig_rax = static_cast<uint64_t>(-1);
    r.fp.swd = 0x3800;
    r.fp.ftw = 0x01;  // st0 in use
    r.fp.xmm_space[4] = 0x11223344;  // xmm1's low word
    CHECK(sb::gdb::toHex(gdbReadRegister(r, GDB_RIP)) == "3611400000000000");
    CHECK(sb::gdb::toHex(gdbReadRegister(r, GDB_RSP)) == "0000fc7f00000000");
    CHECK(sb::gdb::toHex(gdbReadRegister(r, 17)) == "46020000");        // eflags, 32 bits
    CHECK(sb::gdb::toHex(gdbReadRegister(r, 33)) == "00380000");        // fstat widened
    CHECK(sb::gdb::toHex(gdbReadRegister(r, 34)) == "fcff0000");        // ftag: st0 valid
    CHECK(sb::gdb::toHex(gdbReadRegister(r, 41)).startsWith("44332211"));  // xmm1
    CHECK(sb::gdb::toHex(gdbReadRegister(r, 57)) == "ffffffffffffffff");  // orig_rax
    CHECK(gdbReadRegister(r, 99).size() == 0);

    kj::byte rip[8] = {0x40, 0x11, 0x40, 0, 0, 0, 0, 0};
    CHECK(gdbWriteRegister(r, GDB_RIP, rip));
    CHECK(r.gp.rip == 0x401140);
    CHECK_FALSE(gdbWriteRegister(r, GDB_RIP, kj::arrayPtr(rip, 4)));  // wrong size
    kj::byte tag[4] = {0xff, 0xff, 0, 0};                                 // all empty
    CHECK(gdbWriteRegister(r, 34, tag));
    CHECK(r.fp.ftw == 0);
    kj::byte ctl[4] = {0x7f, 0x03, 0, 0};
    CHECK(gdbWriteRegister(r, 32, ctl));
    CHECK(r.fp.cwd == 0x37f);
  }

  TEST_CASE("DR7 enables one slot with its kind and length, and disables it again") {
    uint64_t dr7 = dr7With(0, 1, DebugKind::WRITE, 4);
    CHECK((dr7 & 0xff) == 0x04);                   // L1
    CHECK(((dr7 >> 20) & 0xf) == (1 | (3 << 2)));  // RW1 = write, LEN1 = 4 bytes
    dr7 = dr7With(dr7, 0, DebugKind::READ_WRITE, 8);
    CHECK(((dr7 >> 16) & 0xf) == (3 | (2 << 2)));
    CHECK(dr7Without(dr7Without(dr7, 0), 1) == 0);
    CHECK(dr7With(0, 3, DebugKind::EXECUTE, 1) == (uint64_t(1) << 6));
    CHECK(dr6Hits(0xffff0ff2) == 2);
  }
}
