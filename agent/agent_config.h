#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_port.h"
#include "proto/fleet/v1/agent_config.pb.h"

namespace devmem::agent {

inline constexpr char kDefaultAgentConfig[] =
    "/etc/devmemd/devmem-agent.textproto";
inline constexpr char kDefaultDevmemdSocket[] = "/run/devmemd/grpc.sock";

// Parses, fills defaults and checks a fleet.v1.AgentConfig. INVALID_ARGUMENT
// names the source, the field and what to write instead.
absl::StatusOr<fleet::v1::AgentConfig> ParseAgentConfig(
    absl::string_view text, absl::string_view source);
absl::StatusOr<fleet::v1::AgentConfig> LoadAgentConfig(const std::string& path);

// AgentConfig.listen as an address: "IP:PORT", "[IPv6]:PORT"; port 0 takes
// a free port (the start-up line names it).
absl::StatusOr<HostPort> ParseListen(const std::string& text);

}  // namespace devmem::agent
