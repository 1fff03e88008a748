// --pid: borrowing a running process and giving it back (DESIGN D12: a syscall-stop backend,
// since a seccomp filter could never be removed). Seizing is launch.h's; here the tasks are made,
// and let go at their next quiet stop (Tracer::resume).

#include "tracer.h"

#include <fmt/core.h>
#include <kj/debug.h>

#include "launch.h"

namespace sb {

// Seizes every thread of the process (and any it starts meanwhile) and sets each up as a task;
// their first stop (PTRACE_INTERRUPT) resumes them under PTRACE_SYSCALL.
pid_t Tracer::attach() {
  pid_t pid = options_.attachPid;
  auto tids = seizeProcess(pid);
  auto fs = kj::addRef(*initialFs);
  fs->side = nullptr;  // The process's working directory is here.
  auto fds = kj::refcounted<FdTable>();
  uint32_t seen = 0;
  for (pid_t tid : tids) {
    auto task = kj::heap<Task>();
    task->lineage = kj::str("a", ++seen);  // The threads found at attach, in /proc's order.
    task->tid = tid;
    task->tgid = pid;
    task->fds = kj::addRef(*fds);
    task->fs = kj::addRef(*fs);
    startScope(*task);
    task->attached = true;
    task->execChainHead = true;  // The attached program's own execs stay here (--spawn).
    credentials_.refresh(*task);
    tasks.emplace(tid, kj::mv(task));
  }
  for (pid_t tid : tids) {
    ptrace::interrupt(tid);
  }
  verbose(kj::str("attached to process ", pid, " (", tasks.size(), " threads)"));
  return pid;
}


int64_t Tracer::detachAll() {
  if (!attachMode_) {
    // A seccomp filter can never be removed: a launched program cannot run without its tracer.
    return -EOPNOTSUPP;
  }
  if (!detaching_) {
    detaching_ = true;
    verbose("detaching: each thread is let go at its next stop with no call of ours in flight "
            "and no remote fd open");
    // Every thread comes to a stop soon; resume() then detaches it.
    for (auto& [tid, task] : tasks) {
      ptrace::interrupt(tid);
    }
    // Threads whose process keeps remote fds open go after DETACH_GRACE all the same.
    detachGrace = io.provider->getTimer()
                      .afterDelay(DETACH_GRACE)
                      .then([this]() {
                        detachForced_ = true;
                        kj::Vector<kj::String> left;
                        for (auto& [tid, task] : tasks) {
                          if (!task->detached) {
                            task->fds->forEach([&](int fd, RemoteFile& file) {
                              left.add(kj::str(fd, " (", file.path, ")"));
                            });
                            ptrace::interrupt(tid);
                          }
                        }
                        if (left.size() > 0) {
                          noteOnce("detach-fds",
                                   kj::str("detaching with remote fds still open: ",
                                           kj::strArray(left, ", "),
                                           "; the program's calls on them now fail with EBADF"));
                        }
                      })
                      .eagerlyEvaluate(nullptr);
  }
  return 0;
}

kj::Promise<void> Tracer::detachOnSignal(int sig) {
  return io.unixEventPort.onSignal(sig).then([this](siginfo_t) -> kj::Promise<void> {
    detachAll();
    return kj::Promise<void>(kj::NEVER_DONE);
  });
}

}  // namespace sb
