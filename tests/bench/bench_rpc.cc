// Floor 2: the bare cost of a Cap'n Proto call on the transport sbrun and sbagent use — kj's
// event loop, TwoPartyVatNetwork, RpcSystem over src/fd_stream.h's FdStream — with no
// splitbrain code.
//
//   bench_rpc unix|tcp [CALLS [fd|kj]]
//
// `kj` runs the same over kj's own socket stream instead of FdStream (what both used before),
// for comparison.
//
// Forks a server (the shape of sbagent: accept one connection, RpcSystem on a
// TwoPartyVatNetwork) and runs the client in the parent (the shape of sbrun: one call at a time,
// each awaited on the event loop, as a tracee thread waits for its syscall). Prints
// "ping_us X fetch64_us .. fetch4k_us .. fetch1m_us .. push1m_us .. fetch_MBps .. push_MBps":
// the mean round trip of an empty-ish call, of calls returning 64 B, 4 KiB and 1 MiB (copied out
// into a reused buffer, as sbrun copies into the tracee), and of a call carrying 1 MiB there.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include "bench_rpc.capnp.h"
#include "fd_stream.h"

namespace {

constexpr size_t MIB = 1 << 20;
bool useKjStream = false;

kj::Own<kj::AsyncIoStream> wrap(kj::AsyncIoContext& io, int fd) {
  if (useKjStream) {
    return io.lowLevelProvider->wrapSocketFd(fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  }
  return kj::heap<sb::FdStream>(io.unixEventPort, kj::AutoCloseFd(fd));
}

double now() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + double(t.tv_nsec) / 1e9;
}

capnp::ReaderOptions readerOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = (128ull << 20) / 8;  // as sbrun and sbagent
  return options;
}

class PingImpl final: public Ping::Server {
public:
  PingImpl(): source(kj::heapArray<kj::byte>(MIB)), sink(kj::heapArray<kj::byte>(MIB)) {
    memset(source.begin(), 'x', source.size());
    memset(sink.begin(), 0, sink.size());
  }

protected:
  kj::Promise<void> ping(PingContext context) override {
    context.getResults().setValue(context.getParams().getValue() + 1);
    return kj::READY_NOW;
  }
  kj::Promise<void> fetch(FetchContext context) override {
    size_t n = kj::min(size_t(context.getParams().getCount()), source.size());
    auto data = context.getResults().initData(n);
    memcpy(data.begin(), source.begin(), n);  // stands for the agent's pread into the message
    return kj::READY_NOW;
  }
  kj::Promise<void> push(PushContext context) override {
    auto data = context.getParams().getData();
    size_t n = kj::min(data.size(), sink.size());
    memcpy(sink.begin(), data.begin(), n);  // stands for the agent's write out of the message
    context.getResults().setCount(uint32_t(data.size()));
    return kj::READY_NOW;
  }

private:
  kj::Array<kj::byte> source;
  kj::Array<kj::byte> sink;
};

// kj's own accept and connect set TCP_NODELAY on inet sockets (sbagent and sbrun get it that
// way); these sockets are made by hand, so set it here too.
void noDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on unix
}

void serve(int listenFd) {
  int fd = accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
  KJ_SYSCALL(fd);
  close(listenFd);
  noDelay(fd);
  auto io = kj::setupAsyncIo();
  auto stream = wrap(io, fd);
  capnp::TwoPartyVatNetwork network(*stream, capnp::rpc::twoparty::Side::SERVER, readerOptions());
  auto rpc = capnp::makeRpcServer(network, kj::heap<PingImpl>());
  network.onDisconnect().wait(io.waitScope);
}

struct Figures {
  double pingUs, fetch64Us, fetch4kUs, fetch1mUs, push1mUs;
};

Figures client(int fd, long calls) {
  auto io = kj::setupAsyncIo();
  auto stream = wrap(io, fd);
  capnp::TwoPartyVatNetwork network(*stream, capnp::rpc::twoparty::Side::CLIENT, readerOptions());
  auto rpc = capnp::makeRpcClient(network);
  capnp::MallocMessageBuilder vatIdMessage;
  auto vatId = vatIdMessage.initRoot<capnp::rpc::twoparty::VatId>();
  vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
  auto ping = rpc.bootstrap(vatId).castAs<Ping>();
  auto& ws = io.waitScope;

  auto sink = kj::heapArray<kj::byte>(MIB);
  auto source = kj::heapArray<kj::byte>(MIB);
  memset(sink.begin(), 0, sink.size());
  memset(source.begin(), 'y', source.size());

  auto timePing = [&](long n) {
    double start = now();
    for (long i = 0; i < n; i++) {
      auto req = ping.pingRequest();
      req.setValue(uint64_t(i));
      auto resp = req.send().wait(ws);
      KJ_ASSERT(resp.getValue() == uint64_t(i) + 1);
    }
    return (now() - start) * 1e6 / double(n);
  };
  auto timeFetch = [&](uint32_t count, long n) {
    double start = now();
    for (long i = 0; i < n; i++) {
      auto req = ping.fetchRequest();
      req.setCount(count);
      auto resp = req.send().wait(ws);
      auto data = resp.getData();
      KJ_ASSERT(data.size() == count);
      memcpy(sink.begin(), data.begin(), data.size());
    }
    return (now() - start) * 1e6 / double(n);
  };
  auto timePush = [&](uint32_t count, long n) {
    double start = now();
    for (long i = 0; i < n; i++) {
      auto req = ping.pushRequest();
      auto data = req.initData(count);
      memcpy(data.begin(), source.begin(), count);
      auto resp = req.send().wait(ws);
      KJ_ASSERT(resp.getCount() == count);
    }
    return (now() - start) * 1e6 / double(n);
  };

  timePing(calls / 10 + 1);  // warm up: connection, allocator, caches
  timeFetch(MIB, 20);
  timePush(MIB, 20);
  Figures f;
  f.pingUs = timePing(calls);
  f.fetch64Us = timeFetch(64, calls);
  f.fetch4kUs = timeFetch(4096, calls);
  long bulk = kj::max(calls / 20, 50L);
  f.fetch1mUs = timeFetch(MIB, bulk);
  f.push1mUs = timePush(MIB, bulk);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (strcmp(argv[1], "unix") != 0 && strcmp(argv[1], "tcp") != 0) ||
      (argc > 3 && strcmp(argv[3], "fd") != 0 && strcmp(argv[3], "kj") != 0)) {
    fprintf(stderr, "usage: bench_rpc unix|tcp [CALLS [fd|kj]]\n");
    return 2;
  }
  useKjStream = argc > 3 && strcmp(argv[3], "kj") == 0;
  bool tcp = strcmp(argv[1], "tcp") == 0;
  long calls = argc > 2 ? atol(argv[2]) : 20000;

  int listenFd;
  char unixPath[108] = "";
  if (tcp) {
    listenFd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KJ_SYSCALL(bind(listenFd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  } else {
    listenFd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(unixPath, sizeof(unixPath), "/tmp/sb-bench-rpc-%d.sock", int(getpid()));
    unlink(unixPath);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, unixPath);
    KJ_SYSCALL(bind(listenFd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  }
  KJ_SYSCALL(listen(listenFd, 1));
  struct sockaddr_storage bound;
  socklen_t boundLen = sizeof(bound);
  KJ_SYSCALL(getsockname(listenFd, reinterpret_cast<sockaddr*>(&bound), &boundLen));

  pid_t server = fork();
  KJ_SYSCALL(server);
  if (server == 0) {
    serve(listenFd);
    _exit(0);
  }
  close(listenFd);

  int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  KJ_SYSCALL(fd);
  KJ_SYSCALL(connect(fd, reinterpret_cast<sockaddr*>(&bound), boundLen));
  if (unixPath[0]) {
    unlink(unixPath);
  }
  noDelay(fd);
  Figures f = client(fd, calls);

  int status;
  waitpid(server, &status, 0);
  printf("ping_us %.3f fetch64_us %.3f fetch4k_us %.3f fetch1m_us %.3f push1m_us %.3f "
         "fetch_MBps %.1f push_MBps %.1f\n",
         f.pingUs, f.fetch64Us, f.fetch4kUs, f.fetch1mUs, f.push1mUs, double(MIB) / f.fetch1mUs,
         double(MIB) / f.push1mUs);
  return 0;
}
