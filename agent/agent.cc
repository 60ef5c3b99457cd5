#include "agent/agent.h"

#include <arpa/inet.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/agent_config.h"
#include "client/host_port.h"
#include "daemon/ops/listen_address.h"
#include "daemon/ops/rpc_observer.h"
#include "kernel/errno_status.h"

namespace devmem::agent {
namespace {

// A listening TCP socket on `text` ("IP:PORT"); port 0 picks a free one.
absl::StatusOr<UniqueFd> ListenTcp(const std::string& text,
                                   std::string* bound) {
  auto hp = ParseListen(text);
  if (!hp.ok()) return hp.status();
  sockaddr_storage ss{};
  socklen_t len = 0;
  const bool v6 = absl::StrContains(hp->ip, ':');
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(hp->port);
    ::inet_pton(AF_INET6, hp->ip.c_str(), &in6->sin6_addr);
    len = sizeof(*in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(hp->port);
    ::inet_pton(AF_INET, hp->ip.empty() ? "0.0.0.0" : hp->ip.c_str(),
                &in->sin_addr);
    len = sizeof(*in);
  }
  UniqueFd fd(
      ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  int one = 1;
  ::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot listen on ", text));
  }
  if (::listen(fd.get_unowned(), 1024) != 0) {
    return ErrnoStatus(errno, absl::StrCat("listen on ", text));
  }
  sockaddr_storage got{};
  socklen_t got_len = sizeof(got);
  ::getsockname(fd.get_unowned(), reinterpret_cast<sockaddr*>(&got), &got_len);
  const uint16_t port =
      ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
               : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  *bound = FormatHostPort(hp->ip.empty() ? "0.0.0.0" : hp->ip, port);
  return fd;
}

TlsFilePaths PathsOf(const fleet::v1::AgentConfig& c) {
  return {c.tls().ca_file(), c.tls().cert_file(), c.tls().key_file()};
}

}  // namespace

Agent::Agent(Options options)
    : options_(std::move(options)),
      contexts_(PathsOf(options_.config)),
      link_(options_.config.devmemd_socket(),
            absl::Milliseconds(options_.config.devmemd_timeout_ms())),
      host_(&link_, options_.version),
      streams_(options_.config.max_streams(),
               absl::Seconds(options_.config.stall_timeout_s())) {}

Agent::~Agent() { Stop(); }

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(Options options) {
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  absl::Status s = agent->Init();
  if (!s.ok()) return s;
  return agent;
}

absl::Status Agent::Init() {
  const fleet::v1::AgentConfig& c = options_.config;
  absl::Status tls = contexts_.Reload();
  if (!tls.ok()) return tls;
  auto listen_fd = ListenTcp(c.listen(), &address_);
  if (!listen_fd.ok()) return listen_fd.status();

  AgentMetrics::Sources sources;
  sources.version = options_.version;
  sources.streams = [this] { return streams_.open(); };
  sources.streams_stalled = [this] { return streams_.stalled_total(); };
  sources.connections = [this] {
    return listener_ != nullptr ? listener_->open_connections() : 0;
  };
  sources.devmemd = [this]() -> absl::StatusOr<devmem::v1::GetStatusResponse> {
    devmem::v1::GetStatusResponse resp;
    grpc::Status s =
        link_.stub()->GetStatus(link_.UnaryContext().get(), {}, &resp);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return resp;
  };
  metrics_ = std::make_unique<AgentMetrics>(std::move(sources));
  service_ = std::make_unique<FleetService>(
      FleetService::Deps{&peers_, &link_, &host_, &streams_, &trimmer_},
      RoleTable(c));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(c.max_request_bytes()));
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(MakeRpcObserverFactory(
      [m = metrics_.get()](absl::string_view method, absl::StatusCode code,
                           absl::Duration elapsed) {
        m->ObserveRpc(method, code, elapsed);
      }));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::InternalError("gRPC server did not start");
  }
  server_->GetHealthCheckService()->SetServingStatus("fleet.v1.Fleet", true);

  TlsListener::Options lo;
  lo.handshake_timeout = absl::Milliseconds(c.handshake_timeout_ms());
  lo.max_connections = c.max_connections();
  lo.on_refused = [this](const std::string& cause, const std::string& detail,
                         const std::string& peer) {
    metrics_->CountRefused(cause);
    if (options_.log) {
      options_.log(absl::StrCat("refused ", peer, ": ", cause,
                                detail.empty() ? "" : ": ", detail));
    }
  };
  listener_ = std::make_unique<TlsListener>(
      *std::move(listen_fd), &contexts_, server_.get(), &peers_, std::move(lo));
  absl::Status started = listener_->Start();
  if (!started.ok()) return started;

  return StartMetricsEndpoint();
}

absl::Status Agent::StartMetricsEndpoint() {
  const fleet::v1::AgentConfig& c = options_.config;
  if (c.metrics_listen().empty()) return absl::OkStatus();
  auto where = ParseLoopbackListen(c.metrics_listen(), "metrics_listen");
  if (!where.ok()) return where.status();
  std::map<std::string, HttpServer::Handler> routes;
  routes["/metrics"] = [this] {
    HttpServer::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->Serialize();
    return r;
  };
  routes["/healthz"] = [] { return HttpServer::Response{200, {}, "ok\n"}; };
  auto http = HttpServer::Start(*where, std::move(routes));
  if (!http.ok()) return http.status();
  http_ = *std::move(http);
  return absl::OkStatus();
}

absl::Status Agent::Reload() {
  std::optional<RoleTable> roles;
  if (!options_.config_path.empty()) {
    auto fresh = LoadAgentConfig(options_.config_path);
    if (!fresh.ok()) {
      metrics_->CountReload(false);
      return fresh.status();
    }
    roles.emplace(*fresh);
  }
  absl::Status tls = contexts_.Reload();
  metrics_->CountReload(tls.ok());
  if (!tls.ok()) return tls;
  if (roles.has_value()) service_->SetRoles(*std::move(roles));
  return absl::OkStatus();
}

void Agent::Stop() {
  http_.reset();
  if (listener_ != nullptr) listener_->Stop();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    server_->Wait();
  }
  listener_.reset();
  server_.reset();
}

std::string Agent::metrics_url() const {
  return http_ != nullptr ? http_->url() : "";
}

}  // namespace devmem::agent
