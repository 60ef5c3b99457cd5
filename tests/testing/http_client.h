#pragma once

// A minimal HTTP/1.0 client for tests: one request per connection, the whole
// answer read until the server closes. For talking to devmemd's metrics
// endpoint and to a Prometheus server on loopback. Header-only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kernel/unique_fd.h"

namespace devmem::testing {

struct HttpAnswer {
  int status = 0;
  std::string headers;  // the header block, lower-cased names
  std::string body;
};

// `method` `path` to host:port (IPv4 or IPv6 literal). Fails if nothing
// answers within `timeout`.
inline absl::StatusOr<HttpAnswer> HttpRequest(
    const std::string& host, int port, const std::string& path,
    const std::string& method = "GET",
    absl::Duration timeout = absl::Seconds(10)) {
  const bool v6 = absl::StrContains(host, ':');
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError("socket");
  int rc;
  if (v6) {
    struct sockaddr_in6 a = {};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) {
      return absl::InvalidArgumentError(host);
    }
    rc =
        ::connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      return absl::InvalidArgumentError(host);
    }
    rc =
        ::connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("connect ", host, ":", port, ": ", std::strerror(errno)));
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: ", host, ":", port,
                   "\r\nConnection: close\r\n\r\n");
  if (::send(fd.get_unowned(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return absl::UnavailableError("send");
  }
  std::string raw;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[16384];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(method, " ", path));
    }
    struct pollfd p = {fd.get_unowned(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <
        0) {
      if (errno == EINTR) continue;
      return absl::InternalError("poll");
    }
    const ssize_t n = ::recv(fd.get_unowned(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(
          absl::StrCat("recv: ", std::strerror(errno)));
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no header end in: ", raw));
  }
  HttpAnswer answer;
  answer.headers = absl::AsciiStrToLower(raw.substr(0, end));
  answer.body = raw.substr(end + 4);
  // "HTTP/1.1 200 OK"
  std::vector<std::string> first =
      absl::StrSplit(raw.substr(0, raw.find("\r\n")), ' ');
  if (first.size() < 2 || !absl::SimpleAtoi(first[1], &answer.status)) {
    return absl::DataLossError(absl::StrCat("bad status line in: ", raw));
  }
  return answer;
}

// Percent-encodes a query value (RFC 3986 unreserved characters kept).
inline std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace devmem::testing
