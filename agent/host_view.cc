#include "agent/host_view.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/ops/metric_family.h"

namespace devmem::agent {
namespace {

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string{absl::StripAsciiWhitespace(line)};
}

void AddNic(const devmem::v1::Nic& nic, const devmem::v1::NicState* state,
            fleet::v1::Host* host) {
  fleet::v1::HostNic* out = host->add_nics();
  out->set_name(nic.name());
  out->set_pci_address(nic.pci_address());
  out->set_numa_node(nic.numa_node());
  out->set_oper_state(nic.oper_state());
  out->set_devmem_capable(nic.devmem_capable());
  *out->mutable_missing() = nic.devmem_missing();
  if (state == nullptr) return;
  out->set_profile_state(ProfileStateLabel(state->state()));
  out->set_profile_reason(state->reason());
  const auto total = static_cast<uint32_t>(state->pool_queues_size());
  const auto free = static_cast<uint32_t>(state->free_queues_size());
  const auto reserved = static_cast<uint32_t>(state->reserved_queues_size());
  out->set_pool_total(total);
  out->set_pool_free(free);
  out->set_pool_reserved(reserved);
  out->set_pool_bound(total >= free + reserved ? total - free - reserved : 0);
  out->set_degraded(state->degraded());
}

}  // namespace

HostView::HostView(DevmemdLink* link, std::string agent_version,
                   std::string machine_id_path)
    : link_(link),
      agent_version_(std::move(agent_version)),
      machine_id_path_(std::move(machine_id_path)) {}

fleet::v1::Host HostView::Get() const {
  fleet::v1::Host host;
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) == 0) host.set_hostname(name);
  host.set_machine_id(FirstLine(machine_id_path_));
  struct utsname u;
  if (::uname(&u) == 0) host.set_kernel(u.release);
  host.set_agent_version(agent_version_);
  if (!FillFromDevmemd(&host)) {
    host.set_health("unreachable");
    host.set_devmemd_reachable(false);
  }
  return host;
}

bool HostView::FillFromDevmemd(fleet::v1::Host* host) const {
  auto* stub = link_->stub();
  auto fail = [&](const char* what, const grpc::Status& s) {
    host->set_devmemd_error(
        absl::StrCat(what, ": ", link_->Relay(s).error_message()));
    return false;
  };
  devmem::v1::GetStatusResponse status;
  grpc::Status s = stub->GetStatus(link_->UnaryContext().get(), {}, &status);
  if (!s.ok()) return fail("GetStatus", s);
  devmem::v1::GetInventoryResponse inventory;
  s = stub->GetInventory(link_->UnaryContext().get(), {}, &inventory);
  if (!s.ok()) return fail("GetInventory", s);
  devmem::v1::GetNicStateResponse states;
  s = stub->GetNicState(link_->UnaryContext().get(), {}, &states);
  if (!s.ok()) return fail("GetNicState", s);

  host->set_devmemd_reachable(true);
  host->set_devmemd_version(status.version());
  host->set_health(status.health());
  *host->mutable_health_reasons() = status.health_reasons();
  *host->mutable_cordon() = status.cordon();
  absl::flat_hash_map<std::string, const devmem::v1::NicState*> by_name;
  for (const auto& st : states.nics()) by_name[st.nic()] = &st;
  for (const auto& nic : inventory.nics()) {
    auto it = by_name.find(nic.name());
    AddNic(nic, it == by_name.end() ? nullptr : it->second, host);
  }
  *host->mutable_gpus() = inventory.gpus();
  *host->mutable_topology() = inventory.topology();
  host->set_reservations_active(status.reservations_active());
  host->set_reservations_expired(status.reservations_expired());
  return true;
}

}  // namespace devmem::agent
