#include "client/fleet/connections.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/fleet/host_list.h"

namespace devmem::fleetctl {
namespace {

// A failed connect is tried again this soon (CallWithin's second try).
constexpr int kReconnectMs = 100;

absl::Status Fill(std::string* field, const char* flag, const char* env,
                  bool required) {
  if (!field->empty()) return absl::OkStatus();
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') {
    *field = v;
    return absl::OkStatus();
  }
  if (!required) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "no ", flag, ": give --", flag, " or set ", env,
      " (mutual TLS needs the fleet CA, this launcher's certificate and key)"));
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": cannot read it"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (!absl::StrContains(ss.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": not a PEM file"));
  }
  return ss.str();
}

// An address gRPC can dial without a resolver round: "ipv4:10.0.0.5:7443"
// or "ipv6:[fd00::5]:7443" for literals; names go through DNS as given.
std::string Target(const std::string& host_port) {
  const std::string host = HostName(host_port);
  in6_addr v6;
  in_addr v4;
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return absl::StrCat("ipv4:", host_port);
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return absl::StrCat("ipv6:", host_port);
  }
  return host_port;
}

}  // namespace

absl::StatusOr<TlsFiles> ResolveTlsFiles(TlsFiles t) {
  absl::Status s = Fill(&t.ca_file, "ca", "DEVMEM_FLEET_CA", true);
  if (s.ok()) s = Fill(&t.cert_file, "cert", "DEVMEM_FLEET_CERT", true);
  if (s.ok()) s = Fill(&t.key_file, "key", "DEVMEM_FLEET_KEY", true);
  if (s.ok()) {
    s = Fill(&t.server_name, "server_name", "DEVMEM_FLEET_SERVER_NAME", false);
  }
  if (!s.ok()) return s;
  return t;
}

absl::StatusOr<std::unique_ptr<Connections>> Connections::Open(
    const std::vector<std::string>& hosts, const TlsFiles& tls) {
  grpc::SslCredentialsOptions opts;
  auto ca = ReadPem(tls.ca_file, "--ca");
  if (!ca.ok()) return ca.status();
  auto cert = ReadPem(tls.cert_file, "--cert");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(tls.key_file, "--key");
  if (!key.ok()) return key.status();
  opts.pem_root_certs = *ca;
  opts.pem_cert_chain = *cert;
  opts.pem_private_key = *key;
  auto creds = grpc::SslCredentials(opts);
  auto c = std::unique_ptr<Connections>(new Connections());
  for (const std::string& h : hosts) {
    grpc::ChannelArguments args;
    if (!tls.server_name.empty()) {
      args.SetSslTargetNameOverride(tls.server_name);
    }
    // Each host on its own connection, even when two resolve alike.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is also the least time a
    // connect (TCP, TLS, HTTP/2 settings) may take, 20 s by default.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectMs);
    c->hosts_.push_back(h);
    c->channels_.push_back(grpc::CreateCustomChannel(Target(h), creds, args));
    c->stubs_.push_back(fleet::v1::Fleet::NewStub(c->channels_.back()));
  }
  return c;
}

void ParallelFor(size_t n, size_t in_flight,
                 const std::function<void(size_t)>& fn,
                 const std::function<void(size_t)>& done) {
  std::atomic<size_t> next{0};
  std::atomic<size_t> finished{0};
  const size_t workers = std::max<size_t>(1, std::min(n, in_flight));
  std::vector<std::thread> threads;
  threads.reserve(workers);
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) {
        fn(i);
        const size_t count = ++finished;
        if (done) done(count);
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

std::unique_ptr<grpc::ClientContext> ContextWithin(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(
      absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
      ": ", s.error_message());
}

}  // namespace devmem::fleetctl
