#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/ops/listen_address.h"

struct mg_context;
struct mg_connection;

namespace devmem {

// A small HTTP/1.1 server (civetweb) for /metrics, /healthz and /readyz: GET
// and HEAD only, each path answered by a handler. Handlers run on civetweb's
// worker threads, concurrently.
class HttpServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  // Starts serving `routes` (exact paths) on `address`. Fails with the
  // reason (e.g. the port is taken) and leaves nothing running.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpListenAddress& address, std::map<std::string, Handler> routes);
  ~HttpServer();  // stops serving; waits for handlers in progress
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }  // the bound port (useful with :0)
  // "http://127.0.0.1:9464" or "http://[::1]:9464".
  std::string url() const { return url_; }

 private:
  HttpServer() = default;
  static int Dispatch(mg_connection* conn, void* self);

  mg_context* ctx_ = nullptr;
  std::map<std::string, Handler> routes_;
  int port_ = 0;
  std::string host_;
  std::string url_;
};

}  // namespace devmem
