// mmap of a remote file (DESIGN D4): the kernel can only map local files, so sbrun fetches the
// mapped range into a local copy (map_cache.h) and the trapped call becomes three in the tracee:
// open the copy through /proc/<sbrun>/fd/N, mmap it with the program's own arguments (so
// MAP_FIXED, alignment, address-space limits and every errno after the file checks are the
// kernel's), close it. Writable shared maps are refused: a local copy could not stay coherent
// with B's file, and a silently diverging copy is worse than ENODEV.
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errno_names.h"
#include "handler_support.h"
#include "map_cache.h"

namespace sb::handler {

namespace {

constexpr uint64_t PAGE = 4096;

// The checks the kernel makes on the file before it maps (do_mmap), which the copy cannot
// make for it: the remote description's access mode and the file's type.
int64_t fileChecks(int prot, int flags, proto::AccessMode access, uint32_t mode) {
  bool readable = access == proto::AccessMode::READ_ONLY || access == proto::AccessMode::READ_WRITE;
  bool writable = access == proto::AccessMode::WRITE_ONLY || access == proto::AccessMode::READ_WRITE;
  int type = flags & MAP_TYPE;
  if ((type == MAP_SHARED || type == MAP_SHARED_VALIDATE) && (prot & PROT_WRITE) && !writable) {
    return -EACCES;
  }
  if (!readable) {
    return -EACCES;
  }
  if (!S_ISREG(mode)) {
    return -ENODEV;  // Directories have no mmap; devices on B cannot be mapped from A.
  }
  return 0;
}

// Opens the copy in the tracee, maps it with the trapped call's arguments, closes it.
Outcome mapCopy(Call& c, kj::Own<MapCopy> copy) {
  auto path = kj::str("/proc/", getpid(), "/fd/", copy->fd());
  uint64_t scratch = abi::scratchBelow(c.regs, path.size() + 1);
  // With its NUL (kj::String keeps one after its end).
  if (c.writeScratch(scratch, kj::arrayPtr(path.asBytes().begin(), path.size() + 1)) < 0) {
    return Complete{-ENOMEM};
  }
  auto open = abi::syscallRegs(c.regs, SYS_openat,
                               {static_cast<uint64_t>(static_cast<int64_t>(AT_FDCWD)), scratch,
                                O_RDONLY | O_CLOEXEC, 0});
  auto mapRegs = c.regs;  // The program's own arguments, with the copy's fd.
  Tracer& tracer = c.tracer;
  int step = 0;
  int fd = -1;
  int64_t mapped = 0;
  return Sequence{open, [&tracer, copy = kj::mv(copy), mapRegs, step, fd,
                         mapped](int64_t ret) mutable -> Sequence::Step {
                    switch (step++) {
                      case 0: {
                        if (ret < 0) {
                          tracer.noteOnce("mmap-open",
                                          kj::str("cannot open sbrun's copy of a remote file in "
                                                  "the program (",
                                                  formatSysResult(ret), "): mmap answers ENOMEM"));
                          return Sequence::Done{-ENOMEM};
                        }
                        fd = static_cast<int>(ret);
                        auto r = mapRegs;
                        abi::setSyscallNr(r, SYS_mmap);
                        abi::setArg(r, 4, static_cast<uint64_t>(fd));
                        return Sequence::Next{r};
                      }
                      case 1: {
                        mapped = ret;
                        // close_range, not close: close(0..2) is not trapped (stdio fast path),
                        // and every step must trap.
                        return Sequence::Next{abi::syscallRegs(
                            mapRegs, SYS_close_range,
                            {static_cast<uint64_t>(fd), static_cast<uint64_t>(fd), 0})};
                      }
                      default:
                        return Sequence::Done{mapped};
                    }
                  }};
}

kj::Promise<Outcome> hMmap(Call& c) {
  uint64_t length = c.arg(1), offset = c.arg(5);
  int prot = static_cast<int>(c.arg(2)), flags = static_cast<int>(c.arg(3));
  if (flags & MAP_ANONYMOUS) {
    return local();  // The fd is ignored.
  }
  kj::Own<RemoteFile> file;
  KJ_IF_MAYBE(f, remoteFd(c, 4)) {
    file = kj::addRef(*f);  // The program may close the fd while the copy is fetched.
  } else {
    return local();
  }
  // The kernel's argument checks that come before it looks at the file.
  int type = flags & MAP_TYPE;
  if ((offset & (PAGE - 1)) != 0 || length == 0 ||
      (type != MAP_SHARED && type != MAP_PRIVATE && type != MAP_SHARED_VALIDATE)) {
    return done(-EINVAL);
  }
  if (file->control) {
    return done(-ENODEV);
  }
  AgentLink& target = file->target;
  c.target = &target;
  auto statReq = file->node.statAtRequest();
  statReq.initFlags().setEmptyPath(true);
  statReq.setMask(STATX_BASIC_STATS);
  auto flagsReq = file->node.getFlagsRequest();
  // Both in one round trip.
  auto stat = statReq.send();
  auto status = flagsReq.send();
  return stat.then([&c, &target, file = kj::mv(file), status = kj::mv(status), length, offset, prot,
                    flags](auto st) mutable {
    return status.then([&c, &target, file = kj::mv(file), st = kj::mv(st), length, offset, prot,
                        flags](auto fl) mutable -> kj::Promise<Outcome> {
      if (fl.getResult() < 0) {
        return done(fl.getResult());
      }
      if (fl.getFlags().getAccess() == proto::AccessMode::PATH) {
        return done(-EBADF);  // O_PATH descriptions cannot be mapped (the kernel's fget refuses).
      }
      if (st.getResult() < 0) {
        return done(st.getResult());
      }
      auto sx = st.getStat();
      int64_t check = fileChecks(prot, flags, fl.getFlags().getAccess(), sx.getMode());
      if (check == -ENODEV && !S_ISDIR(sx.getMode())) {
        c.tracer.noteOnce("mmap-dev",
                          kj::str("mmap of '", file->path, "' (a device on '", target.name(),
                                  "') is not supported: answering ENODEV"));
      }
      if (check < 0) {
        return done(check);
      }
      int type = flags & MAP_TYPE;
      if (type != MAP_PRIVATE && (prot & PROT_WRITE)) {
        c.tracer.noteOnce("mmap-shared",
                          kj::str("a writable shared map of '", file->path, "' on '",
                                  target.name(),
                                  "' cannot be kept coherent with the file there: answering "
                                  "ENODEV (read-only and private maps work)"));
        return done(-ENODEV);
      }
      auto key = MapCache::keyOf(target, sx);
      return c.tracer.mapCache()
          .copyOf(key, file->node, offset, length)
          .then([&c](kj::OneOf<kj::Own<MapCopy>, int64_t> got) -> Outcome {
            if (got.is<int64_t>()) {
              return Complete{got.get<int64_t>()};
            }
            return mapCopy(c, kj::mv(got.get<kj::Own<MapCopy>>()));
          });
    });
  });
}

}  // namespace

const HandlerEntry MMAP_HANDLERS[] = {
    {SYS_mmap, hMmap},
};

kj::ArrayPtr<const HandlerEntry> mmapHandlers() { return MMAP_HANDLERS; }

}  // namespace sb::handler
