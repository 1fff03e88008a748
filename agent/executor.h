// Executor: runs the syscalls that may block (a read on a FIFO or socket, opening a FIFO, a
// waiting lock, fsync ...) on worker threads, so one slow call never stalls the event loop that
// serves every session (DESIGN D8). Calls that cannot block (regular files, directories) run
// inline on the loop and never come here.
//
// How a call goes:
//   - `run(work)` queues `work` and returns a promise for its WorkResult. A worker thread runs it
//     and hands the result back through kj's cross-thread fulfiller, which wakes the loop.
//   - The pool grows on demand (an idle worker is reused, otherwise a new one starts, up to a
//     cap), because blocked calls can depend on each other: a FIFO read waits for a write that
//     must not queue behind it.
//   - Dropping the promise cancels the call (the RPC was cancelled, or the connection went away):
//     a queued job is skipped; a running one gets SIG_INTERRUPT via pthread_kill. The handler is a
//     no-op installed without SA_RESTART, so the blocked syscall returns EINTR. A signal that lands
//     just before the worker enters the syscall would be lost, so the loop re-sends it on a timer
//     until the worker reports the job done.
//   - `interrupt` (through a JobHandle) interrupts a job the same way WITHOUT cancelling it
//     (Node.interrupt, the tracer's two-phase interrupt): its promise stays alive and completes
//     with whatever the work returned (-EINTR, or the data it got first). A job still queued
//     completes with -EINTR without running. Work must therefore return promptly on EINTR.
//   - The job's result is then dropped on whichever side lets go last: anything it holds (an fd
//     the work opened, a buffer) is released by its own destructor. Work must therefore own
//     everything it touches (copies of input bytes, a reference on the fd), never borrow from
//     the RPC's messages, which are freed on cancellation.
//
// Worker threads block every signal except SIG_INTERRUPT, so process signals reach the loop.

#pragma once

#include <fcntl.h>
#include <signal.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <kj/async.h>
#include <kj/function.h>
#include <kj/io.h>
#include <kj/refcount.h>
#include <kj/timer.h>
#include <kj/vector.h>

namespace sb {

// The signal that interrupts a worker's syscall. Not SIGUSR1, which KJ reserves for its own
// cross-thread wake-ups on some platforms.
constexpr int SIG_INTERRUPT = SIGUSR2;

// What a blocking call produced. `result` is the kernel's ret or -errno; the rest is filled by
// the calls that need it.
struct WorkResult {
  int64_t result = 0;
  kj::AutoCloseFd fd;             // An fd the work opened (closed if nobody takes it).
  kj::Array<kj::byte> data;       // Bytes the work read; `result` of them are valid.
  int64_t offsets[2] = {-1, -1};  // Advanced file offsets (copyTo).
  struct flock lock = {};         // F_GETLK answers.
  // Socket calls (node_socket.cc): the address the kernel gave (accept, recvmsg), the control
  // bytes and msg_flags of a recvmsg.
  kj::Array<kj::byte> name;
  kj::Array<kj::byte> control;
  int msgFlags = 0;
  // The fds an SCM_RIGHTS message brought (left out of `control`), in order: closed unless a
  // node takes them.
  kj::Vector<kj::AutoCloseFd> passed;
};

// Starts an executor's worker threads where they must be born: a new thread shares its creator's
// fd table, and a lock owner's workers must share the owner's (lock_owner.h). Called with the
// executor's mutex held, from the event loop thread: it must not call back into the executor.
// Such workers cannot wake the event loop (kj does so by writing to an eventfd, a number in the
// agent's table), so their results go through a relay thread of the agent's table.
class ThreadStarter {
public:
  virtual std::thread start(std::function<void()> body) = 0;

protected:
  ~ThreadStarter() = default;
};

class Executor final: private kj::TaskSet::ErrorHandler {
  struct Job;

public:
  // `timer` drives the re-sending of interrupts. Installs the SIG_INTERRUPT handler. Workers
  // start as threads of the event loop thread, or through `starter`.
  explicit Executor(kj::Timer& timer, size_t maxWorkers = 256,
                    kj::Maybe<ThreadStarter&> starter = nullptr);
  // Interrupts every running job and joins the workers.
  ~Executor() noexcept(false);
  KJ_DISALLOW_COPY(Executor);

  // Runs `work` on a worker thread. Must be called on the event loop thread.
  kj::Promise<WorkResult> run(kj::Function<WorkResult()> work);

  // A job that can be interrupted without being cancelled (see run's overload below).
  class JobHandle {
  public:
    JobHandle(Executor& executor, kj::Own<Job> job);
    ~JobHandle() noexcept(false);
    KJ_DISALLOW_COPY(JobHandle);
    // Makes the job's blocking syscall return EINTR (re-sent until the job is done); a queued
    // job still runs, and is signalled once it does: as a signal that comes before a syscall,
    // it ends only a call that waits. No-op once the job is done. Loop thread only.
    void interrupt();

  private:
    Executor& executor;
    kj::Own<Job> job;
  };
  // Like run(), and sets `handle` to a handle on the job, valid as long as the executor.
  kj::Promise<WorkResult> run(kj::Function<WorkResult()> work, kj::Own<JobHandle>& handle);

  // For tests and logs: workers currently running a job, and workers started so far.
  size_t busyWorkers() const;
  size_t workerCount() const;

  kj::Timer& getTimer() const { return timer; }

private:
  kj::Timer& timer;
  const size_t maxWorkers;
  kj::Maybe<ThreadStarter&> starter;
  kj::TaskSet resignals;

  mutable std::mutex mutex;
  std::condition_variable wakeWorkers;
  std::deque<kj::Own<Job>> queue;
  std::vector<std::thread> workers;
  size_t idle = 0;
  size_t busy = 0;
  bool stopping = false;

  // With a starter: finished jobs, for the relay thread to fulfil.
  std::thread relay;
  std::condition_variable wakeRelay;
  std::deque<kj::Own<Job>> finished;
  bool relayStopping = false;

  void workerMain();
  void relayMain();
  // Hands a finished job's result (or exception) to its promise: at once, or through the relay.
  void deliver(kj::Own<Job> job);
  void cancel(Job& job);
  void interrupt(Job& job);
  kj::Promise<void> resignalLater(kj::Own<Job> job, kj::Duration delay);
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace sb
