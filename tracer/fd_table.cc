#include "fd_table.h"

#include "agent_link.h"

namespace sb {

RemoteFile::RemoteFile(AgentLink& target, proto::Node::Client node, proto::FileType type,
                       kj::String path)
    : target(target), node(kj::mv(node)), generation(target.generation()), type(type),
      path(kj::mv(path)) {}

RemoteFile::~RemoteFile() noexcept(false) {
  signals->open = false;
  if (epolls != nullptr) {
    epolls->released(*this);
  }
}

size_t ReadAhead::totalHeld = 0;

void ReadAhead::hold(capnp::Response<proto::Node::ReadResults>&& r, uint64_t atEpoch) {
  drop();
  auto data = r.getData();
  window = kj::ArrayPtr<const kj::byte>(data.begin(), data.size());
  heldBytes = data.size();
  totalHeld += heldBytes;
  epoch = atEpoch;
  reply = kj::mv(r);
}

uint64_t ReadAhead::drop() {
  uint64_t unread = window.size();
  window = nullptr;
  reply = nullptr;
  totalHeld -= heldBytes;
  heldBytes = 0;
  return unread;
}

void ReadAhead::consume(size_t n) {
  window = window.slice(n, window.size());
  if (window.size() == 0) {
    drop();  // Free the reply at once: a file left open must not keep its last window.
  }
}

bool RemoteFile::isStale() const { return !control && target.isStale(generation); }

uint64_t FdTable::nextSerial = 1;

kj::Maybe<RemoteFile&> FdTable::find(int fd) {
  auto it = fds.find(fd);
  if (it == fds.end()) {
    return nullptr;
  }
  return *it->second.file;
}

void FdTable::bind(int fd, kj::Own<RemoteFile> file) {
  fds.insert_or_assign(fd, Entry{kj::mv(file), nextSerial++});
}

kj::Maybe<kj::Own<RemoteFile>> FdTable::unbind(int fd) {
  auto it = fds.find(fd);
  if (it == fds.end()) {
    return nullptr;
  }
  auto file = kj::mv(it->second.file);
  fds.erase(it);
  return kj::mv(file);
}

kj::Vector<FdTable::Binding> FdTable::bindingsIn(unsigned first, unsigned last) {
  kj::Vector<Binding> found;
  if (first > static_cast<unsigned>(INT32_MAX)) {
    return found;
  }
  for (auto it = fds.lower_bound(static_cast<int>(first));
       it != fds.end() && static_cast<unsigned>(it->first) <= last; ++it) {
    found.add(Binding{it->first, it->second.serial});
  }
  return found;
}

bool FdTable::unbindIfSame(Binding b) {
  auto it = fds.find(b.fd);
  if (it == fds.end() || it->second.serial != b.serial) {
    return false;
  }
  fds.erase(it);
  return true;
}

kj::Own<FdTable> FdTable::copy() {
  auto table = kj::refcounted<FdTable>();
  for (auto& [fd, entry] : fds) {
    table->fds.emplace(fd, Entry{kj::addRef(*entry.file), entry.serial});
  }
  return table;
}

}  // namespace sb
