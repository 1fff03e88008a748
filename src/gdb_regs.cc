#include "gdb_regs.h"

#include <string.h>

#include <kj/debug.h>
#include <kj/vector.h>

namespace sb::x86_64 {

namespace {

// Where a gdb register lives in GdbRegs.
enum class GdbSource : uint8_t {
  GP,    // a user_regs_struct field at `offset` (its low `bits`)
  FP,    // bytes of user_fpregs_struct at `offset`
  FTAG,  // the x87 tag word: gdb's full one from the FXSAVE abridged one
  FIOFF, // low / high halves of the 64-bit FPU instruction and operand pointers
  FISEG,
  FOOFF,
  FOSEG,
};

enum class GdbFeature : uint8_t { CORE, SSE, LINUX, SEGMENTS };

struct GdbRegRow {
  const char* name;
  uint16_t bits;
  const char* type;
  const char* group;  // "" for the default
  GdbFeature feature;
  GdbSource source;
  uint16_t offset;
};

#define GP(field) GdbSource::GP, static_cast<uint16_t>(offsetof(user_regs_struct, field))
#define FPAT(field, add) \
  GdbSource::FP, static_cast<uint16_t>(offsetof(user_fpregs_struct, field) + (add))

// In gdb's amd64 order: the `g` packet and the regnums of target.xml follow this table.
const GdbRegRow GDB_ROWS[] = {
    {"rax", 64, "int64", "", GdbFeature::CORE, GP(rax)},
    {"rbx", 64, "int64", "", GdbFeature::CORE, GP(rbx)},
    {"rcx", 64, "int64", "", GdbFeature::CORE, GP(rcx)},
    {"rdx", 64, "int64", "", GdbFeature::CORE, GP(rdx)},
    {"rsi", 64, "int64", "", GdbFeature::CORE, GP(rsi)},
    {"rdi", 64, "int64", "", GdbFeature::CORE, GP(rdi)},
    {"rbp", 64, "data_ptr", "", GdbFeature::CORE, GP(rbp)},
    {"rsp", 64, "data_ptr", "", GdbFeature::CORE, GP(rsp)},
    {"r8", 64, "int64", "", GdbFeature::CORE, GP(r8)},
    {"r9", 64, "int64", "", GdbFeature::CORE, GP(r9)},
    {"r10", 64, "int64", "", GdbFeature::CORE, GP(r10)},
    {"r11", 64, "int64", "", GdbFeature::CORE, GP(r11)},
    {"r12", 64, "int64", "", GdbFeature::CORE, GP(r12)},
    {"r13", 64, "int64", "", GdbFeature::CORE, GP(r13)},
    {"r14", 64, "int64", "", GdbFeature::CORE, GP(r14)},
    {"r15", 64, "int64", "", GdbFeature::CORE, GP(r15)},
    {"rip", 64, "code_ptr", "", GdbFeature::CORE, GP(rip)},
    {"eflags", 32, "i386_eflags", "", GdbFeature::CORE, GP(eflags)},
    {"cs", 32, "int32", "", GdbFeature::CORE, GP(cs)},
    {"ss", 32, "int32", "", GdbFeature::CORE, GP(ss)},
    {"ds", 32, "int32", "", GdbFeature::CORE, GP(ds)},
    {"es", 32, "int32", "", GdbFeature::CORE, GP(es)},
    {"fs", 32, "int32", "", GdbFeature::CORE, GP(fs)},
    {"gs", 32, "int32", "", GdbFeature::CORE, GP(gs)},
    {"st0", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 0)},
    {"st1", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 16)},
    {"st2", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 32)},
    {"st3", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 48)},
    {"st4", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 64)},
    {"st5", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 80)},
    {"st6", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 96)},
    {"st7", 80, "i387_ext", "", GdbFeature::CORE, FPAT(st_space, 112)},
    {"fctrl", 32, "int", "float", GdbFeature::CORE, FPAT(cwd, 0)},
    {"fstat", 32, "int", "float", GdbFeature::CORE, FPAT(swd, 0)},
    {"ftag", 32, "int", "float", GdbFeature::CORE, GdbSource::FTAG, 0},
    {"fiseg", 32, "int", "float", GdbFeature::CORE, GdbSource::FISEG, 0},
    {"fioff", 32, "int", "float", GdbFeature::CORE, GdbSource::FIOFF, 0},
    {"foseg", 32, "int", "float", GdbFeature::CORE, GdbSource::FOSEG, 0},
    {"fooff", 32, "int", "float", GdbFeature::CORE, GdbSource::FOOFF, 0},
    {"fop", 32, "int", "float", GdbFeature::CORE, FPAT(fop, 0)},
    {"xmm0", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 0)},
    {"xmm1", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 16)},
    {"xmm2", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 32)},
    {"xmm3", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 48)},
    {"xmm4", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 64)},
    {"xmm5", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 80)},
    {"xmm6", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 96)},
    {"xmm7", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 112)},
    {"xmm8", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 128)},
    {"xmm9", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 144)},
    {"xmm10", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 160)},
    {"xmm11", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 176)},
    {"xmm12", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 192)},
    {"xmm13", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 208)},
    {"xmm14", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 224)},
    {"xmm15", 128, "vec128", "", GdbFeature::SSE, FPAT(xmm_space, 240)},
    {"mxcsr", 32, "int", "vector", GdbFeature::SSE, FPAT(mxcsr, 0)},
    {"orig_rax", 64, "int", "system", GdbFeature::LINUX, GP(orig_rax)},
    {"fs_base", 64, "int", "", GdbFeature::SEGMENTS, GP(fs_base)},
    {"gs_base", 64, "int", "", GdbFeature::SEGMENTS, GP(gs_base)},
};

#undef GP
#undef FPAT

static_assert(kj::size(GDB_ROWS) == 60, "register numbers are part of the protocol");

const char* gdbFeatureName(GdbFeature f) {
  switch (f) {
    case GdbFeature::CORE: return "org.gnu.gdb.i386.core";
    case GdbFeature::SSE: return "org.gnu.gdb.i386.sse";
    case GdbFeature::LINUX: return "org.gnu.gdb.i386.linux";
    case GdbFeature::SEGMENTS: return "org.gnu.gdb.i386.segments";
  }
  return "";
}

// The types the rows name that gdb does not predefine.
constexpr const char GDB_CORE_TYPES[] = R"(    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/> <field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/> <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/> <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/> <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/> <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/> <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/> <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/> <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
)";
constexpr const char GDB_SSE_TYPES[] = R"(    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v4_float" type="v4f"/> <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/> <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/> <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
)";

kj::String buildGdbXml() {
  kj::Vector<kj::String> parts;
  parts.add(kj::str("<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
                    "<target>\n  <architecture>i386:x86-64</architecture>\n"
                    "  <osabi>GNU/Linux</osabi>\n"));
  GdbFeature open = GdbFeature::CORE;
  bool any = false;
  for (size_t n = 0; n < kj::size(GDB_ROWS); ++n) {
    auto& row = GDB_ROWS[n];
    if (!any || row.feature != open) {
      if (any) {
        parts.add(kj::str("  </feature>\n"));
      }
      parts.add(kj::str("  <feature name=\"", gdbFeatureName(row.feature), "\">\n"));
      if (row.feature == GdbFeature::CORE) {
        parts.add(kj::str(GDB_CORE_TYPES));
      } else if (row.feature == GdbFeature::SSE) {
        parts.add(kj::str(GDB_SSE_TYPES));
      }
      open = row.feature;
      any = true;
    }
    parts.add(kj::str("    <reg name=\"", row.name, "\" bitsize=\"", row.bits, "\" type=\"",
                      row.type, "\" regnum=\"", n, "\"",
                      *row.group ? kj::str(" group=\"", row.group, "\"") : kj::str(""), "/>\n"));
  }
  parts.add(kj::str("  </feature>\n</target>\n"));
  return kj::strArray(parts, "");
}

// The full x87 tag word (2 bits a register: 0 valid, 1 zero, 2 special, 3 empty) from FXSAVE's
// abridged one (1 bit a register: in use or empty). In-use registers are reported "valid",
// which is what gdb shows for them unless it decodes the value itself.
uint32_t x87FullTag(uint16_t abridged) {
  uint32_t tag = 0;
  for (int i = 0; i < 8; ++i) {
    uint32_t t = (abridged & (1u << i)) ? 0 : 3;
    tag |= t << (2 * i);
  }
  return tag;
}

uint16_t x87AbridgedTag(uint32_t full) {
  uint16_t tag = 0;
  for (int i = 0; i < 8; ++i) {
    if (((full >> (2 * i)) & 3) != 3) {
      tag = static_cast<uint16_t>(tag | (1u << i));
    }
  }
  return tag;
}

}  // namespace

kj::StringPtr gdbTargetXml() {
  static const kj::String xml = buildGdbXml();
  return xml;
}

size_t gdbRegisterCount() { return kj::size(GDB_ROWS); }

size_t gdbRegisterSize(size_t n) { return n < kj::size(GDB_ROWS) ? GDB_ROWS[n].bits / 8 : 0; }

kj::Array<kj::byte> gdbReadRegister(const GdbRegs& regs, size_t n) {
  if (n >= kj::size(GDB_ROWS)) {
    return nullptr;
  }
  auto& row = GDB_ROWS[n];
  auto out = kj::heapArray<kj::byte>(row.bits / 8);
  uint64_t value = 0;
  auto fp = reinterpret_cast<const kj::byte*>(&regs.fp);
  switch (row.source) {
    case GdbSource::GP:
      memcpy(&value, reinterpret_cast<const kj::byte*>(&regs.gp) + row.offset, 8);
      memcpy(out.begin(), &value, out.size());
      return out;
    case GdbSource::FP: {
      // The 16-bit x87 control fields are widened to gdb's 32.
      size_t have = row.bits == 32 &&
                            (row.offset == offsetof(user_fpregs_struct, cwd) ||
                             row.offset == offsetof(user_fpregs_struct, swd) ||
                             row.offset == offsetof(user_fpregs_struct, fop))
                        ? 2
                        : out.size();
      memset(out.begin(), 0, out.size());
      memcpy(out.begin(), fp + row.offset, have);
      if (row.offset == offsetof(user_fpregs_struct, fop)) {
        out[1] &= 0x07;  // fop is 11 bits
      }
      return out;
    }
    case GdbSource::FTAG: value = x87FullTag(regs.fp.ftw); break;
    case GdbSource::FIOFF: value = regs.fp.rip & 0xffffffff; break;
    case GdbSource::FISEG: value = regs.fp.rip >> 32; break;
    case GdbSource::FOOFF: value = regs.fp.rdp & 0xffffffff; break;
    case GdbSource::FOSEG: value = regs.fp.rdp >> 32; break;
  }
  memcpy(out.begin(), &value, out.size());
  return out;
}

bool gdbWriteRegister(GdbRegs& regs, size_t n, kj::ArrayPtr<const kj::byte> value) {
  if (n >= kj::size(GDB_ROWS) || value.size() != GDB_ROWS[n].bits / 8u) {
    return false;
  }
  auto& row = GDB_ROWS[n];
  uint64_t v = 0;
  if (value.size() <= 8) {
    memcpy(&v, value.begin(), value.size());
  }
  auto fp = reinterpret_cast<kj::byte*>(&regs.fp);
  switch (row.source) {
    case GdbSource::GP: {
      // A 32-bit view (eflags, segments) replaces the whole field: the upper half is zero.
      memcpy(reinterpret_cast<kj::byte*>(&regs.gp) + row.offset, &v, 8);
      return true;
    }
    case GdbSource::FP: {
      bool narrow = row.bits == 32 && (row.offset == offsetof(user_fpregs_struct, cwd) ||
                                       row.offset == offsetof(user_fpregs_struct, swd) ||
                                       row.offset == offsetof(user_fpregs_struct, fop));
      memcpy(fp + row.offset, value.begin(), narrow ? 2 : value.size());
      return true;
    }
    case GdbSource::FTAG:
      regs.fp.ftw = x87AbridgedTag(static_cast<uint32_t>(v));
      return true;
    // The 64-bit FPU instruction and operand pointers, as gdb's two 32-bit halves each.
    case GdbSource::FIOFF:
      regs.fp.rip = (regs.fp.rip & ~0xffffffffull) | (v & 0xffffffff);
      return true;
    case GdbSource::FISEG:
      regs.fp.rip = (regs.fp.rip & 0xffffffff) | (v << 32);
      return true;
    case GdbSource::FOOFF:
      regs.fp.rdp = (regs.fp.rdp & ~0xffffffffull) | (v & 0xffffffff);
      return true;
    case GdbSource::FOSEG:
      regs.fp.rdp = (regs.fp.rdp & 0xffffffff) | (v << 32);
      return true;
  }
  return false;
}

uint64_t dr7With(uint64_t dr7, int slot, DebugKind kind, int len) {
  KJ_REQUIRE(slot >= 0 && slot < 4, "debug register slot out of range", slot);
  uint64_t rw = kind == DebugKind::EXECUTE ? 0 : kind == DebugKind::WRITE ? 1 : 3;
  // LEN: 00 one byte, 01 two, 11 four, 10 eight.
  uint64_t lenBits = len == 1 ? 0 : len == 2 ? 1 : len == 4 ? 3 : 2;
  if (kind == DebugKind::EXECUTE) {
    lenBits = 0;
  }
  dr7 = dr7Without(dr7, slot);
  dr7 |= uint64_t(1) << (2 * slot);                       // Ln: enabled for this task
  dr7 |= (rw | (lenBits << 2)) << (16 + 4 * slot);        // RWn, LENn
  return dr7;
}

uint64_t dr7Without(uint64_t dr7, int slot) {
  dr7 &= ~(uint64_t(3) << (2 * slot));
  dr7 &= ~(uint64_t(0xf) << (16 + 4 * slot));
  return dr7;
}

}  // namespace sb::x86_64
