#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/fleet/v1/agent_config.pb.h"

namespace devmem::agent {

// Roles, each including the ones before it.
enum class Role { kNone, kObserver, kLauncher, kOperator };
const char* RoleName(Role role);

// The fleet.v1 RPCs, for authorization.
enum class FleetMethod {
  kGetHost,
  kListReservations,
  kWatch,
  kReserve,
  kRenew,
  kRelease,
  kCordon,
  kUncordon,
  kDrain,
  kApplyProfile,
  kConfirmProfile,
  kRevertProfile,
};
inline constexpr FleetMethod kAllFleetMethods[] = {
    FleetMethod::kGetHost,        FleetMethod::kListReservations,
    FleetMethod::kWatch,          FleetMethod::kReserve,
    FleetMethod::kRenew,          FleetMethod::kRelease,
    FleetMethod::kCordon,         FleetMethod::kUncordon,
    FleetMethod::kDrain,          FleetMethod::kApplyProfile,
    FleetMethod::kConfirmProfile, FleetMethod::kRevertProfile};
const char* FleetMethodName(FleetMethod method);
// The least role that may call `method`.
Role MinimumRole(FleetMethod method);

// Identity -> role, from AgentConfig's observers, launchers and operators.
class RoleTable {
 public:
  RoleTable() = default;
  explicit RoleTable(const fleet::v1::AgentConfig& config);

  Role RoleOf(absl::string_view identity) const;
  // OK, or PERMISSION_DENIED naming the identity, its role and the role
  // `method` needs.
  absl::Status Check(absl::string_view identity, FleetMethod method) const;

 private:
  absl::flat_hash_map<std::string, Role> roles_;
};

}  // namespace devmem::agent
