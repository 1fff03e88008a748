// Session.poll: poll(2) on nodes of one session, for the tracer's poll, select and epoll
// emulation (docs/architecture.md, "Waiting on local and remote fds").
//
// The nodes are looked up first (a node of another session, or one closed with Node.close, is
// POLLNVAL, as a closed fd is for poll(2)). A look (timeout 0) runs inline on the event loop; a
// wait runs on the executor, holding a reference on every fd, so dropping the call interrupts
// the worker's ppoll (EINTR) and the answer is simply dropped.

#include <poll.h>
#include <time.h>

#include <kj/debug.h>

#include "host_wire.h"
#include "session.h"

namespace sb {

namespace {

// One poll of the host: `fds` entries whose node was missing carry POLLNVAL already and fd -1
// (which ppoll ignores), so they count without being asked.
int64_t pollOnce(kj::ArrayPtr<struct pollfd> fds, kj::ArrayPtr<const bool> missing,
                 int64_t timeoutNs) {
  struct timespec ts;
  struct timespec* tsp = nullptr;
  int64_t preset = 0;
  for (bool m : missing) {
    preset += m ? 1 : 0;
  }
  if (timeoutNs >= 0 || preset > 0) {
    int64_t ns = preset > 0 ? 0 : timeoutNs;
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    tsp = &ts;
  }
  int r = ::ppoll(fds.begin(), fds.size(), tsp, nullptr);
  if (r < 0) {
    return -int64_t(errno);
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (missing[i]) {
      fds[i].revents = POLLNVAL;
    }
  }
  return r + preset;
}

}  // namespace

kj::Promise<void> SessionImpl::poll(PollContext context) {
  auto params = context.getParams();
  auto list = params.getFds();
  kj::Vector<kj::Promise<kj::Maybe<kj::Own<FdRef>>>> lookups(list.size());
  for (auto entry : list) {
    auto node = entry.getNode();
    lookups.add(state->nodes.getLocalServer(node)
                    .then([](kj::Maybe<proto::Node::Server&> server) -> kj::Maybe<kj::Own<FdRef>> {
                      KJ_IF_MAYBE(s, server) {
                        // The set only ever holds NodeImpls.
                        return static_cast<NodeImpl&>(*s).shareFd();
                      }
                      return nullptr;
                    }));
  }
  return kj::joinPromises(lookups.releaseAsArray())
      .then([this, context](kj::Array<kj::Maybe<kj::Own<FdRef>>> refs) mutable
            -> kj::Promise<void> {
        auto params = context.getParams();
        auto list = params.getFds();
        int64_t timeoutNs = params.getTimeoutNs();
        auto fds = kj::heapArray<struct pollfd>(refs.size());
        auto missing = kj::heapArray<bool>(refs.size());
        for (size_t i = 0; i < refs.size(); ++i) {
          fds[i].events = pollEventsToHost(list[i].getEvents());
          fds[i].revents = 0;
          fds[i].fd = -1;
          missing[i] = true;
          KJ_IF_MAYBE(ref, refs[i]) {
            fds[i].fd = (*ref)->get();
            missing[i] = false;
          }
        }
        auto answer = [context](int64_t result, kj::ArrayPtr<const struct pollfd> fds) mutable {
          auto results = context.getResults();
          results.setResult(result);
          auto out = results.initRevents(fds.size());
          for (size_t i = 0; i < fds.size(); ++i) {
            pollEventsFromHost(result < 0 ? 0 : fds[i].revents, out[i]);
          }
        };
        if (timeoutNs == 0) {
          answer(pollOnce(fds, missing, 0), fds);
          return kj::READY_NOW;
        }
        context.allowCancellation();
        auto& executor = state->agent.executor;
        return executor
            .run([refs = kj::mv(refs), fds = kj::mv(fds), missing = kj::mv(missing),
                  timeoutNs]() mutable {
              WorkResult w;
              w.result = pollOnce(fds, missing, timeoutNs);
              w.data = kj::heapArray<kj::byte>(fds.asBytes());
              return w;
            })
            .then([answer = kj::mv(answer)](WorkResult&& w) mutable {
              auto fds = kj::arrayPtr(reinterpret_cast<const struct pollfd*>(w.data.begin()),
                                      w.data.size() / sizeof(struct pollfd));
              answer(w.result, fds);
            });
      });
}

}  // namespace sb
