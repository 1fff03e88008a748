#include "target_url.h"

#include <doctest.h>
#include <kj/exception.h>

#include <string>

namespace sb {
namespace {

std::string urlStd(kj::StringPtr s) { return std::string(s.begin(), s.size()); }

// The description of the exception parseTargetUrl throws, or "" when it does not throw.
template <typename Parse>
std::string failure(Parse&& parse) {
  try {
    parse();
  } catch (const kj::Exception& e) {
    return urlStd(e.getDescription());
  }
  return "";
}

TEST_SUITE("target_url") {
  TEST_CASE("local targets carry an optional root and hostname for the embedded agent") {
    SUBCASE("plain") {
      auto url = parseTargetUrl("local");
      CHECK(url.kind == TargetUrl::Kind::LOCAL);
      CHECK(urlStd(url.name) == "");
      CHECK(urlStd(url.root) == "");
      CHECK(urlStd(url.hostname) == "");
      CHECK(urlStd(url.text) == "local");
    }
    SUBCASE("with a root") {
      auto url = parseTargetUrl("local:/srv/fakeroot");
      CHECK(url.kind == TargetUrl::Kind::LOCAL);
      CHECK(urlStd(url.root) == "/srv/fakeroot");
      CHECK(urlStd(url.hostname) == "");
    }
    SUBCASE("with a hostname") {
      auto url = parseTargetUrl("local?hostname=lab-b");
      CHECK(urlStd(url.name) == "");  // the '=' is in the query, not a NAME
      CHECK(urlStd(url.root) == "");
      CHECK(urlStd(url.hostname) == "lab-b");
    }
    SUBCASE("with a name, a root and a hostname") {
      auto url = parseTargetUrl("b=local:/tmp/root-b?hostname=machine-b");
      CHECK(url.kind == TargetUrl::Kind::LOCAL);
      CHECK(urlStd(url.name) == "b");
      CHECK(urlStd(url.root) == "/tmp/root-b");
      CHECK(urlStd(url.hostname) == "machine-b");
      CHECK(urlStd(url.text) == "b=local:/tmp/root-b?hostname=machine-b");
    }
  }

  TEST_CASE("unix targets keep the socket path as given, relative or absolute") {
    auto url = parseTargetUrl("lab_1=unix:/run/sbagent.sock");
    CHECK(url.kind == TargetUrl::Kind::UNIX);
    CHECK(urlStd(url.name) == "lab_1");
    CHECK(urlStd(url.path) == "/run/sbagent.sock");

    auto relative = parseTargetUrl("unix:agent.sock");
    CHECK(urlStd(relative.path) == "agent.sock");
    CHECK(urlStd(relative.name) == "");

    // An '=' after the scheme belongs to the path.
    auto withEquals = parseTargetUrl("unix:/tmp/a=b");
    CHECK(urlStd(withEquals.name) == "");
    CHECK(urlStd(withEquals.path) == "/tmp/a=b");
  }

  TEST_CASE("tcp targets need a host and a port in 1..65535") {
    struct Good {
      const char* text;
      const char* name;
      const char* host;
      uint16_t port;
    };
    const Good goods[] = {
        {"tcp://lab-b:7433", "", "lab-b", 7433},
        {"b=tcp://lab-b.example.com:1", "b", "lab-b.example.com", 1},
        {"tcp://10.0.0.7:65535", "", "10.0.0.7", 65535},
        {"v6=tcp://[::1]:7433", "v6", "::1", 7433},
        {"tcp://[fe80::1:2]:80", "", "fe80::1:2", 80},
    };
    for (auto& g: goods) {
      CAPTURE(g.text);
      auto url = parseTargetUrl(g.text);
      CHECK(url.kind == TargetUrl::Kind::TCP);
      CHECK(urlStd(url.name) == g.name);
      CHECK(urlStd(url.host) == g.host);
      CHECK(url.port == g.port);
    }
  }

  TEST_CASE("ssh targets take an optional user, port and agent path") {
    struct Good {
      const char* text;
      const char* name;
      const char* user;
      const char* host;
      uint16_t port;
      const char* path;
    };
    const Good goods[] = {
        {"ssh://lab-b", "", "", "lab-b", 0, ""},
        {"b=ssh://lab-b", "b", "", "lab-b", 0, ""},
        {"ssh://root@lab-b.example.com", "", "root", "lab-b.example.com", 0, ""},
        {"ssh://lab-b:2222", "", "", "lab-b", 2222, ""},
        {"ssh://ci.user_1@10.0.0.7:65535/opt/sb/bin/sbagent", "", "ci.user_1", "10.0.0.7", 65535,
         "/opt/sb/bin/sbagent"},
        {"ssh://root@127.0.0.1:22/usr/local/bin/sbagent", "", "root", "127.0.0.1", 22,
         "/usr/local/bin/sbagent"},
        {"v6=ssh://[::1]", "v6", "", "::1", 0, ""},
        {"ssh://me@[fe80::1:2]:2200/sbagent", "", "me", "fe80::1:2", 2200, "/sbagent"},
        // The git convention: "/~/" is the remote home directory.
        {"ssh://lab-b/~/bin/sbagent", "", "", "lab-b", 0, "~/bin/sbagent"},
        // The path is the remote shell's business: kept as given, quoted by the transport.
        {"ssh://lab-b/opt/my agent/sbagent", "", "", "lab-b", 0, "/opt/my agent/sbagent"},
        {"ssh://lab-b/opt/a=b?c", "", "", "lab-b", 0, "/opt/a=b?c"},
    };
    for (auto& g: goods) {
      CAPTURE(g.text);
      auto url = parseTargetUrl(g.text);
      CHECK(url.kind == TargetUrl::Kind::SSH);
      CHECK(urlStd(url.name) == g.name);
      CHECK(urlStd(url.user) == g.user);
      CHECK(urlStd(url.host) == g.host);
      CHECK(url.port == g.port);
      CHECK(urlStd(url.path) == g.path);
      CHECK(urlStd(url.text) == g.text);
    }
  }

  TEST_CASE("exec targets keep the whole command, colons, equals signs and quotes included") {
    auto url = parseTargetUrl("exec:docker exec -i box sbagent --stdio");
    CHECK(url.kind == TargetUrl::Kind::EXEC);
    CHECK(urlStd(url.name) == "");
    CHECK(urlStd(url.command) == "docker exec -i box sbagent --stdio");

    auto named = parseTargetUrl("pod=exec:kubectl exec -i -n ci pod/b -- sbagent --stdio");
    CHECK(named.kind == TargetUrl::Kind::EXEC);
    CHECK(urlStd(named.name) == "pod");
    CHECK(urlStd(named.command) == "kubectl exec -i -n ci pod/b -- sbagent --stdio");

    auto shell = parseTargetUrl("exec:X=1 sh -c 'exec sbagent --stdio --root /srv:b'");
    CHECK(urlStd(shell.name) == "");
    CHECK(urlStd(shell.command) == "X=1 sh -c 'exec sbagent --stdio --root /srv:b'");

    CHECK(urlStd(parseTargetUrl("exec:false").command) == "false");
  }

  TEST_CASE("bad targets fail with a message naming the problem and the accepted forms") {
    struct Bad {
      const char* text;
      const char* says;
    };
    const Bad bads[] = {
        {"", "empty target"},
        {"ssh://", "missing host"},
        {"ssh://root@", "missing host"},
        {"ssh://@lab-b", "empty USER"},
        {"ssh://ro ot@lab-b", "user \"ro ot\" may only contain"},
        {"ssh://-oProxyCommand@lab-b", "must not start with '-'"},
        {"ssh://-lab-b", "host \"-lab-b\" must not start with '-'"},
        {"ssh://lab b", "may only contain"},
        {"ssh://lab-b:", "missing port"},
        {"ssh://lab-b:0", "port 0"},
        {"ssh://lab-b:65536", "out of range"},
        {"ssh://lab-b:22x", "not a number"},
        {"ssh://:22", "missing host"},
        {"ssh://::1", "must be in brackets"},
        {"ssh://[::1", "missing ']'"},
        {"ssh://[lab-b]", "not an IPv6 address"},
        {"ssh://[::1]22", "missing :PORT"},
        {"ssh://lab-b/", "empty agent path"},
        {"ssh://lab-b/opt/sb/", "ends with '/'"},
        {"ssh://lab-b/opt/sb\nagent", "control character"},
        {"ssh:lab-b", "unknown scheme \"ssh\""},
        {"exec:", "missing COMMAND"},
        {"b=exec:", "missing COMMAND"},
        {"exec:  \t ", "missing COMMAND"},
        {"http://lab-b:80", "unknown scheme \"http\""},
        {"lab-b", "no scheme"},
        {"tcp://lab-b", "missing :PORT"},
        {"tcp://lab-b:", "missing port"},
        {"tcp://lab-b:0", "port 0"},
        {"tcp://lab-b:65536", "out of range"},
        {"tcp://lab-b:99999999999", "out of range"},
        {"tcp://lab-b:12ab", "not a number"},
        {"tcp://lab-b:-1", "not a number"},
        {"tcp://:7433", "missing host"},
        {"tcp://::1:7433", "must be in brackets"},
        {"tcp://[::1:7433", "missing ']'"},
        {"tcp://[lab-b]:7433", "not an IPv6 address"},
        {"tcp://[::1]7433", "missing :PORT"},
        {"tcp://lab b:7433", "may only contain"},
        {"tcp://lab-b:7433/", "not a number"},
        {"=local", "empty NAME"},
        {"b c=local", "may only contain letters"},
        {"b.c=local", "may only contain letters"},
        {"b=", "missing URL"},
        {"local:", "missing root"},
        {"local:relative/root", "must be an absolute path"},
        {"local?port=3", "unknown query parameter \"port\""},
        {"local?hostname=", "empty hostname"},
        {"local?hostname", "empty hostname"},
        {"local?hostname=a&hostname=b", "given twice"},
        {"localhost", "no scheme"},
        {"unix:", "missing socket path"},
    };
    for (auto& b: bads) {
      CAPTURE(b.text);
      auto message = failure([&]() { parseTargetUrl(b.text); });
      CAPTURE(message);
      CHECK(message.find(b.says) != std::string::npos);
      CHECK(message.find("accepted forms: [NAME=]local") != std::string::npos);
      CHECK(message.find(std::string("\"") + b.text + "\"") != std::string::npos);
    }
  }

  TEST_CASE("an over-long unix socket path is refused before any connect") {
    std::string path = "unix:/" + std::string(107, 'x');
    auto message = failure([&]() { parseTargetUrl(kj::StringPtr(path.c_str())); });
    CHECK(message.find("longer than 107 bytes") != std::string::npos);
    std::string fits = "unix:/" + std::string(106, 'x');
    CHECK(parseTargetUrl(kj::StringPtr(fits.c_str())).path.size() == 107);
  }

  TEST_CASE("a hostname longer than the kernel allows is refused") {
    std::string ok = "local?hostname=" + std::string(64, 'h');
    CHECK(parseTargetUrl(kj::StringPtr(ok.c_str())).hostname.size() == 64);
    std::string tooLong = "local?hostname=" + std::string(65, 'h');
    CHECK(failure([&]() { parseTargetUrl(kj::StringPtr(tooLong.c_str())); })
              .find("longer than 64") != std::string::npos);
  }

  TEST_CASE("listen addresses accept unix paths and tcp with port 0") {
    auto unixAddr = parseListenAddress("unix:/tmp/sb.sock");
    CHECK(unixAddr.kind == ListenAddress::Kind::UNIX);
    CHECK(urlStd(unixAddr.path) == "/tmp/sb.sock");

    auto tcp = parseListenAddress("tcp://127.0.0.1:0");
    CHECK(tcp.kind == ListenAddress::Kind::TCP);
    CHECK(urlStd(tcp.host) == "127.0.0.1");
    CHECK(tcp.port == 0);

    auto v6 = parseListenAddress("tcp://[::]:7433");
    CHECK(urlStd(v6.host) == "::");
    CHECK(v6.port == 7433);

    for (auto bad: {"", "local", "tcp://host", "tcp://host:70000", "b=unix:/x", "unix:"}) {
      CAPTURE(bad);
      auto message = failure([&]() { parseListenAddress(bad); });
      CAPTURE(message);
      CHECK(message.find("bad listen address") != std::string::npos);
      CHECK(message.find("accepted forms: unix:PATH") != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace sb
