// MapCache: local copies of remote regular files, for mmap (DESIGN D4, docs/architecture.md).
//
// The kernel can only map a local file, so a map of a remote one maps a memfd that sbrun fills
// with the file's bytes. One copy per version of a file — (target, device, inode, size, mtime,
// ctime) as B's statx reports them, and no content change made through sbrun since — so the
// dynamic loader's five maps of one library, or git's repeated windows into one pack, fetch
// each byte once; a file changed on B gets a new copy, and older copies of it are dropped.
// Only the ranges actually mapped are fetched (in CHUNK-sized preads, several in flight), the
// rest of the copy stays a hole. What a map gives is therefore a snapshot taken when it was made,
// which is what MAP_PRIVATE promises in practice for a file nobody writes meanwhile; writable
// shared maps are refused before they get here (handlers_mmap.cc).
//
// Copies live while a map uses them (the kernel holds the memfd) and, beyond that, in an LRU of
// at most KEEP_BYTES of file size.

#pragma once

#include <kj/async.h>
#include <kj/one-of.h>
#include <kj/refcount.h>
#include <kj/string.h>
#include <list>
#include <map>
#include <stdint.h>
#include <tuple>
#include <vector>

#include "splitbrain.capnp.h"

namespace sb {

class AgentLink;

class MapCopy : public kj::Refcounted {
 public:
  MapCopy(int fd, uint64_t size);
  ~MapCopy() noexcept(false);
  KJ_DISALLOW_COPY(MapCopy);

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  friend class MapCache;
  int fd_;
  uint64_t size_;
  std::vector<bool> fetched;  // per BLOCK bytes of the file
};

class MapCache {
 public:
  // Granularity of what is fetched; a multiple of every page size.
  static constexpr uint64_t BLOCK = 256 << 10;
  static constexpr uint64_t KEEP_BYTES = 512ull << 20;

  struct Key {
    AgentLink* target;
    uint32_t devMajor, devMinor;
    uint64_t ino, size;
    int64_t mtimeSec, ctimeSec;
    uint32_t mtimeNsec, ctimeNsec;
    // AgentLink::contentChanges() when the stat was taken: a change this program made since
    // the copy was fetched makes a new copy even if the file's times did not move.
    uint64_t changes;
    auto tie() const {
      return std::tie(target, devMajor, devMinor, ino, size, mtimeSec, mtimeNsec, ctimeSec,
                      ctimeNsec, changes);
    }
    bool operator<(const Key& o) const { return tie() < o.tie(); }
  };
  static Key keyOf(AgentLink& target, proto::Statx::Reader st);

  // A copy of the file `node` (of version `key`) whose bytes [offset, offset + length) are
  // fetched. Fails with -errno when the copy cannot be made or a read fails.
  kj::Promise<kj::OneOf<kj::Own<MapCopy>, int64_t>> copyOf(const Key& key,
                                                           proto::Node::Client node,
                                                           uint64_t offset, uint64_t length);

 private:
  kj::Maybe<MapCopy&> entry(const Key& key, int& err);
  void touch(const Key& key);
  void evict();

  std::map<Key, kj::Own<MapCopy>> copies;
  std::list<Key> lru;  // most recently used first
};

}  // namespace sb
