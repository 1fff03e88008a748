#include "tls_setup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <kj/debug.h>
#include <kj/io.h>
#include <kj/vector.h>

namespace sb {

namespace {

[[noreturn]] void tlsFail(kj::String message) {
  kj::throwFatalException(
      kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::mv(message)));
}

kj::String readPem(kj::StringPtr option, kj::StringPtr path) {
  int fd = ::open(path.cStr(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    tlsFail(kj::str(option, " ", path, ": ", strerror(errno)));
  }
  kj::FdInputStream in{kj::AutoCloseFd(fd)};
  kj::String text = in.readAllText();
  if (text.size() == 0 || strstr(text.cStr(), "-----BEGIN ") == nullptr) {
    tlsFail(kj::str(option, " ", path, ": not a PEM file (expected \"-----BEGIN ...\")"));
  }
  return text;
}

// Runs `make`, turning a kj/OpenSSL exception into one that names the option and file.
template <typename T, typename Make>
T parsing(kj::StringPtr option, kj::StringPtr path, kj::StringPtr what, Make&& make) {
  kj::Maybe<T> result;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { result = make(); })) {
    tlsFail(kj::str(option, " ", path, ": cannot read ", what, " (",
                     e->getDescription(), ")"));
  }
  return kj::mv(KJ_ASSERT_NONNULL(result));
}

// Every "-----BEGIN CERTIFICATE-----" block of a bundle: kj trusts only the first certificate of
// each TlsCertificate, so each CA needs its own.
kj::Vector<kj::String> certificateBlocks(kj::StringPtr pem) {
  constexpr const char* BEGIN = "-----BEGIN CERTIFICATE-----";
  constexpr const char* END = "-----END CERTIFICATE-----";
  kj::Vector<kj::String> blocks;
  const char* at = pem.cStr();
  while (const char* begin = strstr(at, BEGIN)) {
    const char* end = strstr(begin, END);
    if (end == nullptr) {
      break;
    }
    end += strlen(END);
    blocks.add(kj::str(kj::heapString(begin, end - begin), "\n"));
    at = end;
  }
  return blocks;
}

bool mentions(const kj::Exception& e, const char* what) {
  return strstr(e.getDescription().cStr(), what) != nullptr;
}

}  // namespace

kj::String tlsFilesProblem(const TlsFiles& files, TlsRole role) {
  if (role == TlsRole::AGENT) {
    if (files.cert.size() == 0 || files.key.size() == 0 || files.ca.size() == 0) {
      return kj::str("TLS needs all of --tls-cert (the agent's certificate), --tls-key (its "
                     "private key) and --tls-ca (the CA whose client certificates are accepted)");
    }
    return kj::str();
  }
  if (files.ca.size() == 0) {
    return kj::str("--tls-cert/--tls-key need --tls-ca: the CA that signed the agent's "
                   "certificate (no system trust store is used)");
  }
  if ((files.cert.size() == 0) != (files.key.size() == 0)) {
    return kj::str("give --tls-cert and --tls-key together (the client certificate and its key)");
  }
  return kj::str();
}

kj::Own<kj::TlsContext> makeTlsContext(const TlsFiles& files, TlsRole role) {
  kj::String problem = tlsFilesProblem(files, role);
  if (problem.size() > 0) {
    tlsFail(kj::mv(problem));
  }
  kj::String caPem = readPem("--tls-ca", files.ca);
  kj::Vector<kj::TlsCertificate> cas;
  for (auto& block: certificateBlocks(caPem)) {
    cas.add(parsing<kj::TlsCertificate>("--tls-ca", files.ca, "a CA certificate",
                                        [&]() { return kj::TlsCertificate(block); }));
  }
  if (cas.empty()) {
    tlsFail(kj::str("--tls-ca ", files.ca, ": no \"-----BEGIN CERTIFICATE-----\" block in it"));
  }
  kj::Maybe<kj::TlsKeypair> keypair;
  if (files.cert.size() > 0) {
    kj::String certPem = readPem("--tls-cert", files.cert);
    kj::String keyPem = readPem("--tls-key", files.key);
    struct stat st;
    if (stat(files.key.cStr(), &st) == 0 && (st.st_mode & 077) != 0) {
      // Not fatal (a test's temporary key, a container): but the key is the identity.
      fmt::print(stderr, "{}: warning: --tls-key {} is readable by other users; chmod 600 it\n",
                 program_invocation_short_name, files.key.cStr());
    }
    auto key = parsing<kj::TlsPrivateKey>("--tls-key", files.key, "an unencrypted private key",
                                          [&]() { return kj::TlsPrivateKey(keyPem); });
    auto cert = parsing<kj::TlsCertificate>("--tls-cert", files.cert, "a certificate",
                                            [&]() { return kj::TlsCertificate(certPem); });
    keypair = kj::TlsKeypair{kj::mv(key), kj::mv(cert)};
  }

  kj::TlsContext::Options options;
  options.useSystemTrustStore = false;  // pinned: only --tls-ca
  options.trustedCertificates = cas.asPtr();
  options.minVersion = kj::TlsVersion::TLS_1_2;
  options.verifyClients = role == TlsRole::AGENT;
  KJ_IF_MAYBE(kp, keypair) {
    options.defaultKeypair = *kp;
  }
  // The context copies what it needs into OpenSSL's own structures.
  kj::Own<kj::TlsContext> context;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    context = kj::heap<kj::TlsContext>(kj::mv(options));
  })) {
    tlsFail(kj::str("--tls-cert ", files.cert, " / --tls-key ", files.key,
                     ": cannot set up TLS (does the key belong to the certificate?): ",
                     e->getDescription()));
  }
  return context;
}

kj::String describeTlsFailure(const kj::Exception& e, TlsRole role) {
  if (role == TlsRole::CLIENT) {
    if (mentions(e, "certificate required") || mentions(e, "alert handshake failure")) {
      return kj::str("the agent requires a client certificate: give sbrun --tls-cert and "
                     "--tls-key (a certificate signed by the CA in the agent's --tls-ca)");
    }
    if (mentions(e, "unknown ca") || mentions(e, "bad certificate") ||
        mentions(e, "certificate unknown") || mentions(e, "decrypt error")) {
      return kj::str("the agent did not accept this client's certificate (", e.getDescription(),
                     "): it must be signed by the CA given to the agent's --tls-ca");
    }
    if (mentions(e, "not trusted") || mentions(e, "certificate verify failed")) {
      return kj::str("the agent's certificate is not trusted (", e.getDescription(),
                     "): it must be signed by the CA in sbrun's --tls-ca and name the host "
                     "written in the target URL");
    }
    if (mentions(e, "provided no certificate") || mentions(e, "wrong version number") ||
        mentions(e, "ssl connection ended") || mentions(e, "TLS protocol error")) {
      return kj::str("the agent ended the TLS handshake (", e.getDescription(),
                     "): does it listen with --tls-cert? An agent without TLS closes TLS "
                     "connections");
    }
    return kj::str(e.getDescription());
  }
  if (mentions(e, "did not return a certificate") || mentions(e, "certificate required")) {
    return kj::str("no client certificate (the client needs --tls-cert and --tls-key)");
  }
  if (mentions(e, "certificate verify failed")) {
    return kj::str("client certificate not signed by --tls-ca (", e.getDescription(), ")");
  }
  if (mentions(e, "wrong version number") || mentions(e, "http request") ||
      mentions(e, "unknown protocol") || mentions(e, "packet length too long")) {
    return kj::str("not TLS: a plain client on a TLS port (", e.getDescription(), ")");
  }
  return kj::str("TLS handshake failed: ", e.getDescription());
}

}  // namespace sb
