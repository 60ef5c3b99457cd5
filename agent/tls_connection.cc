#include "agent/tls_connection.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace devmem::agent {
namespace {

constexpr size_t kBufferBytes = 16384;  // one TLS record

std::string AsnString(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

std::string SanOfType(X509* cert, int type) {
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return "";
  std::string found;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && found.empty(); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != type) continue;
    found = AsnString(type == GEN_URI ? n->d.uniformResourceIdentifier
                                      : n->d.dNSName);
  }
  GENERAL_NAMES_free(names);
  return found;
}

HandshakeFailure FromVerifyResult(long result) {  // NOLINT(google-runtime-int)
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return HandshakeFailure::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return HandshakeFailure::kNotYetValid;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return HandshakeFailure::kUnknownCa;
    default:
      return HandshakeFailure::kBadCertificate;
  }
}

HandshakeFailure FromReason(int reason) {
  switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return HandshakeFailure::kNoCertificate;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return HandshakeFailure::kProtocolVersion;
    case SSL_R_NO_APPLICATION_PROTOCOL:
      return HandshakeFailure::kNoH2;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNKNOWN_PROTOCOL:
      return HandshakeFailure::kNotTls;
    default:
      return HandshakeFailure::kOther;
  }
}

// SSL_ERROR_WANT_READ or _WRITE: adds the poll event the session waits for
// to `events` and returns true. Any other error: false (the session is done).
bool AddWanted(int ssl_error, int16_t* events) {
  if (ssl_error == SSL_ERROR_WANT_READ) {
    *events |= POLLIN;
    return true;
  }
  if (ssl_error == SSL_ERROR_WANT_WRITE) {
    *events |= POLLOUT;
    return true;
  }
  return false;
}

// Waits for `events` on `fd` (or `stop_fd`) for at most `timeout_ms` (-1:
// forever). False if stop_fd fired or poll failed.
bool WaitFor(int fd, int16_t events, int stop_fd, int timeout_ms) {
  struct pollfd pfds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
  int n;
  do {
    n = ::poll(pfds, 2, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n >= 0 && pfds[1].revents == 0;
}

}  // namespace

const char* HandshakeFailureName(HandshakeFailure cause) {
  switch (cause) {
    case HandshakeFailure::kNoCertificate:
      return "no_certificate";
    case HandshakeFailure::kExpired:
      return "expired";
    case HandshakeFailure::kNotYetValid:
      return "not_yet_valid";
    case HandshakeFailure::kUnknownCa:
      return "unknown_ca";
    case HandshakeFailure::kBadCertificate:
      return "bad_certificate";
    case HandshakeFailure::kProtocolVersion:
      return "protocol_version";
    case HandshakeFailure::kNoH2:
      return "no_h2";
    case HandshakeFailure::kNotTls:
      return "not_tls";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kClosed:
      return "closed";
    case HandshakeFailure::kOther:
      return "other";
  }
  return "other";
}

std::string CertificateIdentity(X509* cert) {
  if (cert == nullptr) return "";
  std::string id = SanOfType(cert, GEN_URI);
  if (id.empty()) id = SanOfType(cert, GEN_DNS);
  if (!id.empty()) return id;
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return "";
  return AsnString(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
}

TlsConnection::TlsConnection(UniqueFd tcp, const SslCtxPtr& ctx)
    : tcp_(std::move(tcp)), ssl_(SSL_new(ctx.get())) {
  if (ssl_ != nullptr) SSL_set_fd(ssl_, tcp_.get_unowned());
}

TlsConnection::~TlsConnection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

TlsConnection::Failure TlsConnection::Classify(int ssl_error) const {
  const long verify = SSL_get_verify_result(ssl_);  // NOLINT
  const unsigned long e = ERR_peek_error();         // NOLINT
  std::string detail = TakeSslErrors("");
  if (verify != X509_V_OK) {
    return {FromVerifyResult(verify),
            absl::StrCat("client certificate: ",
                         X509_verify_cert_error_string(verify))};
  }
  if (ssl_error == SSL_ERROR_SSL && e != 0) {
    return {FromReason(ERR_GET_REASON(e)), detail};
  }
  return {HandshakeFailure::kClosed,
          detail.empty() ? "the client closed the connection" : detail};
}

std::optional<TlsConnection::Failure> TlsConnection::Handshake(
    absl::Time deadline, int stop_fd) {
  if (ssl_ == nullptr) {
    return Failure{HandshakeFailure::kOther, TakeSslErrors("SSL_new failed")};
  }
  for (;;) {
    ERR_clear_error();
    const int r = SSL_accept(ssl_);
    if (r == 1) return std::nullopt;
    const int err = SSL_get_error(ssl_, r);
    int16_t events = 0;
    if (!AddWanted(err, &events)) return Classify(err);
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0 ||
        !WaitFor(tcp_.get_unowned(), events, stop_fd, static_cast<int>(ms))) {
      return Failure{HandshakeFailure::kTimeout,
                     "the handshake did not finish in time"};
    }
  }
}

std::string TlsConnection::PeerIdentity() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return CertificateIdentity(cert);
}

// A loop, not callbacks: each turn tries all four moves (TLS to app, app to
// TLS, each as read then write) and sleeps in poll only when none made
// progress, waiting for exactly what the stuck moves asked for. A full
// buffer stops reading its source, so a slow side slows the other (TCP
// flow control end to end).
void TlsConnection::Pump(const UniqueFd& app, int stop_fd) {
  std::vector<char> down(kBufferBytes);  // TLS -> app
  std::vector<char> up(kBufferBytes);    // app -> TLS
  size_t down_at = 0, down_len = 0, up_at = 0, up_len = 0;
  const int app_fd = app.get_unowned();
  for (;;) {
    bool progress = false;
    int16_t net_events = 0, app_events = 0;
    if (down_len == 0) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, down.data(), static_cast<int>(down.size()));
      if (n > 0) {
        down_at = 0;
        down_len = static_cast<size_t>(n);
        progress = true;
      } else if (!AddWanted(SSL_get_error(ssl_, n), &net_events)) {
        return;  // close_notify, reset or a TLS error: gRPC sees EOF
      }
    }
    if (down_len > 0) {
      const ssize_t w = ::write(app_fd, down.data() + down_at, down_len);
      if (w > 0) {
        down_at += static_cast<size_t>(w);
        down_len -= static_cast<size_t>(w);
        progress = true;
      } else if (errno == EAGAIN) {
        app_events |= POLLOUT;
      } else {
        return;
      }
    }
    if (up_len == 0) {
      const ssize_t r = ::read(app_fd, up.data(), up.size());
      if (r > 0) {
        up_at = 0;
        up_len = static_cast<size_t>(r);
        progress = true;
      } else if (r == 0) {
        SSL_shutdown(ssl_);  // gRPC closed the connection
        return;
      } else if (errno == EAGAIN) {
        app_events |= POLLIN;
      } else {
        return;
      }
    }
    if (up_len > 0) {
      ERR_clear_error();
      const int n =
          SSL_write(ssl_, up.data() + up_at, static_cast<int>(up_len));
      if (n > 0) {
        up_at += static_cast<size_t>(n);
        up_len -= static_cast<size_t>(n);
        progress = true;
      } else if (!AddWanted(SSL_get_error(ssl_, n), &net_events)) {
        return;
      }
    }
    if (progress) continue;
    struct pollfd pfds[3] = {{tcp_.get_unowned(), net_events, 0},
                             {app_fd, app_events, 0},
                             {stop_fd, POLLIN, 0}};
    if (::poll(pfds, 3, -1) < 0 && errno != EINTR) return;
    if (pfds[2].revents != 0) return;
  }
}

}  // namespace devmem::agent
