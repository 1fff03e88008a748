// A classic-BPF interpreter for seccomp programs, for the tests only (it used to ship inside
// sbrun's library): runs `program` over `data` in user space and returns its SECCOMP_RET_*
// value. Supports the instructions libseccomp emits.

#pragma once

#include <kj/array.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>

namespace sb::test {

uint32_t evaluateFilter(kj::ArrayPtr<const sock_filter> program, const seccomp_data& data);

}  // namespace sb::test
