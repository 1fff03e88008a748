#include "executor.h"

#include <pthread.h>

#include <cerrno>
#include <cstring>

#include <kj/debug.h>

#include "credentials.h"

namespace sb {

namespace {

void onInterrupt(int) {
  // Nothing to do: being delivered is the point, it makes the blocked syscall return EINTR.
}

void installInterruptHandler() {
  static std::once_flag once;
  std::call_once(once, []() {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = &onInterrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // No SA_RESTART: the interrupted syscall must return EINTR.
    KJ_SYSCALL(sigaction(SIG_INTERRUPT, &sa, nullptr));
    // A write to a FIFO or socket whose reader left must answer EPIPE to the tracee, not kill
    // the agent and every other session with it.
    signal(SIGPIPE, SIG_IGN);
    // A lease taken for a moment to learn B's answer (Node.lease) that another open breaks
    // meanwhile sends SIGIO to the agent, whose default action would end it.
    signal(SIGIO, SIG_IGN);
  });
}

}  // namespace

// One queued call. The state fields are guarded by Executor::mutex.
struct Executor::Job: public kj::AtomicRefcounted {
  enum class State { QUEUED, RUNNING, DONE };

  kj::Function<WorkResult()> work;
  kj::Own<kj::CrossThreadPromiseFulfiller<WorkResult>> fulfiller;
  State state = State::QUEUED;
  kj::Maybe<WorkResult> result;         // once DONE: what the work returned,
  kj::Maybe<kj::Exception> exception;  // or what it threw
  bool cancelled = false;
  bool interrupted = false;  // JobHandle::interrupt: signalled while it runs; the result is wanted
  pthread_t thread{};

  Job(kj::Function<WorkResult()> work,
      kj::Own<kj::CrossThreadPromiseFulfiller<WorkResult>> fulfiller)
      : work(kj::mv(work)), fulfiller(kj::mv(fulfiller)) {}
};

Executor::Executor(kj::Timer& timer, size_t maxWorkers, kj::Maybe<ThreadStarter&> starter)
    : timer(timer), maxWorkers(maxWorkers), starter(starter), resignals(*this) {
  KJ_REQUIRE(maxWorkers > 0);
  installInterruptHandler();
  if (starter != nullptr) {
    relay = std::thread([this]() { relayMain(); });
  }
}

Executor::~Executor() noexcept(false) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
    queue.clear();
  }
  wakeWorkers.notify_all();
  // Workers still inside a syscall are interrupted until they come out; a worker blocked in an
  // uninterruptible call (fsync on a dead NFS server) would hold the join, as it would hold exit.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (busy == 0) {
        break;
      }
    }
    // The running jobs record their threads; interrupting every worker is simpler and harmless.
    for (auto& worker: workers) {
      pthread_kill(worker.native_handle(), SIG_INTERRUPT);
    }
    usleep(1000);
  }
  for (auto& worker: workers) {
    worker.join();
  }
  if (relay.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      relayStopping = true;
    }
    wakeRelay.notify_all();
    relay.join();
  }
}

kj::Promise<WorkResult> Executor::run(kj::Function<WorkResult()> work) {
  kj::Own<JobHandle> unused;
  return run(kj::mv(work), unused);
}

Executor::JobHandle::JobHandle(Executor& executor, kj::Own<Job> job)
    : executor(executor), job(kj::mv(job)) {}
Executor::JobHandle::~JobHandle() noexcept(false) {}

void Executor::JobHandle::interrupt() { executor.interrupt(*job); }

kj::Promise<WorkResult> Executor::run(kj::Function<WorkResult()> work,
                                      kj::Own<JobHandle>& handle) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<WorkResult>();
  kj::Own<Job> job = kj::atomicRefcounted<Job>(kj::mv(work), kj::mv(paf.fulfiller));
  // Our reference is taken before the queue has the job: a worker may run and drop it at once.
  kj::Own<Job> mine = kj::atomicAddRef(*job);
  handle = kj::heap<JobHandle>(*this, kj::atomicAddRef(*job));
  {
    std::lock_guard<std::mutex> lock(mutex);
    KJ_REQUIRE(!stopping, "executor is shutting down");
    queue.push_back(kj::mv(job));
    // Every queued job needs a worker of its own: an idle worker already counted for an earlier
    // job (woken, not yet running it) must not be counted twice, or this job may wait forever
    // behind one that blocks.
    if (queue.size() > idle && workers.size() < maxWorkers) {
      KJ_IF_MAYBE(s, starter) {
        workers.push_back(s->start([this]() { workerMain(); }));
      } else {
        workers.emplace_back([this]() { workerMain(); });
      }
    }
  }
  wakeWorkers.notify_one();
  // The defer runs when the promise is consumed or dropped; after completion it is a no-op.
  return paf.promise.attach(kj::defer([this, job = kj::mv(mine)]() mutable { cancel(*job); }));
}

void Executor::workerMain() {
  // Born with the credentials of the thread that started it, which may be a caller's.
  adoptOwnCredentials();
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, SIG_INTERRUPT);
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);

  std::unique_lock<std::mutex> lock(mutex);
  for (;;) {
    ++idle;
    wakeWorkers.wait(lock, [this]() { return stopping || !queue.empty(); });
    --idle;
    if (stopping) {
      return;
    }
    kj::Own<Job> job = kj::mv(queue.front());
    queue.pop_front();
    if (job->cancelled) {
      // Dropping the fulfiller rejects a promise nobody waits for any more.
      continue;
    }
    // Interrupted before it ran, it runs all the same: a signal that comes before a syscall
    // starts ends it only if it waits (the re-signalling that interrupt() began goes on while it
    // runs), so a call that does not wait (TCGETS, the open of a regular file) completes.
    job->state = Job::State::RUNNING;
    job->thread = pthread_self();
    ++busy;
    lock.unlock();

    WorkResult result;
    KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() { result = job->work(); })) {
      // Work functions only make syscalls; an exception here is a bug, reported to the caller.
      lock.lock();
      job->state = Job::State::DONE;
      --busy;
      lock.unlock();
      job->exception = kj::mv(*exception);
      deliver(kj::mv(job));
      lock.lock();
      continue;
    }

    // DONE must be recorded before anything else can run on this thread, so a late
    // pthread_kill meant for this job can never interrupt the next one.
    lock.lock();
    job->state = Job::State::DONE;
    --busy;
    lock.unlock();
    job->result = kj::mv(result);
    deliver(kj::mv(job));
    lock.lock();
  }
}

void Executor::deliver(kj::Own<Job> job) {
  if (relay.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      finished.push_back(kj::mv(job));
    }
    wakeRelay.notify_one();
    return;
  }
  // Fulfilling a cancelled promise is allowed: the value is dropped here, on this thread.
  KJ_IF_MAYBE(e, job->exception) {
    job->fulfiller->reject(kj::mv(*e));
  } else {
    job->fulfiller->fulfill(kj::mv(KJ_ASSERT_NONNULL(job->result)));
  }
}

void Executor::relayMain() {
  // Born with the credentials and the signal mask of the loop thread: it only fulfils.
  adoptOwnCredentials();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  std::unique_lock<std::mutex> lock(mutex);
  for (;;) {
    wakeRelay.wait(lock, [this]() { return relayStopping || !finished.empty(); });
    if (finished.empty()) {
      return;  // stopping, and every result delivered
    }
    kj::Own<Job> job = kj::mv(finished.front());
    finished.pop_front();
    lock.unlock();
    KJ_IF_MAYBE(e, job->exception) {
      job->fulfiller->reject(kj::mv(*e));
    } else {
      job->fulfiller->fulfill(kj::mv(KJ_ASSERT_NONNULL(job->result)));
    }
    job = nullptr;
    lock.lock();
  }
}

void Executor::cancel(Job& job) {
  std::lock_guard<std::mutex> lock(mutex);
  if (job.state == Job::State::DONE || job.cancelled) {
    return;
  }
  job.cancelled = true;
  if (job.state == Job::State::RUNNING && !job.interrupted) {  // else already re-signalled
    pthread_kill(job.thread, SIG_INTERRUPT);
    resignals.add(resignalLater(kj::atomicAddRef(job), 1 * kj::MILLISECONDS));
  }
}

void Executor::interrupt(Job& job) {
  std::lock_guard<std::mutex> lock(mutex);
  if (job.state == Job::State::DONE || job.cancelled || job.interrupted) {
    return;
  }
  job.interrupted = true;
  if (job.state == Job::State::RUNNING) {
    pthread_kill(job.thread, SIG_INTERRUPT);
  }
  // A queued job is signalled once a worker runs it (resignalLater waits for that).
  resignals.add(resignalLater(kj::atomicAddRef(job), 1 * kj::MILLISECONDS));
}

kj::Promise<void> Executor::resignalLater(kj::Own<Job> job, kj::Duration delay) {
  return timer.afterDelay(delay).then([this, job = kj::mv(job), delay]() mutable
                                      -> kj::Promise<void> {
    {
      std::lock_guard<std::mutex> lock(mutex);
      bool waiting = job->state == Job::State::QUEUED && !job->cancelled && !stopping;
      if (job->state != Job::State::RUNNING && !waiting) {
        return kj::READY_NOW;
      }
      if (job->state == Job::State::RUNNING) {
        pthread_kill(job->thread, SIG_INTERRUPT);
      }
    }
    // Back off: a call that ignores signals (fsync in D state) should not cost a busy loop.
    kj::Duration next = delay * 2 < 100 * kj::MILLISECONDS ? delay * 2 : 100 * kj::MILLISECONDS;
    return resignalLater(kj::mv(job), next);
  });
}

size_t Executor::busyWorkers() const {
  std::lock_guard<std::mutex> lock(mutex);
  return busy;
}

size_t Executor::workerCount() const {
  std::lock_guard<std::mutex> lock(mutex);
  return workers.size();
}

void Executor::taskFailed(kj::Exception&& exception) {
  KJ_LOG(ERROR, "interrupting a cancelled worker call failed", exception);
}

}  // namespace sb
