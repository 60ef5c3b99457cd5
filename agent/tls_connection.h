#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "agent/tls_context.h"
#include "kernel/unique_fd.h"

namespace devmem::agent {

// Why a client's TLS handshake failed: a bounded set, for the
// devmem_agent_tls_handshake_failures_total{cause} metric and the log.
enum class HandshakeFailure {
  kNoCertificate,    // the client sent no certificate
  kExpired,          // its certificate has expired
  kNotYetValid,      // ... or is not valid yet
  kUnknownCa,        // not signed by a CA in ca_file
  kBadCertificate,   // any other verification failure
  kProtocolVersion,  // the client cannot speak TLS 1.3
  kNoH2,             // the client did not offer ALPN "h2" (not gRPC)
  kNotTls,           // plain text, HTTP, garbage
  kTimeout,          // handshake_timeout_ms passed
  kClosed,           // the client went away mid-handshake
  kOther,
};
const char* HandshakeFailureName(HandshakeFailure cause);
inline constexpr HandshakeFailure kAllHandshakeFailures[] = {
    HandshakeFailure::kNoCertificate,  HandshakeFailure::kExpired,
    HandshakeFailure::kNotYetValid,    HandshakeFailure::kUnknownCa,
    HandshakeFailure::kBadCertificate, HandshakeFailure::kProtocolVersion,
    HandshakeFailure::kNoH2,           HandshakeFailure::kNotTls,
    HandshakeFailure::kTimeout,        HandshakeFailure::kClosed,
    HandshakeFailure::kOther};

// The identity a client certificate names: its first SAN URI, else its first
// SAN DNS name, else its subject CN; "" if none.
std::string CertificateIdentity(X509* cert);

// One accepted client connection: the server side of a TLS 1.3 session on
// a non-blocking TCP socket, then a plaintext pump to a local stream socket
// that gRPC serves. Not thread-safe; one thread runs it.
class TlsConnection {
 public:
  struct Failure {
    HandshakeFailure cause;
    std::string detail;  // OpenSSL's reason, for the log
  };

  TlsConnection(UniqueFd tcp, const SslCtxPtr& ctx);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Runs the handshake until it completes, `deadline` passes or `stop_fd`
  // becomes readable. nullopt: done, the client certificate verified.
  std::optional<Failure> Handshake(absl::Time deadline, int stop_fd);
  // CertificateIdentity of the verified client certificate.
  std::string PeerIdentity() const;
  // Moves bytes both ways between the TLS session and `app` (non-blocking)
  // until either side closes or fails, or `stop_fd` becomes readable.
  void Pump(const UniqueFd& app, int stop_fd);

 private:
  Failure Classify(int ssl_error) const;

  UniqueFd tcp_;
  SSL* ssl_ = nullptr;
};

}  // namespace devmem::agent
