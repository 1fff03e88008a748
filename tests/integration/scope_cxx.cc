// Helper for the scope-cxx case: the C++ guards of <splitbrain.h> under sbrun.
//
//   scope_cxx TARGET
//
// Prints, at each step, the thread's scope and what uname and /etc/hostname say there: outside,
// in splitbrain::Scope{TARGET}, in a LocalScope nested inside it, back in TARGET, outside again,
// in a default Scope (the first target), and in a std::thread started inside TARGET's scope;
// then the exception for an unknown target. The harness compares the lines with what A and B
// are called. Exits 0, or 1 on an unexpected exception.
#include "splitbrain.h"

#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

namespace {

std::string nodename() {
  struct utsname u {};
  return uname(&u) == 0 ? std::string(u.nodename) : "error";
}

std::string hostnameFile() {
  std::ifstream f("/etc/hostname");
  std::string line;
  if (!std::getline(f, line)) {
    return "error";
  }
  return line;
}

void show(const char* step) {
  std::printf("%s: %s %s %s\n", step, splitbrain::current().c_str(), nodename().c_str(),
              hostnameFile().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TARGET\n", argv[0]);
    return 2;
  }
  const char* target = argv[1];
  try {
    std::printf("available: %s\n", splitbrain::available() ? "yes" : "no");
    show("start");
    {
      splitbrain::Scope onTarget{target};
      show("in target");
      {
        splitbrain::LocalScope here;
        show("local inside target");
      }
      show("back in target");
      std::string seen;
      std::thread t([&] { seen = splitbrain::current() + " " + nodename(); });
      t.join();
      std::printf("thread started in target: %s\n", seen.c_str());
    }
    show("after target");
    {
      splitbrain::Scope first;
      show("in the first target");
    }
    show("end");
  } catch (const std::system_error& e) {
    std::printf("unexpected: %s\n", e.what());
    return 1;
  }
  try {
    splitbrain::Scope nope{"nope"};
    std::printf("entered nope?!\n");
    return 1;
  } catch (const std::system_error& e) {
    std::printf("unknown target: %s (errno %s)\n", e.what(),
                e.code().value() == ENOENT ? "ENOENT" : "other");
  }
  return 0;
}
