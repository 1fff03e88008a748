// sbrun's command line: parsed into Options, with --help text and exit code 125 for bad input.

#pragma once

#include <sys/types.h>

#include <kj/string.h>
#include <kj/vector.h>
#include <utility>

#include <kj/time.h>

#include "deploy.h"
#include "link_fault.h"
#include "exec_rules.h"
#include "path_rules.h"
#include "gdb_server.h"
#include "inject_spec.h"
#include "syscall_set.h"
#include "target_url.h"
#include "tls_setup.h"

namespace sb {

// What a program sees while a target is away (docs/failure-semantics.md).
enum class OnDisconnect {
  FAIL,  // calls fail at once: EIO, ETIMEDOUT once the outage is older than the timeout
  WAIT,  // calls wait (interruptibly) for the target to come back, up to the timeout
  EXIT,  // the program is killed at once and sbrun exits EXIT_TARGET_LOST
};

// Losing and regaining a target (tracer/agent_link.h runs it).
struct ReconnectOptions {
  OnDisconnect mode = OnDisconnect::FAIL;      // --on-disconnect
  kj::Duration timeout = 300 * kj::SECONDS;    // --reconnect-timeout: a reboot fits
  kj::Duration heartbeat = 5 * kj::SECONDS;    // --heartbeat: a silent peer is found in this
                                               // time; 0 turns heartbeats off
};

// Exit codes of sbrun's own failures, as env(1), timeout(1) and docker use them.
// A target was lost during the run: the program was ended for it (--on-disconnect=exit), or it
// exited 0 after an outage in fail mode, so that a test that ran while B was gone never passes.
constexpr int EXIT_TARGET_LOST = 122;
constexpr int EXIT_SBRUN_ERROR = 125;
constexpr int EXIT_CANNOT_EXECUTE = 126;
constexpr int EXIT_NOT_FOUND = 127;

// strace's -S: the order of the --stats table.
enum class StatsSort { TIME, CALLS, ERRORS, NAME, NOTHING };

// What strace's options ask of the trace and the stats (tracer/observer.h, trace_format.h).
struct TraceOptions {
  kj::Maybe<SyscallSet> set;        // -e trace=SET / --trace=SET: null = every remote call
  kj::Vector<kj::String> paths;     // -P PATH: only calls that touch one of them
  size_t stringLimit = 32;          // -s N
  bool time = false;                // -T
  int decodeFds = 0;                // -y (1), -yy (2)
};

struct Options {
  kj::Vector<TargetUrl> targets;  // Named: "NAME=" or target1, target2...
  kj::String tokenFile;
  DeployOptions deploy;           // --deploy, --agent-dir: ssh:// targets without a path
  TlsFiles tls;                   // --tls-cert/--tls-key/--tls-ca: for every tcp:// target
  bool startRemote = true;        // --mode remote|local
  kj::Vector<std::pair<Placement, kj::String>> userRules;
  bool printRules = false;
  SpawnPolicy spawn = SpawnPolicy::CHAIN;  // --spawn: where execs into remote paths run
  kj::Vector<std::pair<ExecSide, kj::String>> execRules;  // --exec-here/--exec-there, in order
  kj::String remoteCwd;           // "" = same as local cwd when it exists there, else root
  int verbose = 0;
  kj::Maybe<kj::String> traceFile;  // --trace, -o FILE, -e trace=...: "" is stderr
  kj::Maybe<kj::String> statsFile;  // --stats[=FILE], -c: "" is stderr
  bool statsJson = false;           // --stats-format=json
  StatsSort statsSort = StatsSort::TIME;  // -S
  TraceOptions traceOptions;        // strace's filters and formats (-e trace=, -P, -s, -T, -y)
  kj::Vector<InjectRule> injects;   // -e inject=, -e fault=
  bool readAhead = true;            // --no-read-ahead turns it off
  uint64_t readChunk = 0;           // --read-chunk=KIB, in bytes: pipelined big reads (0: off)
  pid_t attachPid = -1;             // --pid PID: attach instead of launching
  int controlFd = -1;               // --control-fd N: scope commands from a harness
  int statusFd = -1;                // --status-fd M: where their answers go
  ReconnectOptions reconnect;
  kj::Maybe<GdbAddress> gdb;        // --gdb=[HOST:]PORT or unix:PATH: serve gdb's protocol
  kj::Vector<LinkFault> linkFaults;  // --link-fault SPEC, in order
  kj::Maybe<kj::String> recordFile; // --record FILE: every answer of the targets (recorder.h)
  kj::Maybe<kj::String> replayFile; // --replay FILE: the targets played back (replayer.h)
  kj::Vector<kj::String> command;
};

// What the configuration files may fill in (options_config.cc): the --target arguments as
// given (names or URLs), and which flags the command line set (the command line wins).
struct ConfigInputs {
  kj::Vector<kj::String> targets;
  kj::Maybe<kj::String> file;  // --config FILE
  bool print = false;          // --print-config
  struct {
    bool mode = false, onDisconnect = false, reconnectTimeout = false, heartbeat = false,
         remoteCwd = false;
  } given;
};

// Reads the configuration files and completes `o`: targets by name (--target NAME, $SB_TARGET,
// the files' `target`), their TLS files, token file and path rules, and the defaults the
// command line did not set. Bad files and unknown names exit EXIT_SBRUN_ERROR with a message;
// --print-config prints the merged configuration and exits 0.
void applyConfig(Options& o, ConfigInputs& in);

// Parses argv. On --help/--version prints and exits 0; on bad input prints a message plus a
// usage hint to stderr and exits EXIT_SBRUN_ERROR.
Options parseOptions(int argc, char** argv);

kj::StringPtr usageText();

}  // namespace sb
