#include "bpf_eval.h"

#include <string.h>

#include <kj/debug.h>

namespace sb::test {

uint32_t evaluateFilter(kj::ArrayPtr<const sock_filter> program, const seccomp_data& data) {
  uint32_t a = 0, x = 0;
  uint32_t mem[BPF_MEMWORDS] = {};
  const auto* bytes = reinterpret_cast<const kj::byte*>(&data);
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& in = program[pc];
    uint32_t operand = BPF_SRC(in.code) == BPF_X ? x : in.k;
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
        if (BPF_MODE(in.code) == BPF_ABS) {
          KJ_REQUIRE(in.k + 4 <= sizeof(data), "load out of seccomp_data", in.k);
          memcpy(&a, bytes + in.k, 4);
        } else if (BPF_MODE(in.code) == BPF_IMM) {
          a = in.k;
        } else if (BPF_MODE(in.code) == BPF_MEM) {
          a = mem[in.k % BPF_MEMWORDS];
        } else {
          KJ_FAIL_REQUIRE("unsupported BPF load", in.code);
        }
        break;
      case BPF_LDX:
        x = BPF_MODE(in.code) == BPF_MEM ? mem[in.k % BPF_MEMWORDS] : in.k;
        break;
      case BPF_ST:
        mem[in.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        mem[in.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU:
        switch (BPF_OP(in.code)) {
          case BPF_ADD: a += operand; break;
          case BPF_SUB: a -= operand; break;
          case BPF_AND: a &= operand; break;
          case BPF_OR: a |= operand; break;
          case BPF_LSH: a <<= operand; break;
          case BPF_RSH: a >>= operand; break;
          default: KJ_FAIL_REQUIRE("unsupported BPF alu op", in.code);
        }
        break;
      case BPF_JMP: {
        bool taken;
        switch (BPF_OP(in.code)) {
          case BPF_JA: pc += in.k; continue;
          case BPF_JEQ: taken = a == operand; break;
          case BPF_JGT: taken = a > operand; break;
          case BPF_JGE: taken = a >= operand; break;
          case BPF_JSET: taken = (a & operand) != 0; break;
          default: KJ_FAIL_REQUIRE("unsupported BPF jump", in.code);
        }
        pc += taken ? in.jt : in.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(in.code) == BPF_A ? a : in.k;
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX) {
          x = a;
        } else {
          a = x;
        }
        break;
      default:
        KJ_FAIL_REQUIRE("unsupported BPF class", in.code);
    }
  }
  KJ_FAIL_REQUIRE("BPF program fell off its end");
}

}  // namespace sb::test
