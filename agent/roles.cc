#include "agent/roles.h"

#include "absl/strings/str_cat.h"

namespace devmem::agent {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kNone:
      return "none";
    case Role::kObserver:
      return "observer";
    case Role::kLauncher:
      return "launcher";
    case Role::kOperator:
      return "operator";
  }
  return "none";
}

const char* FleetMethodName(FleetMethod method) {
  switch (method) {
    case FleetMethod::kGetHost:
      return "GetHost";
    case FleetMethod::kListReservations:
      return "ListReservations";
    case FleetMethod::kWatch:
      return "Watch";
    case FleetMethod::kReserve:
      return "Reserve";
    case FleetMethod::kRenew:
      return "Renew";
    case FleetMethod::kRelease:
      return "Release";
    case FleetMethod::kCordon:
      return "Cordon";
    case FleetMethod::kUncordon:
      return "Uncordon";
    case FleetMethod::kDrain:
      return "Drain";
    case FleetMethod::kApplyProfile:
      return "ApplyProfile";
    case FleetMethod::kConfirmProfile:
      return "ConfirmProfile";
    case FleetMethod::kRevertProfile:
      return "RevertProfile";
  }
  return "?";
}

Role MinimumRole(FleetMethod method) {
  switch (method) {
    case FleetMethod::kGetHost:
    case FleetMethod::kListReservations:
    case FleetMethod::kWatch:
      return Role::kObserver;
    case FleetMethod::kReserve:
    case FleetMethod::kRenew:
    case FleetMethod::kRelease:
      return Role::kLauncher;
    case FleetMethod::kCordon:
    case FleetMethod::kUncordon:
    case FleetMethod::kDrain:
    case FleetMethod::kApplyProfile:
    case FleetMethod::kConfirmProfile:
    case FleetMethod::kRevertProfile:
      return Role::kOperator;
  }
  return Role::kOperator;
}

RoleTable::RoleTable(const fleet::v1::AgentConfig& config) {
  for (const std::string& id : config.observers()) roles_[id] = Role::kObserver;
  for (const std::string& id : config.launchers()) roles_[id] = Role::kLauncher;
  for (const std::string& id : config.operators()) roles_[id] = Role::kOperator;
}

Role RoleTable::RoleOf(absl::string_view identity) const {
  auto it = roles_.find(identity);
  return it == roles_.end() ? Role::kNone : it->second;
}

absl::Status RoleTable::Check(absl::string_view identity,
                              FleetMethod method) const {
  const Role have = RoleOf(identity);
  const Role need = MinimumRole(method);
  if (have >= need) return absl::OkStatus();
  if (have == Role::kNone) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity \"", identity,
        "\" has no role on this agent; an operator adds it to observers, "
        "launchers or operators in the agent's config"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(FleetMethodName(method), " needs the ", RoleName(need),
                   " role; identity \"", identity, "\" is ", RoleName(have)));
}

}  // namespace devmem::agent
