#include "observer.h"

#include <sys/syscall.h>

#include <algorithm>
#include <fmt/core.h>
#include <kj/vector.h>
#include <vector>

#include "errno_names.h"

namespace sb {

TraceWriter::~TraceWriter() noexcept(false) {
  if (owned) {
    fclose(out);
  } else {
    fflush(out);
  }
}

void TraceWriter::onCall(const CallRecord& call) {
  if (!call.remote && !showLocal && !call.injected && (!explain || call.why.size() == 0)) {
    // Without -e trace=, the trace is of what went to a target (with -v, also path calls that
    // stayed here, and why); --stats counts the rest.
    return;
  }
  auto name = syscallName(call.nr);
  kj::String result = call.resultKnown ? formatCallResult(call.nr, call.result) : kj::str("?");
  kj::StringPtr mark = call.injected ? " (INJECTED)" : call.delayed ? " (DELAYED)" : "";
  kj::String time = showTime ? kj::str(fmt::format(" <{:.6f}>", call.micros / 1e6).c_str())
                             : kj::str();
  kj::String where = !call.performed ? kj::str("not run")
                     : call.remote ? kj::str(call.where, call.cached ? " cached " : " ",
                                             call.micros, "us")
                                   : kj::str("local");
  // fputs, not fmt::print: a trace whose reader went away (| head) must not throw out of a
  // syscall stop and leave the thread stopped.
  auto line = fmt::format("[pid {}] {}({}) = {}{}{}{} <{}>{}{}{}\n", call.tid, name.cStr(),
                          call.args.cStr(), result.cStr(), call.resultNote.cStr(), mark.cStr(),
                          time.cStr(),
                          where.cStr(), call.why.size() > 0 ? " (" : "", call.why.cStr(),
                          call.why.size() > 0 ? ")" : "");
  fputs(line.c_str(), out);
  fflush(out);
}

void TraceWriter::onRemoteStart(const RemoteStart& start) {
  kj::Vector<kj::String> args;
  for (auto& a : start.argv) {
    args.add(quoteBytes(a.asBytes(), a.size()));
  }
  fmt::print(out, "[pid {}] started on {}: [{}] = pid {} <{} {}us> ({})\n", start.tid,
             start.where.cStr(), kj::strArray(args, ", ").cStr(), start.remotePid,
             start.where.cStr(), start.micros, start.why.cStr());
  fflush(out);
}

StatsCollector::~StatsCollector() noexcept(false) {
  if (owned) {
    fclose(out);
  }
}

void StatsCollector::onCall(const CallRecord& call) {
  Side side = !call.performed ? NOT_RUN : call.cached ? CACHED : call.remote ? REMOTE : LOCAL;
  Key key{call.nr, side, call.remote ? std::string(call.where.cStr()) : std::string()};
  auto& row = rows[key];
  ++row.calls;
  if (call.resultKnown && call.result < 0) {
    ++row.errors;
  }
  if (call.injected || call.delayed) {
    ++row.injected;
  }
  // The calls whose result counts bytes moved.
  static const int DATA[] = {SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_readv,
                             SYS_writev, SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2,
                             SYS_sendfile, SYS_copy_file_range};
  if (call.resultKnown && call.result > 0 && call.performed &&
      std::find(std::begin(DATA), std::end(DATA), call.nr) != std::end(DATA)) {
    row.bytes += call.result;
  }
  row.micros += call.micros;
}

void StatsCollector::finish() {
  uint64_t totalMicros = 0, totalCalls = 0, totalErrors = 0, totalInjected = 0;
  for (auto& [key, row] : rows) {
    totalMicros += row.micros;
    totalCalls += row.calls;
    totalErrors += row.errors;
    totalInjected += row.injected;
  }
  std::vector<std::pair<Key, Row>> sorted(rows.begin(), rows.end());
  // -S, as strace: most time (default), most calls, most errors, by name, or as first seen
  // (here: by syscall number, the table's order).
  auto nameOf = [](const Key& k) { return std::string(syscallName(k.nr).cStr()); };
  std::stable_sort(sorted.begin(), sorted.end(), [&](auto& a, auto& b) {
    switch (sort) {
      case StatsSort::TIME:
        return a.second.micros != b.second.micros ? a.second.micros > b.second.micros
                                                  : a.second.calls > b.second.calls;
      case StatsSort::CALLS: return a.second.calls > b.second.calls;
      case StatsSort::ERRORS: return a.second.errors > b.second.errors;
      case StatsSort::NAME: return nameOf(a.first) < nameOf(b.first);
      case StatsSort::NOTHING: return false;
    }
    return false;
  });
  static const char* const SIDE[] = {"local", "remote", "cached", "not run"};
  auto whereText = [](const Key& k) {
    return k.side == REMOTE ? k.target : k.side == CACHED ? k.target + " cached"
                                                          : std::string(SIDE[k.side]);
  };
  if (json) {
    fmt::print(out, "{{\"syscalls\": [");
    bool first = true;
    for (auto& [key, row] : sorted) {
      fmt::print(out, "{}\n  {{\"name\": \"{}\", \"where\": \"{}\", \"target\": \"{}\", "
                 "\"calls\": {}, \"errors\": {}, \"injected\": {}, \"bytes\": {}, "
                 "\"seconds\": {:.6f}}}",
                 first ? "" : ",", syscallName(key.nr).cStr(), SIDE[key.side], key.target,
                 row.calls, row.errors, row.injected, row.bytes, row.micros / 1e6);
      first = false;
    }
    fmt::print(out, "\n], \"calls\": {}, \"errors\": {}, \"injected\": {}, "
               "\"seconds\": {:.6f}}}\n", totalCalls, totalErrors, totalInjected,
               totalMicros / 1e6);
  } else {
    fmt::print(out, "% time     seconds  usecs/call     calls    errors  injected       bytes "
                    "syscall              where\n");
    fmt::print(out, "------ ----------- ----------- --------- --------- --------- ----------- "
                    "-------------------- ------\n");
    for (auto& [key, row] : sorted) {
      fmt::print(out, "{:6.2f} {:11.6f} {:11} {:9} {:>9} {:>9} {:11} {:<20} {}\n",
                 totalMicros ? 100.0 * row.micros / totalMicros : 0.0, row.micros / 1e6,
                 row.calls ? row.micros / row.calls : 0, row.calls,
                 row.errors ? kj::str(row.errors).cStr() : "",
                 row.injected ? kj::str(row.injected).cStr() : "", row.bytes,
                 syscallName(key.nr).cStr(), whereText(key));
    }
    fmt::print(out, "------ ----------- ----------- --------- --------- --------- ----------- "
                    "-------------------- ------\n");
    fmt::print(out, "100.00 {:11.6f} {:11} {:9} {:>9} {:>9} {:>11} {}\n", totalMicros / 1e6,
               totalCalls ? totalMicros / totalCalls : 0, totalCalls, totalErrors,
               totalInjected ? kj::str(totalInjected).cStr() : "", "", "total");
  }
  fflush(out);
}

}  // namespace sb
