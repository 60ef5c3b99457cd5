#include "client/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace devmem {
namespace {

bool IsNumericIp(const std::string& ip) {
  in6_addr buf;
  return inet_pton(AF_INET, ip.c_str(), &buf) == 1 ||
         inet_pton(AF_INET6, ip.c_str(), &buf) == 1;
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       bool port_optional) {
  HostPort out;
  absl::string_view host;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("address '", text, "': missing ']'"));
    }
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat("address '", text, "': expected ':PORT' after ']'"));
      }
      port = rest.substr(1);
      has_port = true;
    }
  } else if (text.find(':') != text.rfind(':')) {
    // Two or more colons and no brackets: a bare IPv6 address. Requiring
    // brackets before a port avoids guessing whether "::1:80" has a port.
    host = text;
  } else {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    if (colon != absl::string_view::npos) {
      port = text.substr(colon + 1);
      has_port = true;
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", text, "': empty IP"));
  }
  out.ip = std::string(host);
  if (!IsNumericIp(out.ip)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address '", text, "': '", out.ip,
        "' is not a numeric IPv4/IPv6 address (names are not resolved)"));
  }
  if (!has_port) {
    if (port_optional) return out;
    return absl::InvalidArgumentError(absl::StrCat(
        "address '", text, "': missing port (use IP:PORT or [IPv6]:PORT)"));
  }
  uint32_t value = 0;
  if (!absl::SimpleAtoi(port, &value) || value == 0 || value > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address '", text, "': port '", port, "' is not in 1..65535"));
  }
  out.port = static_cast<uint16_t>(value);
  return out;
}

std::string FormatHostPort(absl::string_view ip, uint32_t port) {
  if (ip.empty()) return absl::StrCat("*:", port);
  if (absl::StrContains(ip, ':')) return absl::StrCat("[", ip, "]:", port);
  return absl::StrCat(ip, ":", port);
}

}  // namespace devmem
