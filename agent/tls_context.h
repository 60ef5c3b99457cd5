#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace devmem::agent {

// Where the agent's PEM files are (fleet.v1.TlsFiles).
struct TlsFilePaths {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// A server SSL_CTX for fleet.v1: TLS 1.3 only, a client certificate
// required and verified against `ca_file`, ALPN "h2" (gRPC clients insist on
// it), no session tickets. INVALID_ARGUMENT names the file and what is wrong
// with it (unreadable, not PEM, key not matching the certificate).
absl::StatusOr<SslCtxPtr> LoadServerContext(const TlsFilePaths& paths);

// The current server context; Reload() swaps in a new one only if it loads
// completely, so a bad file on SIGHUP keeps the agent serving with the old
// one. Connections keep the context they started with. Thread-safe.
class TlsContextStore {
 public:
  explicit TlsContextStore(TlsFilePaths paths) : paths_(std::move(paths)) {}
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(mu_);
  SslCtxPtr Current() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const TlsFilePaths paths_;
  mutable absl::Mutex mu_;
  SslCtxPtr current_ ABSL_GUARDED_BY(mu_);
};

// The OpenSSL error queue as one line ("error:0A00010B:SSL routines::wrong
// version number; ..."), emptied; `fallback` if it was empty.
std::string TakeSslErrors(const std::string& fallback);

}  // namespace devmem::agent
