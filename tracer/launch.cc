#include "launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>
#include <kj/debug.h>

#include "options.h"
#include "path_rules.h"
#include "proc_status.h"
#include "ptrace.h"
#include "seccomp_filter.h"

namespace sb {

// ptrace on a tracee that vanished (SIGKILL, exit_group from another thread) is an expected
// race (PITFALLS #6): the exit shows up in waitpid; callers just stop caring.
int pickControlFd() {
  struct rlimit lim;
  rlim_t soft = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 1024;
  if (soft < 64) {
    return -1;
  }
  return static_cast<int>(kj::min(soft, rlim_t(1024)) - 1);
}

// Fast calls run untrapped below the control fd's block (it must always trap).
int fastLimitFor(int controlFd) {
  return controlFd < 0 ? 1024 : controlFd / SeccompFilter::BLOCK * SeccompFilter::BLOCK;
}

// A program sbrun runs: $ENV, else the first of `relative` (paths relative to sbrun's own
// directory: installed, then build tree) that is executable, else `fallback`.
kj::String findHelper(const char* env, std::initializer_list<kj::StringPtr> relative,
                      kj::StringPtr fallback) {
  if (const char* value = getenv(env)) {
    return kj::str(value);
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = 0;
    kj::StringPtr exe(self);
    KJ_IF_MAYBE(slash, exe.findLast('/')) {
      auto dir = kj::heapString(exe.slice(0, *slash));
      for (auto& rel : relative) {
        auto candidate = kj::str(dir, "/", rel);
        if (access(candidate.cStr(), X_OK) == 0) {
          return candidate;
        }
      }
    }
  }
  return kj::str(fallback);
}

// The sbagent to spawn for `local` targets: beside sbrun (installed), the build tree, or PATH.
kj::String findAgent() {
  return findHelper("SB_AGENT", {"sbagent", "../agent/sbagent"}, "sbagent");
}

// Where sb-stub is looked for, relative to sbrun's directory: installed, then the build tree.
const kj::StringPtr STUB_PLACES[] = {"../libexec/splitbrain/sb-stub", "sb-stub"};

// sb-stub, which stands in for remote programs: it must be an absolute path, as it is exec'd
// from whatever directory the program is in.
kj::String findStub() {
  auto found = findHelper("SB_STUB", {STUB_PLACES[0], STUB_PLACES[1]}, "");
  if (found.size() > 0 && !found.startsWith("/")) {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) {
      return kj::str(cwd, "/", found);
    }
  }
  return found;
}

kj::String stubNotFound() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  kj::String dir = kj::str(".");
  if (n > 0) {
    self[n] = 0;
    kj::StringPtr exe(self);
    KJ_IF_MAYBE(slash, exe.findLast('/')) {
      dir = kj::heapString(exe.slice(0, *slash));
    }
  }
  return kj::str("sb-stub is not installed beside sbrun (looked for ", dir, "/", STUB_PLACES[0],
                 " and ", dir, "/", STUB_PLACES[1], "; SB_STUB is not set): build it with "
                 "`meson compile -C BUILD` or `ninja -C BUILD tracer/sb-stub`, or install "
                 "splitbrain");
}

kj::String findProgram(kj::StringPtr program) {
  if (program.findFirst('/') != nullptr) {
    return kj::str(program);
  }
  // Without PATH, glibc's execvpe searches confstr(_CS_PATH).
  const char* path = getenv("PATH");
  kj::StringPtr rest = path ? path : "/bin:/usr/bin";
  while (rest.size() > 0) {
    auto colon = rest.findFirst(':').orDefault(rest.size());
    kj::ArrayPtr<const char> dir = rest.slice(0, colon);
    // An empty entry is the current directory, for execvpe as for the shell.
    auto candidate = kj::str(dir.size() > 0 ? dir : kj::StringPtr(".").asArray(), "/", program);
    if (access(candidate.cStr(), X_OK) == 0) {
      return candidate;
    }
    rest = colon < rest.size() ? rest.slice(colon + 1) : kj::StringPtr("");
  }
  return kj::str("");
}

// The install prefix of an executable path (PREFIX/bin/prog -> PREFIX), lexically.
kj::String prefixOf(kj::StringPtr exe) {
  auto abs = normalizePath("/", exe);
  auto bin = kj::heapString(abs.slice(0, abs.findLast('/').orDefault(0)));
  return kj::heapString(bin.slice(0, bin.findLast('/').orDefault(0)));
}

// The program's install prefixes for the default fallback rules: where its path says (a
// virtualenv's bin/python) and where its symlinks lead (the interpreter's own prefix). `found`
// is findProgram()'s answer.
std::pair<kj::String, kj::String> programPrefixes(kj::StringPtr found) {
  if (found.size() == 0) {
    return {kj::str(""), kj::str("")};
  }
  char cwd[4096];
  auto absolute = found.startsWith("/") || getcwd(cwd, sizeof(cwd)) == nullptr
                      ? kj::str(found) : kj::str(cwd, "/", found);
  char real[4096];
  auto resolved = realpath(found.cStr(), real) ? prefixOf(real) : kj::str("");
  return {prefixOf(absolute), kj::mv(resolved)};
}

pid_t launchTraced(const kj::Vector<kj::String>& command, kj::StringPtr programPath,
                   int controlFd, const SeccompFilter& filter) {
  auto& argv0 = command[0];
  kj::Vector<char*> argv;
  for (auto& a : command) {
    argv.add(const_cast<char*>(a.cStr()));
  }
  argv.add(nullptr);
  // The program's environment, with SB_CONTROL_FD naming its control fd (control.h).
  kj::Vector<kj::String> envStrings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!kj::StringPtr(*e).startsWith("SB_CONTROL_FD=")) {
      envStrings.add(kj::str(*e));
    }
  }
  if (controlFd >= 0) {
    envStrings.add(kj::str("SB_CONTROL_FD=", controlFd));
  }
  kj::Vector<char*> envp;
  for (auto& e : envStrings) {
    envp.add(const_cast<char*>(e.cStr()));
  }
  envp.add(nullptr);

  int gate[2];
  KJ_SYSCALL(pipe2(gate, O_CLOEXEC));
  pid_t pid = fork();
  KJ_SYSCALL(pid, "fork");
  if (pid == 0) {
    // Child: only async-signal-safe work until exec. Restore what sbrun changed for itself.
    close(gate[1]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (controlFd >= 0) {
      // Its placeholder: an O_PATH fd, inherited by children, a plain fd to anyone but sbrun.
      int fd = open("/", O_PATH);
      if (fd < 0 || (fd != controlFd && (dup2(fd, controlFd) < 0 || close(fd) < 0))) {
        _exit(EXIT_SBRUN_ERROR);
      }
    }
    char go;
    if (read(gate[0], &go, 1) != 1) {
      _exit(EXIT_SBRUN_ERROR);  // The parent could not trace us: never run untraced.
    }
    int rc = filter.install();
    if (rc < 0) {
      const char msg[] = "sbrun: cannot install the seccomp filter\n";
      (void)!write(2, msg, sizeof(msg) - 1);
      _exit(EXIT_SBRUN_ERROR);
    }
    if (programPath.size() > 0) {
      // Where the PATH walk in the constructor found it: execvpe would try every PATH entry
      // before it again, each failed execve a stop for the tracer. Should this exec fail after
      // all (ENOEXEC for a script without #!, a race), execvpe decides as it always did.
      execve(programPath.cStr(), argv.begin(), envp.begin());
    }
    execvpe(argv[0], argv.begin(), envp.begin());
    int err = errno;
    // The filter is in place and traced: this message goes through the tracer like any write.
    fmt::print(stderr, "sbrun: cannot execute {}: {}\n", argv[0], strerror(err));
    _exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
  }
  close(gate[0]);
  if (int err = ptrace::seize(pid, ptrace::LAUNCH_OPTIONS); err != 0) {
    kill(pid, SIGKILL);
    close(gate[1]);
    waitpid(pid, nullptr, 0);
    KJ_FAIL_REQUIRE(kj::str("cannot trace ", argv0, ": ptrace(PTRACE_SEIZE): ", strerror(err),
                            err == EPERM ? " (is ptrace forbidden here, e.g. by Yama "
                                           "ptrace_scope=3 or a container's seccomp profile?)"
                                         : ""));
  }
  KJ_SYSCALL(write(gate[1], "g", 1));
  close(gate[1]);
  return pid;
}

kj::Vector<pid_t> seizeProcess(pid_t pid) {
  if (pid == getpid()) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, "sbrun cannot attach to itself"));
  }
  auto taskDir = kj::str("/proc/", pid, "/task");
  kj::Vector<pid_t> seized;
  auto known = [&](pid_t tid) {
    for (pid_t t : seized) {
      if (t == tid) {
        return true;
      }
    }
    return false;
  };
  for (bool added = true; added;) {
    added = false;
    DIR* dir = opendir(taskDir.cStr());
    if (dir == nullptr) {
      kj::throwFatalException(KJ_EXCEPTION(
          FAILED, seized.empty() ? kj::str("no process with pid ", pid)
                                 : kj::str("cannot attach to process ", pid, ": ",
                                           whyNoAttach(pid, ESRCH))));
    }
    while (struct dirent* e = readdir(dir)) {
      pid_t tid = atoi(e->d_name);
      if (tid <= 0 || known(tid)) {
        continue;
      }
      if (int err = ptrace::seize(tid, ptrace::ATTACH_OPTIONS); err != 0) {
        if (err == ESRCH && tid != pid) {
          continue;  // A thread that just ended.
        }
        closedir(dir);
        for (pid_t t : seized) {
          ptrace::resume(t, ptrace::Resume::DETACH);
        }
        KJ_FAIL_REQUIRE(kj::str("cannot attach to process ", pid, ": ", whyNoAttach(pid, err)));
      }
      seized.add(tid);
      added = true;
    }
    closedir(dir);
  }
  return seized;
}

kj::String whyNoAttach(pid_t pid, int err) {
  if (err == ESRCH) {
    return kj::str("process ", pid, " exited while sbrun was attaching");
  }
  if (err != EPERM) {
    return kj::str(strerror(err));
  }
  if (pid_t tracer = ProcStatus::read(pid).tracerPid; tracer > 0) {
    return kj::str("it is already traced by process ", tracer,
                   " (a debugger, strace, or another sbrun): only one tracer at a time");
  }
  int scope = -1;
  if (FILE* f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re")) {
    if (fscanf(f, "%d", &scope) != 1) {
      scope = -1;
    }
    fclose(f);
  }
  if (scope >= 1) {
    return kj::str("operation not permitted: Yama ptrace_scope is ", scope,
                   scope == 1 ? " (only a parent may trace its child: run sbrun as root, or "
                                "`sysctl kernel.yama.ptrace_scope=0`)"
                              : " (tracing other processes needs CAP_SYS_PTRACE, or is off)");
  }
  return kj::str("operation not permitted (another user's process? tracing it needs "
                 "CAP_SYS_PTRACE)");
}

}  // namespace sb
