// sbrun: run a program here while its files and host identity live on a target machine.

#include <malloc.h>
#include <signal.h>

#include <fmt/core.h>
#include <kj/async-unix.h>
#include <kj/debug.h>

#include "options.h"
#include "tracer.h"

int main(int argc, char** argv) {
  auto options = sb::parseOptions(argc, argv);
  // Replies of up to 64 MiB arrive in a fresh buffer each: keep freed memory for reuse rather
  // than faulting in new pages per message (see keepMessageMemory in sbagent's main.cc).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);

  // Before any thread exists (kj requirement): SIGCHLD reaches the event loop, never a handler.
  kj::UnixEventPort::captureSignal(SIGCHLD);
  if (options.attachPid > 0) {
    // Attached, SIGINT and SIGTERM mean "let go of the process", which then runs on.
    kj::UnixEventPort::captureSignal(SIGINT);
    kj::UnixEventPort::captureSignal(SIGTERM);
  }
  // Ctrl-C and Ctrl-\ are for the program (it shares our process group); sbrun follows it out.
  // SIGINT, SIGTERM and SIGHUP sent to sbrun alone are passed on to the program.
  if (options.attachPid < 0) {
    sb::captureForwardedSignals();
  }
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);

  int status = sb::EXIT_SBRUN_ERROR;
  auto io = kj::setupAsyncIo();
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    sb::Tracer tracer(io, options);
    if (options.printRules) {
      fmt::print("{}", tracer.rules().describe().cStr());
      fmt::print("{}", tracer.execRules().describe(options.spawn).cStr());
      status = 0;
      return;
    }
    tracer.watchSignals();
    tracer.connectTargets(io.waitScope);
    status = tracer.run(io.waitScope);
  })) {
    fmt::print(stderr, "sbrun: {}\n", e->getDescription().cStr());
    return sb::EXIT_SBRUN_ERROR;
  }
  fflush(stdout);
  // Targets and the tracer are gone: embedded agents see EOF and exit on their own.
  _exit(status);
}
