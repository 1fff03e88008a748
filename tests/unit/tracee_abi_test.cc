// Golden data comes from real syscalls on files the tests create: the kernel's own struct stat,
// statfs and getdents64 bytes are what the tracee would have got had the call run locally.

#include "errno_names.h"
#include "tracee_abi.h"

#include <capnp/message.h>
#include <doctest.h>
#include <kj/exception.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace sb::x86_64 {
namespace {

std::string toStd(kj::StringPtr s) { return std::string(s.begin(), s.size()); }

// A fresh directory under $TMPDIR, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sb-abi-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const char* name) const { return path + "/" + name; }

  std::string path;
};

// What the agent does with its own statx result; test-local so the test does not trust the code
// under test to produce its own input.
void fillStatx(const struct statx& in, proto::Statx::Builder out) {
  out.setMask(in.stx_mask);
  out.setBlksize(in.stx_blksize);
  out.setAttributes(in.stx_attributes);
  out.setNlink(in.stx_nlink);
  out.setUid(in.stx_uid);
  out.setGid(in.stx_gid);
  out.setMode(in.stx_mode);
  out.setIno(in.stx_ino);
  out.setSize(in.stx_size);
  out.setBlocks(in.stx_blocks);
  out.setAttributesMask(in.stx_attributes_mask);
  auto time = [](const struct statx_timestamp& t, proto::Timestamp::Builder b) {
    b.setSec(t.tv_sec);
    b.setNsec(t.tv_nsec);
  };
  time(in.stx_atime, out.initAtime());
  time(in.stx_btime, out.initBtime());
  time(in.stx_ctime, out.initCtime());
  time(in.stx_mtime, out.initMtime());
  out.setRdevMajor(in.stx_rdev_major);
  out.setRdevMinor(in.stx_rdev_minor);
  out.setDevMajor(in.stx_dev_major);
  out.setDevMinor(in.stx_dev_minor);
  out.setMntId(in.stx_mnt_id);
}

void fillStatfs(const struct statfs& in, proto::Statfs::Builder out) {
  out.setType(in.f_type);
  out.setBsize(in.f_bsize);
  out.setBlocks(in.f_blocks);
  out.setBfree(in.f_bfree);
  out.setBavail(in.f_bavail);
  out.setFiles(in.f_files);
  out.setFfree(in.f_ffree);
  out.setFsid0(in.f_fsid.__val[0]);
  out.setFsid1(in.f_fsid.__val[1]);
  out.setNamelen(in.f_namelen);
  out.setFrsize(in.f_frsize);
  out.setFlags(in.f_flags);
}

void checkStatMatchesKernel(const char* path, int flags) {
  CAPTURE(path);
  struct statx stx;
  memset(&stx, 0xa5, sizeof(stx));
  REQUIRE(statx(AT_FDCWD, path, flags, STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID, &stx) == 0);
  struct stat kernel;
  // Poison first: the kernel writes every byte, padding included, and so must we.
  memset(&kernel, 0x5a, sizeof(kernel));
  REQUIRE(fstatat(AT_FDCWD, path, &kernel, flags) == 0);

  capnp::MallocMessageBuilder message;
  auto wire = message.initRoot<proto::Statx>();
  fillStatx(stx, wire);
  struct stat ours = toStat(wire.asReader());

  CHECK(ours.st_dev == kernel.st_dev);
  CHECK(ours.st_ino == kernel.st_ino);
  CHECK(ours.st_nlink == kernel.st_nlink);
  CHECK(ours.st_mode == kernel.st_mode);
  CHECK(ours.st_uid == kernel.st_uid);
  CHECK(ours.st_gid == kernel.st_gid);
  CHECK(ours.st_rdev == kernel.st_rdev);
  CHECK(ours.st_size == kernel.st_size);
  CHECK(ours.st_blksize == kernel.st_blksize);
  CHECK(ours.st_blocks == kernel.st_blocks);
  CHECK(ours.st_atim.tv_sec == kernel.st_atim.tv_sec);
  CHECK(ours.st_atim.tv_nsec == kernel.st_atim.tv_nsec);
  CHECK(ours.st_mtim.tv_sec == kernel.st_mtim.tv_sec);
  CHECK(ours.st_mtim.tv_nsec == kernel.st_mtim.tv_nsec);
  CHECK(ours.st_ctim.tv_sec == kernel.st_ctim.tv_sec);
  CHECK(ours.st_ctim.tv_nsec == kernel.st_ctim.tv_nsec);
  CHECK(memcmp(&ours, &kernel, sizeof(ours)) == 0);

  // statx itself round-trips through the wire unchanged.
  struct statx back = toStatx(wire.asReader());
  CHECK(back.stx_mask == stx.stx_mask);
  CHECK(back.stx_mode == stx.stx_mode);
  CHECK(back.stx_ino == stx.stx_ino);
  CHECK(back.stx_btime.tv_sec == stx.stx_btime.tv_sec);
  CHECK(back.stx_btime.tv_nsec == stx.stx_btime.tv_nsec);
  CHECK(back.stx_mnt_id == stx.stx_mnt_id);
  CHECK(back.stx_dev_minor == stx.stx_dev_minor);
  CHECK(back.stx_atime.__reserved == 0);
  // Everything up to the fields the wire does not carry (stx_dio_mem_align at 0x98) is identical.
  CHECK(memcmp(&back, &stx, 0x40) == 0);
  CHECK(memcmp(reinterpret_cast<const char*>(&back) + 0x80,
               reinterpret_cast<const char*>(&stx) + 0x80, 0x18) == 0);
}

// Kernel getdents64 bytes → wire entries, the way the agent does it.
void decodeKernelDirents(kj::ArrayPtr<const kj::byte> bytes, capnp::MessageBuilder& message) {
  std::vector<size_t> offsets;
  for (size_t at = 0; at < bytes.size();) {
    offsets.push_back(at);
    uint16_t reclen;
    memcpy(&reclen, bytes.begin() + at + 16, 2);
    at += reclen;
  }
  auto list = message.initRoot<capnp::List<proto::Dirent>>(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    const kj::byte* record = bytes.begin() + offsets[i];
    uint64_t ino;
    int64_t off;
    memcpy(&ino, record, 8);
    memcpy(&off, record + 8, 8);
    const char* name = reinterpret_cast<const char*>(record + 19);
    list[i].setIno(ino);
    list[i].setOff(off);
    list[i].setType(record[18]);
    list[i].setName(kj::arrayPtr(reinterpret_cast<const kj::byte*>(name), strlen(name)));
  }
}

TEST_SUITE("tracee_abi") {
  TEST_CASE("toStat gives the bytes the kernel's own stat gives, for files, dirs and devices") {
    TempDir dir;
    auto file = dir.file("data");
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0640);
    REQUIRE(fd >= 0);
    std::string payload(10000, 'x');
    REQUIRE(write(fd, payload.data(), payload.size()) == ssize_t(payload.size()));
    close(fd);
    REQUIRE(symlink("data", dir.file("link").c_str()) == 0);

    checkStatMatchesKernel(file.c_str(), 0);
    checkStatMatchesKernel(dir.path.c_str(), 0);
    checkStatMatchesKernel(dir.file("link").c_str(), AT_SYMLINK_NOFOLLOW);
    // A character device, so st_rdev is not 0.
    checkStatMatchesKernel("/dev/null", 0);
  }

  TEST_CASE("device numbers beyond 8 bits encode as the kernel's new_encode_dev does") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::Statx>();
    wire.setDevMajor(259);
    wire.setDevMinor(0x12345);
    wire.setRdevMajor(4095);
    wire.setRdevMinor(0xfffff);
    struct stat st = toStat(wire.asReader());
    // new_encode_dev: (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
    CHECK(st.st_dev == ((0x12345u & 0xff) | (259u << 8) | (uint64_t(0x12345u & ~0xffu) << 12)));
    CHECK(st.st_rdev == ((0xfffffu & 0xff) | (4095u << 8) | (uint64_t(0xfffffu & ~0xffu) << 12)));
  }

  TEST_CASE("toStatfs gives the bytes the kernel's own statfs gives") {
    TempDir dir;
    for (const char* path: {dir.path.c_str(), "/", "/proc", "/dev"}) {
      CAPTURE(path);
      struct statfs kernel;
      memset(&kernel, 0x5a, sizeof(kernel));
      REQUIRE(statfs(path, &kernel) == 0);
      capnp::MallocMessageBuilder message;
      auto wire = message.initRoot<proto::Statfs>();
      fillStatfs(kernel, wire);
      struct statfs ours = toStatfs(wire.asReader());
      CHECK(ours.f_type == kernel.f_type);
      CHECK(ours.f_bsize == kernel.f_bsize);
      CHECK(ours.f_blocks == kernel.f_blocks);
      CHECK(ours.f_bfree == kernel.f_bfree);
      CHECK(ours.f_bavail == kernel.f_bavail);
      CHECK(ours.f_files == kernel.f_files);
      CHECK(ours.f_ffree == kernel.f_ffree);
      CHECK(ours.f_fsid.__val[0] == kernel.f_fsid.__val[0]);
      CHECK(ours.f_fsid.__val[1] == kernel.f_fsid.__val[1]);
      CHECK(ours.f_namelen == kernel.f_namelen);
      CHECK(ours.f_frsize == kernel.f_frsize);
      CHECK(ours.f_flags == kernel.f_flags);
      CHECK(memcmp(&ours, &kernel, sizeof(ours)) == 0);
    }
  }

  TEST_CASE("encodeDirents reproduces a real getdents64 buffer byte for byte") {
    TempDir dir;
    // Names of several lengths so records get different paddings (reclen 24, 32, 40 ...).
    for (const char* name:
         {"a", "bb", "ccccc", "dddddd", "exactly-12ch", "a-much-longer-name.txt"}) {
      int fd = open(dir.file(name).c_str(), O_WRONLY | O_CREAT, 0600);
      REQUIRE(fd >= 0);
      close(fd);
    }
    REQUIRE(mkdir(dir.file("sub").c_str(), 0700) == 0);
    REQUIRE(symlink("a", dir.file("ln").c_str()) == 0);

    int dfd = open(dir.path.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(dfd >= 0);
    // The kernel does not write the padding after each name's NUL: zero it so both sides agree.
    std::vector<kj::byte> kernel(8192, 0);
    long n = syscall(SYS_getdents64, dfd, kernel.data(), kernel.size());
    close(dfd);
    REQUIRE(n > 0);
    kernel.resize(n);

    capnp::MallocMessageBuilder message;
    decodeKernelDirents(kj::arrayPtr(kernel.data(), kernel.size()), message);
    auto entries = message.getRoot<capnp::List<proto::Dirent>>().asReader();
    REQUIRE(entries.size() == 10);  // ".", "..", six files, a dir, a link

    size_t expectedTotal = 0;
    for (auto entry: entries) {
      expectedTotal += direntSize(entry.getName().size());
    }
    CHECK(expectedTotal == kernel.size());

    SUBCASE("everything fits") {
      std::vector<kj::byte> ours(kernel.size() + 100, 0xee);
      size_t used = encodeDirents(entries, kj::arrayPtr(ours.data(), ours.size()));
      CHECK(used == kernel.size());
      CHECK(memcmp(ours.data(), kernel.data(), kernel.size()) == 0);
      // Nothing written past the records.
      CHECK(ours[used] == 0xee);
    }
    SUBCASE("an exact fit uses the whole buffer") {
      std::vector<kj::byte> ours(kernel.size(), 0xee);
      CHECK(encodeDirents(entries, kj::arrayPtr(ours.data(), ours.size())) == kernel.size());
      CHECK(memcmp(ours.data(), kernel.data(), kernel.size()) == 0);
    }
    SUBCASE("a buffer one byte short of the last record holds all the others") {
      size_t last = direntSize(entries[entries.size() - 1].getName().size());
      std::vector<kj::byte> ours(kernel.size() - 1, 0xee);
      size_t used = encodeDirents(entries, kj::arrayPtr(ours.data(), ours.size()));
      CHECK(used == kernel.size() - last);
      CHECK(memcmp(ours.data(), kernel.data(), used) == 0);
      CHECK(ours[used] == 0xee);
    }
    SUBCASE("a buffer smaller than the first record holds nothing") {
      size_t first = direntSize(entries[0].getName().size());
      std::vector<kj::byte> ours(first - 1, 0xee);
      CHECK(encodeDirents(entries, kj::arrayPtr(ours.data(), ours.size())) == 0);
      CHECK(ours[0] == 0xee);
      CHECK(encodeDirents(entries, nullptr) == 0);
    }
  }

  TEST_CASE("direntSize pads header, name and NUL to 8 bytes") {
    CHECK(direntSize(1) == 24);   // 19 + 1 + 1 = 21
    CHECK(direntSize(4) == 24);   // 24 exactly
    CHECK(direntSize(5) == 32);
    CHECK(direntSize(12) == 32);  // 32 exactly
    CHECK(direntSize(13) == 40);
    CHECK(direntSize(255) == 280);
  }

  TEST_CASE("encodeDirents refuses malformed names from the wire") {
    capnp::MallocMessageBuilder message;
    auto list = message.initRoot<capnp::List<proto::Dirent>>(1);
    std::vector<kj::byte> out(64);
    for (auto bad: {std::string(""), std::string("a/b"), std::string("a\0b", 3)}) {
      list[0].setName(kj::arrayPtr(reinterpret_cast<const kj::byte*>(bad.data()), bad.size()));
      CHECK_THROWS_AS(encodeDirents(list.asReader(), kj::arrayPtr(out.data(), out.size())),
                      kj::Exception);
    }
  }

  TEST_CASE("open flags decode into named fields as the kernel reads them") {
    capnp::MallocMessageBuilder message;
    auto how = message.initRoot<proto::OpenHow>();
    auto decode = [&](uint64_t flags, uint32_t mode) {
      how = message.initRoot<proto::OpenHow>();
      decodeOpenFlags(flags, mode, how);
      return how.asReader();
    };

    SUBCASE("access modes") {
      CHECK(decode(O_RDONLY, 0).getAccess() == proto::AccessMode::READ_ONLY);
      CHECK(decode(O_WRONLY, 0).getAccess() == proto::AccessMode::WRITE_ONLY);
      CHECK(decode(O_RDWR, 0).getAccess() == proto::AccessMode::READ_WRITE);
      CHECK(decode(O_PATH, 0).getAccess() == proto::AccessMode::PATH);
      // Linux's "ioctl only" mode 3 has no wire value yet (see the header).
      CHECK(decode(3, 0).getAccess() == proto::AccessMode::READ_WRITE);
    }
    SUBCASE("plain O_RDONLY sets nothing else") {
      auto r = decode(O_RDONLY, 0644);
      CHECK_FALSE(r.getCreate());
      CHECK_FALSE(r.getDirectory());
      CHECK_FALSE(r.getTmpFile());
      CHECK_FALSE(r.getCloseOnExec());
      CHECK_FALSE(r.getLargeFile());
      // No O_CREAT: the kernel ignores the mode, and so does the wire.
      CHECK(r.getMode() == 0);
    }
    SUBCASE("O_CREAT|O_EXCL keeps only the permission bits of the mode") {
      auto r = decode(O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, S_IFREG | 04755);
      CHECK(r.getCreate());
      CHECK(r.getExclusive());
      CHECK(r.getCloseOnExec());
      CHECK_FALSE(r.getTruncate());
      CHECK(r.getMode() == 04755);
    }
    SUBCASE("O_WRONLY|O_CREAT|O_TRUNC|O_APPEND") {
      auto r = decode(O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
      CHECK(r.getAccess() == proto::AccessMode::WRITE_ONLY);
      CHECK(r.getCreate());
      CHECK(r.getTruncate());
      CHECK(r.getAppend());
      CHECK_FALSE(r.getExclusive());
      CHECK(r.getMode() == 0644);
    }
    SUBCASE("O_TMPFILE carries its O_DIRECTORY bit and its mode") {
      auto r = decode(O_TMPFILE | O_RDWR, 0600);
      CHECK(r.getTmpFile());
      CHECK(r.getDirectory());
      CHECK_FALSE(r.getCreate());
      CHECK(r.getMode() == 0600);
      auto d = decode(O_DIRECTORY, 0600);
      CHECK(d.getDirectory());
      CHECK_FALSE(d.getTmpFile());
      CHECK(d.getMode() == 0);
    }
    SUBCASE("O_PATH keeps only O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC") {
      auto r = decode(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_CREAT | O_TRUNC | O_RDWR,
                      0644);
      CHECK(r.getAccess() == proto::AccessMode::PATH);
      CHECK(r.getDirectory());
      CHECK(r.getNoFollow());
      CHECK(r.getCloseOnExec());
      CHECK_FALSE(r.getCreate());
      CHECK_FALSE(r.getTruncate());
      CHECK(r.getMode() == 0);
    }
    SUBCASE("O_SYNC implies O_DSYNC, not the other way round") {
      auto s = decode(O_SYNC, 0);
      CHECK(s.getSync());
      CHECK(s.getDsync());
      auto d = decode(O_DSYNC, 0);
      CHECK(d.getDsync());
      CHECK_FALSE(d.getSync());
    }
    SUBCASE("the remaining status bits") {
      auto r = decode(O_NONBLOCK | O_NOCTTY | O_DIRECT | O_NOATIME | O_ASYNC, 0);
      CHECK(r.getNonBlock());
      CHECK(r.getNoCtty());
      CHECK(r.getDirect());
      CHECK(r.getNoAtime());
      CHECK(r.getAsync());
      CHECK_FALSE(r.getAppend());
    }
    SUBCASE("the kernel's O_LARGEFILE bit, which glibc defines as 0 on x86-64") {
      CHECK(decode(0100000, 0).getLargeFile());
    }
    SUBCASE("unknown bits are ignored by decoding and reported by knownOpenFlags") {
      auto r = decode(O_RDWR | 040000000 | (uint64_t(1) << 40), 0);
      CHECK(r.getAccess() == proto::AccessMode::READ_WRITE);
      CHECK_FALSE(r.getTmpFile());
      CHECK_FALSE(knownOpenFlags(040000000));
      CHECK_FALSE(knownOpenFlags(uint64_t(1) << 40));
      CHECK(knownOpenFlags(O_RDWR | O_CREAT | O_EXCL | O_TMPFILE | O_PATH | O_CLOEXEC | O_SYNC |
                           O_DIRECT | O_NOATIME | O_ASYNC | O_NOCTTY | 0100000));
    }
  }

  TEST_CASE("openat2's stricter checks are reported by validOpenat2") {
    CHECK(validOpenat2(O_RDONLY, 0));
    CHECK_FALSE(validOpenat2(O_RDONLY, 0644));
    CHECK(validOpenat2(O_WRONLY | O_CREAT, 0644));
    CHECK(validOpenat2(O_RDWR | O_TMPFILE, 07777));
    CHECK_FALSE(validOpenat2(O_WRONLY | O_CREAT, S_IFREG | 0644));
    CHECK(validOpenat2(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0));
    CHECK_FALSE(validOpenat2(O_PATH | O_RDWR, 0));
    CHECK_FALSE(validOpenat2(uint64_t(1) << 40, 0));
  }

  TEST_CASE("openat2 resolve bits decode, and unknown or conflicting ones are refused") {
    capnp::MallocMessageBuilder message;
    auto how = message.initRoot<proto::OpenHow>();
    REQUIRE(decodeResolve(0x01 | 0x02 | 0x04 | 0x20, how));
    CHECK(how.getResolveNoXdev());
    CHECK(how.getResolveNoMagicLinks());
    CHECK(how.getResolveNoSymlinks());
    CHECK(how.getResolveCached());
    CHECK_FALSE(how.getResolveBeneath());
    CHECK_FALSE(how.getResolveInRoot());
    REQUIRE(decodeResolve(0x08, how));
    CHECK(how.getResolveBeneath());
    CHECK_FALSE(how.getResolveNoXdev());
    REQUIRE(decodeResolve(0x10, how));
    CHECK(how.getResolveInRoot());
    CHECK(decodeResolve(0, how));
    CHECK_FALSE(decodeResolve(0x40, how));
    CHECK_FALSE(decodeResolve(uint64_t(1) << 63, how));
    CHECK_FALSE(decodeResolve(0x08 | 0x10, how));
  }

  TEST_CASE("F_GETFL values from the kernel survive decode and encode unchanged") {
    TempDir dir;
    auto file = dir.file("f");
    for (int flags: {O_RDONLY, O_WRONLY | O_APPEND, O_RDWR | O_NONBLOCK, O_RDWR | O_SYNC,
                     O_WRONLY | O_DSYNC | O_NOATIME, O_RDONLY | O_CLOEXEC, O_PATH}) {
      CAPTURE(flags);
      int fd = open(file.c_str(), flags | O_CREAT, 0600);
      REQUIRE(fd >= 0);
      int kernel = fcntl(fd, F_GETFL);
      close(fd);
      REQUIRE(kernel >= 0);
      capnp::MallocMessageBuilder message;
      auto wire = message.initRoot<proto::StatusFlags>();
      decodeStatusFlags(kernel, wire);
      CHECK(encodeStatusFlags(wire.asReader()) == uint64_t(kernel));
    }
  }

  TEST_CASE("status flags map field by field") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::StatusFlags>();
    decodeStatusFlags(O_WRONLY | O_APPEND | O_ASYNC | O_DIRECT | 0100000, wire);
    CHECK(wire.getAccess() == proto::AccessMode::WRITE_ONLY);
    CHECK(wire.getAppend());
    CHECK(wire.getAsync());
    CHECK(wire.getDirect());
    CHECK(wire.getLargeFile());
    CHECK_FALSE(wire.getNonBlock());
    CHECK_FALSE(wire.getSync());

    auto fresh = message.initRoot<proto::StatusFlags>();
    fresh.setAccess(proto::AccessMode::READ_WRITE);
    fresh.setSync(true);
    CHECK(encodeStatusFlags(fresh.asReader()) == uint64_t(O_RDWR | O_SYNC));
    fresh.setAccess(proto::AccessMode::PATH);
    fresh.setSync(false);
    CHECK(encodeStatusFlags(fresh.asReader()) == uint64_t(O_PATH));
  }

  TEST_CASE("flock round-trips and bad l_type or l_whence is refused") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::Flock>();
    struct flock in;
    memset(&in, 0, sizeof(in));
    in.l_type = F_WRLCK;
    in.l_whence = SEEK_END;
    in.l_start = -100;
    in.l_len = 0;
    in.l_pid = 4242;
    REQUIRE(decodeFlockChecked(in, wire));
    CHECK(wire.getType() == proto::LockType::WRITE);
    CHECK(wire.getWhence() == proto::Whence::END);
    struct flock back = encodeFlock(wire.asReader());
    CHECK(memcmp(&back, &in, sizeof(in)) == 0);

    in.l_type = F_RDLCK;
    in.l_whence = SEEK_CUR;
    REQUIRE(decodeFlock(in, wire));
    CHECK(wire.getType() == proto::LockType::READ);
    CHECK(wire.getWhence() == proto::Whence::CUR);
    in.l_type = F_UNLCK;
    in.l_whence = SEEK_SET;
    REQUIRE(decodeFlock(in, wire));
    CHECK(wire.getType() == proto::LockType::UNLOCK);
    CHECK(wire.getWhence() == proto::Whence::SET);

    in.l_type = 3;
    CHECK_FALSE(decodeFlock(in, wire));
    in.l_type = -1;
    CHECK_FALSE(decodeFlock(in, wire));
    in.l_type = F_RDLCK;
    in.l_whence = SEEK_DATA;
    CHECK_FALSE(decodeFlock(in, wire));
    in.l_whence = -1;
    CHECK_FALSE(decodeFlock(in, wire));

    // SEEK_DATA/SEEK_HOLE are valid Whence values but not for locks: a reply carrying one is
    // malformed.
    wire.setWhence(proto::Whence::HOLE);
    CHECK_THROWS_AS(encodeFlock(wire.asReader()), kj::Exception);
  }

  TEST_CASE("a real F_OFD_GETLK answer round-trips through the wire") {
    TempDir dir;
    int fd = open(dir.file("locked").c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    struct flock query;
    memset(&query, 0, sizeof(query));
    query.l_type = F_WRLCK;
    query.l_whence = SEEK_SET;
    query.l_start = 10;
    query.l_len = 5;
    REQUIRE(fcntl(fd, F_OFD_GETLK, &query) == 0);
    close(fd);
    // Nobody holds it: the kernel answers F_UNLCK and leaves the rest.
    CHECK(query.l_type == F_UNLCK);
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::Flock>();
    REQUIRE(decodeFlock(query, wire));
    struct flock back = encodeFlock(wire.asReader());
    CHECK(memcmp(&back, &query, sizeof(query)) == 0);
  }

  TEST_CASE("RWF flags decode; unknown ones are refused; upper 32 bits do not count") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::RwFlags>();
    REQUIRE(decodeRwFlags(RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND, wire));
    CHECK(wire.getHipri());
    CHECK(wire.getDsync());
    CHECK(wire.getSync());
    CHECK(wire.getNoWait());
    CHECK(wire.getAppend());
    REQUIRE(decodeRwFlags(0, wire));
    CHECK_FALSE(wire.getHipri());
    CHECK_FALSE(wire.getAppend());
    CHECK_FALSE(decodeRwFlags(0x20, wire));   // RWF_NOAPPEND (6.9): no wire field yet
    CHECK_FALSE(decodeRwFlags(-1, wire));
    REQUIRE(decodeRwFlags((int64_t(1) << 40) | RWF_NOWAIT, wire));
    CHECK(wire.getNoWait());
  }

  TEST_CASE("utimensat times: UTIME_NOW and UTIME_OMIT ignore tv_sec, bad nsec is refused") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::TimeSpec>();
    CHECK(decodeTimespec({-12345, UTIME_NOW}, wire));
    CHECK(wire.isNow());
    CHECK(decodeTimespec({99, UTIME_OMIT}, wire));
    CHECK(wire.isOmit());
    REQUIRE(decodeTimespec({1700000000, 999999999}, wire));
    REQUIRE(wire.isTime());
    CHECK(wire.getTime().getSec() == 1700000000);
    CHECK(wire.getTime().getNsec() == 999999999);
    REQUIRE(decodeTimespec({-1, 0}, wire));  // before 1970 is a valid time
    CHECK(wire.getTime().getSec() == -1);
    CHECK_FALSE(decodeTimespec({0, 1000000000}, wire));
    CHECK_FALSE(decodeTimespec({0, -1}, wire));
    CHECK_FALSE(decodeTimespec({0, UTIME_NOW + 1}, wire));
  }

  TEST_CASE("utimes times convert microseconds, bad usec is refused") {
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::TimeSpec>();
    REQUIRE(decodeTimeval({5, 999999}, wire));
    REQUIRE(wire.isTime());
    CHECK(wire.getTime().getSec() == 5);
    CHECK(wire.getTime().getNsec() == 999999000);
    CHECK_FALSE(decodeTimeval({5, 1000000}, wire));
    CHECK_FALSE(decodeTimeval({5, -1}, wire));
    // UTIME_NOW means nothing to utimes: it is just out of range.
    CHECK_FALSE(decodeTimeval({5, UTIME_NOW}, wire));
  }

  TEST_CASE("uname fields match the kernel's and long ones are truncated with a NUL") {
    struct utsname kernel;
    REQUIRE(uname(&kernel) == 0);
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<proto::Uname>();
    wire.setSysname(kernel.sysname);
    wire.setNodename(kernel.nodename);
    wire.setRelease(kernel.release);
    wire.setVersion(kernel.version);
    wire.setMachine(kernel.machine);
    wire.setDomainname(kernel.domainname);
    struct utsname ours = toUtsname(wire.asReader());
    CHECK(std::string(ours.sysname) == kernel.sysname);
    CHECK(std::string(ours.nodename) == kernel.nodename);
    CHECK(std::string(ours.release) == kernel.release);
    CHECK(std::string(ours.version) == kernel.version);
    CHECK(std::string(ours.machine) == kernel.machine);
    CHECK(std::string(ours.domainname) == kernel.domainname);

    std::string longName(100, 'n');
    wire.setNodename(longName);
    ours = toUtsname(wire.asReader());
    CHECK(std::string(ours.nodename) == std::string(64, 'n'));
    CHECK(ours.nodename[64] == '\0');
    wire.setDomainname("");
    ours = toUtsname(wire.asReader());
    CHECK(ours.domainname[0] == '\0');
  }

  TEST_CASE("lseek whence decodes SEEK_SET..SEEK_HOLE only") {
    auto is = [](int64_t whence, proto::Whence expected) {
      KJ_IF_MAYBE(w, decodeWhence(whence)) {
        return *w == expected;
      }
      return false;
    };
    CHECK(is(SEEK_SET, proto::Whence::SET));
    CHECK(is(SEEK_CUR, proto::Whence::CUR));
    CHECK(is(SEEK_END, proto::Whence::END));
    CHECK(is(SEEK_DATA, proto::Whence::DATA));
    CHECK(is(SEEK_HOLE, proto::Whence::HOLE));
    CHECK(decodeWhence(5) == nullptr);
    CHECK(decodeWhence(-1) == nullptr);
    // The kernel's whence is an unsigned int: the register's upper half is not looked at.
    CHECK(is((int64_t(1) << 32) | SEEK_CUR, proto::Whence::CUR));
  }
}

// TODO(test): move to errno_names_test.cc once tests/meson.build lists it.
TEST_SUITE("errno_names") {
  TEST_CASE("errno names follow the Linux numbering, primary names for aliases") {
    CHECK(toStd(sb::errnoName(ENOENT)) == "ENOENT");
    CHECK(toStd(sb::errnoName(1)) == "EPERM");
    CHECK(toStd(sb::errnoName(EWOULDBLOCK)) == "EAGAIN");
    CHECK(toStd(sb::errnoName(EDEADLOCK)) == "EDEADLK");
    CHECK(toStd(sb::errnoName(ENOTSUP)) == "EOPNOTSUPP");
    CHECK(toStd(sb::errnoName(ENOTEMPTY)) == "ENOTEMPTY");
    CHECK(toStd(sb::errnoName(133)) == "EHWPOISON");
    CHECK(toStd(sb::errnoName(512)) == "ERESTARTSYS");
    CHECK(toStd(sb::errnoName(516)) == "ERESTART_RESTARTBLOCK");
    for (int unknown: {0, -2, 41, 58, 134, 520, 4095, 100000}) {
      CAPTURE(unknown);
      CHECK(toStd(sb::errnoName(unknown)) == "EUNKNOWN");
    }
    // Every errno libc can describe has a name.
    for (int err = 1; err < 134; ++err) {
      CAPTURE(err);
      CHECK((strerrordesc_np(err) != nullptr) == (sb::errnoName(err) != "EUNKNOWN"));
    }
  }

  TEST_CASE("syscall results format like strace") {
    CHECK(toStd(sb::formatSysResult(0)) == "0");
    CHECK(toStd(sb::formatSysResult(3)) == "3");
    CHECK(toStd(sb::formatSysResult(-ENOENT)) == "-1 ENOENT (No such file or directory)");
    CHECK(toStd(sb::formatSysResult(-EAGAIN)) == "-1 EAGAIN (Resource temporarily unavailable)");
    CHECK(toStd(sb::formatSysResult(-512)) ==
          "-1 ERESTARTSYS (To be restarted if SA_RESTART is set)");
    CHECK(toStd(sb::formatSysResult(-4095)) == "-1 EUNKNOWN (Unknown error 4095)");
    // Outside the error range a negative value is just a value (e.g. an lseek on /dev/mem).
    CHECK(toStd(sb::formatSysResult(-4096)) == "-4096");
    CHECK(toStd(sb::formatSysResult(INT64_MIN)) == "-9223372036854775808");
  }
}

}  // namespace
}  // namespace sb::x86_64

// ---------------------------------------------------------------------------------------------
// poll, select, epoll

TEST_CASE("poll event bits survive the wire both ways, one by one and all together") {
  namespace abi = sb::x86_64;
  const uint16_t bits[] = {abi::K_POLLIN,     abi::K_POLLPRI,    abi::K_POLLOUT,
                           abi::K_POLLERR,    abi::K_POLLHUP,    abi::K_POLLNVAL,
                           abi::K_POLLRDNORM, abi::K_POLLRDBAND, abi::K_POLLWRNORM,
                           abi::K_POLLWRBAND, abi::K_POLLMSG,    abi::K_POLLRDHUP};
  uint16_t all = 0;
  for (uint16_t bit : bits) {
    capnp::MallocMessageBuilder m;
    auto ev = m.initRoot<sb::proto::PollEvents>();
    abi::decodePollEvents(bit, ev);
    CAPTURE(bit);
    CHECK(abi::encodePollEvents(ev.asReader()) == bit);
    all |= bit;
  }
  // The kernel's own values (include/uapi/asm-generic/poll.h), which x86-64 uses.
  CHECK(all == 0x27ff);
  capnp::MallocMessageBuilder m;
  auto ev = m.initRoot<sb::proto::PollEvents>();
  abi::decodePollEvents(all | 0x4000 /* unknown: dropped */, ev);
  CHECK(abi::encodePollEvents(ev.asReader()) == all);
  CHECK(ev.getIn());
  CHECK(ev.getRdHup());
}

TEST_CASE("select's sets ask and answer in poll terms as fs/select.c does") {
  namespace abi = sb::x86_64;
  CHECK(abi::selectEvents(true, false, false) == (0x001 | 0x040 | 0x080 | 0x010 | 0x008));
  CHECK(abi::selectEvents(false, true, false) == (0x004 | 0x100 | 0x200 | 0x008));
  CHECK(abi::selectEvents(false, false, true) == 0x002);
  // A hang-up makes a reader readable but not a writer writable; an error both.
  CHECK(abi::selectReady(abi::K_POLLHUP, true, true, true) == 1u);
  CHECK(abi::selectReady(abi::K_POLLERR, true, true, false) == 3u);
  CHECK(abi::selectReady(abi::K_POLLOUT, true, false, false) == 0u);
  CHECK(abi::selectReady(abi::K_POLLPRI, false, false, true) == 4u);
  CHECK(abi::selectReady(abi::K_POLLNVAL, true, true, true) == 0u);
  CHECK(abi::fdSetBytes(0) == 0);
  CHECK(abi::fdSetBytes(1) == 8);
  CHECK(abi::fdSetBytes(64) == 8);
  CHECK(abi::fdSetBytes(65) == 16);
  kj::byte set[16] = {};
  abi::fdSet(set, 0);
  abi::fdSet(set, 9);
  abi::fdSet(set, 64);
  CHECK(set[0] == 0x01);
  CHECK(set[1] == 0x02);
  CHECK(set[8] == 0x01);
  CHECK(abi::fdIsSet(set, 9));
  CHECK(!abi::fdIsSet(set, 10));
  CHECK(!abi::fdIsSet(kj::arrayPtr(set, 8), 64));  // beyond the set: not set
  // The kernel's fd_set (glibc's FD_SET agrees on x86-64).
  fd_set native;
  FD_ZERO(&native);
  FD_SET(0, &native);
  FD_SET(9, &native);
  FD_SET(64, &native);
  CHECK(memcmp(&native, set, sizeof(set)) == 0);
}

TEST_CASE("timeouts are read and written back as the kernel does") {
  namespace abi = sb::x86_64;
  int64_t ns = -1;
  CHECK(abi::timevalToNs({1, 500000}, ns));
  CHECK(ns == 1500000000);
  CHECK(abi::timevalToNs({0, 2500000}, ns));  // tv_usec >= 10^6 is normalised
  CHECK(ns == 2500000000);
  CHECK(abi::timevalToNs({-2, 3000000}, ns));  // -2 + 3 s
  CHECK(ns == 1000000000);
  CHECK(!abi::timevalToNs({-1, 0}, ns));
  CHECK(!abi::timevalToNs({0, -1}, ns));
  CHECK(abi::timespecToNs({0, 999999999}, ns));
  CHECK(!abi::timespecToNs({0, 1000000000}, ns));
  CHECK(!abi::timespecToNs({-1, 0}, ns));
  CHECK(abi::timespecToNs({INT64_MAX, 0}, ns));
  CHECK(ns == INT64_MAX);
  auto tv = abi::nsToTimeval(1234567999);  // truncated to microseconds
  CHECK(tv.sec == 1);
  CHECK(tv.usec == 234567);
  auto ts = abi::nsToTimespec(-5);
  CHECK(ts.sec == 0);
  CHECK(ts.nsec == 0);
}

TEST_CASE("struct epoll_event is packed on x86-64 and pollfd is 8 bytes") {
  namespace abi = sb::x86_64;
  CHECK(sizeof(abi::EpollEvent) == 12);
  CHECK(offsetof(abi::EpollEvent, data) == 4);
  CHECK(sizeof(struct epoll_event) == 12);  // the host's, on x86-64
  CHECK(offsetof(abi::PollFd, revents) == 6);
  CHECK(abi::EPOLL_MAX_EVENTS == INT32_MAX / 12);
  CHECK(abi::K_EPOLLET == EPOLLET);
  CHECK(abi::K_EPOLLONESHOT == EPOLLONESHOT);
  CHECK(abi::K_EPOLLEXCLUSIVE == EPOLLEXCLUSIVE);
}
