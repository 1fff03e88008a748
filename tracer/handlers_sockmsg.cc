// Handlers for the send and receive family on remote sockets: send, sendto, sendmsg, sendmmsg,
// recv, recvfrom, recvmsg, recvmmsg, with their addresses and control messages. Passed fds
// (SCM_RIGHTS) cross as nodes of the socket's target: those the program sends are mapped
// (mapRights), those it receives are installed as placeholders (deliverFds).

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kj/debug.h>
#include <kj/vector.h>

#include "handlers_net.h"
#include "sockopt_table.h"

namespace sb::handler {

namespace {

using namespace sock;

// ---------------------------------------------------------------------------------------------
// send and receive

// One send of the family in flight: the program's iovecs, an address and control messages for
// the first piece. A stream socket's data goes in CHUNK pieces (a short send ends the call, as
// for write); any other socket's message goes whole (a datagram cannot be split).
struct SendJob : public kj::Refcounted {
  Call& call;
  kj::Own<RemoteFile> file;
  bool stream;
  kj::Array<IoVec> iov;
  uint64_t count;
  uint64_t flags;
  capnp::MallocMessageBuilder extra;  // holds the address, if any
  kj::Maybe<proto::SockAddr::Reader> addr;
  kj::Array<kj::byte> control;
  kj::Vector<net::RawCmsg> cmsgs;
  // The remote fds SCM_RIGHTS passes; the message's ints are indexes into this (mapRights).
  kj::Vector<kj::Own<RemoteFile>> passed;
  uint64_t doneBytes = 0;
  // Whether call.progress counts this job's bytes (sendmmsg counts messages instead).
  bool bytesProgress = true;

  SendJob(Call& call, RemoteFile& f, bool stream, kj::Array<IoVec> iov, uint64_t count,
          uint64_t flags)
      : call(call), file(kj::addRef(f)), stream(stream), iov(kj::mv(iov)), count(count),
        flags(flags) {}

  kj::Promise<int64_t> step() {
    uint64_t want = stream ? kj::min(count - doneBytes, CHUNK) : count;
    file->ioEpoch++;  // An EPOLLET interest counts the next rise as an edge (epoll_set.h).
    auto req = file->node.sendMsgRequest();
    auto data = req.initData(want);
    if (gather(call, sliceIovecs(iov, doneBytes, want), data) < 0) {
      return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : int64_t(-EFAULT);
    }
    msgFlags(call, flags, req.initFlags());
    if (doneBytes == 0) {
      KJ_IF_MAYBE(a, addr) {
        req.setAddr(*a);
        setDirFor(call, *file, req, *a);
      }
      auto list = req.initControl(cmsgs.size());
      for (size_t i = 0; i < cmsgs.size(); ++i) {
        list[i].setLevel(cmsgs[i].level);
        list[i].setType(cmsgs[i].type);
        list[i].setData(cmsgs[i].data);
      }
      auto fds = req.initFds(passed.size());
      for (size_t i = 0; i < passed.size(); ++i) {
        fds.set(i, passed[i]->node);
      }
    }
    call.target = &file->target;
    return req.send().then([this, want](auto reply) -> kj::Promise<int64_t> {
      int64_t r = reply.getResult();
      if (r < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : r;
      }
      KJ_REQUIRE(static_cast<uint64_t>(r) <= want, "agent sent more bytes than it was given");
      doneBytes += r;
      if (bytesProgress) {
        call.progress = static_cast<int64_t>(doneBytes);
      }
      if (!stream || static_cast<uint64_t>(r) < want || doneBytes >= count) {
        return static_cast<int64_t>(doneBytes);
      }
      return step();
    });
  }
};

// EPIPE raises SIGPIPE at the thread unless MSG_NOSIGNAL, as the kernel's send does.
Outcome sendOutcome(int64_t r, uint64_t flags) {
  bool noSignal = flags & 0x4000;
  return Complete{r, r == -EPIPE && !noSignal ? SIGPIPE : 0};
}

kj::Promise<Outcome> runSend(Call& c, kj::Own<SendJob> job) {
  if (!job->stream && job->count > MAX_DATAGRAM) {
    return done(-EMSGSIZE);
  }
  c.interruptible = !(job->flags & 0x40);  // MSG_DONTWAIT never waits
  c.interruptNode = job->file->node;
  KJ_IF_MAYBE(s, job->file->socket) {
    c.restartOnSignal = !s->sendTimeout;
  }
  uint64_t flags = job->flags;
  auto& j = *job;
  KJ_IF_MAYBE(s, job->file->socket) {
    if (!job->stream && s->localEnd.empty() && wantEndpoints(c)) {
      // -yy: a datagram socket's first send binds it to a port B picks.
      auto file = kj::addRef(*job->file);
      return j.step()
          .then([flags, file = kj::mv(file)](int64_t r) mutable -> kj::Promise<Outcome> {
            if (r < 0) {
              return sendOutcome(r, flags);
            }
            return learnLocalEnd(*file).then([r, flags]() { return sendOutcome(r, flags); });
          })
          .attach(kj::mv(job));
    }
  }
  return j.step()
      .then([flags](int64_t r) { return sendOutcome(r, flags); })
      .attach(kj::mv(job));
}

kj::Promise<Outcome> hSendto(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    uint64_t len = kj::min(c.arg(2), uint64_t(INT32_MAX));  // the kernel caps it so
    auto iov = kj::heapArray<IoVec>({IoVec{c.arg(1), len}});
    auto job = kj::refcounted<SendJob>(c, f, isStream(s), kj::mv(iov), len, c.arg(3));
    if (c.arg(4) != 0) {
      auto a = job->extra.initRoot<proto::SockAddr>();
      int64_t r = readSockAddr(c, c.arg(4), c.arg(5), a);
      if (r < 0) {
        return done(r);
      }
      job->addr = a.asReader();
    }
    return runSend(c, kj::mv(job));
  });
}

// struct msghdr on x86-64.
struct MsgHdr {
  uint64_t name;
  int32_t namelen;
  int32_t pad;
  uint64_t iov;
  uint64_t iovlen;
  uint64_t control;
  uint64_t controllen;
  int32_t flags;
  int32_t pad2;
};
static_assert(sizeof(MsgHdr) == 56);

// Whether the tracee's fd number is open (a local fd: it is not in the remote table).
bool localFdOpen(pid_t tid, int32_t fd) {
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  char link[8];
  return readlink(path.cStr(), link, sizeof(link)) >= 0;
}

// SCM_RIGHTS in a sendmsg's control (the kernel's __scm_send/scm_fp_copy, which a unix socket
// runs before anything else): each fd becomes an index into `job.passed`, whose nodes the agent
// puts in its place. A remote fd of the socket's target crosses as its node; an fd of this
// machine, or of another target, cannot reach the target's kernel: EOPNOTSUPP, with a note. A
// bad fd, too many fds, or a socket of another family is left to the target's kernel (-1 in
// the message), which answers EBADF or EINVAL in its own order with the other messages' errors.
int64_t mapRights(Call& c, RemoteFile& sock, SocketInfo& s, SendJob& job) {
  constexpr size_t SCM_MAX_FD = 253;
  bool kernelDecides = s.family != proto::SockFamily::UNIX;  // EINVAL there, no fd looked at
  size_t total = 0;
  for (auto& m : job.cmsgs) {
    if (m.level != net::K_SOL_SOCKET || m.type != net::K_SCM_RIGHTS) {
      continue;
    }
    size_t num = m.data.size() / sizeof(int32_t);
    total += num;
    if (total > SCM_MAX_FD) {
      kernelDecides = true;
    }
    kj::byte* ints = job.control.begin() + (m.data.begin() - job.control.begin());
    for (size_t i = 0; i < num; ++i) {
      int32_t fd;
      memcpy(&fd, ints + i * sizeof(fd), sizeof(fd));
      int32_t index = -1;
      if (!kernelDecides) {
        RemoteFile* file = nullptr;
        if (fd >= 0) {
          KJ_IF_MAYBE(f, c.task.fds->find(fd)) {
            file = f;
          }
        }
        if (file != nullptr && file->isStale()) {
          return -EIO;  // as every call on an fd of a lost session (failure-semantics.md)
        }
        if (file != nullptr && !file->control && &file->target == &sock.target) {
          index = static_cast<int32_t>(job.passed.size());
          shareReadAhead(c.tracer, *file);  // Its receiver sees the agent's offset.
          job.passed.add(kj::addRef(*file));
        } else if (file != nullptr || (fd >= 0 && localFdOpen(c.task.tid, fd))) {
          kj::StringPtr what = file == nullptr   ? "an fd of this machine"_kj
                               : file->control  ? "the control fd"_kj
                                                : "an fd of another target"_kj;
          c.tracer.noteOnce(kj::str("scm_rights:", what),
                            kj::str("fd ", fd, " passed (SCM_RIGHTS) over a socket on ",
                                    sock.target.name(), " is ", what,
                                    ": only fds of that target can cross; answering EOPNOTSUPP"));
          return -EOPNOTSUPP;
        } else {
          kernelDecides = true;  // not open: the target's kernel says EBADF here
        }
      }
      memcpy(ints + i * sizeof(index), &index, sizeof(index));
    }
  }
  return 0;
}

// The part of sendmsg that reads one msghdr into a job (shared with sendmmsg).
int64_t prepareSendmsg(Call& c, RemoteFile& f, SocketInfo& s, uint64_t msgAddr, uint64_t flags,
                       kj::Own<SendJob>& out) {
  MsgHdr m;
  if (c.mem().readValue(msgAddr, m) < 0) {
    return -EFAULT;
  }
  if (m.iovlen > UIO_MAXIOV_) {
    return -EMSGSIZE;
  }
  if (m.controllen > INT32_MAX) {
    return -ENOBUFS;
  }
  kj::Array<IoVec> iov;
  uint64_t total;
  int64_t r = readIovecs(c, m.iov, static_cast<int64_t>(m.iovlen), iov, total);
  if (r < 0) {
    return r;
  }
  auto job = kj::refcounted<SendJob>(c, f, isStream(s), kj::mv(iov), total, flags);
  if (m.name != 0 && m.namelen != 0) {
    // The kernel clamps a long name to sockaddr_storage; a negative one is EINVAL.
    if (m.namelen < 0) {
      return -EINVAL;
    }
    int32_t len = kj::min(m.namelen, static_cast<int32_t>(net::MAX_SOCKADDR));
    auto a = job->extra.initRoot<proto::SockAddr>();
    r = readSockAddr(c, m.name, len, a);
    if (r < 0) {
      return r;
    }
    job->addr = a.asReader();
  }
  if (m.controllen > 0) {
    if (m.controllen > MAX_CONTROL) {
      return -ENOBUFS;
    }
    job->control = kj::heapArray<kj::byte>(m.controllen);
    if (c.mem().read(m.control, job->control) < 0) {
      return -EFAULT;
    }
    r = net::decodeCmsgs(job->control, job->cmsgs);
    if (r < 0) {
      return r;
    }
    if (job->cmsgs.size() > 0 && refuseForeignAbi(c, f.target, "control messages")) {
      return -EOPNOTSUPP;
    }
    r = mapRights(c, f, s, *job);
    if (r < 0) {
      return r;
    }
  }
  out = kj::mv(job);
  return 0;
}

kj::Promise<Outcome> hSendmsg(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    kj::Own<SendJob> job;
    int64_t r = prepareSendmsg(c, f, s, c.arg(1), c.arg(2), job);
    if (r < 0) {
      return done(r);
    }
    return runSend(c, kj::mv(job));
  });
}

// One receive: into `iov`, with the name and control buffers of a msghdr (0: none wanted).
struct RecvSpec {
  kj::Array<IoVec> iov;
  uint64_t count = 0;
  uint64_t name = 0;        // where the address goes
  uint64_t nameLenAddr = 0; // recvfrom: the socklen_t*; recvmsg: &msg->msg_namelen
  uint64_t control = 0;
  uint64_t controlLen = 0;
  uint64_t msgAddr = 0;     // recvmsg: the msghdr, whose controllen and flags are answered
};

constexpr uint32_t K_MSG_CTRUNC = 0x8;
constexpr uint64_t K_MSG_CMSG_CLOEXEC = 0x40000000;
constexpr size_t CMSG_HEADER = 16;  // struct cmsghdr on x86-64

// Fds a receive brought (SCM_RIGHTS), still to be installed in the program before its call
// returns: the kernel lays their message out after the others and writes the new fd numbers
// there (scm_detach_fds).
struct FdDelivery {
  kj::Vector<kj::Own<RemoteFile>> files;
  kj::Vector<int32_t> numbers;  // the local fds installed so far, in order
  uint64_t cmsgAddr = 0;        // where the SCM_RIGHTS message goes
  uint64_t room = 0;            // control bytes left there
  uint64_t used = 0;            // control bytes the other messages took
  uint64_t msgAddr = 0;         // the msghdr whose msg_controllen and msg_flags are answered
  uint32_t flags = 0;           // msg_flags as they stand
};

struct Received {
  int64_t result;
  kj::Maybe<FdDelivery> fds;
};

// A passed fd as a remote file of `target`, with what the tracer keeps of a socket.
kj::Own<RemoteFile> passedFile(Call& c, AgentLink& target, proto::PassedFd::Reader p) {
  auto file = kj::refcounted<RemoteFile>(
      target, p.getNode(), p.getType(),
      p.getSocket() ? socketLabel(p.getFamily(), p.getSockType()) : kj::str("passed fd"));
  if (p.hasFlags()) {  // else an older agent: not known, taken as read-only as before
    auto access = p.getFlags().getAccess();
    file->pathOnly = access == proto::AccessMode::PATH;
    file->writable = access == proto::AccessMode::WRITE_ONLY ||
                     access == proto::AccessMode::READ_WRITE;
  }
  if (p.getSocket()) {
    SocketInfo info{p.getFamily(), p.getSockType()};
    info.receiveTimeout = p.getReceiveTimeout();
    info.sendTimeout = p.getSendTimeout();
    file->socket = info;
  } else if (p.getType() == proto::FileType::SOCKET) {
    c.tracer.noteOnce("scm_rights_family",
                      "a socket of a family sbrun does not know was passed to the program: socket"
                      " calls on it answer ENOTSOCK");
  }
  return file;
}

kj::Promise<Received> recvOnce(Call& c, RemoteFile& f, RecvSpec spec, uint64_t flags) {
  f.ioEpoch++;  // An EPOLLET interest counts the next rise as an edge (epoll_set.h).
  auto req = f.node.recvMsgRequest();
  req.setCount(spec.count);
  msgFlags(c, flags, req.initFlags());
  req.setControlSize(kj::min(spec.controlLen, MAX_CONTROL));
  c.target = &f.target;
  AgentLink* target = &f.target;
  return req.send().then([&c, target, spec = kj::mv(spec)](auto reply) -> Received {
    int64_t r = reply.getResult();
    if (r < 0) {
      return {r, nullptr};
    }
    auto data = reply.getData();
    KJ_REQUIRE(data.size() <= spec.count, "agent answered a recv with more bytes than asked");
    if (reply.getDroppedFds() > 0) {
      c.tracer.noteOnce("scm_rights_in",
                        kj::str("fds passed (SCM_RIGHTS) to the program were closed on ",
                                target->name(), ": its --max-fds limit was reached; the"
                                " program sees MSG_CTRUNC"));
    }
    if (data.size() > 0 && scatter(c, spec.iov, data) < 0) {
      return {-EFAULT, nullptr};
    }
    if (spec.nameLenAddr != 0) {
      int64_t w = putSockAddr(c, spec.name, spec.nameLenAddr, reply.hasAddr(), reply.getAddr());
      if (w < 0) {
        return {w, nullptr};
      }
    }
    if (spec.msgAddr == 0) {
      return {r, nullptr};  // no control buffer: passed fds are dropped (closed on the target)
    }
    bool ctrunc = false;
    auto out = kj::heapArray<kj::byte>(kj::min(spec.controlLen, MAX_CONTROL));
    size_t used = net::encodeCmsgs(reply.getControl(), out, ctrunc);
    if (used > 0 && c.mem().write(spec.control, out.slice(0, used)) < 0) {
      return {-EFAULT, nullptr};
    }
    uint32_t mflags = net::encodeMsgFlags(reply.getFlags()) | (ctrunc ? K_MSG_CTRUNC : 0);
    auto passed = reply.getFds();
    if (passed.size() > 0) {
      FdDelivery d;
      d.room = out.size() - used;
      d.used = used;
      d.cmsgAddr = spec.control + used;
      d.msgAddr = spec.msgAddr;
      // As many as the room holds (scm_max_fds); the target's kernel had the same room.
      size_t fit = d.room > CMSG_HEADER ? (d.room - CMSG_HEADER) / sizeof(int32_t) : 0;
      for (size_t i = 0; i < kj::min(fit, size_t(passed.size())); ++i) {
        d.files.add(passedFile(c, *target, passed[i]));
      }
      if (d.files.size() > 0) {
        // The kernel writes each number before it installs the fd: into a buffer it cannot
        // write, it installs none (and says MSG_CTRUNC).
        auto zeros = kj::heapArray<kj::byte>(CMSG_HEADER + d.files.size() * sizeof(int32_t));
        memset(zeros.begin(), 0, zeros.size());
        if (c.mem().write(d.cmsgAddr, zeros) < 0) {
          d.files.clear();
        }
      }
      if (d.files.size() < passed.size()) {
        mflags |= K_MSG_CTRUNC;
      }
      d.flags = mflags;
      if (d.files.size() > 0) {
        return {r, kj::mv(d)};  // msg_controllen and msg_flags once they are installed
      }
    }
    uint64_t controllen = used;
    if (c.mem().writeValue(spec.msgAddr + offsetof(MsgHdr, controllen), controllen) < 0 ||
        c.mem().writeValue(spec.msgAddr + offsetof(MsgHdr, flags), mflags) < 0) {
      return {-EFAULT, nullptr};
    }
    return {r, nullptr};
  });
}

// Installs the fds of `list` as placeholders in the program, in order, as a Sequence: the
// trapped call becomes openat("/", O_PATH) for the first (as Tracer::installPlaceholder), and
// each next one an fcntl(first, F_DUPFD[_CLOEXEC], 0) from the same syscall instruction, so the
// kernel picks every number (lowest free, as scm_detach_fds). Each is bound to its remote file
// at once. When one fails (EMFILE), the rest are dropped (closed on the target) and MSG_CTRUNC
// says so. Then the SCM_RIGHTS messages, msg_controllen and msg_flags are written, and the call
// returns `ret`.
struct FdInstaller {
  kj::Vector<FdDelivery> list;
  bool cloexec;
  bool batch;  // recvmmsg: the count stands even if a msghdr cannot be written
  int64_t ret;
  user_regs_struct base;
  size_t d = 0, i = 0;  // the file the running step installs
  int64_t first = -1;

  Sequence::Step step(Task& task, int64_t fd) {
    if (fd < 0) {
      return finish(task);
    }
    task.fds->bind(static_cast<int>(fd), kj::mv(list[d].files[i]));
    list[d].numbers.add(static_cast<int32_t>(fd));
    if (first < 0) {
      first = fd;
    }
    if (++i >= list[d].files.size()) {
      ++d;
      i = 0;
    }
    if (d >= list.size()) {
      return finish(task);
    }
    return Sequence::Next{abi::syscallRegs(
        base, SYS_fcntl,
        {static_cast<uint64_t>(first), static_cast<uint64_t>(cloexec ? F_DUPFD_CLOEXEC : F_DUPFD),
         0})};
  }

  Sequence::Step finish(Task& task) {
    TraceeMemory mem(task.tid);
    bool fault = false;
    for (auto& dl : list) {
      size_t n = dl.numbers.size();
      uint64_t controllen = dl.used;
      uint32_t flags = dl.flags | (n < dl.files.size() ? K_MSG_CTRUNC : 0);
      if (n > 0) {
        uint64_t len = CMSG_HEADER + n * sizeof(int32_t);
        int32_t level = net::K_SOL_SOCKET, type = net::K_SCM_RIGHTS;
        fault = fault || mem.writeValue(dl.cmsgAddr, len) < 0 ||
                mem.writeValue(dl.cmsgAddr + 8, level) < 0 ||
                mem.writeValue(dl.cmsgAddr + 12, type) < 0 ||
                mem.write(dl.cmsgAddr + CMSG_HEADER, dl.numbers.asPtr().asBytes()) < 0;
        controllen += kj::min(net::cmsgSpace(n * sizeof(int32_t)), dl.room);
      }
      fault = fault ||
              mem.writeValue(dl.msgAddr + offsetof(MsgHdr, controllen), controllen) < 0 ||
              mem.writeValue(dl.msgAddr + offsetof(MsgHdr, flags), flags) < 0;
    }
    list.clear();  // what was not installed is closed on the target
    return Sequence::Done{fault && !batch ? int64_t(-EFAULT) : ret};
  }
};

Outcome deliverFds(Call& c, int64_t ret, kj::Vector<FdDelivery> list, bool cloexec, bool batch) {
  if (list.size() == 0 || ret < 0) {
    return Complete{ret};  // (an error drops them: closed on the target)
  }
  auto installer = kj::heap<FdInstaller>(
      FdInstaller{kj::mv(list), cloexec, batch, ret, c.regs});
  user_regs_struct open;
  KJ_IF_MAYBE(regs, c.tracer.placeholderOpen(c, cloexec)) {
    open = *regs;
  } else {
    installer->d = installer->list.size();
    auto done = installer->finish(c.task);
    return Complete{done.get<Sequence::Done>().ret};
  }
  Task& task = c.task;
  return Sequence{open, [&task, installer = kj::mv(installer)](int64_t fd) mutable {
                    return installer->step(task, fd);
                  }};
}

void prepareRecv(Call& c, RemoteFile& f, SocketInfo& s, uint64_t flags) {
  c.interruptible = !(flags & 0x40);  // MSG_DONTWAIT never waits
  c.interruptNode = f.node;  // two-phase interrupt (Tracer::onParkedSignal)
  c.restartOnSignal = !s.receiveTimeout;
}

kj::Promise<Outcome> hRecvfrom(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    RecvSpec spec;
    spec.count = kj::min(c.arg(2), uint64_t(INT32_MAX));
    spec.iov = kj::heapArray<IoVec>({IoVec{c.arg(1), spec.count}});
    if (c.arg(4) != 0) {
      spec.name = c.arg(4);
      spec.nameLenAddr = c.arg(5);
    }
    prepareRecv(c, f, s, c.arg(3));
    return recvOnce(c, f, kj::mv(spec), c.arg(3)).then([](Received got) -> Outcome {
      return Complete{got.result};
    });
  });
}

// Reads one msghdr for recvmsg/recvmmsg into `spec`.
int64_t prepareRecvmsg(Call& c, uint64_t msgAddr, RecvSpec& spec) {
  MsgHdr m;
  if (c.mem().readValue(msgAddr, m) < 0) {
    return -EFAULT;
  }
  if (m.iovlen > UIO_MAXIOV_) {
    return -EMSGSIZE;
  }
  int64_t r = readIovecs(c, m.iov, static_cast<int64_t>(m.iovlen), spec.iov, spec.count);
  if (r < 0) {
    return r;
  }
  if (m.name != 0) {
    if (m.namelen < 0) {
      return -EINVAL;
    }
    spec.name = m.name;
    spec.nameLenAddr = msgAddr + offsetof(MsgHdr, namelen);
  } else if (c.mem().writeValue(msgAddr + offsetof(MsgHdr, namelen), int32_t(0)) < 0) {
    return -EFAULT;
  }
  spec.control = m.control;
  spec.controlLen = m.controllen;
  spec.msgAddr = msgAddr;
  return 0;
}

kj::Promise<Outcome> hRecvmsg(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    RecvSpec spec;
    int64_t r = prepareRecvmsg(c, c.arg(1), spec);
    if (r < 0) {
      return done(r);
    }
    prepareRecv(c, f, s, c.arg(2));
    bool cloexec = c.arg(2) & K_MSG_CMSG_CLOEXEC;
    return recvOnce(c, f, kj::mv(spec), c.arg(2)).then([&c, cloexec](Received got) -> Outcome {
      kj::Vector<FdDelivery> fds;
      KJ_IF_MAYBE(d, got.fds) {
        fds.add(kj::mv(*d));
      }
      return deliverFds(c, got.result, kj::mv(fds), cloexec, false);
    });
  });
}

// sendmmsg/recvmmsg: one message after the other through the single-message paths; each one's
// msg_len is written as it completes. An error after the first message ends the batch with the
// count so far, as the kernel does. struct mmsghdr is a msghdr plus an unsigned int (64 bytes).
constexpr uint64_t MMSGHDR_SIZE = 64;

kj::Promise<int64_t> sendmmsgFrom(Call& c, kj::Own<RemoteFile> f, uint64_t vec, uint32_t vlen,
                                  uint64_t flags, uint32_t i) {
  if (i >= vlen) {
    return int64_t(i);
  }
  kj::Own<SendJob> job;
  uint64_t entry = vec + i * MMSGHDR_SIZE;
  int64_t r = prepareSendmsg(c, *f, KJ_ASSERT_NONNULL(f->socket), entry, flags, job);
  if (r < 0) {
    return i > 0 ? int64_t(i) : r;
  }
  job->bytesProgress = false;
  auto& j = *job;
  return j.step().attach(kj::mv(job)).then(
      [&c, f = kj::mv(f), vec, vlen, flags, i, entry](int64_t r) mutable -> kj::Promise<int64_t> {
        if (r < 0) {
          return i > 0 ? int64_t(i) : r;
        }
        if (c.mem().writeValue(entry + sizeof(MsgHdr), static_cast<uint32_t>(r)) < 0) {
          return i > 0 ? int64_t(i) : int64_t(-EFAULT);
        }
        c.progress = i + 1;
        return sendmmsgFrom(c, kj::mv(f), vec, vlen, flags, i + 1);
      });
}

kj::Promise<Outcome> hSendmmsg(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    uint32_t vlen = kj::min(static_cast<uint32_t>(c.arg(2)), UIO_MAXIOV_);
    uint64_t flags = c.arg(3);
    c.interruptible = !(flags & 0x40);
    c.interruptNode = f.node;
    c.restartOnSignal = !s.sendTimeout;
    return sendmmsgFrom(c, kj::addRef(f), c.arg(1), vlen, flags, 0).then([flags](int64_t r) {
      return sendOutcome(r, flags);
    });
  });
}

struct RecvBatch : public kj::Refcounted {
  Call& call;
  kj::Own<RemoteFile> file;
  uint64_t vec;
  uint32_t vlen;
  uint64_t flags;
  kj::Maybe<struct timespec> deadline;  // CLOCK_MONOTONIC
  uint64_t timeoutAddr;
  kj::Vector<FdDelivery> fds;  // every message's passed fds, installed at the end

  RecvBatch(Call& c, RemoteFile& f, uint64_t vec, uint32_t vlen, uint64_t flags)
      : call(c), file(kj::addRef(f)), vec(vec), vlen(vlen), flags(flags), timeoutAddr(0) {}

  static int64_t nanos(const struct timespec& t) { return t.tv_sec * 1000000000ll + t.tv_nsec; }

  kj::Promise<int64_t> from(uint32_t i) {
    if (i >= vlen) {
      return finish(i);
    }
    RecvSpec spec;
    uint64_t entry = vec + i * MMSGHDR_SIZE;
    int64_t r = prepareRecvmsg(call, entry, spec);
    if (r < 0) {
      return i > 0 ? finish(i) : r;
    }
    // MSG_WAITFORONE: only the first message may wait.
    uint64_t f = (i > 0 && (flags & 0x10000)) ? (flags | 0x40) : flags;
    f &= ~uint64_t(0x10000);
    return recvOnce(call, *file, kj::mv(spec), f).then([this, i, entry](Received got)
                                                         -> kj::Promise<int64_t> {
      int64_t r = got.result;
      KJ_IF_MAYBE(d, got.fds) {
        fds.add(kj::mv(*d));
      }
      if (r < 0) {
        return i > 0 ? finish(i) : r;
      }
      if (call.mem().writeValue(entry + sizeof(MsgHdr), static_cast<uint32_t>(r)) < 0) {
        return i > 0 ? finish(i) : int64_t(-EFAULT);
      }
      call.progress = i + 1;
      KJ_IF_MAYBE(d, deadline) {
        // The kernel checks the timeout only after each datagram (recvmmsg(2) BUGS).
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (nanos(now) >= nanos(*d)) {
          return finish(i + 1);
        }
      }
      return from(i + 1);
    });
  }

  // Writes the time left back to the program's timeout, as the kernel does.
  int64_t finish(uint32_t n) {
    KJ_IF_MAYBE(d, deadline) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      int64_t left = kj::max(nanos(*d) - nanos(now), int64_t(0));
      struct timespec rest = {left / 1000000000, left % 1000000000};
      if (call.mem().writeValue(timeoutAddr, rest) < 0) {
        return -EFAULT;
      }
    }
    return n;
  }
};

kj::Promise<Outcome> hRecvmmsg(Call& c) {
  return onSocket(c, [&c](RemoteFile& f, SocketInfo& s) {
    uint32_t vlen = kj::min(static_cast<uint32_t>(c.arg(2)), UIO_MAXIOV_);
    uint64_t flags = c.arg(3);
    auto batch = kj::refcounted<RecvBatch>(c, f, c.arg(1), vlen, flags);
    if (c.arg(4) != 0) {
      struct timespec t;
      if (c.mem().readValue(c.arg(4), t) < 0) {
        return done(-EFAULT);
      }
      if (t.tv_sec < 0 || t.tv_nsec < 0 || t.tv_nsec >= 1000000000) {
        return done(-EINVAL);
      }
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      int64_t end = RecvBatch::nanos(now) + RecvBatch::nanos(t);
      batch->deadline = timespec{end / 1000000000, end % 1000000000};
      batch->timeoutAddr = c.arg(4);
    }
    prepareRecv(c, f, s, flags);
    auto& b = *batch;
    bool cloexec = flags & K_MSG_CMSG_CLOEXEC;
    return b.from(0).then([&c, batch = kj::mv(batch), cloexec](int64_t r) mutable -> Outcome {
      return deliverFds(c, r, kj::mv(batch->fds), cloexec, true);
    });
  });
}

const HandlerEntry SOCKMSG_HANDLERS[] = {
    {SYS_sendto, hSendto},
    {SYS_sendmsg, hSendmsg},
    {SYS_sendmmsg, hSendmmsg},
    {SYS_recvfrom, hRecvfrom},
    {SYS_recvmsg, hRecvmsg},
    {SYS_recvmmsg, hRecvmmsg},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> sockMsgHandlers() { return SOCKMSG_HANDLERS; }

}  // namespace sb::handler
