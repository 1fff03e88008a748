// NodeImpl, part 3: the socket calls (bind, connect, listen, accept, sendMsg, recvMsg, shutdown,
// options, names), and the nodes Session.socket and Session.socketpair make.
//
// Where the work happens: a call that may wait (a blocking connect or accept, a send that finds
// the buffer full, a recv that finds nothing) runs on the executor and is cancellable (EINTR).
// Every send and recv is first tried inline with MSG_DONTWAIT, so the common case (the data is
// there, there is room) costs no hand-off to a worker; only when that says EAGAIN on a blocking
// socket does a worker wait. SIGPIPE is never raised here (MSG_NOSIGNAL, and the agent ignores
// it): the tracer raises it in the program.
//
// Passed fds (SCM_RIGHTS) cross as nodes: sendMsg puts the fds of the nodes in `fds` where the
// message's ints index them (anything else becomes -1, so no fd number of the agent's own ever
// reaches the kernel from a client), and recvMsg makes a node of each fd received, within
// --max-fds (the rest are closed, MSG_CTRUNC).
//
// Unix paths are confined like every path (DESIGN D8, PITFALLS #21):
//   - connect and sendto: the socket file is opened O_PATH through Confinement::object (which
//     follows symlinks inside the root only) and reached as /proc/self/fd/N, which the kernel
//     resolves to that very inode. Unconfined, an absolute path is used as it is.
//   - bind creates a name: Confinement::parent gives the directory, and a worker whose cwd is
//     that directory (its own CLONE_FS context) binds the last component. The kernel then
//     knows the socket by that relative name, so the node remembers the program's path and
//     getsockname answers it. Unconfined, an absolute path is bound as it is. A read-only agent
//     refuses a new name (EROFS; EADDRINUSE when the name exists, as a read-only mount says).

#include "node.h"

#include <sched.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>

#include <kj/debug.h>

#include "host_wire.h"
#include "socket_wire.h"

namespace sb {

namespace {

// Control data the agent accepts or returns in one call (the kernel's optmem_max is ~20 KiB).
constexpr uint32_t MAX_CONTROL = 64u << 10;
constexpr uint32_t MAX_OPTION = 64u << 10;
// The most fds one message may pass (the kernel's SCM_MAX_FD).
constexpr size_t SCM_MAX_FDS = 253;
// A recv on a worker reads into a worker-owned buffer: bounded, the tracer loops (as read).
constexpr uint64_t MAX_BLOCKING_RECV = 1ull << 20;

// A unix address the kernel can use, and the fd its /proc/self/fd/N path refers to (kept open
// until the call is done).
struct UnixAddr {
  struct sockaddr_storage addr;
  socklen_t len = 0;
  kj::AutoCloseFd hold;
};

void setUnixPath(UnixAddr& out, kj::StringPtr path) {
  memset(&out.addr, 0, sizeof(out.addr));
  auto* sun = reinterpret_cast<struct sockaddr_un*>(&out.addr);
  sun->sun_family = AF_UNIX;
  size_t n = kj::min(path.size(), sizeof(sun->sun_path));
  memcpy(sun->sun_path, path.begin(), n);
  out.len = offsetof(struct sockaddr_un, sun_path) + n + (n < sizeof(sun->sun_path) ? 1 : 0);
}

// The socket file a connect or sendto names, confined (see the top of this file).
int64_t unixPeer(const Confinement& conf, int dirFd, capnp::Data::Reader wire, UnixAddr& out) {
  kj::String path;
  int64_t r = pathFromWire(wire, path);
  if (r < 0) {
    return r;
  }
  if (!conf.isConfined() && path.startsWith("/")) {
    setUnixPath(out, path);
    return 0;
  }
  PathTarget t;
  r = conf.object(dirFd, path, /*follow=*/true, /*emptyPath=*/false, /*needFd=*/true, t);
  if (r < 0) {
    return r;
  }
  out.hold = kj::mv(t.owned);
  setUnixPath(out, kj::str("/proc/self/fd/", out.hold.get()));
  return 0;
}

// Any address of a call: a unix path through unixPeer, the rest through socket_wire.
int64_t peerAddr(const Confinement& conf, int dirFd, proto::SockAddr::Reader in, UnixAddr& out) {
  if (in.isUnixPath()) {
    return unixPeer(conf, dirFd, in.getUnixPath(), out);
  }
  if (in.isUnixAbstract() && conf.isConfined()) {
    return -EPERM;  // under --root: see NodeImpl::bind
  }
  return sockAddrToHost(in, out.addr, out.len);
}

// In a worker: makes `dirFd` the worker's cwd, in a file-system context of its own (CLONE_FS),
// so no other thread of the agent sees the change.
int64_t enterDir(int dirFd) {
  static thread_local bool ownFs = false;
  if (!ownFs) {
    if (unshare(CLONE_FS) < 0) {
      return -int64_t(errno);
    }
    ownFs = true;
  }
  return sysResult(fchdir(dirFd));
}

WorkResult acceptOn(int fd, bool nonBlock) {
  WorkResult w;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int flags = SOCK_CLOEXEC | (nonBlock ? SOCK_NONBLOCK : 0);
  int s = ::accept4(fd, reinterpret_cast<struct sockaddr*>(&ss), &len, flags);
  w.result = sysResult(s);
  if (s >= 0) {
    w.fd = kj::AutoCloseFd(s);
    w.name = kj::heapArray<kj::byte>(reinterpret_cast<const kj::byte*>(&ss), len);
  }
  return w;
}

bool isRights(const struct cmsghdr* c) {
  return c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS;
}

// The fds of the SCM_RIGHTS messages in `w.control` become owned by `w.passed` at once, so that
// a result that nobody answers (a stash dropped with its node) still closes them. answerRecv
// leaves those messages out of the control list it returns.
void takePassedFds(WorkResult& w) {
  if (w.control.size() == 0) {
    return;
  }
  struct msghdr m = {};
  m.msg_control = w.control.begin();
  m.msg_controllen = w.control.size();
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (isRights(c)) {
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        int passed;
        memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        w.passed.add(kj::AutoCloseFd(passed));
      }
    }
  }
}

// What the tracer needs to know of a passed fd that is a socket (PassedFd).
void describeSocket(int fd, proto::PassedFd::Builder out) {
  int domain = 0, type = 0;
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return;
  }
  len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return;
  }
  auto family = sockFamilyFromHost(domain);
  auto kind = sockTypeFromHost(type);
  if (family == nullptr || kind == nullptr) {
    return;
  }
  out.setSocket(true);
  out.setFamily(KJ_ASSERT_NONNULL(family));
  out.setSockType(KJ_ASSERT_NONNULL(kind));
  struct timeval tv;
  len = sizeof(tv);
  out.setReceiveTimeout(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0 &&
                        (tv.tv_sec != 0 || tv.tv_usec != 0));
  len = sizeof(tv);
  out.setSendTimeout(getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 &&
                     (tv.tv_sec != 0 || tv.tv_usec != 0));
}

// One recvmsg into worker-owned buffers; the name, control bytes and msg_flags come back in `w`.
WorkResult recvOn(int fd, size_t count, int flags, uint32_t controlSize) {
  WorkResult w;
  w.data = kj::heapArray<kj::byte>(count);
  w.control = kj::heapArray<kj::byte>(controlSize);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct iovec iov = {w.data.begin(), count};
  struct msghdr m = {};
  m.msg_name = &ss;
  m.msg_namelen = sizeof(ss);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = controlSize > 0 ? w.control.begin() : nullptr;
  m.msg_controllen = controlSize;
  // Passed fds must never leak into processes the agent spawns.
  w.result = sysResult(::recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC));
  if (w.result >= 0) {
    w.name = kj::heapArray<kj::byte>(reinterpret_cast<const kj::byte*>(&ss), m.msg_namelen);
    w.control = kj::heapArray<kj::byte>(w.control.slice(0, m.msg_controllen));
    w.msgFlags = m.msg_flags;
    takePassedFds(w);
  }
  return w;
}

// Fills recvMsg's results from `w`. Passed fds become nodes of the session while --max-fds
// allows; the rest are closed here, counted, and reported as MSG_CTRUNC, as the kernel does
// when it cannot install them (scm_detach_fds stops at the first that fails).
template <typename Results>
void answerRecv(SessionState& session, Results results, WorkResult& w, uint64_t count) {
  results.setResult(w.result);
  if (w.result < 0) {
    return;
  }
  results.setData(w.data.slice(0, kj::min(size_t(w.result), size_t(count))));
  if (w.name.size() > 0) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    copyBytes(&ss, w.name.begin(), kj::min(w.name.size(), sizeof(ss)));
    sockAddrFromHost(ss, w.name.size(), results.initAddr());
  }
  int flags = w.msgFlags;
  kj::Vector<struct cmsghdr*> kept;
  struct msghdr m = {};
  m.msg_control = w.control.begin();
  m.msg_controllen = w.control.size();
  for (struct cmsghdr* c = w.control.size() > 0 ? CMSG_FIRSTHDR(&m) : nullptr; c != nullptr;
       c = CMSG_NXTHDR(&m, c)) {
    if (!isRights(c)) {  // its fds are in w.passed
      kept.add(c);
    }
  }
  auto list = results.initControl(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    list[i].setLevel(kept[i]->cmsg_level);
    list[i].setType(kept[i]->cmsg_type);
    list[i].setData(kj::arrayPtr(CMSG_DATA(kept[i]), kept[i]->cmsg_len - CMSG_LEN(0)));
  }
  size_t max = session.agent.limits.maxNodes;
  size_t room = max > session.liveNodes ? max - session.liveNodes : 0;
  size_t installed = kj::min(room, w.passed.size());
  auto fds = results.initFds(installed);
  for (size_t i = 0; i < installed; ++i) {
    int fd = w.passed[i].get();
    describeSocket(fd, fds[i]);
    if (int fl = fcntl(fd, F_GETFL); fl >= 0) {
      statusFlagsFromHost(fl, fds[i].initFlags());
    }
    proto::FileType type;
    fds[i].setNode(session.newNode(w.passed[i].release(), type));
    fds[i].setType(type);
  }
  uint32_t dropped = w.passed.size() - installed;
  if (dropped > 0) {
    flags |= MSG_CTRUNC;
  }
  w.passed.clear();  // closes those past the limit
  results.setDroppedFds(dropped);
  msgFlagsFromHost(flags, results.initFlags());
}

// What one sendMsg needs in a worker: its own copy of everything (WorkResult rule).
struct SendWork {
  kj::Array<kj::byte> data;
  UnixAddr to;
  bool hasAddr = false;
  kj::Array<kj::byte> control;
  kj::Vector<kj::Own<FdRef>> passed;  // the fds `control` passes, held open
  int flags = 0;

  ssize_t once(int fd, size_t skip, int extraFlags) {
    struct iovec iov = {data.begin() + skip, data.size() - skip};
    struct msghdr m = {};
    if (hasAddr) {
      m.msg_name = &to.addr;
      m.msg_namelen = to.len;
    }
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    // Control messages and the address go with the first bytes only.
    if (skip == 0 && control.size() > 0) {
      m.msg_control = control.begin();
      m.msg_controllen = control.size();
    }
    return ::sendmsg(fd, &m, flags | extraFlags | MSG_NOSIGNAL);
  }
};

}  // namespace

void StashGate::addCancelled(kj::Promise<void> workDone) {
  ++running;
  // The chain belongs to allDone, which this gate owns: `this` outlives it.
  auto done = workDone.catch_([](kj::Exception&&) {}).then([this]() { --running; });
  KJ_IF_MAYBE(before, allDone) {
    done = kj::joinPromises(kj::arr(before->addBranch(), kj::mv(done)));
  }
  allDone = done.fork();
}

kj::Maybe<kj::Promise<void>> StashGate::settled() {
  if (running == 0) {
    return nullptr;
  }
  return KJ_ASSERT_NONNULL(allDone).addBranch();
}

kj::Promise<WorkResult> NodeImpl::runStashing(kj::Function<WorkResult(int fd)> work) {
  auto over = kj::newPromiseAndCrossThreadFulfiller<void>();
  auto answered = kj::heap<bool>(false);
  bool* answeredFlag = answered.get();
  return runBlocking([work = kj::mv(work), over = kj::mv(over.fulfiller)](int fd) mutable {
           WorkResult w = work(fd);
           over->fulfill();
           return w;
         })
      .then([answeredFlag](WorkResult&& w) {
        *answeredFlag = true;
        return kj::mv(w);
      })
      .attach(kj::defer([gate = kj::addRef(*stashGate), answered = kj::mv(answered),
                         done = kj::mv(over.promise)]() mutable {
        if (!*answered) {
          gate->addCancelled(kj::mv(done));
        }
      }));
}

SocketStash& NodeImpl::socketStash() {
  if (stash == nullptr) {
    stash = kj::atomicRefcounted<SocketStash>();
  }
  return *KJ_ASSERT_NONNULL(stash);
}

namespace {

// A stashed recv result for a call that asks for `count` bytes: a stream's extra bytes go back
// to the front of the stash; a datagram is cut, as the kernel cuts it (MSG_TRUNC).
WorkResult fromStash(SocketStash& stash, WorkResult w, uint64_t count, int flags, bool stream) {
  size_t have = kj::min(size_t(w.result), w.data.size());
  if (have <= count) {
    return w;
  }
  if (stream) {
    WorkResult rest;
    rest.result = int64_t(have - count);
    rest.data = kj::heapArray<kj::byte>(w.data.slice(count, have));
    std::lock_guard<std::mutex> lock(stash.mutex);
    stash.results.push_front(kj::mv(rest));
    w.result = int64_t(count);
  } else {
    w.msgFlags |= MSG_TRUNC;
    w.result = (flags & MSG_TRUNC) ? int64_t(have) : int64_t(count);
  }
  w.data = kj::heapArray<kj::byte>(w.data.slice(0, count));
  return w;
}

bool isStreamSocket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

}  // namespace

kj::Promise<int> NodeImpl::dirFdOf(proto::Node::Client dir, bool has) {
  if (!has) {
    return confinement().rootFd();
  }
  return sameSessionNode(kj::mv(dir)).then([](kj::Maybe<NodeImpl&> node) -> int {
    KJ_IF_MAYBE(n, node) {
      return n->fdOrError();
    }
    return -EBADF;
  });
}

kj::Promise<void> NodeImpl::bind(BindContext context) {
  auto params = context.getParams();
  auto addr = params.getAddr();
  int f = fdOrError();
  if (f < 0 || !addr.isUnixPath()) {
    struct sockaddr_storage ss;
    socklen_t len;
    // Under --root, abstract unix names are refused (EPERM): they live in one namespace for
    // the whole machine (per network namespace), outside any directory --root could confine,
    // so binding one could squat a name a service on B uses, and connecting to one reaches it.
    int64_t r = f < 0                                            ? f
                : addr.isUnixAbstract() && confinement().isConfined() ? -EPERM
                                                                  : sockAddrToHost(addr, ss, len);
    if (r >= 0) {
      r = sysResult(::bind(f, reinterpret_cast<struct sockaddr*>(&ss), len));
    }
    context.getResults().setResult(r);
    return kj::READY_NOW;
  }
  auto work = [this, context](int dirFd) mutable -> kj::Promise<void> {
    auto wire = context.getParams().getAddr().getUnixPath();
    kj::String path;
    int64_t r = dirFd < 0 ? dirFd : pathFromWire(wire, path);
    PathTarget t;
    if (r >= 0) {
      r = nameTarget(dirFd, path, NameUse::CREATE, t);
      if (r == -EEXIST) {
        r = -EADDRINUSE;  // what bind says for an existing name
      }
    }
    if (r < 0) {
      context.getResults().setResult(r);
      return kj::READY_NOW;
    }
    auto remember = [this, program = kj::heapArray<kj::byte>(wire)](int64_t r) mutable {
      if (r == 0) {
        boundPath = kj::mv(program);
      }
      return r;
    };
    if (t.name.startsWith("/")) {
      UnixAddr a;
      setUnixPath(a, t.name);
      int64_t res = sysResult(::bind(fdOrError(), reinterpret_cast<struct sockaddr*>(&a.addr),
                                     a.len));
      context.getResults().setResult(remember(res));
      return kj::READY_NOW;
    }
    // The worker needs a directory fd of its own: the dir node may be closed meanwhile.
    kj::AutoCloseFd dir = t.owned.get() >= 0 ? kj::mv(t.owned)
                                              : kj::AutoCloseFd(fcntl(t.dirFd, F_DUPFD_CLOEXEC, 0));
    if (dir.get() < 0) {
      context.getResults().setResult(-int64_t(errno));
      return kj::READY_NOW;
    }
    context.allowCancellation();
    return runBlocking([dir = kj::mv(dir), name = kj::mv(t.name)](int fd) {
      WorkResult w;
      w.result = enterDir(dir.get());
      if (w.result == 0) {
        UnixAddr a;
        setUnixPath(a, name);
        w.result = sysResult(::bind(fd, reinterpret_cast<struct sockaddr*>(&a.addr), a.len));
      }
      return w;
    }).then([context, remember = kj::mv(remember)](WorkResult&& w) mutable {
      context.getResults().setResult(remember(w.result));
    });
  };
  // Under asCaller: a unix name is made and reached with the caller's credentials.
  return dirFdOf(params.getDir(), params.hasDir()).then(keepCaller(kj::mv(work)));
}

kj::Promise<void> NodeImpl::connect(ConnectContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  auto work = [this, context](int dirFd) mutable -> kj::Promise<void> {
    auto addr = context.getParams().getAddr();
    UnixAddr to;
    int64_t r = addr.isUnixPath() && dirFd < 0 ? dirFd : peerAddr(confinement(), dirFd, addr, to);
    int f = fdOrError();
    if (r < 0 || f < 0) {
      context.getResults().setResult(r < 0 ? r : f);
      return kj::READY_NOW;
    }
    if (!mayBlock()) {
      r = sysResult(::connect(f, reinterpret_cast<struct sockaddr*>(&to.addr), to.len));
      context.getResults().setResult(r);
      return kj::READY_NOW;
    }
    context.allowCancellation();
    return runBlocking([to = kj::mv(to)](int fd) mutable {
      WorkResult w;
      w.result = sysResult(::connect(fd, reinterpret_cast<struct sockaddr*>(&to.addr), to.len));
      return w;
    }).then([context](WorkResult&& w) mutable { context.getResults().setResult(w.result); });
  };
  // Under asCaller: a unix name is made and reached with the caller's credentials.
  return dirFdOf(params.getDir(), params.hasDir()).then(keepCaller(kj::mv(work)));
}

kj::Promise<void> NodeImpl::listen(ListenContext context) {
  int f = fdOrError();
  int64_t r = f < 0 ? f : sysResult(::listen(f, context.getParams().getBacklog()));
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::accept(AcceptContext context) {
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  KJ_IF_MAYBE(wait, stashGate->settled()) {
    context.allowCancellation();
    return wait->then([this, context]() mutable { return accept(context); });
  }
  bool nonBlock = context.getParams().getNonBlock();
  auto answer = [this, context](WorkResult&& w) mutable {
    auto results = context.getResults();
    results.setResult(w.result);
    if (w.result < 0) {
      return;
    }
    proto::FileType type;
    results.setNode(session->newNode(w.fd.release(), type));
    results.setResult(0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    copyBytes(&ss, w.name.begin(), kj::min(w.name.size(), sizeof(ss)));
    sockAddrFromHost(ss, w.name.size(), results.initAddr());
  };
  KJ_IF_MAYBE(kept, stash) {
    KJ_IF_MAYBE(w, (*kept)->take()) {
      // A connection a cancelled accept took from the kernel. (It was accepted with that call's
      // SOCK_NONBLOCK; this call's is applied.)
      int fl = fcntl(w->fd.get(), F_GETFL);
      fcntl(w->fd.get(), F_SETFL, nonBlock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
      answer(kj::mv(*w));
      return kj::READY_NOW;
    }
  }
  if (!mayBlock()) {
    answer(acceptOn(f, nonBlock));
    return kj::READY_NOW;
  }
  context.allowCancellation();
  auto shared = kj::atomicAddRef(socketStash());
  return runStashing([nonBlock, shared = kj::atomicAddRef(*shared)](int fd) mutable {
    WorkResult w = acceptOn(fd, nonBlock);
    if (w.result < 0) {
      return w;
    }
    shared->put(kj::mv(w));
    return WorkResult();  // the connection waits in the stash
  }).then([answer = kj::mv(answer), shared = kj::mv(shared)](WorkResult&& w) mutable {
    if (w.result < 0) {
      answer(kj::mv(w));
    } else {
      answer(KJ_ASSERT_NONNULL(shared->take()));
    }
  });
}

kj::Promise<void> NodeImpl::sendMsg(SendMsgContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  // The fds the message passes, as this session's nodes (a foreign or closed one: none).
  auto nodes = params.getFds();
  if (nodes.size() > SCM_MAX_FDS) {
    context.getResults().setResult(-EINVAL);  // more than one message may carry
    return kj::READY_NOW;
  }
  auto lookups = kj::heapArrayBuilder<kj::Promise<kj::Maybe<kj::Own<FdRef>>>>(nodes.size());
  for (auto node : nodes) {
    lookups.add(sameSessionNode(node).then(
        [](kj::Maybe<NodeImpl&> n) -> kj::Maybe<kj::Own<FdRef>> {
          KJ_IF_MAYBE(impl, n) {
            return impl->shareFd();
          }
          return nullptr;
        }));
  }
  bool unixPath = params.hasAddr() && params.getAddr().isUnixPath();
  auto dirFd = dirFdOf(params.getDir(), params.hasDir() && unixPath);
  struct Resolved {
    int dirFd;
    kj::Array<kj::Maybe<kj::Own<FdRef>>> passed;
  };
  return kj::joinPromises(lookups.finish())
      .then([dirFd = kj::mv(dirFd)](kj::Array<kj::Maybe<kj::Own<FdRef>>> fds) mutable {
        return dirFd.then([fds = kj::mv(fds)](int d) mutable { return Resolved{d, kj::mv(fds)}; });
      })
      .then([this, context](Resolved&& resolved) mutable -> kj::Promise<void> {
    int dirFd = resolved.dirFd;
    auto passed = kj::mv(resolved.passed);
    auto params = context.getParams();
    auto results = context.getResults();
    int f = fdOrError();
    SendWork work;
    int64_t r = f;
    if (r >= 0 && params.hasAddr()) {
      work.hasAddr = true;
      r = params.getAddr().isUnixPath() && dirFd < 0
              ? dirFd
              : peerAddr(confinement(), dirFd, params.getAddr(), work.to);
    }
    // Control messages in this host's layout (the tracer sends them only between equal ABIs).
    auto control = params.getControl();
    size_t space = 0;
    for (auto c : control) {
      space += CMSG_SPACE(c.getData().size());
    }
    if (r >= 0 && space > MAX_CONTROL) {
      r = -ENOBUFS;
    }
    if (r < 0) {
      results.setResult(r);
      return kj::READY_NOW;
    }
    work.control = kj::heapArray<kj::byte>(space);
    memset(work.control.begin(), 0, space);
    if (space > 0) {
      struct msghdr m = {};
      m.msg_control = work.control.begin();
      m.msg_controllen = space;
      struct cmsghdr* c = CMSG_FIRSTHDR(&m);
      for (auto in : control) {
        auto data = in.getData();
        c->cmsg_level = in.getLevel();
        c->cmsg_type = in.getType();
        c->cmsg_len = CMSG_LEN(data.size());
        copyBytes(CMSG_DATA(c), data.begin(), data.size());
        if (isRights(c)) {
          // Indexes into `fds` become the nodes' fds; anything else -1, so that the kernel
          // answers EBADF where it would. The agent's own fd numbers never pass.
          for (size_t i = 0; i < data.size() / sizeof(int); ++i) {
            int32_t index;
            memcpy(&index, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            int fd = -1;
            if (index >= 0 && size_t(index) < passed.size()) {
              KJ_IF_MAYBE(ref, passed[index]) {
                fd = (*ref)->get();
              }
            }
            memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
          }
        }
        c = CMSG_NXTHDR(&m, c);
      }
    }
    // The passed fds stay open while a worker may still send them.
    for (auto& ref : passed) {
      KJ_IF_MAYBE(r, ref) {
        work.passed.add(kj::mv(*r));
      }
    }
    auto data = params.getData();
    size_t count = kj::min(data.size(), MAX_TRANSFER);
    work.flags = msgFlagsToHost(params.getFlags());
    bool wait = mayBlock() && !(work.flags & MSG_DONTWAIT);
    // First without waiting, straight from the request's bytes.
    work.data = kj::heapArray<kj::byte>(0);
    {
      struct iovec iov = {const_cast<kj::byte*>(data.begin()), count};
      struct msghdr m = {};
      if (work.hasAddr) {
        m.msg_name = &work.to.addr;
        m.msg_namelen = work.to.len;
      }
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      if (space > 0) {
        m.msg_control = work.control.begin();
        m.msg_controllen = space;
      }
      ssize_t n = ::sendmsg(f, &m, work.flags | MSG_NOSIGNAL | (wait ? MSG_DONTWAIT : 0));
      bool again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      bool partial = n >= 0 && size_t(n) < count;
      if (!wait || (!again && !partial)) {
        results.setResult(sysResult(n));
        return kj::READY_NOW;
      }
      // A blocking socket with no room (left): a worker waits, with the rest of the bytes.
      size_t sent = n > 0 ? size_t(n) : 0;
      work.data = kj::heapArray<kj::byte>(data.slice(sent, count));
      if (sent > 0) {
        work.control = kj::heapArray<kj::byte>(0);  // went with the first bytes
        work.passed.clear();
      }
      context.allowCancellation();
      return runBlocking([work = kj::mv(work)](int fd) mutable {
        WorkResult w;
        w.result = sysResult(work.once(fd, 0, 0));
        return w;
      }).then([context, sent](WorkResult&& w) mutable {
        int64_t r = w.result < 0 ? (sent > 0 ? int64_t(sent) : w.result) : w.result + int64_t(sent);
        context.getResults().setResult(r);
      });
    }
  });
}

kj::Promise<void> NodeImpl::recvMsg(RecvMsgContext context) {
  KJ_IF_MAYBE(wait, stashGate->settled()) {
    context.allowCancellation();
    return wait->then([this, context]() mutable { return recvMsg(context); });
  }
  auto params = context.getParams();
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  uint64_t count = kj::min(params.getCount(), MAX_TRANSFER);
  uint32_t controlSize = kj::min(params.getControlSize(), MAX_CONTROL);
  int flags = msgFlagsToHost(params.getFlags());
  bool wait = mayBlock() && !(flags & MSG_DONTWAIT);
  if (wait) {
    count = kj::min(count, MAX_BLOCKING_RECV);
  }
  if (!(flags & MSG_PEEK)) {
    KJ_IF_MAYBE(kept, stash) {
      KJ_IF_MAYBE(w, (*kept)->take()) {
        WorkResult got = fromStash(**kept, kj::mv(*w), count, flags, isStreamSocket(f));
        answerRecv(*session, context.getResults(), got, count);
        return kj::READY_NOW;
      }
    }
  }
  // What a worker receives goes through the stash (see SocketStash), unless it only peeks.
  auto blockingRecv = [this](uint64_t count, int flags, uint32_t controlSize) {
    kj::Maybe<kj::Own<SocketStash>> shared;
    if (!(flags & MSG_PEEK)) {
      shared = kj::atomicAddRef(socketStash());
    }
    kj::Maybe<kj::Own<SocketStash>> mine;
    KJ_IF_MAYBE(s, shared) {
      mine = kj::atomicAddRef(**s);
    }
    return runStashing([count, flags, controlSize, shared = kj::mv(shared)](int fd) mutable {
      WorkResult w = recvOn(fd, count, flags, controlSize);
      KJ_IF_MAYBE(s, shared) {
        if (w.result >= 0) {
          (*s)->put(kj::mv(w));
          return WorkResult();
        }
      }
      return w;
    }).then([mine = kj::mv(mine)](WorkResult&& w) mutable -> WorkResult {
      KJ_IF_MAYBE(s, mine) {
        if (w.result >= 0) {
          return KJ_ASSERT_NONNULL((*s)->take());
        }
      }
      return kj::mv(w);
    });
  };
  // First without waiting: most receives find their data there.
  WorkResult now = recvOn(f, count, flags | (wait ? MSG_DONTWAIT : 0), controlSize);
  bool again = now.result == -EAGAIN || now.result == -EWOULDBLOCK;
  if (!wait || !again) {
    // MSG_WAITALL on a blocking stream wants the whole count: a short inline read is then
    // completed by a worker below; otherwise this is the answer.
    // (The kernel ends a stream read at the bytes that brought fds, even with MSG_WAITALL.)
    bool incomplete = wait && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && now.result > 0 &&
                      uint64_t(now.result) < count && now.passed.size() == 0;
    if (!incomplete) {
      answerRecv(*session, context.getResults(), now, count);
      return kj::READY_NOW;
    }
    int64_t got = now.result;
    context.allowCancellation();
    return blockingRecv(count - got, flags, controlSize).then([this, context, now = kj::mv(now), count, got](WorkResult&& rest) mutable {
      // What the first read got is delivered even if the rest fails (it was consumed).
      size_t more = rest.result > 0 ? size_t(rest.result) : 0;
      auto all = kj::heapArray<kj::byte>(got + more);
      copyBytes(all.begin(), now.data.begin(), got);
      copyBytes(all.begin() + got, rest.data.begin(), more);
      now.data = kj::mv(all);
      now.result = got + int64_t(more);
      // Fds that came with the rest are the answer's (the kernel's read stopped there).
      for (auto& fd : rest.passed) {
        now.passed.add(kj::mv(fd));
      }
      now.msgFlags |= rest.msgFlags & MSG_CTRUNC;
      answerRecv(*session, context.getResults(), now, count);
    });
  }
  context.allowCancellation();
  return blockingRecv(count, flags, controlSize).then([this, context, count](WorkResult&& w) mutable {
    answerRecv(*session, context.getResults(), w, count);
  });
}

kj::Promise<void> NodeImpl::shutdown(ShutdownContext context) {
  int f = fdOrError();
  int how = SHUT_RDWR;
  switch (context.getParams().getHow()) {
    case proto::ShutdownHow::READ: how = SHUT_RD; break;
    case proto::ShutdownHow::WRITE: how = SHUT_WR; break;
    case proto::ShutdownHow::BOTH: how = SHUT_RDWR; break;
  }
  context.getResults().setResult(f < 0 ? f : sysResult(::shutdown(f, how)));
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::getSockOpt(GetSockOptContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  int f = fdOrError();
  if (f < 0 || params.getSize() > MAX_OPTION) {
    results.setResult(f < 0 ? f : -EINVAL);
    return kj::READY_NOW;
  }
  auto buf = kj::heapArray<kj::byte>(params.getSize());
  memset(buf.begin(), 0, buf.size());
  socklen_t len = buf.size();
  int64_t r = sysResult(::getsockopt(f, params.getLevel(), params.getName(), buf.begin(), &len));
  results.setResult(r);
  if (r >= 0) {
    results.setValue(buf.slice(0, kj::min(size_t(len), buf.size())));
  }
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::setSockOpt(SetSockOptContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  auto value = params.getValue();
  int64_t r = f < 0 ? f
                    : sysResult(::setsockopt(f, params.getLevel(), params.getName(),
                                             value.begin(), value.size()));
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::sockName(SockNameContext context) {
  auto results = context.getResults();
  int f = fdOrError();
  if (f < 0) {
    results.setResult(f);
    return kj::READY_NOW;
  }
  bool peer = context.getParams().getPeer();
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len = sizeof(ss);
  auto* sa = reinterpret_cast<struct sockaddr*>(&ss);
  int64_t r = sysResult(peer ? ::getpeername(f, sa, &len) : ::getsockname(f, sa, &len));
  results.setResult(r);
  if (r < 0) {
    return kj::READY_NOW;
  }
  KJ_IF_MAYBE(path, boundPath) {
    if (!peer && ss.ss_family == AF_UNIX) {
      results.initAddr().setUnixPath(*path);
      return kj::READY_NOW;
    }
  }
  sockAddrFromHost(ss, len, results.initAddr());
  return kj::READY_NOW;
}

}  // namespace sb
