#include "agent/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace devmem::agent {
namespace {

constexpr unsigned char kH2[] = {'h', '2'};

int SelectH2(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
             const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  // `in` is a list of length-prefixed protocol names.
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof(kH2) && std::memcmp(in + i + 1, kH2, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // gRPC speaks h2 only
}

absl::Status Readable(const std::string& field, const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.", field, " is empty; name a PEM file"));
  }
  std::ifstream f(path);
  if (!f) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.", field, " = \"", path,
                     "\": cannot read it: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status FileError(const std::string& field, const std::string& path,
                       const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("tls.", field, " = \"", path, "\": ", what, " (",
                   TakeSslErrors("no detail"), ")"));
}

}  // namespace

std::string TakeSslErrors(const std::string& fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {  // NOLINT(google-runtime-int)
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

absl::StatusOr<SslCtxPtr> LoadServerContext(const TlsFilePaths& paths) {
  ERR_clear_error();
  for (const auto& [field, path] :
       {std::pair<std::string, std::string>{"ca_file", paths.ca_file},
        {"cert_file", paths.cert_file},
        {"key_file", paths.key_file}}) {
    absl::Status ok = Readable(field, path);
    if (!ok.ok()) return ok;
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx == nullptr) {
    return absl::InternalError(TakeSslErrors("SSL_CTX_new failed"));
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  // No resumption: every connection presents and verifies its certificate,
  // so a revoked or expired client cannot ride an old session.
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), paths.cert_file.c_str()) !=
      1) {
    return FileError("cert_file", paths.cert_file,
                     "not a PEM certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), paths.key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1) {
    return FileError("key_file", paths.key_file, "not a PEM private key");
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return FileError(
        "key_file", paths.key_file,
        absl::StrCat("does not match the certificate in ", paths.cert_file));
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), paths.ca_file.c_str(),
                                    nullptr) != 1) {
    return FileError("ca_file", paths.ca_file, "not a PEM CA bundle");
  }
  // The CA names sent in the CertificateRequest, so clients with several
  // certificates pick the right one.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(paths.ca_file.c_str());
  if (names != nullptr) SSL_CTX_set_client_CA_list(ctx.get(), names);
  SSL_CTX_set_verify(
      ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), 8);
  SSL_CTX_set_alpn_select_cb(ctx.get(), SelectH2, nullptr);
  return ctx;
}

absl::Status TlsContextStore::Reload() {
  auto ctx = LoadServerContext(paths_);
  if (!ctx.ok()) return ctx.status();
  absl::MutexLock lock(&mu_);
  current_ = *std::move(ctx);
  return absl::OkStatus();
}

SslCtxPtr TlsContextStore::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace devmem::agent
