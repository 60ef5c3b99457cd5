#pragma once

#include <string>

#include "agent/devmemd_link.h"
#include "proto/fleet/v1/fleet.pb.h"

namespace devmem::agent {

// Builds fleet.v1.Host: what the agent knows of the machine itself
// (hostname, machine-id, kernel), then devmemd's status, inventory, NIC
// states and reservation counts. With devmemd unreachable the answer still
// comes, with health "unreachable" and devmemd_error saying why.
class HostView {
 public:
  HostView(DevmemdLink* link, std::string agent_version,
           std::string machine_id_path = "/etc/machine-id");

  fleet::v1::Host Get() const;

 private:
  // devmemd's part; false (and devmemd_error set) if a call failed.
  bool FillFromDevmemd(fleet::v1::Host* host) const;

  DevmemdLink* link_;
  const std::string agent_version_;
  const std::string machine_id_path_;
};

}  // namespace devmem::agent
