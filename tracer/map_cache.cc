#include "map_cache.h"

#include <errno.h>
#include <sys/mman.h>
#include <memory>
#include <unistd.h>

#include <kj/debug.h>

#include "agent_link.h"

namespace sb {

namespace {

// Largest single read, and how many are in flight at once: a big map streams without holding
// all of it in RPC buffers.
constexpr uint64_t FETCH_CHUNK = 4u << 20;
constexpr size_t IN_FLIGHT = 8;

struct Fetch {
  uint64_t offset;
  uint64_t count;
};

// Runs the fetches in order from `next`, one at a time; IN_FLIGHT of these run side by side.
kj::Promise<int64_t> fetchLane(proto::Node::Client node, int fd, kj::Own<MapCopy> copy,
                               std::shared_ptr<std::vector<Fetch>> jobs,
                               std::shared_ptr<size_t> next) {
  if (*next >= jobs->size()) {
    return int64_t(0);
  }
  Fetch job = (*jobs)[(*next)++];
  auto req = node.preadRequest();
  req.setCount(job.count);
  req.setOffset(static_cast<int64_t>(job.offset));
  return req.send().then([node, fd, copy = kj::mv(copy), jobs, next,
                          job](auto reply) mutable -> kj::Promise<int64_t> {
    int64_t r = reply.getResult();
    if (r < 0) {
      return r;
    }
    auto data = reply.getData();
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = pwrite(fd, data.begin() + done, data.size() - done,
                         static_cast<off_t>(job.offset + done));
      if (n < 0) {
        return int64_t(-ENOMEM);  // The copy is memory: a failed write means there is none.
      }
      done += static_cast<size_t>(n);
    }
    return fetchLane(kj::mv(node), fd, kj::mv(copy), kj::mv(jobs), kj::mv(next));
  });
}

}  // namespace

MapCopy::MapCopy(int fd, uint64_t size)
    : fd_(fd), size_(size), fetched((size + MapCache::BLOCK - 1) / MapCache::BLOCK, false) {}

MapCopy::~MapCopy() noexcept(false) { close(fd_); }

MapCache::Key MapCache::keyOf(AgentLink& target, proto::Statx::Reader st) {
  return Key{&target,
             st.getDevMajor(),
             st.getDevMinor(),
             st.getIno(),
             st.getSize(),
             st.getMtime().getSec(),
             st.getCtime().getSec(),
             st.getMtime().getNsec(),
             st.getCtime().getNsec(),
             target.contentChanges()};
}

kj::Maybe<MapCopy&> MapCache::entry(const Key& key, int& err) {
  auto it = copies.find(key);
  if (it != copies.end()) {
    touch(key);
    return *it->second;
  }
  int fd = memfd_create("sbrun-map", MFD_CLOEXEC);
  if (fd < 0) {
    err = errno;
    return nullptr;
  }
  if (ftruncate(fd, static_cast<off_t>(key.size)) < 0) {
    err = ENOMEM;
    close(fd);
    return nullptr;
  }
  // Older versions of this file can never be asked for again (times and change counts only
  // grow); maps made from them keep their memfd.
  for (auto old = copies.begin(); old != copies.end();) {
    const Key& k = old->first;
    if (k.target == key.target && k.devMajor == key.devMajor && k.devMinor == key.devMinor &&
        k.ino == key.ino) {
      lru.remove_if([&](const Key& l) { return !(l < k) && !(k < l); });
      old = copies.erase(old);
    } else {
      ++old;
    }
  }
  auto& slot = copies[key];
  slot = kj::refcounted<MapCopy>(fd, key.size);
  MapCopy& copy = *slot;
  lru.push_front(key);
  evict();  // Never the newest entry.
  return copy;
}

void MapCache::touch(const Key& key) {
  for (auto it = lru.begin(); it != lru.end(); ++it) {
    if (!(*it < key) && !(key < *it)) {
      lru.splice(lru.begin(), lru, it);
      return;
    }
  }
}

void MapCache::evict() {
  uint64_t total = 0;
  for (auto it = lru.begin(); it != lru.end();) {
    total += it->size;
    // Never the newest entry: it is about to be used.
    if (total > KEEP_BYTES && it != lru.begin()) {
      copies.erase(*it);
      it = lru.erase(it);
    } else {
      ++it;
    }
  }
}

kj::Promise<kj::OneOf<kj::Own<MapCopy>, int64_t>> MapCache::copyOf(const Key& key,
                                                                   proto::Node::Client node,
                                                                   uint64_t offset,
                                                                   uint64_t length) {
  using Result = kj::OneOf<kj::Own<MapCopy>, int64_t>;
  int err = 0;
  kj::Own<MapCopy> copy;
  KJ_IF_MAYBE(found, entry(key, err)) {
    copy = kj::addRef(*found);
  } else {
    return Result(int64_t(-err));
  }
  // The blocks of [offset, offset + length) that no earlier map fetched, as contiguous reads.
  auto jobs = std::make_shared<std::vector<Fetch>>();
  uint64_t end = kj::min(key.size, offset + length);
  std::vector<size_t> marked;
  for (uint64_t b = offset / BLOCK; b * BLOCK < end; ++b) {
    if (copy->fetched[b]) {
      continue;
    }
    marked.push_back(b);
    uint64_t start = b * BLOCK;
    uint64_t count = kj::min(BLOCK, key.size - start);
    if (!jobs->empty() && jobs->back().offset + jobs->back().count == start &&
        jobs->back().count + count <= FETCH_CHUNK) {
      jobs->back().count += count;
    } else {
      jobs->push_back(Fetch{start, count});
    }
  }
  if (jobs->empty()) {
    return Result(kj::mv(copy));
  }
  auto next = std::make_shared<size_t>(0);
  kj::Vector<kj::Promise<int64_t>> lanes;
  for (size_t i = 0; i < kj::min(IN_FLIGHT, jobs->size()); ++i) {
    lanes.add(fetchLane(node, copy->fd(), kj::addRef(*copy), jobs, next));
  }
  auto all = kj::heapArrayBuilder<kj::Promise<int64_t>>(lanes.size());
  for (auto& lane : lanes) {
    all.add(kj::mv(lane));
  }
  return kj::joinPromises(all.finish())
      .then([copy = kj::mv(copy), marked = kj::mv(marked)](kj::Array<int64_t> results) mutable
            -> Result {
        for (int64_t r : results) {
          if (r < 0) {
            return Result(r);
          }
        }
        for (size_t b : marked) {
          copy->fetched[b] = true;
        }
        return Result(kj::mv(copy));
      });
}

}  // namespace sb
