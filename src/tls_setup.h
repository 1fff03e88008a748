// TLS for the TCP transport (DESIGN D8): both ends use kj-tls with a pinned CA and never the
// system trust store. The agent requires and verifies a client certificate signed by that CA
// (verifyClients), and sbrun verifies that the agent's certificate, signed by its CA, names the
// host it connected to. So with TLS, a peer without a certificate from the pinned CA is refused
// during the TLS handshake, before a single byte reaches the admission preamble or the RPC layer.
//
// Files are PEM: --tls-cert may hold a chain (leaf first), --tls-key an unencrypted private key,
// --tls-ca one or more CA certificates (each one is trusted).

#pragma once

#include <kj/compat/tls.h>
#include <kj/string.h>

namespace sb {

struct TlsFiles {
  kj::String cert;  // "" when not given
  kj::String key;
  kj::String ca;

  bool any() const { return cert.size() > 0 || key.size() > 0 || ca.size() > 0; }
};

enum class TlsRole { AGENT, CLIENT };

// Checks which files a role needs: the agent needs all three; a client needs --tls-ca, and
// --tls-cert with --tls-key together (an agent refuses a client without them, with a message that
// the client prints). Returns "" when fine, else a message naming the missing option.
kj::String tlsFilesProblem(const TlsFiles& files, TlsRole role);

// Reads the files and makes the context. Throws a FAILED exception that names the file and what
// is wrong with it (unreadable, not PEM, key not matching the certificate ...).
kj::Own<kj::TlsContext> makeTlsContext(const TlsFiles& files, TlsRole role);

// Turns a kj-tls / OpenSSL failure into a sentence for people ("the agent did not accept this
// client's certificate ..."); `e` is returned unchanged when it is not about TLS.
kj::String describeTlsFailure(const kj::Exception& e, TlsRole role);

}  // namespace sb
