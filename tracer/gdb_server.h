// A gdbserver inside sbrun (`--gdb=[HOST:]PORT`, `--gdb=unix:PATH`): sbrun is the program's
// ptrace tracer, so no other debugger can attach; this speaks the GDB remote serial protocol
// itself (as rr does) for the one process sbrun launched or attached to.
//
// All-stop mode. The program's threads run freely between gdb stops. A thread stops *for gdb*
// at a signal (a breakpoint's int3, a finished single-step, a watchpoint, a real signal) or at
// Ctrl-C; then every other thread is stopped too (PTRACE_INTERRUPT) and gdb is told. sbrun's own
// stops (trapped syscalls, their exit stops, parking, events) stay invisible: the tracer handles
// them as always and only its final resume of the thread passes through onResume(), which holds
// it while gdb has the program stopped. So:
//   - a thread stopped in a trapped syscall waiting for the agent counts as stopped for gdb; its
//     answer arrives, is written into its registers, and its resume is held until gdb
//     continues (gdb then sees the call completed);
//   - a redirected call made between gdb stops works as without gdb.
//
// The tracer talks to the server through four hooks (onResume, onSignal, onExit, and the
// GdbHost it implements); without --gdb the tracer holds no server and each hook is a null check.
//
// Breakpoints are gdb's own: it writes int3 with `X`/`M` (memory through /proc/PID/mem, which
// may write the read-only text), and Z0 is answered "unsupported". Watchpoints and hardware
// breakpoints (Z1, Z2, Z4) use the four x86 debug registers, set in every thread.

#pragma once

#include <kj/async-unix.h>
#include <kj/io.h>
#include <kj/string.h>
#include <kj/vector.h>
#include <map>
#include <set>
#include <sys/types.h>

#include "gdb_packet.h"
#include "ptrace.h"

namespace sb {

// What the server needs of the tracer (Tracer implements it).
class GdbHost {
 public:
  // The threads of the debugged process that the tracer has set up (leader first).
  virtual kj::Vector<pid_t> gdbThreads() = 0;
  // Resumes a thread whose resume onResume() held, as the tracer would have: its `sig`.
  virtual void gdbRelease(pid_t tid, int sig) = 0;
  // A thread gdb saw stopped at a signal-delivery stop goes on with `sig` (0: discarded).
  virtual void gdbContinueAfterSignal(pid_t tid, int sig) = 0;

 protected:
  ~GdbHost() = default;
};

// Where --gdb listens.
struct GdbAddress {
  bool isUnix = false;
  kj::String host;  // numeric or a name; "127.0.0.1" by default
  uint16_t port = 0;
  kj::String path;  // unix:PATH
};
// "PORT", ":PORT", "HOST:PORT", "[V6]:PORT" or "unix:PATH"; null (and `error` says why) when it
// is none of these.
kj::Maybe<GdbAddress> parseGdbAddress(kj::StringPtr text, kj::String& error);

class GdbServer {
 public:
  // `pid`: the debugged process. `attached`: sbrun --pid (gdb detaches on quit); else the
  // launched program, which waits at its first instruction until gdb connects and continues.
  GdbServer(GdbHost& host, kj::UnixEventPort& port, const GdbAddress& address, pid_t pid,
            bool attached);
  ~GdbServer() noexcept(false);
  KJ_DISALLOW_COPY(GdbServer);

  // Binds the listener and says where on stderr ("sbrun: gdb: listening on 127.0.0.1:PORT").
  // Throws with a message that says what to do when it cannot.
  void listen();

  // The tracer is about to resume `tid` (how, sig). True when the server took care of it: held
  // it (gdb has it stopped) or single-stepped it; false: resume as usual. `needExitStop`: the
  // tracer must see this syscall's exit stop (no single-step now). `launching`: the thread is
  // still in sbrun's own exec of the program.
  bool onResume(pid_t tid, pid_t tgid, bool launching, bool needExitStop, ptrace::Resume how,
                int sig);
  // A signal-delivery stop. True when gdb takes it (the thread stays stopped until gdb decides
  // what becomes of the signal); false: deliver as usual.
  bool onSignal(pid_t tid, pid_t tgid, int sig);
  // A thread of any process was reaped.
  void onExit(pid_t tid, ptrace::WaitStatus status);
  // `parentTgid` made a new process `child` (fork; not a thread, not a vfork sharing its
  // memory): gdb does not debug it, so gdb's int3s are taken out of its copy of the memory.
  void onFork(pid_t parentTgid, pid_t child);

 private:
  // One thread of the debugged process as gdb sees it.
  struct Thread {
    bool resumed = false;     // gdb lets it run
    bool held = false;        // stopped: the tracer's resume of it waits (heldSig)
    int heldSig = 0;
    int stopSig = -1;         // stopped at this signal's delivery stop, gdb to decide its fate
    int siCode = 0;           // its si_code (SI_KERNEL: int3; TRAP_HWBKPT: a watchpoint)
    bool reported = false;    // gdb was told of that signal, so gdb decides whether it goes
    int passSig = 0;          // else what is delivered (a QPassSignals signal, or nothing)
    bool eventPending = false;  // that stop is not reported yet (another thread's was)
    bool step = false;        // gdb asked for one instruction
    uint64_t drGeneration = 0;  // which debug-register setting it has
  };
  enum class State {
    RUNNING,   // gdb let the program go
    STOPPING,  // stopping every thread for a report
    STOPPED,   // gdb has it
  };
  // What the last stop reply said.
  struct Stop {
    pid_t tid = 0;
    int sig = 0;             // Linux signal number
    kj::String extra;        // "watch:ADDR;" and the like
  };
  struct Action {
    char kind;   // 'c' or 's'
    int sig;     // Linux number, 0 for none
    int64_t tid; // -1: every thread without its own action
  };
  struct Watch {
    bool used = false;
    uint64_t addr = 0;
    int len = 0;
    char type = 0;  // '1' hw breakpoint, '2' write, '4' access
  };
  using Handler = void (GdbServer::*)(kj::StringPtr packet);
  struct Command {
    const char* name;
    Handler handler;
  };
  static const Command COMMANDS[];

  GdbHost& host;
  kj::UnixEventPort& eventPort;
  GdbAddress address;
  pid_t pid;
  bool attached;
  State state;
  bool exited = false;
  kj::String exitReply;
  std::map<pid_t, Thread> threads;
  std::set<pid_t> waiting;  // interrupted, their stops not seen yet
  Stop lastStop;
  bool replyOnStop = false;  // gdb waits for a stop reply (after ?, c, s, vCont)
  pid_t generalThread = 0;   // Hg
  pid_t continueThread = -1; // Hc
  bool passSignal[65] = {};  // QPassSignals (Linux numbers)
  Watch watches[4];
  // gdb's software breakpoints: where it wrote an int3, and the byte it replaced.
  std::map<uint64_t, kj::byte> breakpoints;
  uint64_t drGeneration = 0;

  kj::AutoCloseFd listener;
  kj::Own<kj::UnixEventPort::FdObserver> listenObserver;
  kj::Maybe<kj::Promise<void>> accepting;
  kj::AutoCloseFd client;
  kj::Own<kj::UnixEventPort::FdObserver> clientObserver;
  kj::Maybe<kj::Promise<void>> reading;
  gdb::PacketReader reader;
  bool noAck = false;

  kj::Promise<void> acceptLoop();
  kj::Promise<void> readLoop();
  void dropClient(kj::StringPtr why);
  void send(kj::StringPtr payload);
  void sendRaw(kj::StringPtr bytes);
  void dispatch(kj::StringPtr packet);

  Thread& thread(pid_t tid);
  pid_t anyThread();
  pid_t focus(pid_t wanted);
  void stopAll();
  void maybeReport();
  void reportStop();
  Stop describeStop(pid_t tid, int sig);
  bool staleBreakpoint(pid_t tid);
  void resume(kj::ArrayPtr<const Action> actions);
  void releaseAll();
  void applyDebugRegs(pid_t tid);
  bool setAllDebugRegs();

  // Packet handlers (COMMANDS).
  void qSupported(kj::StringPtr p);
  void qXfer(kj::StringPtr p);
  void qThreadInfoFirst(kj::StringPtr p);
  void qThreadInfoNext(kj::StringPtr p);
  void qCurrentThread(kj::StringPtr p);
  void qAttached(kj::StringPtr p);
  void qSymbol(kj::StringPtr p);
  void startNoAck(kj::StringPtr p);
  void passSignals(kj::StringPtr p);
  void ok(kj::StringPtr p);
  void stopReason(kj::StringPtr p);
  void setThread(kj::StringPtr p);
  void threadAlive(kj::StringPtr p);
  void readRegisters(kj::StringPtr p);
  void writeRegisters(kj::StringPtr p);
  void readRegister(kj::StringPtr p);
  void writeRegister(kj::StringPtr p);
  void readMemory(kj::StringPtr p);
  void writeMemoryHex(kj::StringPtr p);
  void writeMemoryBinary(kj::StringPtr p);
  bool writeMemory(uint64_t addr, kj::ArrayPtr<const kj::byte> data);
  void vContQuery(kj::StringPtr p);
  void vCont(kj::StringPtr p);
  void legacyResume(kj::StringPtr p);
  void insertPoint(kj::StringPtr p);
  void removePoint(kj::StringPtr p);
  void kill(kj::StringPtr p);
  void vKill(kj::StringPtr p);
  void detach(kj::StringPtr p);
};

}  // namespace sb
