// NodeImpl, part 1: the node itself and its I/O methods (read, write, seek, getdents, copies,
// flags, path). The path methods are in node_path.cc, record locks in node_lock.cc, sockets in
// node_socket.cc.

#include "node.h"

#include <sys/ioctl.h>

#include <poll.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <capnp/orphan.h>
#include <kj/debug.h>

#include "host_wire.h"

namespace sb {

namespace {

// A blocking read copies out of a worker-owned buffer, so it is kept to what one pipe or socket
// read returns in practice; the tracer loops for more.
constexpr uint64_t MAX_BLOCKING_READ = 1ull << 20;
// getdents64 buffers beyond this bring nothing: the tracer loops.
constexpr uint32_t MAX_DENTS_BYTES = 1u << 20;

// How many bytes to reserve in the result for a read of `count` at `offset` (-1: the file
// position). The reservation becomes part of the response message even when the read comes back
// short, so it is sized to what the file holds: a 64 MiB request on a 5-byte file must not cost a
// 64 MiB message. Files whose size says nothing (procfs, sysfs, block devices report 0) get a
// moderate chunk; a short read is legal and the tracer loops.
size_t readReservation(int fd, int64_t offset, uint64_t count) {
  constexpr uint64_t UNKNOWN_SIZE_CHUNK = 256u << 10;
  constexpr uint64_t PAST_EOF_PROBE = 4096;  // the file may have grown since
  constexpr uint64_t SMALL_READ = 512;  // slack this small costs less than an fstat
  if (count <= SMALL_READ) {
    return size_t(count);
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    return size_t(kj::min(count, UNKNOWN_SIZE_CHUNK));
  }
  int64_t pos = offset >= 0 ? offset : int64_t(lseek(fd, 0, SEEK_CUR));
  if (pos < 0) {
    return size_t(kj::min(count, UNKNOWN_SIZE_CHUNK));
  }
  int64_t remaining = int64_t(st.st_size) - pos;
  return size_t(kj::min(count, remaining > 0 ? uint64_t(remaining) : PAST_EOF_PROBE));
}

// Reads straight into the result message (no extra copy): `readFn(buf, n)` is a read-like call.
template <typename Results, typename ReadFn>
void readIntoResults(Results results, size_t count, ReadFn&& readFn) {
  auto orphan = capnp::Orphanage::getForMessageContaining(results)
                    .template newOrphan<capnp::Data>(count);
  ssize_t n = readFn(orphan.get().begin(), count);
  if (n < 0) {
    results.setResult(-int64_t(errno));
    return;
  }
  orphan.truncate(size_t(n));
  results.setResult(n);
  results.adoptData(kj::mv(orphan));
}

ssize_t preadAny(int fd, void* buf, size_t count, int64_t offset, int flags) {
  if (flags == 0 && offset >= 0) {
    return ::pread(fd, buf, count, offset);
  }
  struct iovec iov = {buf, count};
  return ::preadv2(fd, &iov, 1, offset, flags);
}

ssize_t pwriteAny(int fd, const void* buf, size_t count, int64_t offset, int flags) {
  if (flags == 0 && offset >= 0) {
    return ::pwrite(fd, buf, count, offset);
  }
  struct iovec iov = {const_cast<void*>(buf), count};
  return ::pwritev2(fd, &iov, 1, offset, flags);
}

// One copy call; `offsets` are in/out, -1 meaning "the file position".
int64_t copyOnce(int src, int dst, size_t count, proto::CopyKind kind, int64_t offsets[2]) {
  switch (kind) {
    case proto::CopyKind::SENDFILE: {
      if (offsets[1] != -1) {
        // sendfile(2) always writes at the destination's position.
        return -EINVAL;
      }
      off_t in = offsets[0];
      ssize_t n = ::sendfile(dst, src, offsets[0] == -1 ? nullptr : &in, count);
      if (n >= 0 && offsets[0] != -1) {
        offsets[0] = in;
      }
      return sysResult(n);
    }
    case proto::CopyKind::COPY_FILE_RANGE: {
      off_t in = offsets[0];
      off_t out = offsets[1];
      ssize_t n = ::copy_file_range(src, offsets[0] == -1 ? nullptr : &in, dst,
                                    offsets[1] == -1 ? nullptr : &out, count, 0);
      if (n >= 0) {
        if (offsets[0] != -1) offsets[0] = in;
        if (offsets[1] != -1) offsets[1] = out;
      }
      return sysResult(n);
    }
  }
  return -EINVAL;
}

// The exit rule of a pipe a spawned process writes (NodeImpl::exitWatch), for a read that may
// block: waits until `fd` is readable or the process behind the pidfd `exitFd` has exited with
// the pipe empty. Returns 1 (read now), 0 (EOF by the rule) or -errno (EINTR: cancelled). Another
// reader of the same pipe may empty it between the poll and the read; that read then waits as a
// plain pipe read does.
int64_t waitReadableOrExit(int fd, int exitFd) {
  struct pollfd set[2] = {{fd, POLLIN, 0}, {exitFd, POLLIN, 0}};
  if (::poll(set, 2, -1) < 0) {
    return -int64_t(errno);
  }
  if (set[0].revents != 0) {
    return 1;
  }
  // poll looked at the pipe before the pidfd: what the process wrote before it exited may have
  // arrived in between, so look once more.
  struct pollfd pipe = {fd, POLLIN, 0};
  int r = ::poll(&pipe, 1, 0);
  return r < 0 ? -int64_t(errno) : r > 0 ? 1 : 0;
}

// The same rule for a non-blocking read that found the pipe empty: true when it is EOF.
bool exitedWithPipeEmpty(int fd, int exitFd) {
  struct pollfd exited = {exitFd, POLLIN, 0};
  struct pollfd pipe = {fd, POLLIN, 0};
  return ::poll(&exited, 1, 0) > 0 && ::poll(&pipe, 1, 0) == 0;
}

// A read-like call on a node with an exit watch (`exitFd` >= 0) that must not block.
ssize_t readNowWithExitRule(int fd, int exitFd, void* buf, size_t count, int64_t offset,
                            int flags, bool positional) {
  ssize_t n = positional ? preadAny(fd, buf, count, offset, flags) : ::read(fd, buf, count);
  if (n < 0 && errno == EAGAIN && exitFd >= 0 && exitedWithPipeEmpty(fd, exitFd)) {
    return 0;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// FdRef, SessionState

FdRef::~FdRef() noexcept(false) {
  if (fd >= 0) {
    ::close(fd);
  }
}

int64_t FdRef::closeNow() {
  int old = fd;
  fd = -1;
  // close(2) must not be retried on EINTR: the fd is gone either way on Linux.
  return sysResult(::close(old));
}

bool SessionState::readAheadSafe(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    return false;
  }
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0) {
    return false;
  }
  // Pseudo file systems whose files are generated per read (linux/magic.h values).
  static const unsigned long GENERATED[] = {
      0x9fa0,      // PROC_SUPER_MAGIC
      0x62656572,  // SYSFS_MAGIC
      0x64626720,  // DEBUGFS_MAGIC
      0x74726163,  // TRACEFS_MAGIC
      0x73636673,  // SECURITYFS_MAGIC
      0x62656570,  // CONFIGFS_MAGIC
      0x27e0eb,    // CGROUP_SUPER_MAGIC
      0x63677270,  // CGROUP2_SUPER_MAGIC
      0xde5e81e4,  // EFIVARFS_MAGIC
      0x6165676c,  // PSTOREFS_MAGIC
      0xcafe4a11,  // BPF_FS_MAGIC
      0x65735543,  // FUSE_CTL_SUPER_MAGIC
      0x1cd1,      // DEVPTS_SUPER_MAGIC
      0x1373,      // DEVFS_SUPER_MAGIC
      0x42494e4d,  // BINFMTFS_MAGIC
  };
  for (unsigned long magic : GENERATED) {
    if (static_cast<unsigned long>(fs.f_type) == magic) {
      return false;
    }
  }
  return true;
}

proto::Node::Client SessionState::newNode(int fd, proto::FileType& typeOut,
                                          kj::Maybe<kj::Own<FdRef>> exitWatch) {
  struct stat st;
  bool blockingKind = true;
  typeOut = proto::FileType::UNKNOWN;
  if (fstat(fd, &st) == 0) {
    typeOut = fileTypeFromMode(st.st_mode);
    switch (st.st_mode & S_IFMT) {
      case S_IFIFO:
      case S_IFSOCK:
        blockingKind = true;
        break;
      case S_IFCHR:
        // The memory devices (/dev/null, zero, full, random, urandom: major 1) never block.
        blockingKind = major(st.st_rdev) != 1;
        break;
      default:
        blockingKind = false;
        break;
    }
  }
  return nodes.add(kj::heap<NodeImpl>(kj::addRef(*this), kj::atomicRefcounted<FdRef>(fd),
                                      blockingKind, kj::mv(exitWatch)));
}

// ---------------------------------------------------------------------------------------------
// NodeImpl basics

NodeImpl::NodeImpl(kj::Own<SessionState> session, kj::Own<FdRef> fd, bool blockingKind,
                   kj::Maybe<kj::Own<FdRef>> exitWatch)
    : session(kj::mv(session)), fd(kj::mv(fd)), blockingKind(blockingKind),
      exitWatch(kj::mv(exitWatch)) {
  ++this->session->liveNodes;
}

NodeImpl::~NodeImpl() noexcept(false) {
  forgetLease();
  --session->liveNodes;
}

int NodeImpl::fdOrError() const {
  KJ_IF_MAYBE(f, fd) {
    return (*f)->get();
  }
  return -EBADF;
}

kj::Maybe<kj::Own<FdRef>> NodeImpl::shareFd() {
  KJ_IF_MAYBE(f, fd) {
    return kj::atomicAddRef(**f);
  }
  return nullptr;
}

kj::Maybe<kj::Own<FdRef>> NodeImpl::shareExitWatch() {
  KJ_IF_MAYBE(w, exitWatch) {
    return kj::atomicAddRef(**w);
  }
  return nullptr;
}

int NodeImpl::exitWatchFd() const {
  KJ_IF_MAYBE(w, exitWatch) {
    return (*w)->get();
  }
  return -1;
}

bool NodeImpl::mayBlock() const {
  if (!blockingKind) {
    return false;
  }
  int flags = fcntl(fdOrError(), F_GETFL);
  return flags < 0 || !(flags & O_NONBLOCK);
}

kj::Promise<WorkResult> NodeImpl::runBlocking(kj::Function<WorkResult(int fd)> work) {
  KJ_IF_MAYBE(f, fd) {
    return runTracked(
        [ref = kj::atomicAddRef(**f), work = kj::mv(work)]() mutable { return work(ref->get()); });
  }
  KJ_FAIL_ASSERT("runBlocking() on a closed node");
}

kj::Promise<WorkResult> NodeImpl::runTracked(kj::Function<WorkResult()> work,
                                             kj::Maybe<Executor&> on) {
  kj::Own<Executor::JobHandle> handle;
  Executor* runner = &executor();
  KJ_IF_MAYBE(e, on) {
    runner = e;
  }
  // The worker performs the call with the caller's credentials too (asCaller).
  auto promise = runner->run(
      [creds = currentCaller(), work = kj::mv(work)]() mutable {
        AssumedCredentials as(ptrOf(creds));
        return work();
      },
      handle);
  uint64_t id = blockingJobs->next++;
  blockingJobs->jobs.emplace(id, kj::mv(handle));
  return promise.attach(
      kj::defer([jobs = kj::addRef(*blockingJobs), id]() mutable { jobs->jobs.erase(id); }));
}

kj::Promise<void> NodeImpl::interrupt(InterruptContext) {
  for (auto& entry : blockingJobs->jobs) {
    entry.second->interrupt();
  }
  return kj::READY_NOW;
}

kj::Promise<kj::Maybe<NodeImpl&>> NodeImpl::sameSessionNode(proto::Node::Client client) {
  return session->nodes.getLocalServer(client).then(
      [](kj::Maybe<proto::Node::Server&> server) -> kj::Maybe<NodeImpl&> {
        KJ_IF_MAYBE(s, server) {
          // The set only ever holds NodeImpls.
          return static_cast<NodeImpl&>(*s);
        }
        return nullptr;
      });
}

kj::Promise<void> NodeImpl::close(CloseContext context) {
  auto results = context.getResults();
  forgetLease();
  KJ_IF_MAYBE(f, fd) {
    kj::Own<FdRef> ref = kj::mv(*f);
    fd = nullptr;
    // A worker call still holds the fd (a read blocked on a FIFO): the kernel's close(2) would
    // succeed and leave that read running, so report success and let the last holder close it.
    results.setResult(ref->isShared() ? 0 : ref->closeNow());
  } else {
    results.setResult(-EBADF);
  }
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::info(InfoContext context) {
  auto results = context.getResults();
  struct stat st;
  int f = fdOrError();
  if (f < 0) {
    results.setResult(f);
  } else if (fstat(f, &st) < 0) {
    results.setResult(-int64_t(errno));
  } else {
    results.setResult(0);
    results.initInfo().setType(fileTypeFromMode(st.st_mode));
  }
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// read / write

kj::Promise<void> NodeImpl::read(ReadContext context) {
  uint64_t count = kj::min(context.getParams().getCount(), MAX_TRANSFER);
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  if (mayBlock()) {
    count = kj::min(count, MAX_BLOCKING_READ);
    context.allowCancellation();
    return runBlocking([count, watch = shareExitWatch()](int fd) {
      WorkResult w;
      KJ_IF_MAYBE(exitFd, watch) {
        w.result = waitReadableOrExit(fd, (*exitFd)->get());
        if (w.result <= 0) {
          return w;
        }
      }
      w.data = kj::heapArray<kj::byte>(count);
      w.result = sysResult(::read(fd, w.data.begin(), count));
      return w;
    }).then([context](WorkResult&& w) mutable {
      auto results = context.getResults();
      results.setResult(w.result);
      if (w.result > 0) {
        results.setData(w.data.slice(0, size_t(w.result)));
      }
    });
  }
  readIntoResults(context.getResults(), readReservation(f, -1, count),
                  [f, exitFd = exitWatchFd()](void* buf, size_t n) {
    return readNowWithExitRule(f, exitFd, buf, n, -1, 0, false);
  });
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::pread(PreadContext context) {
  auto params = context.getParams();
  uint64_t count = kj::min(params.getCount(), MAX_TRANSFER);
  int64_t offset = params.getOffset();
  int flags = rwFlagsToHost(params.getFlags());
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  if (mayBlock()) {
    count = kj::min(count, MAX_BLOCKING_READ);
    context.allowCancellation();
    // The exit rule is for reads at the file position; pread at an offset is ESPIPE at once.
    kj::Maybe<kj::Own<FdRef>> watch;
    if (offset < 0) {
      watch = shareExitWatch();
    }
    return runBlocking([count, offset, flags, watch = kj::mv(watch)](int fd) {
      WorkResult w;
      KJ_IF_MAYBE(exitFd, watch) {
        w.result = waitReadableOrExit(fd, (*exitFd)->get());
        if (w.result <= 0) {
          return w;
        }
      }
      w.data = kj::heapArray<kj::byte>(count);
      w.result = sysResult(preadAny(fd, w.data.begin(), count, offset, flags));
      return w;
    }).then([context](WorkResult&& w) mutable {
      auto results = context.getResults();
      results.setResult(w.result);
      if (w.result > 0) {
        results.setData(w.data.slice(0, size_t(w.result)));
      }
    });
  }
  readIntoResults(context.getResults(), readReservation(f, offset, count),
                  [f, offset, flags, exitFd = exitWatchFd()](void* buf, size_t n) {
    return readNowWithExitRule(f, exitFd, buf, n, offset, flags, true);
  });
  return kj::READY_NOW;
}

namespace {

// The program's RLIMIT_FSIZE (Node.write/pwrite fileSizeLimit; the agent's own limit is not
// the program's): how many of `count` bytes a write at `offset` (-1: the file position; the end
// with O_APPEND or RWF_APPEND) may write to the file behind `fd`, or -EFBIG when it starts at or
// past the limit (mm/filemap.c generic_write_check_limits). Only regular files have the limit.
int64_t fileSizeRoom(int fd, int64_t offset, bool appendFlag, uint64_t limit, size_t count) {
  if (limit == UINT64_MAX) {
    return int64_t(count);
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    return int64_t(count);  // the write itself will say what is wrong
  }
  int flags = fcntl(fd, F_GETFL);
  uint64_t pos;
  if (appendFlag || (flags >= 0 && (flags & O_APPEND))) {
    pos = uint64_t(st.st_size);
  } else if (offset >= 0) {
    pos = uint64_t(offset);
  } else {
    off_t cur = lseek(fd, 0, SEEK_CUR);
    pos = cur < 0 ? 0 : uint64_t(cur);
  }
  if (count == 0) {
    return 0;
  }
  if (pos >= limit) {
    return -EFBIG;
  }
  return int64_t(kj::min(uint64_t(count), limit - pos));
}

}  // namespace

namespace {

// File systems whose fallocate applies RLIMIT_FSIZE with FALLOC_FL_KEEP_SIZE too (mm/shmem.c:
// "We need to check rlimit even when FALLOC_FL_KEEP_SIZE"); ext4, xfs and btrfs do not.
constexpr long KEEP_SIZE_LIMITED_FS[] = {0x01021994 /* TMPFS_MAGIC */};

bool limitsKeepSize(int fd) {
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0) {
    return false;
  }
  for (long magic : KEEP_SIZE_LIMITED_FS) {
    if (long(fs.f_type) == magic) {
      return true;
    }
  }
  return false;
}

}  // namespace

int64_t growthPastLimit(int fd, int64_t size, uint64_t limit) {
  struct stat st;
  if (limit == UINT64_MAX || size < 0 || uint64_t(size) <= limit || fstat(fd, &st) < 0 ||
      !S_ISREG(st.st_mode) || size <= st.st_size) {
    return 0;
  }
  return -EFBIG;
}

kj::Promise<void> NodeImpl::write(WriteContext context) {
  auto data = context.getParams().getData();
  size_t count = kj::min(data.size(), MAX_TRANSFER);
  int f = fdOrError();
  if (f < 0 || readOnly()) {
    context.getResults().setResult(f < 0 ? f : -EROFS);
    return kj::READY_NOW;
  }
  if (mayBlock()) {
    // The worker owns a copy: the request message is freed if the call is cancelled.
    auto copy = kj::heapArray<kj::byte>(data.slice(0, count));
    context.allowCancellation();
    return runBlocking([copy = kj::mv(copy)](int fd) {
      WorkResult w;
      w.result = sysResult(::write(fd, copy.begin(), copy.size()));
      return w;
    }).then([context](WorkResult&& w) mutable { context.getResults().setResult(w.result); });
  }
  int64_t room = fileSizeRoom(f, -1, false, context.getParams().getFileSizeLimit(), count);
  context.getResults().setResult(room <= 0 ? room
                                            : sysResult(::write(f, data.begin(), size_t(room))));
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::pwrite(PwriteContext context) {
  auto params = context.getParams();
  auto data = params.getData();
  size_t count = kj::min(data.size(), MAX_TRANSFER);
  int64_t offset = params.getOffset();
  int flags = rwFlagsToHost(params.getFlags());
  int f = fdOrError();
  if (f < 0 || readOnly()) {
    context.getResults().setResult(f < 0 ? f : -EROFS);
    return kj::READY_NOW;
  }
  if (mayBlock()) {
    auto copy = kj::heapArray<kj::byte>(data.slice(0, count));
    context.allowCancellation();
    return runBlocking([copy = kj::mv(copy), offset, flags](int fd) {
      WorkResult w;
      w.result = sysResult(pwriteAny(fd, copy.begin(), copy.size(), offset, flags));
      return w;
    }).then([context](WorkResult&& w) mutable { context.getResults().setResult(w.result); });
  }
  int64_t room =
      fileSizeRoom(f, offset, (flags & RWF_APPEND) != 0, params.getFileSizeLimit(), count);
  context.getResults().setResult(
      room <= 0 ? room : sysResult(pwriteAny(f, data.begin(), size_t(room), offset, flags)));
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::seek(SeekContext context) {
  auto params = context.getParams();
  int64_t whence = whenceToHost(params.getWhence());
  int f = fdOrError();
  int64_t r = f < 0 ? f : whence < 0 ? whence : sysResult(::lseek(f, params.getOffset(), int(whence)));
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// Directories

kj::Promise<void> NodeImpl::getdents(GetdentsContext context) {
  auto results = context.getResults();
  int f = fdOrError();
  if (f < 0) {
    results.setResult(f);
    return kj::READY_NOW;
  }
  // Exactly the caller's size, so the kernel consumes exactly what the tracer can re-encode; a
  // buffer too small for one record gets the kernel's own EINVAL.
  uint32_t maxBytes = kj::min(context.getParams().getMaxBytes(), MAX_DENTS_BYTES);
  // Directory reads run on the loop thread only: one reusable buffer serves them all.
  static thread_local std::vector<char> buffer;
  if (buffer.size() < maxBytes) {
    buffer.resize(maxBytes);
  }
  long n = syscall(SYS_getdents64, f, buffer.data(), size_t(maxBytes));
  if (n < 0) {
    results.setResult(-int64_t(errno));
    return kj::READY_NOW;
  }
  // linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] (NUL-terminated).
  constexpr size_t NAME_OFFSET = 19;
  size_t count = 0;
  for (long pos = 0; pos < n;) {
    uint16_t reclen;
    memcpy(&reclen, buffer.data() + pos + 16, sizeof(reclen));
    ++count;
    pos += reclen;
  }
  auto entries = results.initEntries(count);
  size_t i = 0;
  for (long pos = 0; pos < n; ++i) {
    const char* rec = buffer.data() + pos;
    uint64_t ino;
    int64_t off;
    uint16_t reclen;
    memcpy(&ino, rec, 8);
    memcpy(&off, rec + 8, 8);
    memcpy(&reclen, rec + 16, 2);
    auto entry = entries[i];
    entry.setIno(ino);
    entry.setOff(off);
    entry.setType(uint8_t(rec[18]));
    const char* name = rec + NAME_OFFSET;
    size_t nameLen = strnlen(name, reclen - NAME_OFFSET);
    entry.setName(kj::arrayPtr(reinterpret_cast<const kj::byte*>(name), nameLen));
    pos += reclen;
  }
  results.setResult(n);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::chdirCheck(ChdirCheckContext context) {
  int f = fdOrError();
  int64_t r = f;
  struct stat st;
  if (f >= 0) {
    if (fstat(f, &st) < 0) {
      r = -int64_t(errno);
    } else if (!S_ISDIR(st.st_mode)) {
      r = -ENOTDIR;
    } else {
      // chdir(2) needs search permission for the agent's own identity (AT_EACCESS).
      r = sysResult(faccessat(f, "", X_OK, AT_EMPTY_PATH | AT_EACCESS));
    }
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::path(PathContext context) {
  auto results = context.getResults();
  int f = fdOrError();
  if (f < 0) {
    results.setResult(f);
    return kj::READY_NOW;
  }
  kj::String p;
  int64_t r = context.getParams().getAsLink() ? confinement().linkTextOf(f, p)
                                              : confinement().pathOf(f, p);
  if (r < 0) {
    results.setResult(r);
    return kj::READY_NOW;
  }
  results.setResult(int64_t(p.size()));
  results.setPath(p.asBytes());
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// Space, sync, flags

kj::Promise<void> NodeImpl::fallocate(FallocateContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  int mode = int(params.getMode());
  int64_t offset = params.getOffset(), length = params.getLength();
  int64_t r = f < 0 ? f : readOnly() ? -EROFS : 0;
  // RLIMIT_FSIZE: after vfs_fallocate's own checks (a valid range, a description open for
  // writing), for the modes that may grow the file (the file systems' inode_newsize_ok).
  int access = r == 0 ? fcntl(f, F_GETFL) : -1;
  bool mayGrow = (mode & ~FALLOC_FL_ZERO_RANGE) == 0 ||
                 (mode == FALLOC_FL_KEEP_SIZE && r == 0 && limitsKeepSize(f));
  if (r == 0 && mayGrow && offset >= 0 && length > 0 && offset <= INT64_MAX - length &&
      access >= 0 && !(access & O_PATH) && (access & O_ACCMODE) != O_RDONLY) {
    r = growthPastLimit(f, offset + length, params.getFileSizeLimit());
  }
  if (r == 0) {
    r = sysResult(::fallocate(f, mode, offset, length));
  }
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::fsync(FsyncContext context) {
  int f = fdOrError();
  if (f < 0) {
    context.getResults().setResult(f);
    return kj::READY_NOW;
  }
  // fsync can take seconds on a busy disk or a slow NFS server, whatever the file type.
  bool dataOnly = context.getParams().getDataOnly();
  context.allowCancellation();
  return runBlocking([dataOnly](int fd) {
    WorkResult w;
    w.result = sysResult(dataOnly ? ::fdatasync(fd) : ::fsync(fd));
    return w;
  }).then([context](WorkResult&& w) mutable { context.getResults().setResult(w.result); });
}

kj::Promise<void> NodeImpl::getFlags(GetFlagsContext context) {
  auto results = context.getResults();
  int f = fdOrError();
  int flags = f < 0 ? f : fcntl(f, F_GETFL);
  if (f < 0) {
    results.setResult(f);
  } else if (flags < 0) {
    results.setResult(-int64_t(errno));
  } else {
    results.setResult(0);
    statusFlagsFromHost(flags, results.initFlags());
  }
  return kj::READY_NOW;
}

kj::Promise<void> NodeImpl::setFlags(SetFlagsContext context) {
  int f = fdOrError();
  int64_t r = f < 0 ? f : sysResult(fcntl(f, F_SETFL, statusFlagsToHost(context.getParams().getFlags())));
  context.getResults().setResult(r);
  return kj::READY_NOW;
}

// ---------------------------------------------------------------------------------------------
// copyTo

kj::Promise<void> NodeImpl::copyTo(CopyToContext context) {
  auto params = context.getParams();
  return sameSessionNode(params.getDst()).then(
      [this, context](kj::Maybe<NodeImpl&> maybeDst) mutable -> kj::Promise<void> {
        auto params = context.getParams();
        auto results = context.getResults();
        results.setSrcOffset(params.getSrcOffset());
        results.setDstOffset(params.getDstOffset());
        NodeImpl* dst = nullptr;
        KJ_IF_MAYBE(d, maybeDst) {
          dst = d;
        } else {
          // A node of another session (or another agent): the kernel's answer for files that
          // cannot be copied between directly.
          results.setResult(-EXDEV);
          return kj::READY_NOW;
        }
        int src = fdOrError();
        int out = dst->fdOrError();
        if (src < 0 || out < 0 || readOnly()) {
          results.setResult(src < 0 ? src : out < 0 ? out : -EROFS);
          return kj::READY_NOW;
        }
        size_t count = kj::min(params.getCount(), MAX_TRANSFER);
        auto kind = params.getKind();
        int64_t offsets[2] = {params.getSrcOffset(), params.getDstOffset()};
        if (mayBlock() || dst->mayBlock()) {
          // sendfile into a pipe or socket waits for room; the worker holds both fds.
          KJ_IF_MAYBE(dstRef, dst->fd) {
            context.allowCancellation();
            auto outRef = kj::atomicAddRef(**dstRef);
            return runBlocking([outRef = kj::mv(outRef), count, kind, offsets](int fd) mutable {
              WorkResult w;
              w.result = copyOnce(fd, outRef->get(), count, kind, offsets);
              w.offsets[0] = offsets[0];
              w.offsets[1] = offsets[1];
              return w;
            }).then([context](WorkResult&& w) mutable {
              auto results = context.getResults();
              results.setResult(w.result);
              results.setSrcOffset(w.offsets[0]);
              results.setDstOffset(w.offsets[1]);
            });
          }
        }
        results.setResult(copyOnce(src, out, count, kind, offsets));
        results.setSrcOffset(offsets[0]);
        results.setDstOffset(offsets[1]);
        return kj::READY_NOW;
      });
}

// ---------------------------------------------------------------------------------------------
// ioctl

namespace {

constexpr uint32_t MAX_IOCTL_PAYLOAD = 1 << 16;  // _IOC sizes are 14 bits; tables stay below

WorkResult runIoctl(int fd, unsigned long request, uint64_t arg, bool pointer,
                    kj::Array<kj::byte> buffer, uint32_t outSize) {
  WorkResult w;
  if (!pointer) {
    w.result = sysResult(::ioctl(fd, request, arg));
    return w;
  }
  w.result = sysResult(::ioctl(fd, request, buffer.begin()));
  if (w.result >= 0) {
    w.data = kj::mv(buffer);
    w.offsets[0] = outSize;  // how many of the bytes answer
  }
  return w;
}

}  // namespace

kj::Promise<void> NodeImpl::ioctl(IoctlContext context) {
  auto params = context.getParams();
  int f = fdOrError();
  auto results = context.getResults();
  if (f < 0) {
    results.setResult(f);
    return kj::READY_NOW;
  }
  auto in = params.getData();
  uint32_t outSize = params.getOutSize();
  if (in.size() > MAX_IOCTL_PAYLOAD || outSize > MAX_IOCTL_PAYLOAD) {
    results.setResult(-EINVAL);
    return kj::READY_NOW;
  }
  bool pointer = params.getPointer();
  // A buffer of its own: the work may run on a worker after the request's memory is gone.
  auto buffer = kj::heapArray<kj::byte>(kj::max(size_t(in.size()), size_t(outSize)) + 1);
  memset(buffer.begin(), 0, buffer.size());
  copyBytes(buffer.begin(), in.begin(), in.size());
  unsigned long request = static_cast<unsigned long>(params.getRequest());
  uint64_t arg = params.getArg();
  auto answer = [context](WorkResult&& w) mutable {
    auto results = context.getResults();
    results.setResult(w.result);
    if (w.result >= 0 && w.data.size() > 0) {
      results.setData(w.data.slice(0, size_t(w.offsets[0])));
    }
  };
  if (readOnly() && (!pointer || in.size() > 0)) {
    // Only pure queries (TCGETS, FIONREAD ...) leave the device as it was.
    results.setResult(-EROFS);
    return kj::READY_NOW;
  }
  if (mayBlock()) {
    // TCSETSW and TCSBRK wait for the output to drain; a terminal may take its time.
    context.allowCancellation();
    return runBlocking([request, arg, pointer, buffer = kj::mv(buffer), outSize](int fd) mutable {
      return runIoctl(fd, request, arg, pointer, kj::mv(buffer), outSize);
    }).then(kj::mv(answer));
  }
  answer(runIoctl(f, request, arg, pointer, kj::mv(buffer), outSize));
  return kj::READY_NOW;
}

}  // namespace sb
