// Handlers that move data: read and write in all their forms (chunked, straight between the
// tracee's memory and the messages, D9), lseek, ftruncate, fallocate, fsync, page-cache advice,
// sendfile and copy_file_range across any mix of local and remote fds.

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <type_traits>

#include <kj/debug.h>
#include <kj/io.h>

#include "chunked_read.h"
#include "handler_support.h"

namespace sb::handler {

namespace {

// ---------------------------------------------------------------------------------------------
// read and write family

// One read or write of the family in flight: the tracee's iovecs, how far it got, and where in
// the file (offset -1: the file position). Loops in CHUNK pieces until `count` or a short
// transfer, moving bytes straight between tracee memory and the messages.
struct IoJob : public kj::Refcounted {
  Call& call;
  // Held, not borrowed: another thread may close the fd while this call is in flight.
  kj::Own<RemoteFile> fileRef;
  RemoteFile& file;
  kj::Array<IoVec> iov;
  uint64_t count;
  int64_t offset;
  bool positional;
  bool hasFlags;
  int64_t rwFlags;
  uint64_t doneBytes = 0;
  IoJob(Call& call, RemoteFile& file, kj::Array<IoVec> iov, uint64_t count, int64_t offset,
        bool positional, bool hasFlags, int64_t rwFlags)
      : call(call), fileRef(kj::addRef(file)), file(*fileRef), iov(kj::mv(iov)), count(count),
        offset(offset), positional(positional), hasFlags(hasFlags), rwFlags(rwFlags) {}

  // The iovecs' bytes from `skip` on, at most `limit` of them.
  kj::Array<IoVec> slice(uint64_t skip, uint64_t limit) { return sliceIovecs(iov, skip, limit); }
};

// Marks the description's offset as moving (ReadAhead::fetching) while a pipelined read at the
// file position has answers out: another thread's call that sees or moves the offset waits until
// the read is over and any bytes it must give back are given back, as the kernel's read holds
// the position lock. Released early with the read's result, or at destruction (the call died).
class OffsetBusy {
 public:
  explicit OffsetBusy(RemoteFile& file) : file(kj::addRef(file)) {
    auto paf = kj::newPromiseAndFulfiller<int64_t>();
    fulfiller = kj::mv(paf.fulfiller);
    file.readAhead.fetching = true;
    file.readAhead.fetch = paf.promise.fork();
  }
  KJ_DISALLOW_COPY(OffsetBusy);
  ~OffsetBusy() noexcept(false) { release(-EIO); }

  void release(int64_t result) {
    KJ_IF_MAYBE(f, fulfiller) {
      file->readAhead.fetching = false;
      (*f)->fulfill(kj::cp(result));
      fulfiller = nullptr;
    }
  }

 private:
  kj::Own<RemoteFile> file;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<int64_t>>> fulfiller;
};

// Moves the agent's offset back by `lost` bytes it consumed that the program did not (a read at
// the file position only), before any later call on the node: bytes the kernel could not
// deliver, a read-ahead window's unread rest.
void giveBackBytes(Tracer& tracer, RemoteFile& file, uint64_t lost) {
  if (lost == 0 || file.type != proto::FileType::REGULAR || file.isStale()) {
    return;
  }
  auto seek = file.node.seekRequest();
  seek.setOffset(-static_cast<int64_t>(lost));
  seek.setWhence(proto::Whence::CUR);
  tracer.backgroundSend(seek.send().ignoreResult());
}

struct ReadJob : public IoJob {
  using IoJob::IoJob;

  kj::Promise<int64_t> step() {
    uint64_t want = kj::min(count - doneBytes, CHUNK);
    // --read-chunk: a piece of at least two chunks goes in pipelined chunks.
    uint64_t chunk = call.tracer.options().readChunk;
    if (chunk > 0 && file.pipelineReads && !hasFlags && want >= 2 * chunk) {
      return pipelinedStep(want, chunk);
    }
    auto handle = [this, want](int64_t result, capnp::Data::Reader data) -> kj::Promise<int64_t> {
      if (result < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : result;
      }
      // Never write past the program's buffer, whatever the peer sends.
      KJ_REQUIRE(data.size() <= want, "agent answered a read with more bytes than asked");
      auto dst = slice(doneBytes, count);
      int64_t placed = scatter(call, dst, data);
      if (placed < 0 || static_cast<uint64_t>(placed) < data.size()) {
        // The kernel would not have consumed bytes it could not deliver: give them back.
        if (!positional) {
          giveBackBytes(call.tracer, file, data.size() - (placed < 0 ? 0 : placed));
        }
        if (placed <= 0 && doneBytes == 0) {
          return int64_t(-EFAULT);
        }
        return static_cast<int64_t>(doneBytes + kj::max(placed, int64_t(0)));
      }
      doneBytes += data.size();
      call.progress = static_cast<int64_t>(doneBytes);
      if (data.size() < want || doneBytes >= count) {
        return static_cast<int64_t>(doneBytes);
      }
      return step();
    };
    if (positional || hasFlags) {
      auto req = file.node.preadRequest();
      req.setCount(want);
      req.setOffset(offset < 0 ? -1 : offset + doneBytes);
      if (hasFlags && !abi::decodeRwFlags(rwFlags, req.initFlags())) {
        return int64_t(-EOPNOTSUPP);
      }
      call.target = &file.target;
      return req.send().then([handle = kj::mv(handle)](auto r) mutable {
        return handle(r.getResult(), r.getData());
      });
    }
    auto req = file.node.readRequest();
    req.setCount(want);
    call.target = &file.target;
    return req.send().then([handle = kj::mv(handle)](auto r) mutable {
      return handle(r.getResult(), r.getData());
    });
  }

  // The next `want` bytes in pipelined chunks of `chunk` bytes (chunked_read.h), each placed in
  // the program's buffer as it arrives.
  kj::Promise<int64_t> pipelinedStep(uint64_t want, uint64_t chunk) {
    call.target = &file.target;
    kj::Maybe<kj::Own<OffsetBusy>> busy;
    if (!positional) {
      busy = kj::heap<OffsetBusy>(file);
    }
    auto place = [this](uint64_t at, kj::ArrayPtr<const kj::byte> data) -> int64_t {
      int64_t placed = scatter(call, slice(doneBytes + at, count), data);
      if (placed > 0) {
        call.progress = static_cast<int64_t>(doneBytes + at + placed);
      }
      return placed;
    };
    int64_t at = positional ? offset + static_cast<int64_t>(doneBytes) : -1;
    return chunkedRead(file.node, at, want, chunk, kj::mv(place))
        .then(
            [this, want, busy = kj::mv(busy)](ChunkedReadResult r) mutable -> kj::Promise<int64_t> {
              // Sent before the offset is released: the next call on the node sees the
              // program's offset.
              giveBackBytes(call.tracer, file, r.excess);
              KJ_IF_MAYBE(b, busy) {
                (*b)->release(r.result);
              }
              if (r.result < 0) {
                return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : r.result;
              }
              doneBytes += r.result;
              call.progress = static_cast<int64_t>(doneBytes);
              if (static_cast<uint64_t>(r.result) < want || doneBytes >= count) {
                return static_cast<int64_t>(doneBytes);
              }
              return step();
            },
            [this](kj::Exception&& e) -> kj::Promise<int64_t> {
              // The first chunk failed so (the connection is gone): as a short read after
              // earlier pieces, else the target's errno.
              if (doneBytes > 0) {
                return static_cast<int64_t>(doneBytes);
              }
              kj::throwFatalException(kj::mv(e));
            });
  }
};


struct WriteJob : public IoJob {
  using IoJob::IoJob;
  uint64_t sizeLimit = fileSizeLimitOf(call.task.tgid);

  kj::Promise<int64_t> step() {
    uint64_t want = kj::min(count - doneBytes, CHUNK);
    // Gathered straight into the request below (no intermediate copy).
    auto piece = slice(doneBytes, want);
    auto finish = [this, want](int64_t result) -> kj::Promise<int64_t> {
      if (result < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : result;
      }
      KJ_REQUIRE(static_cast<uint64_t>(result) <= want, "agent wrote more bytes than sent");
      doneBytes += result;
      call.progress = static_cast<int64_t>(doneBytes);
      if (static_cast<uint64_t>(result) < want || doneBytes >= count) {
        return static_cast<int64_t>(doneBytes);
      }
      return step();
    };
    call.target = &file.target;
    file.target.noteContentChange();
    if (positional || hasFlags) {
      auto req = file.node.pwriteRequest();
      auto data = req.initData(want);
      if (gather(call, piece, data) < 0) {
        return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : int64_t(-EFAULT);
      }
      req.setOffset(offset < 0 ? -1 : offset + doneBytes);
      req.setFileSizeLimit(sizeLimit);
      if (hasFlags && !abi::decodeRwFlags(rwFlags, req.initFlags())) {
        return int64_t(-EOPNOTSUPP);
      }
      return req.send().then([finish = kj::mv(finish)](auto r) mutable {
        return finish(r.getResult());
      });
    }
    auto req = file.node.writeRequest();
    req.setFileSizeLimit(sizeLimit);
    auto data = req.initData(want);
    if (gather(call, piece, data) < 0) {
      return doneBytes > 0 ? static_cast<int64_t>(doneBytes) : int64_t(-EFAULT);
    }
    return req.send().then([finish = kj::mv(finish)](auto r) mutable {
      return finish(r.getResult());
    });
  }
};

// A count of 0 still goes to the agent: read(fd, buf, 0) reports EISDIR or EBADF as usual.
template <typename Job>
kj::Promise<Outcome> runJob(Call& c, RemoteFile& file, kj::Array<IoVec> iov, uint64_t total,
                            int64_t offset, bool positional, bool hasFlags, int64_t flags) {
  auto job = kj::refcounted<Job>(c, file, kj::mv(iov), total, offset, positional, hasFlags,
                                 flags);
  auto& j = *job;
  // An edge-triggered epoll interest in this file counts its next rise as an edge (epoll_set.h).
  file.ioEpoch++;
  // A write to a FIFO or socket whose reader is gone raises SIGPIPE with EPIPE, as the kernel
  // does (the agent never does: it ignores SIGPIPE).
  bool pipeLike = file.type == proto::FileType::FIFO || file.type == proto::FileType::SOCKET;
  // A write past RLIMIT_FSIZE raises SIGXFSZ with EFBIG, as the kernel does.
  bool sizeLimited = false;
  if constexpr (std::is_same_v<Job, WriteJob>) {
    sizeLimited = j.sizeLimit != uint64_t(RLIM_INFINITY);
  }
  return j.step()
      .then([pipeLike, sizeLimited](int64_t r) -> Outcome {
        int sig = r == -EPIPE && pipeLike ? SIGPIPE : r == -EFBIG && sizeLimited ? SIGXFSZ : 0;
        return Complete{r, sig};
      })
      .attach(kj::mv(job));
}

// ---------------------------------------------------------------------------------------------
// Read-ahead (fd_table.h ReadAhead; docs/architecture.md, "Speed")
//
// The window is fetched with `read`, so the agent's file offset moves past it: the program's
// offset is the remote one minus the unread window. A window read to its end leaves the two equal
// with no extra call; a window dropped early is given back with one seek(-unread, CUR), sent
// before any call that could observe the offset (calls on one node reach the agent in order).

// read() counts below this are "small"; the third consecutive one fetches a window.
constexpr uint64_t RA_SMALL = 64u << 10;
constexpr uint32_t RA_AFTER = 2;
// The first window, and the largest (each fetch doubles the next one's size).
constexpr uint64_t RA_FIRST = 128u << 10;
constexpr uint64_t RA_MAX = 1u << 20;

// Drops the window and gives its unread bytes back to the remote offset; the next read starts
// counting again. Sends nothing when there is no window.
void giveBack(Tracer& tracer, RemoteFile& file) {
  auto& ra = file.readAhead;
  uint64_t unread = ra.drop();
  ra.sequential = 0;
  ra.nextSize = RA_FIRST;
  giveBackBytes(tracer, file, unread);
}

// Resolves once no fetch is in flight on the file (another thread's read), whatever it gave.
kj::Promise<void> fetchDone(RemoteFile& file) {
  if (!file.readAhead.fetching) {
    return kj::READY_NOW;
  }
  return KJ_ASSERT_NONNULL(file.readAhead.fetch).addBranch().then(
      [](int64_t) {}, [](kj::Exception&&) {});
}

}  // namespace

kj::Promise<void> settleReadAhead(Tracer& tracer, RemoteFile& file) {
  if (file.readAhead.fetching) {
    return fetchDone(file).then([&tracer, ref = kj::addRef(file)]() mutable {
      return settleReadAhead(tracer, *ref);
    });
  }
  giveBack(tracer, file);
  return kj::READY_NOW;
}

void shareReadAhead(Tracer& tracer, RemoteFile& file) {
  giveBack(tracer, file);
  file.readAhead.allowed = false;
  file.pipelineReads = false;  // That process's reads could fall between the chunks.
}

namespace {

// A read() or readv() at the file offset of a description that may be read ahead: answered from
// the window as far as it goes, then by a new window (small reads after RA_AFTER of them) or by
// an ordinary ReadJob for the rest. Never answers 0 (EOF) from the window: only the agent does,
// and a short window ends a read early only within the call that fetched it.
struct WindowRead : public kj::Refcounted {
  Call& call;
  kj::Own<RemoteFile> fileRef;
  RemoteFile& file;
  kj::Array<IoVec> iov;
  uint64_t count;
  bool small;
  uint64_t served = 0;
  bool sentRpc = false;
  WindowRead(Call& call, RemoteFile& file, kj::Array<IoVec> iov, uint64_t count)
      : call(call), fileRef(kj::addRef(file)), file(*fileRef), iov(kj::mv(iov)), count(count),
        small(count < RA_SMALL) {}

  int64_t finish(int64_t r) {
    call.readAheadHit = !sentRpc;
    return r;
  }

  kj::Promise<int64_t> step(bool justFetched = false, bool shortFetch = false) {
    auto& ra = file.readAhead;
    if (ra.fetching) {
      // Another thread's fetch: its window is the next bytes of the description.
      return KJ_ASSERT_NONNULL(ra.fetch).addBranch().then(
          [this](int64_t) { return step(); },
          [this](kj::Exception&&) -> kj::Promise<int64_t> {
            if (served > 0) {
              return finish(static_cast<int64_t>(served));
            }
            return step();
          });
    }
    if (!justFetched && ra.window.size() > 0 && ra.epoch != file.target.contentChanges()) {
      giveBack(call.tracer, file);  // Written through sbrun since the fetch: stale.
    }
    if (ra.window.size() > 0) {
      uint64_t take = kj::min(uint64_t(ra.window.size()), count - served);
      int64_t placed = scatter(call, sliceIovecs(iov, served, take), ra.window.slice(0, take));
      placed = kj::max(placed, int64_t(0));
      ra.consume(placed);
      served += placed;
      call.progress = static_cast<int64_t>(served);
      if (static_cast<uint64_t>(placed) < take) {
        // The program's buffer faulted: the bytes not placed stay unread, as the kernel's.
        return finish(served > 0 ? static_cast<int64_t>(served) : int64_t(-EFAULT));
      }
    }
    if (served >= count || (shortFetch && served > 0)) {
      // A fetch that came back short met the end of the file as the agent saw it then.
      return finish(static_cast<int64_t>(served));
    }
    if (small && ra.allowed && ra.sequential > RA_AFTER &&
        ReadAhead::totalHeld + ra.nextSize <= ReadAhead::BUDGET) {
      return fetch();
    }
    // An ordinary read for the rest (a large read, or no room for a window).
    sentRpc = true;
    auto job = kj::refcounted<ReadJob>(call, file, kj::mv(iov), count, -1, false, false, 0);
    job->doneBytes = served;
    auto& j = *job;
    return j.step().attach(kj::mv(job));
  }

  kj::Promise<int64_t> fetch() {
    auto& ra = file.readAhead;
    uint64_t size = kj::max(ra.nextSize, RA_FIRST);
    ra.nextSize = kj::min(size * 2, RA_MAX);
    auto req = file.node.readRequest();
    req.setCount(size);
    call.target = &file.target;
    sentRpc = true;
    ra.fetching = true;
    // Owned by the file, not by this call: a window whose reader died still lands where the
    // next reader of the description finds it (the agent's offset has moved past it).
    RemoteFile* f = &file;
    uint64_t epoch = file.target.contentChanges();
    ra.fetch = req.send()
                   .then(
                       [f, epoch, size](capnp::Response<proto::Node::ReadResults>&& r) -> int64_t {
                         f->readAhead.fetching = false;
                         int64_t n = r.getResult();
                         if (n > 0) {
                           KJ_REQUIRE(r.getData().size() == static_cast<uint64_t>(n) &&
                                          static_cast<uint64_t>(n) <= size,
                                      "agent answered a read with more bytes than asked");
                           f->readAhead.hold(kj::mv(r), epoch);
                         }
                         return n;
                       },
                       [f](kj::Exception&& e) -> int64_t {
                         f->readAhead.fetching = false;
                         kj::throwFatalException(kj::mv(e));
                       })
                   .fork();
    return KJ_ASSERT_NONNULL(ra.fetch).addBranch().then(
        [this, size](int64_t n) -> kj::Promise<int64_t> {
          if (n < 0) {
            return finish(served > 0 ? static_cast<int64_t>(served) : n);
          }
          if (n == 0) {
            return finish(static_cast<int64_t>(served));  // The agent says: end of file.
          }
          return step(true, static_cast<uint64_t>(n) < size);
        },
        [this](kj::Exception&& e) -> kj::Promise<int64_t> {
          if (served > 0) {
            return finish(static_cast<int64_t>(served));
          }
          kj::throwFatalException(kj::mv(e));
        });
  }
};

kj::Promise<Outcome> windowRead(Call& c, RemoteFile& file, kj::Array<IoVec> iov, uint64_t total) {
  auto& ra = file.readAhead;
  if (total < RA_SMALL) {
    ++ra.sequential;
  }
  file.ioEpoch++;
  c.target = &file.target;
  auto job = kj::refcounted<WindowRead>(c, file, kj::mv(iov), total);
  auto& j = *job;
  return j.step().then([](int64_t r) -> Outcome { return Complete{r}; }).attach(kj::mv(job));
}

// The argument shapes of the read and write families.
enum class Shape {
  PLAIN,          // read/write(fd, buf, count)
  AT_OFFSET,      // pread64/pwrite64(fd, buf, count, offset)
  VECTOR,         // readv/writev(fd, iov, iovcnt)
  VECTOR_OFFSET,  // preadv/pwritev(fd, iov, iovcnt, pos_l, pos_h): pos_l is the offset on x86-64
  VECTOR_FLAGS,   // preadv2/pwritev2(..., pos_l, pos_h, flags): offset -1 = the file position
};

// The control fd (control.h): a write is one scope command for the calling thread, a read
// returns its current scope as one line.
kj::Promise<Outcome> controlIo(Call& c, bool isWrite, Shape shape) {
  if (shape != Shape::PLAIN) {
    return done(-EINVAL);
  }
  uint64_t count = c.arg(2);
  if (isWrite) {
    if (count > 4096) {
      return done(-EINVAL);
    }
    auto bytes = kj::heapArray<kj::byte>(count);
    if (count > 0 && c.mem().read(c.arg(1), bytes) < 0) {
      return done(-EFAULT);
    }
    // Not NUL-terminated: an ArrayPtr (a StringPtr would read one byte past it).
    auto text = kj::arrayPtr(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    if (text.size() > 0 && text.back() == '\n') {
      text = text.slice(0, text.size() - 1);
    }
    if (memchr(text.begin(), '\n', text.size()) != nullptr ||
        memchr(text.begin(), '\0', text.size()) != nullptr) {
      return done(-EINVAL);  // One command per write.
    }
    int64_t r = applyScopeCommand(c.tracer.targets(), &c.task, kj::heapString(text));
    return done(r < 0 ? r : static_cast<int64_t>(count));
  }
  auto line = kj::str(scopeName(c.task), "\n");
  size_t n = kj::min(count, line.size());
  return done(putBytes(c, c.arg(1), line.asBytes().slice(0, n), static_cast<int64_t>(n)));
}

// Decodes any member of the two families and moves the bytes when the fd is remote.
kj::Promise<Outcome> transfer(Call& c, bool isWrite, Shape shape) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (f->control) {
      return controlIo(c, isWrite, shape);
    }
    kj::Array<IoVec> iov;
    uint64_t total;
    if (shape == Shape::PLAIN || shape == Shape::AT_OFFSET) {
      total = kj::min(c.arg(2), MAX_RW);
      iov = kj::heapArray<IoVec>({IoVec{c.arg(1), total}});
    } else {
      int64_t r = readIovecs(c, c.arg(1), static_cast<int64_t>(c.arg(2)), iov, total);
      if (r < 0) {
        return done(r);
      }
    }
    int64_t offset = -1;
    if (shape != Shape::PLAIN && shape != Shape::VECTOR) {
      offset = static_cast<int64_t>(c.arg(3));
      // Only preadv2/pwritev2 take -1 (the file position); any other negative is EINVAL.
      if (offset < 0 && !(shape == Shape::VECTOR_FLAGS && offset == -1)) {
        return done(-EINVAL);
      }
    }
    bool hasFlags = shape == Shape::VECTOR_FLAGS;
    bool positional = offset >= 0;
    auto& ra = f->readAhead;
    if (ra.fetching) {
      // Another thread's window fetch or pipelined read is in flight: look again once it has
      // landed (a write too: on a file open for reading and writing, it must not come between
      // that read and the bytes it may give back).
      return fetchDone(*f).then([&c, isWrite, shape]() { return transfer(c, isWrite, shape); });
    }
    if (!isWrite && (ra.allowed || ra.window.size() > 0)) {
      if (!positional && !hasFlags && ra.allowed) {
        if (total > 0) {
          return windowRead(c, *f, kj::mv(iov), total);
        }
        // A read of 0 bytes neither sees nor moves the offset: the agent answers it as before.
      } else {
        // pread, preadv, preadv2 (even at the file offset): not read ahead; the window goes, so
        // that no later read() shows older bytes than this one did. (Or read-ahead stopped on
        // this description while a fetch was in flight: its window goes back now.)
        giveBack(c.tracer, *f);
      }
    }
    // A pipe, socket or terminal may block: a signal interrupts the wait, as the kernel's would.
    c.interruptible = mayBlock(f->type);
    if (c.interruptible) {
      c.interruptNode = f->node;  // two-phase interrupt (Tracer::onParkedSignal)
    }
    int64_t flags = hasFlags ? c.arg(5) : 0;
    return isWrite
               ? runJob<WriteJob>(c, *f, kj::mv(iov), total, offset, positional, hasFlags, flags)
               : runJob<ReadJob>(c, *f, kj::mv(iov), total, offset, positional, hasFlags, flags);
  }
  return local();
}

kj::Promise<Outcome> hRead(Call& c) { return transfer(c, false, Shape::PLAIN); }
kj::Promise<Outcome> hPread(Call& c) { return transfer(c, false, Shape::AT_OFFSET); }
kj::Promise<Outcome> hReadv(Call& c) { return transfer(c, false, Shape::VECTOR); }
kj::Promise<Outcome> hPreadv(Call& c) { return transfer(c, false, Shape::VECTOR_OFFSET); }
kj::Promise<Outcome> hPreadv2(Call& c) { return transfer(c, false, Shape::VECTOR_FLAGS); }
kj::Promise<Outcome> hWrite(Call& c) { return transfer(c, true, Shape::PLAIN); }
kj::Promise<Outcome> hPwrite(Call& c) { return transfer(c, true, Shape::AT_OFFSET); }
kj::Promise<Outcome> hWritev(Call& c) { return transfer(c, true, Shape::VECTOR); }
kj::Promise<Outcome> hPwritev(Call& c) { return transfer(c, true, Shape::VECTOR_OFFSET); }
kj::Promise<Outcome> hPwritev2(Call& c) { return transfer(c, true, Shape::VECTOR_FLAGS); }

kj::Promise<Outcome> hLseek(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    if (f->readAhead.fetching) {
      return fetchDone(*f).then([&c]() { return hLseek(c); });
    }
    giveBack(c.tracer, *f);  // Sent first: the seek below sees the program's own offset.
    auto whence = abi::decodeWhence(static_cast<int64_t>(c.arg(2)));
    if (whence == nullptr) {
      return done(-EINVAL);
    }
    auto req = f->node.seekRequest();
    req.setOffset(c.arg(1));
    req.setWhence(KJ_ASSERT_NONNULL(whence));
    return send(c, f->target, req).then([](auto r) -> Outcome { return Complete{r.getResult()}; });
  }
  return local();
}

kj::Promise<Outcome> hFtruncate(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    f->target.noteContentChange();
    auto req = f->node.truncateAtRequest();
    req.setPath(bytes(""));
    req.setLength(c.arg(1));
    req.setEmptyPath(true);
    uint64_t limit = fileSizeLimitOf(c.task.tgid);
    req.setFileSizeLimit(limit);
    return withSizeSignal(send(c, f->target, req), c.arg(1), limit);
  }
  return local();
}

kj::Promise<Outcome> hFallocate(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    f->target.noteContentChange();
    auto req = f->node.fallocateRequest();
    req.setMode(c.arg(1));
    req.setOffset(c.arg(2));
    req.setLength(c.arg(3));
    uint64_t limit = fileSizeLimitOf(c.task.tgid);
    req.setFileSizeLimit(limit);
    // The size asked for, saturated: only whether it passes the limit matters.
    uint64_t end = c.arg(2) + c.arg(3);
    int64_t size = int64_t(c.arg(2)) < 0 || end < c.arg(2) || int64_t(end) < 0 ? INT64_MAX
                                                                               : int64_t(end);
    return withSizeSignal(send(c, f->target, req), size, limit);
  }
  return local();
}

kj::Promise<Outcome> fsyncCommon(Call& c, bool dataOnly) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    auto req = f->node.fsyncRequest();
    req.setDataOnly(dataOnly);
    return resultOf(send(c, f->target, req));
  }
  return local();
}
kj::Promise<Outcome> hFsync(Call& c) { return fsyncCommon(c, false); }
kj::Promise<Outcome> hFdatasync(Call& c) { return fsyncCommon(c, true); }

// Advice about the page cache: a remote file has none here, so the answer is what B's kernel
// gives after validating the arguments; durability requests become an fsync on B.

bool isStream(RemoteFile& f) {
  return f.type == proto::FileType::FIFO || f.type == proto::FileType::SOCKET;
}

kj::Promise<Outcome> hFadvise(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    int64_t advice = static_cast<int>(c.arg(3));
    if (isStream(*f)) {
      return done(-ESPIPE);
    }
    if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE ||
        static_cast<int64_t>(c.arg(2)) < 0) {
      return done(-EINVAL);
    }
    return done(0);
  }
  return local();
}

kj::Promise<Outcome> hReadahead(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    return done(f->type == proto::FileType::REGULAR ? 0 : -EINVAL);
  }
  return local();
}

kj::Promise<Outcome> hSyncFileRange(Call& c) {
  KJ_IF_MAYBE(f, remoteFd(c, 0)) {
    unsigned flags = c.arg(3);
    if ((flags & ~(SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                   SYNC_FILE_RANGE_WAIT_AFTER)) ||
        static_cast<int64_t>(c.arg(1)) < 0 || static_cast<int64_t>(c.arg(2)) < 0) {
      return done(-EINVAL);
    }
    if (isStream(*f)) {
      return done(-ESPIPE);
    }
    if (!(flags & SYNC_FILE_RANGE_WRITE)) {
      return done(0);
    }
    auto req = f->node.fsyncRequest();
    req.setDataOnly(true);
    return resultOf(send(c, f->target, req));
  }
  return local();
}

// syncfs on B: the closest request we have is an fsync of the file (TODO(protocol): syncfs).
kj::Promise<Outcome> hSyncfs(Call& c) { return fsyncCommon(c, false); }

// ---------------------------------------------------------------------------------------------
// sendfile, copy_file_range

// The explicit offsets of sendfile/copy_file_range (-1: the file position when the pointer is
// NULL): 0, -EFAULT or -EINVAL as the kernel answers.
int64_t readCopyOffsets(Call& c, uint64_t inOffAddr, uint64_t outOffAddr, int64_t& inOff,
                        int64_t& outOff) {
  inOff = outOff = -1;
  if ((inOffAddr != 0 && c.mem().readValue(inOffAddr, inOff) < 0) ||
      (outOffAddr != 0 && c.mem().readValue(outOffAddr, outOff) < 0)) {
    return -EFAULT;
  }
  if ((inOffAddr && inOff < 0) || (outOffAddr && outOff < 0)) {
    return -EINVAL;
  }
  return 0;
}

kj::Promise<Outcome> copyRemote(Call& c, RemoteFile& in, RemoteFile& out, uint64_t count,
                                uint64_t inOffAddr, uint64_t outOffAddr, int64_t inOff,
                                int64_t outOff, proto::CopyKind kind) {
  out.target.noteContentChange();
  auto req = in.node.copyToRequest();
  req.setDst(out.node);
  req.setCount(kj::min(count, MAX_RW));
  req.setSrcOffset(inOff);
  req.setDstOffset(outOff);
  req.setKind(kind);
  return send(c, in.target, req).then([&c, inOffAddr, outOffAddr](auto reply) -> Outcome {
    int64_t n = reply.getResult();
    if (n < 0) {
      return Complete{n};
    }
    if (inOffAddr && c.mem().writeValue(inOffAddr, reply.getSrcOffset()) < 0) {
      return Complete{-EFAULT};
    }
    if (outOffAddr && c.mem().writeValue(outOffAddr, reply.getDstOffset()) < 0) {
      return Complete{-EFAULT};
    }
    return Complete{n};
  });
}

// One side here, one there: the tracer moves one chunk through itself, reading or writing the
// local side through a copy of the tracee's fd (pidfd_getfd shares the file position). Only a
// regular local file qualifies: the event loop must never block on a pipe or socket, and the
// kernel itself answers EINVAL for what sendfile/copy_file_range cannot take, which sends
// cp and Python back to read/write.
kj::Promise<Outcome> copyMixed(Call& c, int inFd, kj::Maybe<RemoteFile&> in, int outFd,
                               kj::Maybe<RemoteFile&> out, uint64_t count, uint64_t inOffAddr,
                               uint64_t outOffAddr, int64_t inOff, int64_t outOff) {
  // pidfd_open takes the process (a thread id of a non-leader thread is refused).
  int pidfd = syscall(SYS_pidfd_open, c.task.tgid, 0);
  if (pidfd < 0) {
    return done(-errno);
  }
  KJ_DEFER(close(pidfd));
  int localFd = syscall(SYS_pidfd_getfd, pidfd, in == nullptr ? inFd : outFd, 0);
  if (localFd < 0) {
    return done(-errno);
  }
  auto localOwn = kj::AutoCloseFd(localFd);
  struct stat st;
  if (fstat(localOwn.get(), &st) < 0 || !S_ISREG(st.st_mode)) {
    return done(-EINVAL);
  }
  uint64_t want = kj::min(count, CHUNK);
  if (want == 0) {
    return done(0);
  }
  KJ_IF_MAYBE(src, in) {
    // remote -> local
    auto req = src->node.preadRequest();
    req.setCount(want);
    req.setOffset(inOff);
    c.target = &src->target;
    auto giveBack = [&c, srcNode = src->node, positional = inOffAddr != 0](int64_t lost) mutable {
      if (!positional && lost > 0) {
        auto seek = srcNode.seekRequest();
        seek.setOffset(-lost);
        seek.setWhence(proto::Whence::CUR);
        c.tracer.backgroundSend(seek.send().ignoreResult());
      }
    };
    return req.send().then([&c, fd = kj::mv(localOwn), outOff, inOffAddr, outOffAddr, inOff,
                            giveBack = kj::mv(giveBack)](auto reply) mutable -> Outcome {
      int64_t n = reply.getResult();
      if (n <= 0) {
        return Complete{n};
      }
      auto data = reply.getData();
      ssize_t w = outOff >= 0 ? pwrite(fd.get(), data.begin(), data.size(), outOff)
                              : write(fd.get(), data.begin(), data.size());
      if (w < 0) {
        int err = errno;
        giveBack(n);
        return Complete{-err};
      }
      giveBack(n - w);
      if (inOffAddr) {
        c.mem().writeValue(inOffAddr, inOff + w);
      }
      if (outOffAddr) {
        c.mem().writeValue(outOffAddr, outOff + w);
      }
      return Complete{w};
    });
  }
  // local -> remote
  auto& dst = KJ_ASSERT_NONNULL(out);
  dst.target.noteContentChange();
  auto req = dst.node.pwriteRequest();
  auto buf = req.initData(want);
  ssize_t n = inOff >= 0 ? pread(localOwn.get(), buf.begin(), want, inOff)
                         : read(localOwn.get(), buf.begin(), want);
  if (n <= 0) {
    return done(n < 0 ? -errno : 0);
  }
  if (static_cast<uint64_t>(n) < want) {
    req.setData(buf.slice(0, n));
  }
  req.setOffset(outOff);
  c.target = &dst.target;
  int rawFd = localOwn.get();
  bool positional = inOff >= 0;
  // Whatever the remote write does not take goes back to the local file position.
  auto restore = kj::defer([fd = kj::mv(localOwn)]() {});
  return req.send()
      .then([&c, n, rawFd, positional, inOff, inOffAddr, outOff, outOffAddr](
                auto reply) -> Outcome {
        int64_t w = reply.getResult();
        if (!positional && (w < 0 ? n : n - w) > 0) {
          lseek(rawFd, w < 0 ? -n : w - n, SEEK_CUR);
        }
        if (w < 0) {
          return Complete{w};
        }
        if (inOffAddr) {
          c.mem().writeValue(inOffAddr, inOff + w);
        }
        if (outOffAddr) {
          c.mem().writeValue(outOffAddr, outOff + w);
        }
        return Complete{w};
      },
      [rawFd, n, positional](kj::Exception&& e) -> Outcome {
        if (!positional) {
          lseek(rawFd, -n, SEEK_CUR);
        }
        kj::throwFatalException(kj::mv(e));
      })
      .attach(kj::mv(restore));
}

kj::Promise<Outcome> copyCommon(Call& c, int inFd, uint64_t inOffAddr, int outFd,
                                uint64_t outOffAddr, uint64_t count, proto::CopyKind kind) {
  auto in = c.task.fds->find(inFd);
  auto out = c.task.fds->find(outFd);
  if (in == nullptr && out == nullptr) {
    return local();
  }
  for (RemoteFile* f : {in.map([](RemoteFile& r) { return &r; }).orDefault(nullptr),
                        out.map([](RemoteFile& r) { return &r; }).orDefault(nullptr)}) {
    if (f != nullptr) {
      if (f->readAhead.fetching) {
        return fetchDone(*f).then([&c, inFd, inOffAddr, outFd, outOffAddr, count, kind]() {
          return copyCommon(c, inFd, inOffAddr, outFd, outOffAddr, count, kind);
        });
      }
      giveBack(c.tracer, *f);  // sendfile and copy_file_range may use the file offset.
    }
  }
  int64_t inOff, outOff;
  int64_t bad = readCopyOffsets(c, inOffAddr, outOffAddr, inOff, outOff);
  if (bad < 0) {
    return done(bad);
  }
  KJ_IF_MAYBE(i, in) {
    KJ_IF_MAYBE(o, out) {
      if (&i->target != &o->target) {
        // Two machines: no kernel can copy between them in one call.
        return done(kind == proto::CopyKind::COPY_FILE_RANGE ? -EXDEV : -EINVAL);
      }
      return copyRemote(c, *i, *o, count, inOffAddr, outOffAddr, inOff, outOff, kind);
    }
  }
  if (kind == proto::CopyKind::COPY_FILE_RANGE) {
    // Files on two machines are never on one superblock: the kernel's own cross-fs answer.
    return done(-EXDEV);
  }
  return copyMixed(c, inFd, in, outFd, out, count, inOffAddr, outOffAddr, inOff, outOff);
}

kj::Promise<Outcome> hSendfile(Call& c) {
  return copyCommon(c, c.fdArg(1), c.arg(2), c.fdArg(0), 0, c.arg(3), proto::CopyKind::SENDFILE);
}
kj::Promise<Outcome> hCopyFileRange(Call& c) {
  if (c.arg(5) != 0) {
    // The kernel checks flags first; a remote fd must not reach the placeholder's EBADF.
    bool remote = c.task.fds->isRemote(c.fdArg(0)) || c.task.fds->isRemote(c.fdArg(2));
    return remote ? done(-EINVAL) : local();
  }
  return copyCommon(c, c.fdArg(0), c.arg(1), c.fdArg(2), c.arg(3), c.arg(4),
                    proto::CopyKind::COPY_FILE_RANGE);
}

const HandlerEntry IO_HANDLERS[] = {
    {SYS_read, hRead},
    {SYS_pread64, hPread},
    {SYS_readv, hReadv},
    {SYS_preadv, hPreadv},
    {SYS_preadv2, hPreadv2},
    {SYS_write, hWrite},
    {SYS_pwrite64, hPwrite},
    {SYS_writev, hWritev},
    {SYS_pwritev, hPwritev},
    {SYS_pwritev2, hPwritev2},
    {SYS_lseek, hLseek},
    {SYS_ftruncate, hFtruncate},
    {SYS_fallocate, hFallocate},
    {SYS_fsync, hFsync},
    {SYS_fdatasync, hFdatasync},
    {SYS_fadvise64, hFadvise},
    {SYS_readahead, hReadahead},
    {SYS_sync_file_range, hSyncFileRange},
    {SYS_syncfs, hSyncfs},
    {SYS_sendfile, hSendfile},
    {SYS_copy_file_range, hCopyFileRange},
};

}  // namespace

kj::ArrayPtr<const HandlerEntry> ioHandlers() { return IO_HANDLERS; }

}  // namespace sb::handler
