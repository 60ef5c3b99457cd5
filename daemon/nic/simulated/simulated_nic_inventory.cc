#include "daemon/nic/simulated/simulated_nic_inventory.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace devmem {
namespace {

// Capabilities a simulated NIC always has (the probes come on top).
constexpr const char* kSimulatedCapabilities[] = {
    "ntuple", "tcp_data_split", "hds_thresh", "bind_rx", "bind_tx",
    "rss",    "ntuple_rules"};

constexpr char kReason[] = "simulated";

Capability Probed(std::string name, const absl::Status& status) {
  Capability cap = CapabilityFromStatus(std::move(name), status);
  if (status.ok()) cap.reason = kReason;
  return cap;
}

LinkInfo MadeUpLink(const SimulatedNicSpec& spec) {
  LinkInfo link;
  link.name = spec.name;
  link.ifindex = spec.ifindex;
  link.kind = "simulated";
  link.mtu = 1500;
  link.admin_up = true;
  link.oper_state = "up";
  link.driver = "simulated";
  return link;
}

}  // namespace

SimulatedNicInventory::SimulatedNicInventory(std::unique_ptr<NicInventory> base,
                                             std::shared_ptr<SimulatedNic> nic)
    : base_(std::move(base)), nic_(std::move(nic)) {}

absl::StatusOr<std::unique_ptr<SimulatedNicInventory>>
SimulatedNicInventory::Create(std::unique_ptr<NicInventory> base,
                              std::shared_ptr<SimulatedNic> nic) {
  if (nic == nullptr) {
    return absl::InvalidArgumentError("simulated inventory without a NIC");
  }
  if (base != nullptr && !nic->specs().empty()) {
    absl::StatusOr<std::vector<NicInfo>> links = base->List();
    if (!links.ok()) return links.status();
    for (const SimulatedNicSpec& spec : nic->specs()) {
      for (const NicInfo& link : *links) {
        const bool same_name = link.link.name == spec.name;
        const bool same_index = link.link.ifindex == spec.ifindex;
        if (same_name && !same_index) {
          return absl::FailedPreconditionError(absl::StrCat(
              "simulated NIC ", spec.name, " has ifindex ", spec.ifindex,
              " but the link it overlays has ifindex ", link.link.ifindex));
        }
        if (!same_name && same_index) {
          return absl::FailedPreconditionError(absl::StrCat(
              "simulated NIC ", spec.name, " has ifindex ", spec.ifindex,
              ", which is the link ", link.link.name, "'s"));
        }
      }
    }
  }
  return std::unique_ptr<SimulatedNicInventory>(
      new SimulatedNicInventory(std::move(base), std::move(nic)));
}

absl::Status SimulatedNicInventory::AssignIfIndexes(
    NicInventory* base, std::vector<SimulatedNicSpec>* specs) {
  std::set<uint32_t> used;
  std::vector<NicInfo> links;
  if (base != nullptr) {
    absl::StatusOr<std::vector<NicInfo>> listed = base->List();
    if (!listed.ok()) return listed.status();
    links = *std::move(listed);
  }
  for (const NicInfo& link : links) used.insert(link.link.ifindex);
  for (const SimulatedNicSpec& spec : *specs) {
    if (spec.ifindex != 0) used.insert(spec.ifindex);
  }
  uint32_t next = kFirstMadeUpIfIndex;
  for (SimulatedNicSpec& spec : *specs) {
    if (spec.ifindex != 0) continue;
    for (const NicInfo& link : links) {
      if (link.link.name == spec.name) spec.ifindex = link.link.ifindex;
    }
    if (spec.ifindex != 0) continue;
    while (used.count(next) != 0) ++next;
    spec.ifindex = next;
    used.insert(next);
  }
  return absl::OkStatus();
}

NicInfo SimulatedNicInventory::Simulate(LinkInfo link,
                                        const SimulatedNicSpec& spec) {
  NicInfo nic;
  nic.link = std::move(link);
  const uint32_t ifindex = spec.ifindex;

  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(ifindex);
  if (channels.ok()) nic.channels = *channels;
  nic.capabilities.push_back(Probed("channels", channels.status()));

  absl::StatusOr<RingsInfo> rings = nic_->GetRings(ifindex);
  if (rings.ok()) nic.rings = *rings;
  nic.capabilities.push_back(Probed("rings", rings.status()));

  absl::StatusOr<FeaturesInfo> features = nic_->GetFeatures(ifindex);
  if (features.ok()) nic.features = *features;
  nic.capabilities.push_back(Probed("features", features.status()));

  absl::StatusOr<std::vector<QueueInfo>> queues = nic_->GetQueues(ifindex);
  nic.capabilities.push_back(Probed("queues", queues.status()));
  if (queues.ok()) nic.queues = *std::move(queues);

  for (const char* name : kSimulatedCapabilities) {
    nic.capabilities.push_back(Probed(name, absl::OkStatus()));
  }
  return nic;
}

absl::StatusOr<std::vector<NicInfo>> SimulatedNicInventory::List() {
  std::vector<NicInfo> nics;
  if (base_ != nullptr) {
    absl::StatusOr<std::vector<NicInfo>> listed = base_->List();
    if (!listed.ok()) return listed.status();
    nics = *std::move(listed);
  }
  std::set<std::string> overlaid;
  for (NicInfo& nic : nics) {
    const SimulatedNicSpec* spec = nic_->FindSpec(nic.link.name);
    if (spec == nullptr) continue;
    nic = Simulate(std::move(nic.link), *spec);
    overlaid.insert(spec->name);
  }
  for (const SimulatedNicSpec& spec : nic_->specs()) {
    if (overlaid.count(spec.name) == 0) {
      nics.push_back(Simulate(MadeUpLink(spec), spec));
    }
  }
  return nics;
}

absl::StatusOr<NicInfo> SimulatedNicInventory::Get(absl::string_view name) {
  const SimulatedNicSpec* spec = nic_->FindSpec(name);
  absl::StatusOr<NicInfo> base_nic =
      base_ != nullptr ? base_->Get(name)
                       : absl::StatusOr<NicInfo>(absl::NotFoundError(""));
  if (spec == nullptr) {
    if (absl::IsNotFound(base_nic.status())) {
      return NotFound(name, base_nic.status());
    }
    return base_nic;
  }
  if (base_nic.ok()) return Simulate(std::move(base_nic->link), *spec);
  if (absl::IsNotFound(base_nic.status())) {
    return Simulate(MadeUpLink(*spec), *spec);
  }
  return base_nic.status();
}

absl::StatusOr<uint32_t> SimulatedNicInventory::IfIndex(
    absl::string_view name) {
  if (const SimulatedNicSpec* spec = nic_->FindSpec(name); spec != nullptr) {
    return spec->ifindex;
  }
  if (base_ == nullptr) return NotFound(name, absl::NotFoundError(""));
  absl::StatusOr<uint32_t> index = base_->IfIndex(name);
  if (absl::IsNotFound(index.status())) return NotFound(name, index.status());
  return index;
}

std::string SimulatedNicInventory::BackendName() const {
  if (base_ == nullptr) return "simulated";
  return absl::StrCat("simulated (over ", base_->BackendName(), ")");
}

absl::Status SimulatedNicInventory::NotFound(absl::string_view name,
                                             const absl::Status& base_status) {
  std::vector<std::string> names;
  for (const SimulatedNicSpec& spec : nic_->specs()) names.push_back(spec.name);
  const std::string simulated =
      absl::StrCat("simulated NICs: ", absl::StrJoin(names, ", "));
  // The base's message already names the host's NICs.
  if (!base_status.message().empty()) {
    return absl::NotFoundError(
        absl::StrCat(base_status.message(), "; ", simulated));
  }
  return absl::NotFoundError(
      absl::StrCat("no NIC named \"", name, "\"; ", simulated));
}

}  // namespace devmem
