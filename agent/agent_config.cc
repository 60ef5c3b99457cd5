#include "agent/agent_config.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/host_port.h"
#include "daemon/base/text_proto.h"
#include "daemon/ops/listen_address.h"

namespace devmem::agent {
namespace {

absl::Status FieldError(absl::string_view source, absl::string_view field,
                        absl::string_view value, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": field ", field, " = \"", value, "\" ", problem));
}

absl::Status CheckIdentities(const fleet::v1::AgentConfig& c,
                             absl::string_view source) {
  absl::flat_hash_set<std::string> seen;
  const std::pair<const char*,
                  const google::protobuf::RepeatedPtrField<std::string>*>
      lists[] = {{"observers", &c.observers()},
                 {"launchers", &c.launchers()},
                 {"operators", &c.operators()}};
  for (const auto& [field, list] : lists) {
    for (int i = 0; i < list->size(); ++i) {
      const std::string& id = list->Get(i);
      const std::string name = absl::StrCat(field, "[", i, "]");
      if (id.empty() || id.size() > 256) {
        return FieldError(source, name, id,
                          "must be a certificate identity of 1..256 bytes "
                          "(devmemd keeps owners up to 256)");
      }
      if (!seen.insert(id).second) {
        return FieldError(source, name, id,
                          "is listed twice; give each identity one role (the "
                          "roles include the ones below them)");
      }
    }
  }
  return absl::OkStatus();
}

struct Range {
  const char* field;
  uint32_t value;
  uint32_t lo;
  uint32_t hi;
};

absl::Status CheckRanges(const fleet::v1::AgentConfig& c,
                         absl::string_view source) {
  const Range ranges[] = {
      {"handshake_timeout_ms", c.handshake_timeout_ms(), 100, 600000},
      {"max_connections", c.max_connections(), 1, 65536},
      {"max_streams", c.max_streams(), 1, 65536},
      {"stall_timeout_s", c.stall_timeout_s(), 1, 3600},
      {"devmemd_timeout_ms", c.devmemd_timeout_ms(), 100, 600000},
      {"max_request_bytes", c.max_request_bytes(), 1024, 16 << 20},
  };
  for (const Range& r : ranges) {
    if (r.value < r.lo || r.value > r.hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field ", r.field, " = ", r.value,
                       " is out of range; use ", r.lo, "..", r.hi));
    }
  }
  return absl::OkStatus();
}

void FillDefaults(fleet::v1::AgentConfig* c) {
  if (c->devmemd_socket().empty()) c->set_devmemd_socket(kDefaultDevmemdSocket);
  if (c->handshake_timeout_ms() == 0) c->set_handshake_timeout_ms(10000);
  if (c->max_connections() == 0) c->set_max_connections(1024);
  if (c->max_streams() == 0) c->set_max_streams(256);
  if (c->stall_timeout_s() == 0) c->set_stall_timeout_s(30);
  if (c->devmemd_timeout_ms() == 0) c->set_devmemd_timeout_ms(10000);
  if (c->max_request_bytes() == 0) c->set_max_request_bytes(65536);
}

}  // namespace

absl::StatusOr<HostPort> ParseListen(const std::string& text) {
  if (absl::EndsWith(text, ":0")) {
    auto hp = ParseHostPort(text.substr(0, text.size() - 2),
                            /*port_optional=*/true);
    if (!hp.ok() || hp->port != 0 || hp->ip.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not a numeric IP:PORT"));
    }
    return hp;
  }
  return ParseHostPort(text);
}

absl::StatusOr<fleet::v1::AgentConfig> ParseAgentConfig(
    absl::string_view text, absl::string_view source) {
  fleet::v1::AgentConfig c;
  absl::Status s = ParseTextProto(text, source, &c);
  if (!s.ok()) return s;
  FillDefaults(&c);
  if (c.listen().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": field listen is required (e.g. \"0.0.0.0:7443\")"));
  }
  auto listen = ParseListen(c.listen());
  if (!listen.ok()) {
    return FieldError(source, "listen", c.listen(),
                      "is not a numeric IP:PORT (e.g. \"0.0.0.0:7443\" or "
                      "\"[::]:7443\")");
  }
  for (const auto& [field, path] :
       {std::pair<const char*, std::string>{"tls.ca_file", c.tls().ca_file()},
        {"tls.cert_file", c.tls().cert_file()},
        {"tls.key_file", c.tls().key_file()}}) {
    if (path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": field ", field,
          " is required: mutual TLS needs the CA bundle, the agent's "
          "certificate and its key (docs/FLEET.md)"));
    }
  }
  if (c.devmemd_socket().front() != '/') {
    return FieldError(source, "devmemd_socket", c.devmemd_socket(),
                      "must be an absolute path");
  }
  if (!c.metrics_listen().empty()) {
    auto m = ParseLoopbackListen(
        c.metrics_listen(), absl::StrCat(source, ": field metrics_listen"));
    if (!m.ok()) return m.status();
  }
  s = CheckRanges(c, source);
  if (s.ok()) s = CheckIdentities(c, source);
  if (!s.ok()) return s;
  return c;
}

absl::StatusOr<fleet::v1::AgentConfig> LoadAgentConfig(
    const std::string& path) {
  std::string text;
  absl::Status read = ReadTextFile(path, &text);
  if (!read.ok()) return read;
  return ParseAgentConfig(text, path);
}

}  // namespace devmem::agent
