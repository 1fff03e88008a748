#include "target_url.h"

#include <arpa/inet.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>

namespace sb {

namespace {

constexpr const char* TARGET_FORMS =
    "accepted forms: [NAME=]local[:/ROOT][?hostname=HOSTNAME], [NAME=]unix:PATH, "
    "[NAME=]tcp://HOST:PORT (IPv6: tcp://[::1]:PORT), [NAME=]ssh://[USER@]HOST[:PORT][/PATH], "
    "[NAME=]exec:COMMAND; NAME is letters, digits, '_' or '-'";
constexpr const char* LISTEN_FORMS =
    "accepted forms: unix:PATH, tcp://HOST:PORT (IPv6: tcp://[::1]:PORT; port 0 picks a free one)";

// Which input is being parsed, so one set of helpers can word messages for both.
struct Context {
  const char* what;
  const char* forms;
  kj::StringPtr text;
};

// A thrown kj::Exception whose description is exactly our message: KJ_FAIL_REQUIRE would append
// "name = value" noise that a user at the command line does not need.
[[noreturn]] void fail(const Context& ctx, kj::StringPtr why) {
  kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                        kj::str("bad ", ctx.what, " \"", ctx.text, "\": ", why,
                                                "; ", ctx.forms)));
}

kj::String sliceOf(kj::StringPtr s, size_t start, size_t end) {
  return kj::heapString(s.begin() + start, end - start);
}

size_t findOr(kj::StringPtr s, char c, size_t otherwise) {
  KJ_IF_MAYBE(i, s.findFirst(c)) {
    return *i;
  }
  return otherwise;
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool isHostChar(char c) { return isNameChar(c) || c == '.'; }

bool isIpv6Literal(kj::StringPtr host) {
  struct in6_addr addr;
  return inet_pton(AF_INET6, host.cStr(), &addr) == 1;
}

uint16_t parsePort(const Context& ctx, kj::StringPtr digits, bool allowZero) {
  if (digits.size() == 0) {
    fail(ctx, "missing port after ':'");
  }
  uint32_t value = 0;
  for (char c: digits) {
    if (c < '0' || c > '9') {
      fail(ctx, kj::str("port \"", digits, "\" is not a number"));
    }
    value = value * 10 + (c - '0');
    if (value > 65535) {
      fail(ctx, kj::str("port ", digits, " is out of range (1..65535)"));
    }
  }
  if (value == 0 && !allowZero) {
    fail(ctx, "port 0 is not a port one can connect to (1..65535)");
  }
  return value;
}

// "HOST:PORT" or "[IPV6]:PORT" after "tcp://".
void parseHostPort(const Context& ctx, kj::StringPtr rest, bool allowZero, kj::String& host,
                   uint16_t& port) {
  kj::StringPtr portText;
  if (rest.startsWith("[")) {
    size_t close = findOr(rest, ']', rest.size());
    if (close == rest.size()) {
      fail(ctx, "missing ']' after an IPv6 address");
    }
    host = sliceOf(rest, 1, close);
    if (!isIpv6Literal(host)) {
      fail(ctx, kj::str("\"", host, "\" in brackets is not an IPv6 address"));
    }
    kj::StringPtr after = rest.slice(close + 1);
    if (!after.startsWith(":")) {
      fail(ctx, "missing :PORT after the host");
    }
    portText = after.slice(1);
  } else {
    size_t colon = findOr(rest, ':', rest.size());
    if (colon == rest.size()) {
      fail(ctx, "missing :PORT after the host");
    }
    host = sliceOf(rest, 0, colon);
    portText = rest.slice(colon + 1);
    if (portText.findFirst(':') != nullptr) {
      fail(ctx, "an IPv6 address must be in brackets, e.g. tcp://[::1]:7433");
    }
    if (host.size() == 0) {
      fail(ctx, "missing host");
    }
    for (char c: host) {
      if (!isHostChar(c)) {
        fail(ctx, kj::str("host \"", host, "\" may only contain letters, digits, '.', '-', '_'"));
      }
    }
  }
  port = parsePort(ctx, portText, allowZero);
}

void checkUnixPath(const Context& ctx, kj::StringPtr path) {
  if (path.size() == 0) {
    fail(ctx, "missing socket path after \"unix:\"");
  }
  // sun_path holds the path and its NUL; a longer path cannot be bound or connected to.
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    fail(ctx, kj::str("unix socket path is longer than ", sizeof(sockaddr_un::sun_path) - 1,
                      " bytes"));
  }
}

// What follows "ssh://": [USER@]HOST[:PORT][/PATH]. Nothing here may start with '-': the user
// and host become ssh arguments, and a leading '-' would make them options (-oProxyCommand=...).
void parseSsh(const Context& ctx, kj::StringPtr rest, TargetUrl& url) {
  size_t slash = findOr(rest, '/', rest.size());
  kj::String authority = sliceOf(rest, 0, slash);
  size_t at = findOr(authority, '@', authority.size());
  kj::String hostPort = at == authority.size() ? kj::str(authority)
                                               : sliceOf(authority, at + 1, authority.size());
  if (at != authority.size()) {
    url.user = sliceOf(authority, 0, at);
    if (url.user.size() == 0) {
      fail(ctx, "empty USER before '@'");
    }
    for (char c: url.user) {
      if (!isHostChar(c)) {
        fail(ctx, kj::str("user \"", url.user, "\" may only contain letters, digits, '.', '-', '_'"));
      }
    }
    if (url.user.startsWith("-")) {
      fail(ctx, kj::str("user \"", url.user, "\" must not start with '-'"));
    }
  }
  if (hostPort.size() == 0) {
    fail(ctx, "missing host after \"ssh://\"");
  }
  if (hostPort.startsWith("[") || findOr(hostPort, ':', hostPort.size()) == hostPort.size()) {
    if (hostPort.startsWith("[") && hostPort.endsWith("]")) {
      url.host = sliceOf(hostPort, 1, hostPort.size() - 1);
      if (!isIpv6Literal(url.host)) {
        fail(ctx, kj::str("\"", url.host, "\" in brackets is not an IPv6 address"));
      }
    } else if (hostPort.startsWith("[")) {
      // "[::1]:PORT", or a malformed bracket that parseHostPort words clearly.
      parseHostPort(ctx, hostPort, false, url.host, url.port);
    } else {
      url.host = kj::str(hostPort);
      for (char c: url.host) {
        if (!isHostChar(c)) {
          fail(ctx, kj::str("host \"", url.host, "\" may only contain letters, digits, '.', '-', "
                            "'_'"));
        }
      }
    }
  } else {
    parseHostPort(ctx, hostPort, false, url.host, url.port);
  }
  if (url.host.startsWith("-")) {
    fail(ctx, kj::str("host \"", url.host, "\" must not start with '-'"));
  }
  if (slash == rest.size()) {
    return;  // `sbagent` on the remote PATH.
  }
  kj::StringPtr path = rest.slice(slash);
  // The git convention: ssh://host/~/bin/sbagent is relative to the remote home directory.
  url.path = path.startsWith("/~/") ? kj::str(path.slice(1)) : kj::str(path);
  if (url.path == "/") {
    fail(ctx, "empty agent path after the host (leave the '/' out for sbagent on the remote PATH)");
  }
  if (url.path.endsWith("/")) {
    fail(ctx, kj::str("the agent path \"", url.path, "\" ends with '/': name the sbagent "
                      "executable itself"));
  }
  for (char c: url.path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      fail(ctx, "the agent path contains a control character");
    }
  }
}

void parseExec(const Context& ctx, kj::StringPtr rest, TargetUrl& url) {
  bool blank = true;
  for (char c: rest) {
    if (c != ' ' && c != '\t' && c != '\n') {
      blank = false;
    }
  }
  if (blank) {
    fail(ctx, "missing COMMAND after \"exec:\" (e.g. exec:'docker exec -i box sbagent --stdio')");
  }
  url.command = kj::str(rest);
}

void parseLocal(const Context& ctx, kj::StringPtr rest, TargetUrl& url) {
  // rest is what follows "local": "", ":/ROOT", "?query" or ":/ROOT?query".
  size_t query = findOr(rest, '?', rest.size());
  if (rest.startsWith(":")) {
    url.root = sliceOf(rest, 1, query);
    if (url.root.size() == 0) {
      fail(ctx, "missing root directory after \"local:\"");
    }
    if (!url.root.startsWith("/")) {
      fail(ctx, kj::str("the root \"", url.root, "\" must be an absolute path"));
    }
  }
  if (query == rest.size()) {
    return;
  }
  kj::StringPtr params = rest.slice(query + 1);
  bool seenHostname = false;
  while (true) {
    size_t amp = findOr(params, '&', params.size());
    kj::String param = sliceOf(params, 0, amp);
    size_t eq = findOr(param, '=', param.size());
    kj::String key = sliceOf(param, 0, eq);
    if (key != "hostname") {
      fail(ctx, kj::str("unknown query parameter \"", key, "\" (only hostname=HOSTNAME is known)"));
    }
    if (seenHostname) {
      fail(ctx, "hostname given twice");
    }
    seenHostname = true;
    if (eq == param.size() || eq + 1 == param.size()) {
      fail(ctx, "empty hostname");
    }
    url.hostname = sliceOf(param, eq + 1, param.size());
    // sethostname(2) refuses more than 64 bytes; say so here rather than from the agent.
    if (url.hostname.size() > 64) {
      fail(ctx, "hostname is longer than 64 bytes");
    }
    if (amp == params.size()) {
      break;
    }
    params = params.slice(amp + 1);
  }
}

}  // namespace

TargetUrl parseTargetUrl(kj::StringPtr text) {
  Context ctx{"--target", TARGET_FORMS, text};
  TargetUrl url{TargetUrl::Kind::LOCAL, kj::str(), kj::str(), kj::str(), kj::str(), kj::str(),
                0,                      kj::str(),  kj::str(), kj::str(text)};
  if (text.size() == 0) {
    fail(ctx, "empty target");
  }

  // "NAME=" counts only before anything URL-like: "local?hostname=x" has no name.
  kj::StringPtr rest = text;
  size_t eq = findOr(text, '=', text.size());
  size_t urlish = std::min({findOr(text, ':', text.size()), findOr(text, '?', text.size()),
                            findOr(text, '/', text.size())});
  if (eq < urlish) {
    url.name = sliceOf(text, 0, eq);
    if (url.name.size() == 0) {
      fail(ctx, "empty NAME before '='");
    }
    for (char c: url.name) {
      if (!isNameChar(c)) {
        fail(ctx, kj::str("NAME \"", url.name, "\" may only contain letters, digits, '_' or '-'"));
      }
    }
    rest = text.slice(eq + 1);
    if (rest.size() == 0) {
      fail(ctx, "missing URL after NAME=");
    }
  }

  if (rest == "local" || rest.startsWith("local:") || rest.startsWith("local?")) {
    url.kind = TargetUrl::Kind::LOCAL;
    parseLocal(ctx, rest.slice(5), url);
  } else if (rest.startsWith("unix:")) {
    url.kind = TargetUrl::Kind::UNIX;
    url.path = kj::str(rest.slice(5));
    checkUnixPath(ctx, url.path);
  } else if (rest.startsWith("tcp://")) {
    url.kind = TargetUrl::Kind::TCP;
    parseHostPort(ctx, rest.slice(6), false, url.host, url.port);
  } else if (rest.startsWith("ssh://")) {
    url.kind = TargetUrl::Kind::SSH;
    parseSsh(ctx, rest.slice(6), url);
  } else if (rest.startsWith("exec:")) {
    url.kind = TargetUrl::Kind::EXEC;
    parseExec(ctx, rest.slice(5), url);
  } else {
    size_t colon = findOr(rest, ':', rest.size());
    if (colon == rest.size()) {
      fail(ctx, "no scheme (a bare host name is not a target)");
    }
    fail(ctx, kj::str("unknown scheme \"", sliceOf(rest, 0, colon), "\""));
  }
  return url;
}

ListenAddress parseListenAddress(kj::StringPtr text) {
  Context ctx{"listen address", LISTEN_FORMS, text};
  ListenAddress address{ListenAddress::Kind::UNIX, kj::str(), kj::str(), 0};
  if (text.startsWith("unix:")) {
    address.path = kj::str(text.slice(5));
    checkUnixPath(ctx, address.path);
  } else if (text.startsWith("tcp://")) {
    address.kind = ListenAddress::Kind::TCP;
    parseHostPort(ctx, text.slice(6), true, address.host, address.port);
  } else if (text.size() == 0) {
    fail(ctx, "empty address");
  } else {
    fail(ctx, "unknown scheme");
  }
  return address;
}

}  // namespace sb
