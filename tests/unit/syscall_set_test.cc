// strace's syscall sets and -e inject= rules (src/syscall_set.h, src/inject_spec.h).

#include <doctest.h>
#include <kj/debug.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>

#include "inject_spec.h"
#include "syscall_set.h"
#include "syscall_table.h"

namespace {

sb::SyscallSet ssSet(kj::StringPtr text) {
  kj::String error;
  KJ_IF_MAYBE(s, sb::parseSyscallSet(text, error)) {
    return *s;
  }
  FAIL("parse failed: ", error.cStr());
  return {};
}

kj::String ssError(kj::StringPtr text) {
  kj::String error;
  CHECK(sb::parseSyscallSet(text, error) == nullptr);
  return error;
}

sb::WhenSpec ssWhen(kj::StringPtr text) {
  kj::String error;
  KJ_IF_MAYBE(w, sb::parseWhen(text, error)) {
    return *w;
  }
  FAIL("when parse failed: ", error.cStr());
  return {};
}

}  // namespace

TEST_SUITE("syscall_set") {
  TEST_CASE("names, numbers and comma lists") {
    auto s = ssSet("openat,close,0");
    CHECK(s.has(SYS_openat));
    CHECK(s.has(SYS_close));
    CHECK(s.has(SYS_read));
    CHECK(!s.has(SYS_write));
    CHECK(s.count() == 3);
  }

  TEST_CASE("a leading ! negates the whole set") {
    auto s = ssSet("!close");
    CHECK(!s.has(SYS_close));
    CHECK(s.has(SYS_openat));
    CHECK(s.count() == sb::syscallTable().size() - 1);
    auto f = ssSet("!%file");
    CHECK(!f.has(SYS_openat));
    CHECK(f.has(SYS_read));
  }

  TEST_CASE("classes match strace's membership of common calls") {
    auto file = ssSet("%file");
    for (int nr : {SYS_open, SYS_openat, SYS_stat, SYS_lstat, SYS_newfstatat, SYS_statx,
                   SYS_execve, SYS_access, SYS_unlink, SYS_readlink, SYS_getcwd, SYS_chdir}) {
      CAPTURE(nr);
      CHECK(file.has(nr));
    }
    for (int nr : {SYS_read, SYS_close, SYS_fstat, SYS_mmap, SYS_socket}) {
      CAPTURE(nr);
      CHECK(!file.has(nr));
    }
    auto desc = ssSet("%desc");
    CHECK(desc.has(SYS_read));
    CHECK(desc.has(SYS_openat));
    CHECK(desc.has(SYS_fstat));
    CHECK(desc.has(SYS_open));
    CHECK(!desc.has(SYS_socket));
    CHECK(!desc.has(SYS_close_range));  // strace has no class for close_range
    CHECK(ssSet("%net").has(SYS_connect));
    CHECK(ssSet("%network").has(SYS_sendfile));
    CHECK(ssSet("%process").has(SYS_clone));
    CHECK(ssSet("%process").has(SYS_execve));
    CHECK(ssSet("%signal").has(SYS_rt_sigaction));
    CHECK(ssSet("%memory").has(SYS_mmap));
    CHECK(ssSet("%ipc").has(SYS_shmget));
    CHECK(ssSet("%creds").has(SYS_setuid));
    CHECK(ssSet("%clock").has(SYS_clock_gettime));
    CHECK(ssSet("%pure").has(SYS_getpid));
    CHECK(!ssSet("%pure").has(SYS_getcwd));
    auto stat = ssSet("%stat");
    CHECK(stat.has(SYS_stat));
    CHECK(!stat.has(SYS_lstat));
    CHECK(ssSet("%lstat").has(SYS_lstat));
    CHECK(ssSet("%fstat").has(SYS_fstat));
    CHECK(ssSet("%fstat").has(SYS_newfstatat));
    CHECK(ssSet("%fstat").has(SYS_statx));
    auto anyStat = ssSet("%%stat");
    CHECK(anyStat.count() == 5);  // stat, fstat, lstat, newfstatat, statx
    CHECK(ssSet("%statfs").count() == 1);
    CHECK(ssSet("%fstatfs").has(SYS_fstatfs));
    CHECK(ssSet("%%statfs").count() == 3);  // statfs, fstatfs, ustat
    // strace's deprecated spelling without %, and a syscall named like a class wins.
    CHECK(ssSet("file").has(SYS_openat));
    CHECK(ssSet("stat").count() == 1);
  }

  TEST_CASE("regular expressions, all, none") {
    auto s = ssSet("/^open");
    CHECK(s.has(SYS_open));
    CHECK(s.has(SYS_openat));
    CHECK(s.has(SYS_openat2));
    CHECK(s.has(SYS_open_tree));
    CHECK(!s.has(SYS_fsopen));
    CHECK(ssSet("all").count() == sb::syscallTable().size());
    CHECK(ssSet("none").empty());
    CHECK(ssSet("!none").count() == sb::syscallTable().size());
  }

  TEST_CASE("unknown names are errors unless marked with ?") {
    CHECK(ssError("opne").startsWith("unknown syscall 'opne'"));
    CHECK(ssError("openat,nosuchcall").startsWith("unknown syscall 'nosuchcall'"));
    CHECK(ssError("%files").startsWith("unknown syscall class '%files'"));
    CHECK(ssError("/[").startsWith("bad regular expression '/['"));
    CHECK(ssError("/^zzz").startsWith("regular expression '/^zzz' matches no syscall"));
    CHECK(ssError("").startsWith("empty syscall set"));
    CHECK(ssError("read,,write").startsWith("empty element"));
    CHECK(ssError("99999").startsWith("unknown syscall '99999'"));
    auto s = ssSet("?nosuchcall,read");
    CHECK(s.count() == 1);
    CHECK(ssSet("?/^zzz").empty());
  }

  TEST_CASE("straceClasses is the data behind the sets") {
    CHECK((sb::straceClasses(SYS_openat) & sb::SC_FILE) != 0);
    CHECK((sb::straceClasses(SYS_openat) & sb::SC_DESC) != 0);
    CHECK(sb::straceClasses(SYS_futex) == 0);
  }
}

TEST_SUITE("inject_spec") {
  TEST_CASE("when= forms hit exactly the invocations strace's do") {
    auto hits = [](sb::WhenSpec w) {
      kj::Vector<uint32_t> n;
      for (uint32_t i = 1; i <= 12; ++i) {
        if (w.hits(i)) n.add(i);
      }
      return kj::strArray(n, ",");
    };
    CHECK(hits(ssWhen("3")) == "3");
    CHECK(hits(ssWhen("3+")) == "3,4,5,6,7,8,9,10,11,12");
    CHECK(hits(ssWhen("2+3")) == "2,5,8,11");
    CHECK(hits(ssWhen("2..4")) == "2,3,4");
    CHECK(hits(ssWhen("2..4+")) == "2,3,4");
    CHECK(hits(ssWhen("2..10+4")) == "2,6,10");
    CHECK(hits(ssWhen("..3")) == "1,2,3");
    CHECK(hits(sb::WhenSpec{}) == "1,2,3,4,5,6,7,8,9,10,11,12");
  }

  TEST_CASE("bad when= are refused with the accepted forms") {
    for (auto bad : {"", "0", "-1", "3-", "a", "65536", "2..1", "1..65535", "1+0", "1+x",
                     "..", "1..", "+3"}) {
      CAPTURE(bad);
      kj::String error;
      CHECK(sb::parseWhen(bad, error) == nullptr);
      CHECK(error.startsWith("bad when="));
    }
  }

  TEST_CASE("rules: error, retval, signal, delays, path, fault") {
    kj::String error;
    auto r = KJ_ASSERT_NONNULL(
        sb::parseInjectRule("%file:error=ENOSPC:path=/data/*:when=2+3", error));
    CHECK(r.set.has(SYS_openat));
    CHECK(r.error == ENOSPC);
    CHECK(r.skipsCall());
    CHECK(r.when.first == 2);
    CHECK(r.when.step == 3);
    CHECK(r.pathGlobs.size() == 1);
    auto v = KJ_ASSERT_NONNULL(sb::parseInjectRule("openat:retval=42", error));
    CHECK(v.hasRetval);
    CHECK(v.retval == 42);
    auto s = KJ_ASSERT_NONNULL(sb::parseInjectRule("close:signal=SIGUSR1:delay_enter=2ms", error));
    CHECK(s.signal == SIGUSR1);
    CHECK(s.delayEnterUs == 2000);
    CHECK(!s.skipsCall());
    CHECK(KJ_ASSERT_NONNULL(sb::parseInjectRule("read:delay_exit=0.5s", error)).delayExitUs ==
          500000);
    CHECK(KJ_ASSERT_NONNULL(sb::parseInjectRule("read:error=5", error)).error == EIO);
    CHECK(KJ_ASSERT_NONNULL(sb::parseInjectRule("chdir", error, true)).error == ENOSYS);
    CHECK(sb::parseSignal("USR2") == SIGUSR2);
    CHECK(sb::parseSignal("9") == SIGKILL);
  }

  TEST_CASE("bad rules say what is wrong") {
    auto err = [](kj::StringPtr text) {
      kj::String error;
      CHECK(sb::parseInjectRule(text, error) == nullptr);
      return error;
    };
    CHECK(err("openat").endsWith("injects nothing: give error=, retval=, signal=, delay_enter= "
                                 "or delay_exit="));
    CHECK(err("opnat:error=EIO").startsWith("unknown syscall 'opnat'"));
    CHECK(err("openat:error=EFOO").startsWith("error=EFOO: not an errno name"));
    CHECK(err("openat:error=EIO:retval=1").startsWith("one error= or retval="));
    CHECK(err("openat:signal=SIGFOO").startsWith("signal=SIGFOO"));
    CHECK(err("openat:delay_enter=1h").startsWith("bad delay '1h'"));
    CHECK(err("openat:error=EIO:when=0").startsWith("bad when=0"));
    CHECK(err("openat:error=EIO:path=data")
              .startsWith("path=data: the glob must be an absolute path"));
    CHECK(err("openat:error=EIO:colour=red").startsWith("unknown key 'colour'"));
    CHECK(err("openat:EIO").startsWith("'EIO' is not KEY=VALUE"));
  }
}
