#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <stdlib.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "splitbrain.capnp.h"
#include "syscall_table.h"

namespace sb {

namespace {

constexpr const char USAGE[] = R"(Usage: sbrun [OPTIONS] -- PROGRAM [ARGS...]
       sbrun [OPTIONS] --pid PID

Run PROGRAM on this machine while its files and host identity live on another machine,
where sbagent runs. The program is unchanged: its file syscalls are trapped (seccomp + ptrace)
and performed by the agent; its computation, memory and terminal stay here.

Targets:
  --target [NAME=]URL   an agent to talk to (repeatable; the first is the default scope).
                        URL is one of:
                          local                 spawn `sbagent --stdio` here (no confinement)
                          local:ROOT            ... confined to the directory ROOT
                          local...?hostname=H   ... in its own UTS+mount namespaces named H
                          unix:PATH             an agent listening on a unix socket
                          tcp://HOST:PORT       an agent listening on TCP
                          ssh://[USER@]HOST[:PORT][/PATH/TO/sbagent]
                                                run `$SB_SSH -T -o BatchMode=yes [-p PORT]
                                                [-l USER] HOST -- PATH --stdio`. SB_SSH is
                                                the ssh command, split on blanks (default
                                                ssh, e.g. SB_SSH='ssh -i KEY'). /~/x means
                                                ~/x. Without a PATH, sbrun deploys its own
                                                agent to B (see --deploy)
                          exec:COMMAND          run `sh -c COMMAND`, whose stdin/stdout reach
                                                an agent: docker exec -i, kubectl exec -i, ...
                          NAME                  [target.NAME] of the configuration files
                        Default: $SB_TARGET (names or URLs, comma-separated), else the
                        files' default-target, else local. Names default to target1, ...
                        Connecting and the handshake must finish within 10 s (2 min more
                        while --deploy uploads an agent).
  --config FILE         read only FILE (also $SB_CONFIG). Default: /etc/splitbrain/config.toml
                        then $XDG_CONFIG_HOME/splitbrain/config.toml (~/.config/...), the
                        later winning: named targets ([target.NAME]: url, tls-*, token-file,
                        local/remote/fallback rules) and defaults for on-disconnect,
                        reconnect-timeout, heartbeat, mode, remote-cwd, default-target.
                        The command line always wins.
  --print-config        print the merged configuration, each value with FILE:LINE, and exit
  --deploy=auto|always|never
                        for ssh:// targets without an agent path. auto (default): ask B its
                        machine (uname -m) over the ssh connection, upload the matching
                        agent from the agent directory to ~/.cache/splitbrain/VERSION/ on B
                        when it is not there or its SHA-256 differs (0700, checked on B
                        before it runs), and run it over ssh's stdio: nothing to install on
                        B, no port opened there, nothing left running after. always: upload
                        every time. never: run `sbagent` from B's PATH
  --agent-dir DIR       where the agents to deploy are, as sbagent-ARCH (sbagent-x86_64,
                        sbagent-aarch64, sbagent-armhf, ...). Default: $SB_AGENT_DIR, else
                        ../lib/splitbrain/agents beside sbrun (installed), else agents/
                        beside it (the build tree)
  --token-file FILE     present FILE's content to the agents (for agents with --token-file)
  --tls-ca FILE         speak TLS to every tcp:// target and trust only the CA in FILE (PEM)
                        for the agent's certificate, which must name the URL's HOST
  --tls-cert FILE       the client certificate (PEM) to present; agents with TLS require one
  --tls-key FILE        its private key (PEM, unencrypted)

When a target goes away (B reboots, the agent dies, the link breaks):
  --on-disconnect=fail  (default) calls fail at once with EIO while it is away. A new remote
                        operation (open, path call, exec, uname) joins a reconnect attempt
                        but waits for it at most 1 s (3 s for ssh:// and exec:), so a frozen
                        B costs a call at most that. After --reconnect-timeout of outage:
                        ETIMEDOUT. If the program then exits 0, sbrun exits 122, so that a
                        test that ran while B was gone does not pass silently.
  --on-disconnect=wait  redirected calls wait until it is back, interruptibly (a signal gives
                        EINTR or a restart, as for the kernel's own waits), up to
                        --reconnect-timeout, then fail with ETIMEDOUT. Outages are expected
                        (a test that reboots B): the program's exit status is kept.
  --on-disconnect=exit  the program is killed at the first disconnect; sbrun exits 122.
                        In fail and wait modes sbrun reconnects in the background (0.1 s
                        backoff, doubling to 1 s; 5 s for ssh:// and exec:, which it runs
                        again; local restarts its embedded agent). Fds opened before a
                        disconnect are stale: every call on them fails with EIO until the
                        program closes them (close succeeds). Calls in flight at the
                        disconnect fail with EIO. Remote programs started before it end as
                        killed by SIGHUP. Each disconnect and reconnect is reported once on
                        stderr (and on --status-fd).
  --reconnect-timeout=SECONDS
                        how long an outage may last before calls fail with ETIMEDOUT
                        (default 300)
  --heartbeat=SECONDS   a target that stops answering without closing the connection (frozen,
                        cable pulled) is declared gone within SECONDS (default 5; 0: off):
                        sbrun pings it (a uname call) and watches the connection's traffic;
                        TCP targets also get keepalive and TCP_USER_TIMEOUT

Placement:
  --mode remote|local   start the program inside the first target (remote, default) or
                        outside every target (local)
  --remote PREFIX       paths under PREFIX go to the target
  --local PREFIX        paths under PREFIX stay on this machine
  --fallback PREFIX     paths under PREFIX are tried here first, on the target on ENOENT
                        Rules are matched first to last, before the defaults; a path that no
                        rule matches follows the thread's scope.
  --print-rules         print the effective path and exec rules and exit. A PREFIX with
                        * ? or [...] is a glob: it matches a path or a parent of it
                        (/dev/ttyUSB*)
  --remote-cwd DIR      the program's working directory on the target. Default: the same
                        absolute path as here when it exists there, else the target's root

Where programs run (docs/user-guide.md, "Where a program runs"):
  --spawn=chain         (default) the program sbrun starts (or attaches to) keeps running
                        here, traced, through its own exec chain: an execve by that same
                        process (same pid, no fork in between) stays here, in its current
                        scope, when this machine has the program at the same absolute path
                        (env shebangs, interpreter shims, `exec` wrappers). A program a *child*
                        execs (after fork, vfork, clone, posix_spawn, subprocess) inside a
                        remote scope runs on the target; so does one only the target has.
  --spawn=here          every exec stays here when this machine has the program (children
                        too, traced); only programs this machine lacks run on the target
  --spawn=there         every exec inside a remote scope runs on the target, the program's
                        own exec chain too (what sbrun did before --spawn existed)
  --exec-here GLOB      programs matching GLOB always run here (the kernel loads this
                        machine's file)
  --exec-there GLOB     programs matching GLOB run on the target (the scope's, else the
                        first), even outside any scope or when their path is here
                        GLOB is fnmatch(3)'s, `*` also matching `/`: with a `/` it matches the
                        program's absolute path, without one its file name ("python3*").
                        Exec rules are matched first to last, before --spawn. The program sbrun
                        launches itself always starts here.

Attach:
  --pid PID             attach to the running process PID (all its threads, and the children
                        it makes from then on) instead of launching a program; redirect from
                        now on in the --mode given. SIGINT/SIGTERM to sbrun, or "detach" on
                        --control-fd, detach cleanly: the process runs on here. Attach stops
                        at every syscall (no seccomp filter: one could never be removed), so
                        it costs more than launch. Remote fds open at detach stay as
                        placeholders that fail with EBADF.

Scopes (each thread has its own stack of targets; new threads and children inherit it):
  The program steers itself through the fd whose number is in $SB_CONTROL_FD: write
  "enter NAME", "enter" (the first target), "local" or "exit"; read the current scope.
  include/splitbrain.h and the Python module `splitbrain` wrap it.
  --control-fd N        read scope commands from fd N, one per line: "enter NAME [TID|all]",
                        "local [TID|all]", "exit [TID|all]", "scope TID"; answers "ok ..." or
                        "error ERRNO ..." on fd N when it is a socket, else on --status-fd,
                        plus events ("disconnected NAME", "reconnected NAME")
  --status-fd M         where --control-fd answers go

Observing (strace's options; sbrun traces the calls it traps: docs/user-guide.md,
"Seeing what goes where"):
  --trace               one strace-style line per call that went to a target, to stderr:
                        [pid N] openat(AT_FDCWD, "/x", O_RDONLY) = 3 <target1 84us> (where it
                        ran and the latency). Arguments are decoded as strace does: strings,
                        flags, struct stat, sockaddr, read/write buffers. A program that starts
                        on a target gets a line of its own, with its argv and its pid there
  -o FILE, --output=FILE
                        write the trace to FILE (--trace=FILE, with a '/' in FILE, still does);
                        with -c and no --trace, the table (as strace -c -o FILE)
  -e trace=SET, --trace=SET
                        trace the trapped calls in SET, those that ran here too (<local>).
                        SET as strace's: names, %file %desc %net %process %memory %signal
                        %ipc %creds %clock %stat %lstat %fstat %%stat %statfs %fstatfs
                        %%statfs %pure, /regex, all, none, ?name (no error if unknown), a
                        leading ! negates: -e trace='!%file,close'. Calls the filter lets run
                        untrapped (read, write... of local fds, getpid, mmap of memory) are
                        never seen; -e trace= does not change what is trapped
  -P PATH, --trace-path=PATH
                        only calls that name PATH or act on an fd opened from it (repeatable)
  -s N, --string-limit=N
                        show at most N bytes of strings and buffers (default 32; paths whole)
  -T                    add the time from the trap to the answer: <0.000084>
  -y                    follow fd arguments with their file: 3</etc/x> here, 3<target1:/x> on
                        a target (from sbrun's fd table: no extra round trip)
  -yy                   -y, and a socket's protocol and endpoints, a device's numbers:
                        3<TCP:[127.0.0.1:40000->127.0.0.1:80]>, 0</dev/null<char 1:3>>; a
                        remote socket's as B sees them, 3<target1:TCP:[...]> (learnt when
                        bind, connect, accept succeed and at a datagram's first send; a
                        remote device's numbers at its open: one more round trip each, with
                        -yy only)
  -f                    accepted (sbrun always follows forks and threads)
  -e inject=SET:WHAT[:when=EXPR][:path=GLOB], --inject=...
                        strace's fault injection on trapped calls, here and on targets alike.
                        WHAT: error=ERRNO (the call fails and is performed nowhere),
                        retval=N (it "succeeds" with N, performed nowhere), signal=SIG,
                        delay_enter=T, delay_exit=T (T in us, or with s/ms/us/ns).
                        when=N (the Nth call only), N+ (from the Nth), N+S (N, N+S, ...),
                        N..M, N..M+S, ..M (1 to M); counted per thread and syscall, as strace.
                        path=GLOB (sbrun's own): count only calls touching a matching path;
                        -P PATH also limits what is counted. Marked (INJECTED) or (DELAYED)
                        in the trace. Rules on read/write... trap them on every fd
  -e fault=SET[:error=ERRNO][:when=EXPR], --fault=...
                        -e inject= with error=ENOSYS by default
  --stats[=FILE], -c    at exit, a `strace -c`-like table per syscall and where it ran (here,
                        each target, each target's read-ahead hits, "not run" for injected
                        answers): calls, errors, injected, bytes, time. Filtered by -e trace=
                        and -P as the trace is
  -S SORT, --summary-sort-by=SORT
                        sort the table by time (default), calls, errors, name or nothing
  --stats-format=FMT    text (default) or json

Faults of the link (docs/failure-semantics.md), each SPEC may end with :target=NAME:
  --link-fault=delay=DURATION
                        every answer from the target arrives DURATION (e.g. 50ms, 1s) late
  --link-fault=drop=N   cut the connection once the program's Nth remote call is answered,
                        as a pulled cable: what follows is what --on-disconnect says
  --link-fault=freeze=N:for=DURATION
                        after the Nth remote call nothing arrives from the target for
                        DURATION, as from a hung B: calls wait, and the heartbeat declares the
                        link lost if DURATION is longer than it allows

Record and replay (docs/replay.md):
  --record FILE         write every answer the targets give (results, errnos, bytes read,
                        stat structs, directory entries, uname, remote children's output and
                        exit codes, timings) to FILE (0600), as the run goes
  --replay FILE         run the program again with no agent at all: each remote call is
                        answered from FILE (the targets are the recording's; give no
                        --target); local calls run for real. A remote call the recording does
                        not have, or recorded calls left unmade at the end, stop the run with
                        a report of what was asked and what was recorded, exit status 125.
                        Written data that differs from the recording is reported.

Performance:
  --no-read-ahead       answer every read() of a remote file with its own round trip. By
                        default, once a program reads a regular file opened read-only in
                        small sequential read()s, sbrun fetches up to 1 MiB of it at a time
                        and answers the next reads from that window (close-to-open
                        consistency, as NFS: writes made through sbrun, lseek, pread and a
                        read past the window's end go to the agent; a process on the target
                        rewriting bytes in place may not be seen inside an already fetched
                        window). --trace marks such reads "cached", --stats counts them apart.
  --read-chunk=KIB      split a read of at least 2*KIB KiB of a remote regular file into
                        KIB-KiB chunks sent at once, each copied into the program as it
                        arrives (64 to 4096; default 0: one request per read). The program
                        sees the same bytes, counts and offsets. On the 2-vCPU test machine
                        it did not pay (docs/performance.md); it may across real machines.

Debugging (docs/user-guide.md, "Debugging a program under sbrun"):
  --gdb=[HOST:]PORT     serve the GDB remote protocol on HOST:PORT (HOST defaults to
                        127.0.0.1, reachable from this machine only; PORT 0 picks a free
                        port), or --gdb=unix:PATH on a unix socket only this user may use.
                        sbrun prints "sbrun: gdb: listening on ADDRESS". Then
                        `gdb PROGRAM -ex 'target remote ADDRESS'`: breakpoints, stepping,
                        threads, watchpoints, signals, kill, detach. A launched program waits
                        at its first instruction until gdb connects and continues; with --pid
                        the program is stopped when gdb connects. Redirected calls keep
                        working between gdb stops. All-stop only (no non-stop mode, no
                        reverse execution); 4 hardware watchpoints, no read-only ones.

Other:
  -v, --verbose         explain decisions (connections, cwd, fallbacks) on stderr; with
                        --trace, each path call's line also says why it went where it went
                        (the rule that matched, the scope, the cwd's side) and path calls that
                        stayed here are traced too, as <local>
  -h, --help            show this help and exit
  --version             show the version and exit

Exit status: PROGRAM's own; 128+N if it was killed by signal N; 122 if a target was lost
during the run and the program exited 0 or was ended for it (--on-disconnect); 125 if sbrun
itself failed (bad option, unreachable agent); 126 if PROGRAM cannot be executed; 127 if it is
not found. SIGINT, SIGTERM and SIGHUP sent to sbrun (kill, a CI runner's timeout) are passed
on to the program; a terminal's ^C reaches the program directly.

Redirected today: open/openat/openat2/creat, close/close_range, read/write and the pread,
pwrite, readv, writev, preadv(2), pwritev(2) family, lseek, stat family and statx, statfs,
access family, getdents64, readlink, mkdir, rmdir, unlink, rename family, link, symlink,
chmod, chown, truncate, fallocate, fsync, fdatasync, utime family, mknod, xattrs, dup family,
fcntl, flock, chdir, fchdir, getcwd, sendfile, copy_file_range, splice, uname. Programs that run on
the target (see --spawn) have a local stand-in (sb-stub) that relays their stdio, signals and
exit status; --trace prints a line when one starts. When its stdin is a terminal here, such a
program gets a pseudo-terminal there (as ssh -t does): window size and ^C/^Z reach it. Sockets made inside a remote scope live on the
target (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK; others EAFNOSUPPORT). A call that cannot act on a
remote fd yet (an ioctl sbrun cannot marshal exactly, ...) fails with a clear errno and a
one-time note on stderr. mmap of a remote file maps a local copy of its content. ioctl is
marshalled for terminal, serial and block requests.

Examples:
  sbrun -- cat /etc/hostname                         # B's file, via an embedded local agent
  sbrun --target unix:/run/sb.sock -- ./test
  sbrun --target ssh://ci@lab-b/opt/sb/bin/sbagent -- make check
  sbrun --target 'exec:docker exec -i board sbagent --stdio' -- uname -a
  sbrun --target 'local:/srv/demo?hostname=board-b' -- sh -c 'hostname; ls /'
See sbrun(1) and docs/user-guide.md.
)";

[[noreturn]] void usageError(kj::StringPtr message) {
  fmt::print(stderr, "sbrun: {}\nTry 'sbrun --help' for more information.\n", message.cStr());
  exit(EXIT_SBRUN_ERROR);
}

// A duration in seconds, fractions allowed ("2", "0.5"), at most a day.
kj::Duration parseSeconds(kj::StringPtr option, const char* text) {
  char* end = nullptr;
  errno = 0;
  double secs = strtod(text, &end);
  if (*text == 0 || *end != 0 || errno != 0 || !(secs >= 0) || secs > 86400) {
    usageError(kj::str(option, " takes a number of seconds (0 to 86400), not '", text, "'"));
  }
  return static_cast<int64_t>(secs * 1000) * kj::MILLISECONDS;
}

// strace's options that decide whether and where a trace is written, seen once the loop is over.
struct StraceInputs {
  bool traceGiven = false;    // --trace without =
  bool formatGiven = false;   // -s, -T, -y
  int follow = 0;             // -f
  kj::Maybe<kj::String> output;  // -o FILE
};

// sbrun 0.1 took --trace=FILE; strace's --trace=SET now owns that spelling. A value that can
// only be a file name (./x, ../x, ~/x, or an absolute path with a directory: no syscall
// regex needs a second '/') still means the file.
bool isOldTraceFile(kj::StringPtr value) {
  if (value.startsWith("./") || value.startsWith("../") || value.startsWith("~")) {
    return true;
  }
  return value.startsWith("/") && strchr(value.cStr() + 1, '/') != nullptr;
}

void parseTraceSet(Options& o, kj::StringPtr text, kj::StringPtr option) {
  kj::String error;
  KJ_IF_MAYBE(set, parseSyscallSet(text, error)) {
    o.traceOptions.set = *set;  // as strace's: the last trace= wins
  } else {
    usageError(kj::str(option, text, ": ", error,
                       ". To write the trace to a file, use -o FILE (or --trace=./FILE)"));
  }
}

// A syscall that the launch filter never stops cannot be injected.
bool everTrapped(const SyscallRow& row) {
  return row.cls != SyscallClass::LOCAL && row.cls != SyscallClass::PROCESS &&
         row.cls != SyscallClass::REFUSED;
}

void addInjectRule(Options& o, kj::StringPtr text, bool fault) {
  kj::String error;
  KJ_IF_MAYBE(rule, parseInjectRule(text, error, fault)) {
    bool any = false;
    for (auto& row : syscallTable()) {
      any = any || (rule->set.has(row.nr) && everTrapped(row));
    }
    if (!any) {
      usageError(kj::str("-e ", fault ? "fault=" : "inject=", text, ": sbrun never stops these "
                         "syscalls (they run in the kernel without a trap: memory, time, "
                         "signals, process ids, fork/exit), so it cannot inject into them"));
    }
    o.injects.add(kj::mv(*rule));
  } else {
    usageError(kj::str("-e ", fault ? "fault=" : "inject=", text, ": ", error));
  }
}

// -e EXPR: strace's trace=, t=, inject=, fault=, or a bare SET (trace=).
void parseQualifier(Options& o, kj::StringPtr expr) {
  const char* eq = strchr(expr.cStr(), '=');
  kj::String key = eq ? kj::heapString(expr.cStr(), eq - expr.cStr()) : kj::str("trace");
  kj::StringPtr value = eq ? kj::StringPtr(eq + 1) : expr;
  if (key == "trace" || key == "t") {
    parseTraceSet(o, value, "-e trace=");
  } else if (key == "inject" || key == "fault") {
    addInjectRule(o, value, key == "fault");
  } else {
    usageError(kj::str("-e ", expr, ": sbrun takes -e trace=SET, -e inject=SET:... and "
                       "-e fault=SET:... (not strace's ", key, "=)"));
  }
}

StatsSort parseStatsSort(kj::StringPtr text) {
  static const std::pair<const char*, StatsSort> NAMES[] = {
      {"time", StatsSort::TIME}, {"time-total", StatsSort::TIME}, {"total-time", StatsSort::TIME},
      {"calls", StatsSort::CALLS}, {"count", StatsSort::CALLS}, {"errors", StatsSort::ERRORS},
      {"error", StatsSort::ERRORS}, {"name", StatsSort::NAME}, {"syscall", StatsSort::NAME},
      {"syscall-name", StatsSort::NAME}, {"nothing", StatsSort::NOTHING},
      {"none", StatsSort::NOTHING}};
  for (auto& [name, sort] : NAMES) {
    if (text == name) {
      return sort;
    }
  }
  usageError(kj::str("-S takes time, calls, errors, name or nothing, not '", text, "'"));
}

// Whether and where the trace goes: --trace and -o write one; strace's filters and formats
// (-e trace=, -P, -s, -T, -y) ask for one too, unless only --stats/-c was asked for (then, as
// with strace -c, they choose what is counted).
void completeTraceOptions(Options& o, StraceInputs& in) {
  auto& t = o.traceOptions;
  KJ_IF_MAYBE(file, in.output) {
    // strace -c -o FILE: the table goes to FILE, and there is no trace (unless --trace asks
    // for one; then FILE holds the trace and the table goes to stderr).
    KJ_IF_MAYBE(stats, o.statsFile) {
      if (stats->size() == 0 && !in.traceGiven && o.traceFile == nullptr) {
        o.statsFile = kj::mv(*file);
        in.output = nullptr;
        return;
      }
    }
  }
  KJ_IF_MAYBE(file, in.output) {
    KJ_IF_MAYBE(old, o.traceFile) {
      if (old->size() > 0) {
        usageError(kj::str("--trace=", *old, " and -o ", *file, ": give the trace file once"));
      }
    }
    o.traceFile = kj::mv(*file);
  } else if (o.traceFile == nullptr) {
    bool asked = t.set != nullptr || t.paths.size() > 0 || in.formatGiven;
    if (in.traceGiven || (asked && o.statsFile == nullptr)) {
      o.traceFile = kj::str("");
    }
  }
}

}  // namespace

kj::StringPtr usageText() { return USAGE; }

Options parseOptions(int argc, char** argv) {
  enum {
    OPT_TARGET = 1000, OPT_TOKEN, OPT_MODE, OPT_REMOTE, OPT_LOCAL, OPT_FALLBACK, OPT_PRINT_RULES,
    OPT_REMOTE_CWD, OPT_VERSION, OPT_TRACE, OPT_STATS, OPT_STATS_FORMAT, OPT_CONTROL_FD,
    OPT_STATUS_FD, OPT_PID, OPT_ON_DISCONNECT, OPT_RECONNECT_TIMEOUT, OPT_HEARTBEAT,
    OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_NO_READ_AHEAD, OPT_READ_CHUNK, OPT_CONFIG,
    OPT_PRINT_CONFIG, OPT_DEPLOY, OPT_AGENT_DIR, OPT_SPAWN, OPT_EXEC_HERE, OPT_EXEC_THERE,
    OPT_GDB, OPT_INJECT, OPT_FAULT, OPT_STRING_LIMIT, OPT_SUMMARY_SORT, OPT_RECORD,
    OPT_REPLAY, OPT_LINK_FAULT,
  };
  static const struct option LONG[] = {
      {"target", required_argument, nullptr, OPT_TARGET},
      {"config", required_argument, nullptr, OPT_CONFIG},
      {"print-config", no_argument, nullptr, OPT_PRINT_CONFIG},
      {"token-file", required_argument, nullptr, OPT_TOKEN},
      {"deploy", required_argument, nullptr, OPT_DEPLOY},
      {"agent-dir", required_argument, nullptr, OPT_AGENT_DIR},
      {"tls-cert", required_argument, nullptr, OPT_TLS_CERT},
      {"tls-key", required_argument, nullptr, OPT_TLS_KEY},
      {"tls-ca", required_argument, nullptr, OPT_TLS_CA},
      {"mode", required_argument, nullptr, OPT_MODE},
      {"remote", required_argument, nullptr, OPT_REMOTE},
      {"local", required_argument, nullptr, OPT_LOCAL},
      {"fallback", required_argument, nullptr, OPT_FALLBACK},
      {"print-rules", no_argument, nullptr, OPT_PRINT_RULES},
      {"spawn", required_argument, nullptr, OPT_SPAWN},
      {"exec-here", required_argument, nullptr, OPT_EXEC_HERE},
      {"exec-there", required_argument, nullptr, OPT_EXEC_THERE},
      {"remote-cwd", required_argument, nullptr, OPT_REMOTE_CWD},
      {"trace", optional_argument, nullptr, OPT_TRACE},
      {"stats", optional_argument, nullptr, OPT_STATS},
      {"stats-format", required_argument, nullptr, OPT_STATS_FORMAT},
      {"no-read-ahead", no_argument, nullptr, OPT_NO_READ_AHEAD},
      {"read-chunk", required_argument, nullptr, OPT_READ_CHUNK},
      {"control-fd", required_argument, nullptr, OPT_CONTROL_FD},
      {"status-fd", required_argument, nullptr, OPT_STATUS_FD},
      {"pid", required_argument, nullptr, OPT_PID},
      {"on-disconnect", required_argument, nullptr, OPT_ON_DISCONNECT},
      {"reconnect-timeout", required_argument, nullptr, OPT_RECONNECT_TIMEOUT},
      {"heartbeat", required_argument, nullptr, OPT_HEARTBEAT},
      {"gdb", required_argument, nullptr, OPT_GDB},
      {"inject", required_argument, nullptr, OPT_INJECT},
      {"fault", required_argument, nullptr, OPT_FAULT},
      {"trace-path", required_argument, nullptr, 'P'},
      {"string-limit", required_argument, nullptr, OPT_STRING_LIMIT},
      {"output", required_argument, nullptr, 'o'},
      {"summary-sort-by", required_argument, nullptr, 'S'},
      {"record", required_argument, nullptr, OPT_RECORD},
      {"link-fault", required_argument, nullptr, OPT_LINK_FAULT},
      {"replay", required_argument, nullptr, OPT_REPLAY},
      {"verbose", no_argument, nullptr, 'v'},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, OPT_VERSION},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  ConfigInputs cfg;  // what the configuration files may fill in (options_config.cc)
  StraceInputs strace;  // strace's options, completed after the loop
  opterr = 0;
  // "+": stop at the first non-option, so the program's own flags are never ours.
  int c;
  while ((c = getopt_long(argc, argv, "+vhe:o:P:s:TyfcS:", LONG, nullptr)) != -1) {
    auto parseRule = [&](Placement p) {
      kj::StringPtr prefix = optarg;
      if (!prefix.startsWith("/")) {
        usageError(kj::str("path rule prefix must be absolute: '", prefix, "'"));
      }
      o.userRules.add(p, kj::str(prefix));
    };
    switch (c) {
      case OPT_TARGET: cfg.targets.add(kj::str(optarg)); break;
      case OPT_CONFIG: cfg.file = kj::str(optarg); break;
      case OPT_PRINT_CONFIG: cfg.print = true; break;
      case OPT_TOKEN: o.tokenFile = kj::str(optarg); break;
      case OPT_DEPLOY:
        if (kj::StringPtr(optarg) == "auto") {
          o.deploy.mode = DeployMode::AUTO;
        } else if (kj::StringPtr(optarg) == "always") {
          o.deploy.mode = DeployMode::ALWAYS;
        } else if (kj::StringPtr(optarg) == "never") {
          o.deploy.mode = DeployMode::NEVER;
        } else {
          usageError(kj::str("--deploy takes 'auto', 'always' or 'never', not '", optarg, "'"));
        }
        break;
      case OPT_AGENT_DIR:
        if (*optarg == 0) {
          usageError("--agent-dir takes a directory");
        }
        o.deploy.agentDir = kj::str(optarg);
        break;
      case OPT_TLS_CERT: o.tls.cert = kj::str(optarg); break;
      case OPT_TLS_KEY: o.tls.key = kj::str(optarg); break;
      case OPT_TLS_CA: o.tls.ca = kj::str(optarg); break;
      case OPT_MODE:
        cfg.given.mode = true;
        if (kj::StringPtr(optarg) == "remote") {
          o.startRemote = true;
        } else if (kj::StringPtr(optarg) == "local") {
          o.startRemote = false;
        } else {
          usageError(kj::str("--mode takes 'remote' or 'local', not '", optarg, "'"));
        }
        break;
      case OPT_REMOTE: parseRule(Placement::REMOTE); break;
      case OPT_LOCAL: parseRule(Placement::LOCAL); break;
      case OPT_FALLBACK: parseRule(Placement::FALLBACK); break;
      case OPT_PRINT_RULES: o.printRules = true; break;
      case OPT_SPAWN:
        KJ_IF_MAYBE(policy, parseSpawnPolicy(optarg)) {
          o.spawn = *policy;
        } else {
          usageError(kj::str("--spawn takes 'chain', 'here' or 'there', not '", optarg, "'"));
        }
        break;
      case OPT_EXEC_HERE:
      case OPT_EXEC_THERE:
        if (optarg[0] == 0) {
          usageError(kj::str(c == OPT_EXEC_HERE ? "--exec-here" : "--exec-there",
                             " needs a program name or path glob, e.g. python3 or /opt/*"));
        }
        o.execRules.add(c == OPT_EXEC_HERE ? ExecSide::HERE : ExecSide::THERE, kj::str(optarg));
        break;
      case OPT_REMOTE_CWD:
        cfg.given.remoteCwd = true;
        if (optarg[0] != '/') {
          usageError(kj::str("--remote-cwd must be absolute: '", optarg, "'"));
        }
        o.remoteCwd = kj::str(optarg);
        break;
      case OPT_TRACE:
        if (optarg == nullptr) {
          strace.traceGiven = true;
        } else if (isOldTraceFile(optarg)) {
          o.traceFile = kj::str(optarg);  // --trace=FILE of sbrun 0.1, kept (user-guide.md)
        } else {
          parseTraceSet(o, optarg, "--trace=");
          strace.traceGiven = true;  // --trace=SET says "trace", even beside --stats
        }
        break;
      case 'e': parseQualifier(o, optarg); break;
      case OPT_INJECT:
      case OPT_FAULT: addInjectRule(o, optarg, c == OPT_FAULT); break;
      case 'o':
        if (*optarg == 0) {
          usageError("-o takes a file name for the trace");
        }
        strace.output = kj::str(optarg);
        break;
      case 'P':
        if (*optarg == 0) {
          usageError("-P takes a path");
        }
        o.traceOptions.paths.add(kj::str(optarg));
        break;
      case 's':
      case OPT_STRING_LIMIT: {
        char* end = nullptr;
        errno = 0;
        unsigned long n = strtoul(optarg, &end, 10);
        if (*optarg == 0 || *end != 0 || errno != 0 || n > 1048576) {
          usageError(kj::str("-s takes a string limit in bytes (0 to 1048576), not '", optarg,
                             "'"));
        }
        o.traceOptions.stringLimit = n;
        strace.formatGiven = true;
        break;
      }
      case 'T': o.traceOptions.time = true; strace.formatGiven = true; break;
      case 'y': ++o.traceOptions.decodeFds; strace.formatGiven = true; break;
      case 'f':
        // sbrun always follows forks and threads; strace's -ff writes a file per process.
        if (++strace.follow > 1) {
          usageError("-ff (a trace file per process) is not supported: sbrun writes one trace, "
                     "each line with its [pid N]");
        }
        break;
      case 'c': o.statsFile = kj::str(""); break;
      case 'S': o.statsSort = parseStatsSort(optarg); break;
      case OPT_STATS: o.statsFile = kj::str(optarg ? optarg : ""); break;
      case OPT_STATS_FORMAT:
        if (kj::StringPtr(optarg) == "json") {
          o.statsJson = true;
        } else if (kj::StringPtr(optarg) != "text") {
          usageError(kj::str("--stats-format takes 'text' or 'json', not '", optarg, "'"));
        }
        break;
      case OPT_NO_READ_AHEAD: o.readAhead = false; break;
      case OPT_READ_CHUNK: {
        char* end = nullptr;
        errno = 0;
        unsigned long kib = strtoul(optarg, &end, 10);
        if (*optarg == 0 || *end != 0 || errno != 0 || (kib != 0 && (kib < 64 || kib > 4096))) {
          usageError(kj::str("--read-chunk takes 0 or a size in KiB from 64 to 4096, not '",
                             optarg, "'"));
        }
        o.readChunk = uint64_t(kib) << 10;
        break;
      }
      case OPT_GDB: {
        kj::String error;
        KJ_IF_MAYBE(a, parseGdbAddress(optarg, error)) {
          o.gdb = kj::mv(*a);
        } else {
          usageError(error);
        }
        break;
      }
      case OPT_RECORD: o.recordFile = kj::str(optarg); break;
      case OPT_LINK_FAULT: {
        kj::String error;
        KJ_IF_MAYBE(f, parseLinkFault(optarg, error)) {
          o.linkFaults.add(kj::mv(*f));
        } else {
          usageError(error);
        }
        break;
      }
      case OPT_REPLAY: o.replayFile = kj::str(optarg); break;
      case 'v': ++o.verbose; break;
      case 'h': fmt::print("{}", USAGE); exit(0);
      case OPT_CONTROL_FD:
      case OPT_STATUS_FD: {
        const char* what = c == OPT_CONTROL_FD ? "--control-fd" : "--status-fd";
        char* end = nullptr;
        long fd = strtol(optarg, &end, 10);
        if (*optarg == 0 || *end != 0 || fd < 0 || fd > INT32_MAX) {
          usageError(kj::str(what, " takes an fd number, not '", optarg, "'"));
        }
        if (fcntl(static_cast<int>(fd), F_GETFD) < 0) {
          usageError(kj::str(what, " ", fd, ": ", strerror(errno),
                             " (the fd must be open when sbrun starts)"));
        }
        (c == OPT_CONTROL_FD ? o.controlFd : o.statusFd) = static_cast<int>(fd);
        break;
      }
      case OPT_PID: {
        char* end = nullptr;
        long pid = strtol(optarg, &end, 10);
        if (*optarg == 0 || *end != 0 || pid <= 0 || pid > INT32_MAX) {
          usageError(kj::str("--pid takes a process id, not '", optarg, "'"));
        }
        o.attachPid = static_cast<pid_t>(pid);
        break;
      }
      case OPT_ON_DISCONNECT:
        cfg.given.onDisconnect = true;
        if (kj::StringPtr(optarg) == "fail") {
          o.reconnect.mode = OnDisconnect::FAIL;
        } else if (kj::StringPtr(optarg) == "wait") {
          o.reconnect.mode = OnDisconnect::WAIT;
        } else if (kj::StringPtr(optarg) == "exit") {
          o.reconnect.mode = OnDisconnect::EXIT;
        } else {
          usageError(kj::str("--on-disconnect takes 'fail', 'wait' or 'exit', not '", optarg,
                             "'"));
        }
        break;
      case OPT_RECONNECT_TIMEOUT:
        cfg.given.reconnectTimeout = true;
        o.reconnect.timeout = parseSeconds("--reconnect-timeout", optarg);
        break;
      case OPT_HEARTBEAT: {
        cfg.given.heartbeat = true;
        o.reconnect.heartbeat = parseSeconds("--heartbeat", optarg);
        if (o.reconnect.heartbeat != 0 * kj::SECONDS &&
            o.reconnect.heartbeat < 100 * kj::MILLISECONDS) {
          usageError("--heartbeat must be 0 (off) or at least 0.1 s");
        }
        break;
      }
      case OPT_VERSION: fmt::print("sbrun {} (protocol {})\n", SB_VERSION, proto::PROTOCOL_VERSION); exit(0);
      case '?':
      default:
        if (optopt != 0 && optopt < 256) {
          usageError(kj::str("unknown or incomplete option '-", (char)optopt, "'"));
        }
        usageError(kj::str("unknown or incomplete option '", argv[optind - 1], "'"));
    }
  }
  for (int i = optind; i < argc; ++i) {
    o.command.add(kj::str(argv[i]));
  }
  if (o.replayFile != nullptr) {
    if (o.recordFile != nullptr) {
      usageError("--record and --replay: give one of them");
    }
    if (!cfg.targets.empty()) {
      usageError("--replay plays back the targets of the recording: give no --target");
    }
  }
  completeTraceOptions(o, strace);
  applyConfig(o, cfg);
  if (o.targets.empty()) {
    o.targets.add(parseTargetUrl("local"));
  }
  if (o.tls.any()) {
    kj::String problem = tlsFilesProblem(o.tls, TlsRole::CLIENT);
    if (problem.size() > 0) {
      usageError(problem);
    }
    bool anyTcp = false;
    for (auto& t: o.targets) {
      anyTcp = anyTcp || t.kind == TargetUrl::Kind::TCP;
    }
    if (!anyTcp) {
      usageError("--tls-ca/--tls-cert/--tls-key apply to tcp:// targets, and there is none "
                 "(ssh:// and exec: bring their own transport security)");
    }
  }
  // Names: explicit ones are kept; unnamed targets get target1, target2, ...
  for (size_t i = 0; i < o.targets.size(); ++i) {
    if (o.targets[i].name.size() == 0) {
      o.targets[i].name = kj::str("target", i + 1);
    }
    if (o.targets[i].name.size() > 255) {
      usageError("a target name must be at most 255 bytes");
    }
    if (o.targets[i].name == "local") {
      usageError("a target cannot be named 'local': that name is the local scope");
    }
    for (size_t j = 0; j < i; ++j) {
      if (o.targets[j].name == o.targets[i].name) {
        usageError(kj::str("two targets are named '", o.targets[i].name, "'"));
      }
    }
  }
  for (auto& f : o.linkFaults) {
    bool known = f.target.size() == 0;
    for (auto& t : o.targets) {
      known = known || t.name == f.target;
    }
    if (!known) {
      usageError(kj::str("--link-fault ", f.text, ": there is no target named '", f.target, "'"));
    }
  }
  if (o.replayFile != nullptr && !o.linkFaults.empty()) {
    usageError("--link-fault acts on a real link; --replay has none");
  }
  o.deploy.verbose = o.verbose > 0;
  if (o.deploy.mode == DeployMode::ALWAYS) {
    for (auto& t : o.targets) {
      if (t.kind == TargetUrl::Kind::SSH && t.path.size() > 0) {
        usageError(kj::str("--deploy=always and ", t.text, ": the path names an agent already on "
                           "B, so there is nothing to deploy; drop one of them"));
      }
    }
  }
  if (o.statusFd >= 0 && o.controlFd < 0) {
    usageError("--status-fd answers --control-fd: give both");
  }
  if (o.attachPid > 0 && !o.command.empty()) {
    usageError("--pid attaches to a running program: give no PROGRAM");
  }
  if (o.command.empty() && !o.printRules && o.attachPid < 0) {
    usageError("no program given: sbrun [OPTIONS] -- PROGRAM [ARGS...], or --pid PID");
  }
  return o;
}

}  // namespace sb
