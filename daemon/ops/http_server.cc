#include "daemon/ops/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace devmem {

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpListenAddress& address, std::map<std::string, Handler> routes) {
  static const int init = mg_init_library(0);
  (void)init;
  // Feature 8: IPv6 (civetweb.h mg_check_feature). Debian's build lacks it.
  if (address.ipv6 && mg_check_feature(8) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot serve metrics on [", address.host, "]:", address.port,
        ": this build's HTTP library (civetweb) has no IPv6; use "
        "\"127.0.0.1:",
        address.port, "\" in metrics_listen / --metrics_listen"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->routes_ = std::move(routes);
  const std::string ports =
      address.ipv6 ? absl::StrCat("[", address.host, "]:", address.port)
                   : absl::StrCat(address.host, ":", address.port);
  // No document_root: no files are served, only the registered handlers
  // answer. Scrapes and probes are small and few: two threads.
  const char* options[] = {
      "listening_ports",    ports.c_str(), "num_threads", "2",
      "request_timeout_ms", "10000",       nullptr};
  struct mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  struct mg_init_data init_data;
  std::memset(&init_data, 0, sizeof(init_data));
  init_data.callbacks = &callbacks;
  init_data.user_data = server.get();
  init_data.configuration_options = options;
  unsigned code = 0;
  char text[256] = {0};
  struct mg_error_data error;
  error.code = &code;
  error.text = text;
  error.text_buffer_size = sizeof(text);
  server->ctx_ = mg_start2(&init_data, &error);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", ports, ": ",
                     text[0] != '\0' ? text : "civetweb failed to start",
                     " (is another process on that port? change "
                     "metrics_listen / --metrics_listen)"));
  }
  for (const auto& [path, handler] : server->routes_) {
    mg_set_request_handler(server->ctx_, path.c_str(), &HttpServer::Dispatch,
                           server.get());
  }
  struct mg_server_port bound[4];
  std::memset(bound, 0, sizeof(bound));
  const int n = mg_get_server_ports(server->ctx_, 4, bound);
  server->port_ = n > 0 ? bound[0].port : address.port;
  server->host_ = address.host;
  server->url_ =
      address.ipv6 ? absl::StrCat("http://[", address.host, "]:", server->port_)
                   : absl::StrCat("http://", address.host, ":", server->port_);
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_ == nullptr) return;
  // civetweb's listener thread polls in 2 s quanta once it has served a
  // connection, and mg_stop() waits for it. A connection to our own port
  // wakes it at once, so stopping takes milliseconds instead of 2 s.
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    mg_stop(ctx_);
    stopped = true;
  });
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool loopback4 = absl::StartsWith(url_, "http://127.");
  if (loopback4) {
    (void)inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
  }
  while (loopback4 && !stopped) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      ::close(fd);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  stopper.join();
}

int HttpServer::Dispatch(mg_connection* conn, void* self) {
  auto* server = static_cast<HttpServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string method = info->request_method;
  const std::string path = info->local_uri != nullptr ? info->local_uri : "";
  Response resp;
  auto it = server->routes_.find(path);
  if (it == server->routes_.end()) {
    resp.status = 404;
    resp.body = "not found\n";
  } else if (method != "GET" && method != "HEAD") {
    resp.status = 405;
    resp.body = "only GET and HEAD\n";
  } else {
    resp = it->second();
  }
  mg_response_header_start(conn, resp.status);
  mg_response_header_add(conn, "Content-Type", resp.content_type.c_str(), -1);
  const std::string length = absl::StrCat(resp.body.size());
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  if (resp.status == 405) {
    mg_response_header_add(conn, "Allow", "GET, HEAD", -1);
  }
  mg_response_header_send(conn);
  if (method != "HEAD" && !resp.body.empty()) {
    mg_write(conn, resp.body.data(), resp.body.size());
  }
  // Returning the status tells civetweb the request was answered.
  return resp.status;
}

}  // namespace devmem
