// The packets of the GDB remote protocol that the server answers: the dispatch table and one
// handler a packet (or family), each parsing its own arguments and answering an error (E01,
// E14 for memory) or the empty reply ("not supported") to what it cannot use. The state machine
// they drive (stops, resumes, debug registers) is gdb_server.cc.

#include "gdb_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/core.h>
#include <kj/debug.h>

#include "gdb_regs.h"

namespace sb {

namespace {

using gdb::toHex;

// The largest `m` reply: PacketSize (qSupported) counts hex digits.
constexpr uint64_t MAX_MEMORY_READ = 0x2000;

kj::String hexId(uint64_t v) { return kj::str(kj::hex(v)); }

kj::ArrayPtr<const char> fieldChars(kj::StringPtr s) { return s.asArray(); }

// The whole content of a /proc file (auxv), or null.
kj::Maybe<kj::Array<kj::byte>> readWholeFile(kj::StringPtr path) {
  int fd = open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return nullptr;
  }
  KJ_DEFER(close(fd));
  kj::Vector<kj::byte> out;
  kj::byte buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return nullptr;
    }
    if (n == 0) {
      break;
    }
    out.addAll(buf, buf + n);
  }
  return out.releaseAsArray();
}

}  // namespace

// The packets we understand: exact names (qX, QX and vX packets are named up to their first
// ':', ';' or ','; the others by their first letter). Anything else gets the empty reply, which
// the protocol defines as "not supported".
const GdbServer::Command GdbServer::COMMANDS[] = {
    {"qSupported", &GdbServer::qSupported},
    {"qXfer", &GdbServer::qXfer},
    {"qfThreadInfo", &GdbServer::qThreadInfoFirst},
    {"qsThreadInfo", &GdbServer::qThreadInfoNext},
    {"qC", &GdbServer::qCurrentThread},
    {"qAttached", &GdbServer::qAttached},
    {"qSymbol", &GdbServer::qSymbol},
    {"QStartNoAckMode", &GdbServer::startNoAck},
    {"QPassSignals", &GdbServer::passSignals},
    {"QProgramSignals", &GdbServer::ok},  // every signal reaches the program unless gdb says
    {"?", &GdbServer::stopReason},
    {"H", &GdbServer::setThread},
    {"T", &GdbServer::threadAlive},
    {"g", &GdbServer::readRegisters},
    {"G", &GdbServer::writeRegisters},
    {"p", &GdbServer::readRegister},
    {"P", &GdbServer::writeRegister},
    {"m", &GdbServer::readMemory},
    {"M", &GdbServer::writeMemoryHex},
    {"X", &GdbServer::writeMemoryBinary},
    {"vCont?", &GdbServer::vContQuery},
    {"vCont", &GdbServer::vCont},
    {"c", &GdbServer::legacyResume},
    {"C", &GdbServer::legacyResume},
    {"s", &GdbServer::legacyResume},
    {"S", &GdbServer::legacyResume},
    {"Z", &GdbServer::insertPoint},
    {"z", &GdbServer::removePoint},
    {"k", &GdbServer::kill},
    {"vKill", &GdbServer::vKill},
    {"D", &GdbServer::detach},
};

void GdbServer::dispatch(kj::StringPtr packet) {
  if (packet.size() == 0) {
    send("");
    return;
  }
  size_t nameEnd = 1;
  if (packet[0] == 'q' || packet[0] == 'Q' || packet[0] == 'v') {
    nameEnd = packet.size();
    for (size_t i = 0; i < packet.size(); ++i) {
      if (packet[i] == ':' || packet[i] == ';' || packet[i] == ',') {
        nameEnd = i;
        break;
      }
    }
  }
  auto owned = kj::heapString(packet.begin(), nameEnd);
  for (auto& c : COMMANDS) {
    if (owned == c.name) {
      // A malformed packet must never take sbrun down: the handlers throw only on our own
      // faults, and gdb then gets an error reply rather than silence.
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { (this->*c.handler)(packet); })) {
        fmt::print(stderr, "sbrun: gdb: packet {}: {}\n", owned.cStr(),
                   e->getDescription().cStr());
        send("E01");
      }
      return;
    }
  }
  send("");
}

// ---------------------------------------------------------------------------------------------
// Packets

void GdbServer::qSupported(kj::StringPtr) {
  send("PacketSize=4000;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
       "qXfer:exec-file:read+;QPassSignals+;vContSupported+");
}

// qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH
void GdbServer::qXfer(kj::StringPtr p) {
  auto f = gdb::splitFields(fieldChars(p), ':');
  if (f.size() != 5 || kj::str(f[2]) != "read") {
    send("");
    return;
  }
  auto range = gdb::splitFields(f[4], ',');
  uint64_t offset = 0, length = 0;
  if (range.size() != 2) {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(o, gdb::parseHex(range[0])) {
    offset = *o;
  } else {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(l, gdb::parseHex(range[1])) {
    length = *l;
  } else {
    send("E01");
    return;
  }
  auto object = kj::str(f[1]);
  auto annex = kj::str(f[3]);
  kj::Array<kj::byte> data;
  if (object == "features") {
    if (annex != "target.xml") {
      send("E00");
      return;
    }
    auto xml = x86_64::gdbTargetXml();
    data = kj::heapArray<kj::byte>(reinterpret_cast<const kj::byte*>(xml.begin()), xml.size());
  } else if (object == "auxv") {
    KJ_IF_MAYBE(d, readWholeFile(kj::str("/proc/", pid, "/auxv"))) {
      data = kj::mv(*d);
    } else {
      send("E01");
      return;
    }
  } else if (object == "exec-file") {
    char path[4096];
    ssize_t n = readlink(kj::str("/proc/", pid, "/exe").cStr(), path, sizeof(path));
    if (n < 0) {
      send("E01");
      return;
    }
    data = kj::heapArray<kj::byte>(reinterpret_cast<kj::byte*>(path), static_cast<size_t>(n));
  } else {
    send("");
    return;
  }
  if (offset >= data.size()) {
    send("l");
    return;
  }
  size_t end = static_cast<size_t>(std::min<uint64_t>(data.size(), offset + length));
  bool last = end == data.size();
  send(kj::str(last ? "l" : "m", gdb::escapeBinary(data.slice(offset, end))));
}

void GdbServer::qThreadInfoFirst(kj::StringPtr) {
  kj::Vector<kj::String> ids;
  for (pid_t tid : host.gdbThreads()) {
    ids.add(hexId(static_cast<uint64_t>(tid)));
  }
  send(ids.empty() ? kj::str("l") : kj::str("m", kj::strArray(ids, ",")));
}

void GdbServer::qThreadInfoNext(kj::StringPtr) { send("l"); }

void GdbServer::qCurrentThread(kj::StringPtr) {
  send(kj::str("QC", hexId(static_cast<uint64_t>(focus(lastStop.tid)))));
}

void GdbServer::qAttached(kj::StringPtr) { send(attached ? "1" : "0"); }

void GdbServer::qSymbol(kj::StringPtr) { send("OK"); }

void GdbServer::startNoAck(kj::StringPtr) {
  send("OK");  // Still acknowledged ("+" went before it); from now on nothing is.
  noAck = true;
}

// QPassSignals:SIG;SIG;... (gdb numbers, hex): signals to deliver without stopping.
void GdbServer::passSignals(kj::StringPtr p) {
  bool next[65] = {};
  auto colon = p.findFirst(':');
  if (colon != nullptr) {
    for (auto field : gdb::splitFields(fieldChars(p).slice(KJ_ASSERT_NONNULL(colon) + 1, p.size()),
                                       ';')) {
      if (field.size() == 0) {
        continue;
      }
      KJ_IF_MAYBE(g, gdb::parseHex(field)) {
        int sig = gdb::fromGdbSignal(static_cast<int>(*g));
        if (sig > 0 && sig < 65) {
          next[sig] = true;
        }
      } else {
        send("E01");
        return;
      }
    }
  }
  memcpy(passSignal, next, sizeof(next));
  send("OK");
}

void GdbServer::ok(kj::StringPtr) { send("OK"); }

void GdbServer::stopReason(kj::StringPtr) {
  replyOnStop = true;
  if (exited || state == State::STOPPED) {
    reportStop();
  }
  // Else the stop reply goes when every thread has stopped (maybeReport).
}

// Hg TID / Hc TID: which thread later g/G/p/P/m (g) or c/s (c) are about.
void GdbServer::setThread(kj::StringPtr p) {
  if (p.size() < 3) {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(tid, gdb::parseThreadId(fieldChars(p).slice(2, p.size()))) {
    if (p[1] == 'g') {
      generalThread = static_cast<pid_t>(*tid);
    } else if (p[1] == 'c') {
      continueThread = static_cast<pid_t>(*tid);
    } else {
      send("E01");
      return;
    }
    send("OK");
    return;
  }
  send("E01");
}

void GdbServer::threadAlive(kj::StringPtr p) {
  KJ_IF_MAYBE(tid, gdb::parseThreadId(fieldChars(p).slice(1, p.size()))) {
    for (pid_t t : host.gdbThreads()) {
      if (t == *tid) {
        send("OK");
        return;
      }
    }
  }
  send("E01");
}

namespace {

bool fetchRegs(pid_t tid, x86_64::GdbRegs& regs) {
  return ptrace::getRegs(tid, regs.gp) && ptrace::getFpRegs(tid, regs.fp);
}

void storeRegs(pid_t tid, const x86_64::GdbRegs& regs) {
  ptrace::setRegs(tid, regs.gp);
  ptrace::setFpRegs(tid, regs.fp);
}

}  // namespace

void GdbServer::readRegisters(kj::StringPtr) {
  x86_64::GdbRegs regs;
  if (state != State::STOPPED || !fetchRegs(focus(generalThread), regs)) {
    send("E01");
    return;
  }
  kj::Vector<kj::String> parts;
  for (size_t n = 0; n < x86_64::gdbRegisterCount(); ++n) {
    parts.add(toHex(x86_64::gdbReadRegister(regs, n)));
  }
  send(kj::strArray(parts, ""));
}

void GdbServer::writeRegisters(kj::StringPtr p) {
  pid_t tid = focus(generalThread);
  x86_64::GdbRegs regs;
  if (state != State::STOPPED || !fetchRegs(tid, regs)) {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(bytes, gdb::fromHex(fieldChars(p).slice(1, p.size()))) {
    size_t at = 0;
    for (size_t n = 0; n < x86_64::gdbRegisterCount() && at < bytes->size(); ++n) {
      size_t size = x86_64::gdbRegisterSize(n);
      if (at + size > bytes->size()) {
        send("E01");
        return;
      }
      x86_64::gdbWriteRegister(regs, n, bytes->slice(at, at + size));
      at += size;
    }
    storeRegs(tid, regs);
    send("OK");
    return;
  }
  send("E01");
}

void GdbServer::readRegister(kj::StringPtr p) {
  x86_64::GdbRegs regs;
  KJ_IF_MAYBE(n, gdb::parseHex(fieldChars(p).slice(1, p.size()))) {
    if (*n < x86_64::gdbRegisterCount() && state == State::STOPPED &&
        fetchRegs(focus(generalThread), regs)) {
      send(toHex(x86_64::gdbReadRegister(regs, *n)));
      return;
    }
  }
  send("E01");
}

// P N=VALUE
void GdbServer::writeRegister(kj::StringPtr p) {
  auto eq = p.findFirst('=');
  if (eq == nullptr || state != State::STOPPED) {
    send("E01");
    return;
  }
  size_t at = KJ_ASSERT_NONNULL(eq);
  pid_t tid = focus(generalThread);
  x86_64::GdbRegs regs;
  KJ_IF_MAYBE(n, gdb::parseHex(fieldChars(p).slice(1, at))) {
    KJ_IF_MAYBE(value, gdb::fromHex(fieldChars(p).slice(at + 1, p.size()))) {
      if (fetchRegs(tid, regs) && x86_64::gdbWriteRegister(regs, *n, *value)) {
        storeRegs(tid, regs);
        send("OK");
        return;
      }
    }
  }
  send("E01");
}

namespace {

// "ADDR,LEN" of m/M/X; false when malformed.
bool parseRange(kj::ArrayPtr<const char> text, uint64_t& addr, uint64_t& len) {
  auto f = gdb::splitFields(text, ',');
  if (f.size() != 2) {
    return false;
  }
  KJ_IF_MAYBE(a, gdb::parseHex(f[0])) {
    KJ_IF_MAYBE(l, gdb::parseHex(f[1])) {
      addr = *a;
      len = *l;
      return true;
    }
  }
  return false;
}

}  // namespace

void GdbServer::readMemory(kj::StringPtr p) {
  uint64_t addr, len;
  if (!parseRange(fieldChars(p).slice(1, p.size()), addr, len)) {
    send("E01");
    return;
  }
  auto buf = kj::heapArray<kj::byte>(std::min(len, MAX_MEMORY_READ));
  int64_t n = ptrace::readMemory(focus(generalThread), addr, buf);
  if (n <= 0 && buf.size() > 0) {
    send("E14");  // EFAULT
    return;
  }
  send(toHex(buf.slice(0, n < 0 ? 0 : static_cast<size_t>(n))));
}

// M ADDR,LEN:HEX and X ADDR,LEN:BINARY: gdb's breakpoints (int3) come this way too.
void GdbServer::writeMemoryHex(kj::StringPtr p) {
  auto colon = p.findFirst(':');
  uint64_t addr, len;
  if (colon == nullptr ||
      !parseRange(fieldChars(p).slice(1, KJ_ASSERT_NONNULL(colon)), addr, len)) {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(data, gdb::fromHex(fieldChars(p).slice(KJ_ASSERT_NONNULL(colon) + 1, p.size()))) {
    if (data->size() == len && writeMemory(addr, *data)) {
      send("OK");
      return;
    }
  }
  send("E14");
}

void GdbServer::writeMemoryBinary(kj::StringPtr p) {
  auto colon = p.findFirst(':');
  uint64_t addr, len;
  if (colon == nullptr ||
      !parseRange(fieldChars(p).slice(1, KJ_ASSERT_NONNULL(colon)), addr, len)) {
    send("E01");
    return;
  }
  auto field = fieldChars(p).slice(KJ_ASSERT_NONNULL(colon) + 1, p.size());
  KJ_IF_MAYBE(data, gdb::unescapeBinary(field)) {
    if (data->size() == len && writeMemory(addr, *data)) {
      send("OK");
      return;
    }
  }
  send("E14");
}

// Writes the program's memory for gdb, noting its int3s (a one-byte 0xcc write) and their
// removal, so that a forked child can be given back the original bytes (onFork).
bool GdbServer::writeMemory(uint64_t addr, kj::ArrayPtr<const kj::byte> data) {
  if (data.size() == 0) {
    return true;
  }
  pid_t tid = focus(generalThread);
  if (data.size() == 1 && data[0] == x86_64::INT3 && breakpoints.count(addr) == 0) {
    kj::byte original = 0;
    if (ptrace::readMemory(tid, addr, kj::arrayPtr(&original, 1)) == 1) {
      breakpoints[addr] = original;
    }
  } else {
    for (size_t i = 0; i < data.size(); ++i) {
      auto it = breakpoints.find(addr + i);
      if (it != breakpoints.end() && data[i] != x86_64::INT3) {
        breakpoints.erase(it);
      }
    }
  }
  return ptrace::writeMemory(tid, addr, data) == int64_t(data.size());
}

void GdbServer::onFork(pid_t parentTgid, pid_t child) {
  if (parentTgid != pid) {
    return;
  }
  for (auto& [addr, original] : breakpoints) {
    ptrace::writeMemory(child, addr, kj::arrayPtr(&original, 1));
  }
}

void GdbServer::vContQuery(kj::StringPtr) { send("vCont;c;C;s;S"); }

// vCont;ACTION[:TID];ACTION[:TID]... with ACTION c, s, Cxx or Sxx.
void GdbServer::vCont(kj::StringPtr p) {
  auto fields = gdb::splitFields(fieldChars(p), ';');
  kj::Vector<Action> actions;
  for (size_t i = 1; i < fields.size(); ++i) {
    auto f = fields[i];
    if (f.size() == 0) {
      send("E01");
      return;
    }
    auto parts = gdb::splitFields(f, ':');
    auto act = parts[0];
    Action a{0, 0, -1};
    if ((act[0] == 'c' || act[0] == 's') && act.size() == 1) {
      a.kind = act[0];
    } else if ((act[0] == 'C' || act[0] == 'S') && act.size() > 1) {
      a.kind = static_cast<char>(act[0] - 'A' + 'a');
      KJ_IF_MAYBE(sig, gdb::parseHex(act.slice(1, act.size()))) {
        a.sig = gdb::fromGdbSignal(static_cast<int>(*sig));
      } else {
        send("E01");
        return;
      }
    } else {
      send("E01");  // t, r: not offered by vCont?
      return;
    }
    if (parts.size() == 2) {
      KJ_IF_MAYBE(tid, gdb::parseThreadId(parts[1])) {
        a.tid = *tid;
      } else {
        send("E01");
        return;
      }
    } else if (parts.size() > 2) {
      send("E01");
      return;
    }
    actions.add(a);
  }
  if (actions.empty() || state != State::STOPPED) {
    send("E01");
    return;
  }
  resume(actions);
}

// c [ADDR], s [ADDR], C SIG[;ADDR], S SIG[;ADDR]: the Hc thread (s: only it).
void GdbServer::legacyResume(kj::StringPtr p) {
  if (state != State::STOPPED) {
    send("E01");
    return;
  }
  char kind = p[0] == 'c' || p[0] == 'C' ? 'c' : 's';
  int sig = 0;
  if (p[0] == 'C' || p[0] == 'S') {
    auto end = p.findFirst(';').orDefault(p.size());
    KJ_IF_MAYBE(s, gdb::parseHex(fieldChars(p).slice(1, end))) {
      sig = gdb::fromGdbSignal(static_cast<int>(*s));
    } else {
      send("E01");
      return;
    }
  }
  pid_t tid = focus(continueThread > 0 ? continueThread : lastStop.tid);
  Action own{kind, sig, tid};
  if (kind == 's') {
    resume(kj::arrayPtr(&own, 1));
    return;
  }
  Action both[2] = {own, Action{'c', 0, -1}};
  resume(both);
}

// Z TYPE,ADDR,KIND: 1 hardware breakpoint, 2 write watchpoint, 4 access watchpoint. 0 (software
// breakpoints) and 3 (read watchpoints, which x86 cannot tell from access) are left to gdb.
void GdbServer::insertPoint(kj::StringPtr p) {
  auto f = gdb::splitFields(fieldChars(p).slice(1, p.size()), ',');
  if (f.size() < 3 || f[0].size() != 1) {
    send("E01");
    return;
  }
  char type = f[0][0];
  if (type != '1' && type != '2' && type != '4') {
    send("");
    return;
  }
  uint64_t addr = 0, len = 0;
  KJ_IF_MAYBE(a, gdb::parseHex(f[1])) {
    addr = *a;
  } else {
    send("E01");
    return;
  }
  KJ_IF_MAYBE(l, gdb::parseHex(f[2])) {
    len = type == '1' ? 1 : *l;
  } else {
    send("E01");
    return;
  }
  if ((len != 1 && len != 2 && len != 4 && len != 8) || addr % len != 0) {
    send("E01");  // gdb then says it cannot set the watchpoint in hardware.
    return;
  }
  for (auto& w : watches) {
    if (!w.used) {
      w = Watch{true, addr, static_cast<int>(len), type};
      if (setAllDebugRegs()) {
        send("OK");
        return;
      }
      w = Watch{};
      setAllDebugRegs();
      send("E01");
      return;
    }
  }
  send("E01");  // All four debug registers are in use.
}

void GdbServer::removePoint(kj::StringPtr p) {
  auto f = gdb::splitFields(fieldChars(p).slice(1, p.size()), ',');
  if (f.size() < 3 || f[0].size() != 1) {
    send("E01");
    return;
  }
  char type = f[0][0];
  if (type != '1' && type != '2' && type != '4') {
    send("");
    return;
  }
  KJ_IF_MAYBE(a, gdb::parseHex(f[1])) {
    for (auto& w : watches) {
      if (w.used && w.type == type && w.addr == *a) {
        w = Watch{};
        setAllDebugRegs();
        send("OK");
        return;
      }
    }
  }
  send("E01");
}

void GdbServer::kill(kj::StringPtr) {
  ::kill(pid, SIGKILL);  // No reply (the protocol's k has none); the exit follows.
}

void GdbServer::vKill(kj::StringPtr) {
  ::kill(pid, SIGKILL);
  send("OK");
}

// D or D;PID: gdb lets go; the program runs on under sbrun, still redirected.
void GdbServer::detach(kj::StringPtr) {
  send("OK");
  dropClient("gdb detached");
}

}  // namespace sb
