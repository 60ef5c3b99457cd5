#include "daemon/ops/listen_address.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace devmem {

absl::StatusOr<HttpListenAddress> ParseLoopbackListen(const std::string& text,
                                                      const std::string& what) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", text, "\": ", why,
        "; write a loopback address and port, e.g. \"127.0.0.1:9464\" or "
        "\"[::1]:9464\" (port 0 = any free port), or \"\" to turn it off"));
  };
  HttpListenAddress out;
  absl::string_view host;
  absl::string_view port;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) return bad("missing ']'");
    host = rest.substr(0, close);
    rest.remove_prefix(close + 1);
    if (!absl::ConsumePrefix(&rest, ":")) return bad("missing \":port\"");
    port = rest;
    out.ipv6 = true;
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return bad("missing \":port\"");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  int p = 0;
  if (!absl::SimpleAtoi(port, &p) || p < 0 || p > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  out.host.assign(host.data(), host.size());
  out.port = p;
  if (out.ipv6) {
    struct in6_addr a6;
    if (inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) {
      return bad("not an IPv6 address");
    }
    if (!IN6_IS_ADDR_LOOPBACK(&a6)) {
      return bad("not a loopback address (the endpoint has no authentication)");
    }
  } else {
    struct in_addr a4;
    if (inet_pton(AF_INET, out.host.c_str(), &a4) != 1) {
      return bad("not an IPv4 address (host names are not resolved)");
    }
    if ((ntohl(a4.s_addr) >> 24) != 127) {
      return bad("not a loopback address (the endpoint has no authentication)");
    }
  }
  return out;
}

}  // namespace devmem
