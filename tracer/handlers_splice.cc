// splice(2) between a remote file and a local pipe, both ways.
//
// The pipe is here and the file on B, so no kernel can splice between them: the tracer moves one
// piece through itself, as the kernel would move it, with the kernel's checks and answers. It
// reaches the pipe through a description of its own (open of /proc/TID/fd/N, which for a pipe
// makes a new description of the same pipe), non-blocking, so the event loop never waits on it and
// the program's own description keeps its flags:
//   file -> pipe: wait until the pipe has room (or EAGAIN when non-blocking), read that much from
//     B, write it; what the pipe did not take goes back to the file position.
//   pipe -> file: wait until the pipe has data (0 at its end, or EAGAIN), copy it without
//     consuming it (tee into a scratch pipe), write it to B, and only then consume from the pipe
//     as many bytes as B took: a failed or short write leaves the rest in the pipe, as the
//     kernel's does.
// Into the file, B is asked first for the description's access mode and O_APPEND (one more
// round trip): the fd may have come over a socket, or a process on B may have changed them.
// The waits are interruptible (nothing has moved yet); the transfer is two-phase (the agent does
// not stop a regular file's IO), so a signal never loses bytes that moved. Between two remote
// fds, or with a remote FIFO or socket, splice answers EINVAL, explained once (not supported yet).

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include <kj/async-unix.h>
#include <kj/debug.h>

#include "handler_support.h"

namespace sb::handler {

namespace {

constexpr unsigned SPLICE_FLAGS_ALL = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE |
                                      SPLICE_F_GIFT;

// The tracer's own description of the local pipe `fd` of thread `tid`, for reading or writing,
// non-blocking. -ENXIO: a write end wanted and no reader left.
int64_t openPipeEnd(pid_t tid, int fd, bool forWriting) {
  auto path = kj::str("/proc/", tid, "/fd/", fd);
  int flags = (forWriting ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC;
  int r = open(path.cStr(), flags);
  return r < 0 ? -int64_t(errno) : r;
}

// A failure before anything moved; EPIPE (the pipe's readers went) raises SIGPIPE.
kj::Promise<Outcome> failed(int64_t r) {
  return Outcome(Complete{r, r == -EPIPE ? SIGPIPE : 0});
}

// One splice in flight: the local pipe end, the remote file, and where in it.
struct SpliceJob : public kj::Refcounted {
  Call& call;
  kj::Own<RemoteFile> fileRef;
  RemoteFile& file;
  kj::AutoCloseFd pipe;  // the tracer's description of the program's pipe
  bool toPipe;           // file -> pipe; else pipe -> file
  bool nonBlocking;
  uint64_t len;
  uint64_t offAddr;  // the file side's offset pointer, or 0
  int64_t offset;    // -1: the file position
  kj::Own<kj::UnixEventPort::FdObserver> observer;

  SpliceJob(Call& call, RemoteFile& file, kj::AutoCloseFd pipe, bool toPipe, bool nonBlocking,
            uint64_t len, uint64_t offAddr, int64_t offset)
      : call(call), fileRef(kj::addRef(file)), file(*fileRef), pipe(kj::mv(pipe)),
        toPipe(toPipe), nonBlocking(nonBlocking), len(len), offAddr(offAddr), offset(offset) {}

  // Resolves once the pipe has room (toPipe) or data or its end (from the pipe); the event
  // loop's edge-triggered observer is asked only when poll says "not yet".
  kj::Promise<int64_t> ready() {
    struct pollfd p = {pipe.get(), short(toPipe ? POLLOUT : POLLIN), 0};
    if (poll(&p, 1, 0) < 0) {
      return -int64_t(errno);
    }
    if (p.revents & POLLERR) {
      return -EPIPE;  // A write end whose readers all went.
    }
    if (p.revents != 0) {
      return int64_t(0);
    }
    if (nonBlocking) {
      return -EAGAIN;
    }
    if (observer.get() == nullptr) {
      observer = kj::heap<kj::UnixEventPort::FdObserver>(
          call.tracer.eventPort(), pipe.get(),
          toPipe ? kj::UnixEventPort::FdObserver::OBSERVE_WRITE
                 : kj::UnixEventPort::FdObserver::OBSERVE_READ);
    }
    auto next = toPipe ? observer->whenBecomesWritable() : observer->whenBecomesReadable();
    return next.then([this]() { return ready(); });
  }

  // The offset after `moved` bytes, into the program's pointer (the kernel updates it).
  int64_t finish(int64_t moved) {
    if (moved > 0 && offAddr != 0 && call.mem().writeValue(offAddr, offset + moved) < 0) {
      return -EFAULT;
    }
    return moved;
  }

  // What a read at the file position took but the pipe did not: back to the position.
  void giveBack(uint64_t lost) {
    if (offset < 0 && lost > 0) {
      auto seek = file.node.seekRequest();
      seek.setOffset(-int64_t(lost));
      seek.setWhence(proto::Whence::CUR);
      call.tracer.backgroundSend(seek.send().ignoreResult());
    }
  }

  kj::Promise<Outcome> fileToPipe() {
    int size = fcntl(pipe.get(), F_GETPIPE_SZ);
    int queued = 0;
    if (size < 0 || ioctl(pipe.get(), FIONREAD, &queued) < 0) {
      return done(-errno);
    }
    // The room poll promised: at least a page; what a write may take at most.
    uint64_t room = kj::max<int64_t>(int64_t(size) - queued, 4096);
    auto req = file.node.preadRequest();
    req.setCount(kj::min(kj::min(len, room), CHUNK));
    req.setOffset(offset);
    call.interruptNode = file.node;  // From here on a signal waits for B's answer.
    return send(call, file.target, req).then([this](auto reply) -> kj::Promise<Outcome> {
      int64_t n = reply.getResult();
      if (n <= 0) {
        return done(n);
      }
      auto data = reply.getData();
      ssize_t w = write(pipe.get(), data.begin(), data.size());
      if (w < 0) {
        int err = errno;
        giveBack(n);
        if (err == EPIPE) {
          return Outcome(Complete{-EPIPE, SIGPIPE});  // The reader went meanwhile.
        }
        if (err == EAGAIN && !nonBlocking) {
          // Full after all (another writer came first): nothing moved; wait again, as a
          // blocked splice does.
          call.interruptNode = nullptr;
          return ready().then([this](int64_t r) -> kj::Promise<Outcome> {
            return r < 0 ? failed(r) : fileToPipe();
          });
        }
        return done(-err);
      }
      giveBack(n - w);
      return done(finish(w));
    });
  }

  kj::Promise<Outcome> pipeToFile() {
    int queued = 0;
    if (ioctl(pipe.get(), FIONREAD, &queued) < 0) {
      return done(-errno);
    }
    if (queued == 0) {
      return done(0);  // Readable and empty: no writer left, the pipe's end.
    }
    // Copied without consuming it: only what B takes leaves the pipe.
    int scratch[2];
    if (pipe2(scratch, O_CLOEXEC | O_NONBLOCK) < 0) {
      return done(-errno);
    }
    kj::AutoCloseFd scratchRead(scratch[0]), scratchWrite(scratch[1]);
    ssize_t copied = tee(pipe.get(), scratchWrite.get(), kj::min(len, CHUNK), SPLICE_F_NONBLOCK);
    if (copied <= 0) {
      return done(copied == 0 ? 0 : -errno);
    }
    auto req = file.node.pwriteRequest();
    auto buf = req.initData(copied);
    ssize_t got = read(scratchRead.get(), buf.begin(), copied);
    if (got != copied) {
      return done(got < 0 ? -errno : -EIO);
    }
    req.setOffset(offset);
    file.target.noteContentChange();
    call.interruptNode = file.node;  // From here on a signal waits for B's answer.
    return send(call, file.target, req).then([this](auto reply) -> Outcome {
      int64_t w = reply.getResult();
      if (w <= 0) {
        return Complete{w};
      }
      // Consume what B took: the bytes tee copied are still first in the pipe.
      kj::byte sink[4096];
      for (int64_t left = w; left > 0;) {
        ssize_t r = read(pipe.get(), sink, size_t(std::min<int64_t>(left, int64_t(sizeof(sink)))));
        if (r <= 0) {
          break;  // Another reader of the pipe took them meanwhile.
        }
        left -= r;
      }
      return Complete{finish(w)};
    });
  }
};

kj::Promise<Outcome> unsupported(Call& c, RemoteFile& f, kj::StringPtr why) {
  c.tracer.noteOnce("splice", kj::str("splice with remote '", f.path, "' ", why,
                                      " is not supported yet: answering EINVAL (programs fall "
                                      "back to read and write)"));
  return done(-EINVAL);
}

bool remoteFileKind(const RemoteFile& f) {
  return f.type == proto::FileType::REGULAR || f.type == proto::FileType::BLOCK_DEVICE;
}

// The access mode and status flags of the program's fd `fd` (/proc/TID/fdinfo), or -EBADF.
int64_t fdFlags(pid_t tid, int fd) {
  auto info = kj::str("/proc/", tid, "/fdinfo/", fd);
  FILE* f = fopen(info.cStr(), "re");
  if (f == nullptr) {
    return -EBADF;
  }
  unsigned flags = 0;
  bool found = false;
  char line[128];
  while (!found && fgets(line, sizeof(line), f) != nullptr) {
    found = sscanf(line, "flags: %o", &flags) == 1;
  }
  fclose(f);
  return found ? int64_t(flags) : -EBADF;
}

// What hSplice worked out before the remote file's own checks.
struct SplicePlan {
  bool toPipe;
  bool isPipe;      // the local fd is a pipe
  int localFd;
  uint64_t fileOffAddr;
  int64_t offset;   // -1: the file position
  uint64_t len;
  bool nonBlocking;
};

// The rest of the kernel's checks, in its order, then the transfer.
kj::Promise<Outcome> spliceChecked(Call& c, RemoteFile& file, const SplicePlan& p) {
  if (!p.isPipe) {
    // Neither end is a pipe here: the kernel's EINVAL (a FIFO on the target is not handled).
    if (file.type == proto::FileType::FIFO) {
      return unsupported(c, file, "(a FIFO on the target)");
    }
    return done(-EINVAL);
  }
  if (!remoteFileKind(file)) {
    return unsupported(c, file, "(not a regular file)");
  }
  if (p.fileOffAddr != 0 && p.offset < 0) {
    return done(-EINVAL);
  }
  int64_t pipe = openPipeEnd(c.task.tid, p.localFd, p.toPipe);
  if (pipe == -ENXIO) {
    return Outcome(Complete{-EPIPE, SIGPIPE});  // No reader left: as a write to the pipe.
  }
  if (pipe < 0) {
    return done(pipe);
  }
  auto job = kj::refcounted<SpliceJob>(c, file, kj::AutoCloseFd(int(pipe)), p.toPipe,
                                       p.nonBlocking, p.len, p.fileOffAddr, p.offset);
  auto& j = *job;
  return settleReadAhead(c.tracer, file)
      .then([&j]() { return j.ready(); })
      .then([&j](int64_t r) -> kj::Promise<Outcome> {
        if (r < 0) {
          return failed(r);
        }
        return j.toPipe ? j.fileToPipe() : j.pipeToFile();
      })
      .attach(kj::mv(job));
}

kj::Promise<Outcome> hSplice(Call& c) {
  int inFd = c.fdArg(0), outFd = c.fdArg(2);
  uint64_t offInAddr = c.arg(1), offOutAddr = c.arg(3);
  uint64_t len = c.arg(4);
  unsigned flags = c.arg(5);
  auto in = c.task.fds->find(inFd);
  auto out = c.task.fds->find(outFd);
  if (in == nullptr && out == nullptr) {
    return local();
  }
  // The kernel's order: a zero length, the flags, the fds; a pipe end's offset, the offsets'
  // pointers, the access modes; then what cannot be spliced, and a negative offset.
  if (len == 0) {
    return done(0);
  }
  if (flags & ~SPLICE_FLAGS_ALL) {
    return done(-EINVAL);
  }
  if (in != nullptr && out != nullptr) {
    RemoteFile& i = KJ_ASSERT_NONNULL(in);
    RemoteFile& o = KJ_ASSERT_NONNULL(out);
    if (i.type != proto::FileType::FIFO && o.type != proto::FileType::FIFO) {
      return done(-EINVAL);  // Neither is a pipe: the kernel's own answer.
    }
    return unsupported(c, i.type == proto::FileType::FIFO ? i : o,
                       "(a FIFO on the target) and another remote fd");
  }
  bool toPipe = in != nullptr;
  RemoteFile& file = toPipe ? KJ_ASSERT_NONNULL(in) : KJ_ASSERT_NONNULL(out);
  int localFd = toPipe ? outFd : inFd;
  uint64_t localOffAddr = toPipe ? offOutAddr : offInAddr;
  uint64_t fileOffAddr = toPipe ? offInAddr : offOutAddr;
  int64_t localFlags = fdFlags(c.task.tid, localFd);
  auto path = kj::str("/proc/", c.task.tid, "/fd/", localFd);
  struct stat st;
  if (localFlags < 0 || stat(path.cStr(), &st) < 0) {
    return done(-EBADF);
  }
  bool isPipe = S_ISFIFO(st.st_mode);
  if (isPipe && localOffAddr != 0) {
    return done(-ESPIPE);  // A pipe has no offset.
  }
  int64_t offset = -1;
  if (fileOffAddr != 0 && c.mem().readValue(fileOffAddr, offset) < 0) {
    return done(-EFAULT);
  }
  int access = localFlags & O_ACCMODE;
  bool localOk = access == O_RDWR || access == (toPipe ? O_WRONLY : O_RDONLY);
  if (!localOk || file.pathOnly) {
    return done(-EBADF);
  }
  bool nonBlocking = (flags & SPLICE_F_NONBLOCK) || (localFlags & O_NONBLOCK);
  SplicePlan plan{toPipe, isPipe, localFd, fileOffAddr, offset, len, nonBlocking};
  c.target = &file.target;
  // The wait for the pipe ends with a signal (and B's flags may be asked first: nothing has
  // moved yet either).
  c.interruptible = !nonBlocking;
  if (toPipe) {
    return spliceChecked(c, file, plan);  // A read-only or write-only file: B's pread says.
  }
  // Its access mode and O_APPEND as B has them now: the description may have come over a
  // socket, or had its flags changed by a process on B.
  auto req = file.node.getFlagsRequest();
  return send(c, file.target, req).then([&c, f = kj::addRef(file), plan](auto reply) mutable {
    if (reply.getResult() < 0) {
      return done(reply.getResult());
    }
    auto st = reply.getFlags();
    if (st.getAccess() == proto::AccessMode::READ_ONLY) {
      return done(-EBADF);
    }
    if (plan.isPipe && st.getAppend()) {
      return done(-EINVAL);  // The kernel does not splice to an O_APPEND file.
    }
    return spliceChecked(c, *f, plan);
  });
}

const HandlerEntry SPLICE_HANDLERS[] = {
    {SYS_splice, hSplice},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> spliceHandlers() { return SPLICE_HANDLERS; }

}  // namespace sb::handler
