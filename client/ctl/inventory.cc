// devmemctl nics and status: what devmemd and the kernel report.
#include "client/ctl/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {
namespace ctl {
namespace {

// ---------------------------------------------------------------------------
// nics
// ---------------------------------------------------------------------------

std::vector<std::string> NicRow(const v1::Nic& nic) {
  std::string channels = "-";
  if (nic.has_channels()) {
    const v1::Channels& c = nic.channels();
    channels = absl::StrCat(Opt(c.has_combined_count(), c.combined_count()),
                            "/", Opt(c.has_rx_count(), c.rx_count()), "/",
                            Opt(c.has_tx_count(), c.tx_count()));
  }
  std::string ntuple = "-";
  if (nic.has_features()) {
    // ethtool's notation: "[fixed]" when the driver cannot change it.
    ntuple = absl::StrCat(nic.features().ntuple_active() ? "on" : "off",
                          nic.features().ntuple_hw() ? "" : " [fixed]");
  }
  std::string split = "-";
  if (nic.has_rings()) {
    switch (nic.rings().tcp_data_split()) {
      case v1::TCP_DATA_SPLIT_ENABLED:
        split = "enabled";
        break;
      case v1::TCP_DATA_SPLIT_DISABLED:
        split = "disabled";
        break;
      default:
        split = "unknown";
    }
  }
  std::string queues = "-";
  if (nic.queues_size() > 0) {
    int rx = 0, tx = 0;
    for (const v1::Queue& q : nic.queues()) {
      (q.type() == v1::Queue::TYPE_RX ? rx : tx)++;
    }
    queues = absl::StrCat(rx, "/", tx);
  }
  return {
      nic.name(),
      absl::StrCat(nic.ifindex()),
      Dash(nic.kind()),
      absl::StrCat(nic.admin_up() ? "up" : "down", "/", Dash(nic.oper_state())),
      Dash(nic.driver()),
      Dash(nic.pci_address()),
      nic.numa_node() < 0 ? "-" : absl::StrCat(nic.numa_node()),
      channels,
      ntuple,
      split,
      queues,
      nic.devmem_capable() ? "yes" : "no"};
}

// GPUs and their PCIe distance to each NIC, as `nvidia-smi topo -m` shows
// it (nothing when the host has none).
void PrintGpus(const v1::GetInventoryResponse& inventory) {
  if (inventory.gpus().empty()) return;
  std::vector<std::vector<std::string>> gpus = {
      {"GPU", "VENDOR:DEVICE", "CLASS", "DRIVER", "NUMA"}};
  for (const v1::Gpu& g : inventory.gpus()) {
    gpus.push_back({g.pci_address(),
                    absl::StrFormat("%04x:%04x", g.vendor_id(), g.device_id()),
                    absl::StrFormat("%06x", g.pci_class()), Dash(g.driver()),
                    g.numa_node() < 0 ? "-" : absl::StrCat(g.numa_node())});
  }
  absl::PrintF("\n");
  PrintTable(gpus);
  std::vector<std::vector<std::string>> matrix = {{"GPU\\NIC"}};
  for (const v1::Nic& nic : inventory.nics()) matrix[0].push_back(nic.name());
  for (const v1::Gpu& g : inventory.gpus()) {
    std::vector<std::string> row = {g.pci_address()};
    for (const v1::Nic& nic : inventory.nics()) {
      std::string d = "-";
      for (const v1::GpuNicDistance& t : inventory.topology()) {
        if (t.gpu() == g.pci_address() && t.nic() == nic.name()) {
          d = t.distance();
        }
      }
      row.push_back(d);
    }
    matrix.push_back(std::move(row));
  }
  absl::PrintF("\n");
  PrintTable(matrix);
  absl::PrintF(
      "\nPIX same PCIe switch, PXB several bridges, PHB same host bridge, "
      "NODE same NUMA node, SYS across NUMA nodes\n");
}

int RunNics(const std::vector<std::string>& args) {
  std::vector<std::string> names = args;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_nic), ',', absl::SkipEmpty())) {
    names.emplace_back(name);
  }
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("nics", session.status());
  absl::StatusOr<v1::GetInventoryResponse> inventory =
      (*session)->GetInventory(names);
  if (!inventory.ok()) {
    std::string hint = HintFor(inventory.status());
    if (inventory.status().code() == absl::StatusCode::kNotFound) {
      hint = "run `devmemctl nics` without names to list every NIC";
    }
    return Fail("nics", "GetInventory", inventory.status(), hint);
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*inventory));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "IFINDEX", "KIND", "STATE", "DRIVER", "PCI", "NUMA",
       "CHANNELS(c/rx/tx)", "NTUPLE", "TCP-DATA-SPLIT", "QUEUES(rx/tx)",
       "DEVMEM"}};
  for (const v1::Nic& nic : inventory->nics()) rows.push_back(NicRow(nic));
  PrintTable(rows);
  PrintGpus(*inventory);

  // Per NIC, why it falls short, in the kernel's own errno and words.
  for (const v1::Nic& nic : inventory->nics()) {
    std::vector<const v1::Capability*> lacking;
    for (const v1::Capability& cap : nic.capabilities()) {
      if (cap.support() != v1::SUPPORT_SUPPORTED) lacking.push_back(&cap);
    }
    if (lacking.empty() && nic.devmem_capable()) continue;
    absl::PrintF("\n%s: ", nic.name());
    if (nic.devmem_capable()) {
      absl::PrintF("devmem RX possible\n");
    } else {
      // devmem_missing entries start with the capability's name when one is
      // to blame; its details follow on its own line, so name it only once.
      std::vector<std::string> missing;
      for (const std::string& entry : nic.devmem_missing()) {
        const std::string head = entry.substr(0, entry.find(':'));
        const bool is_cap = std::any_of(
            lacking.begin(), lacking.end(),
            [&](const v1::Capability* c) { return c->name() == head; });
        missing.push_back(is_cap ? head : entry);
      }
      absl::PrintF(
          "devmem RX not possible%s\n",
          missing.empty()
              ? ""
              : absl::StrCat(", missing: ", absl::StrJoin(missing, ", ")));
    }
    for (const v1::Capability* cap : lacking) {
      absl::PrintF("  %s\n", CapabilityLine(*cap));
    }
  }
  if (!inventory->backend().empty()) {
    absl::PrintF("\nbackend: %s\n", inventory->backend());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

int RunStatus(const std::vector<std::string>&) {
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("status", session.status());
  absl::StatusOr<v1::GetStatusResponse> status = (*session)->GetStatus();
  if (!status.ok()) {
    return Fail("status", "GetStatus", status.status(),
                HintFor(status.status()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("%s\n", ToJson(*status));
    return kExitOk;
  }
  // Keys are the proto field names, so scripts can grep either output.
  absl::PrintF("version: %s\n", status->version());
  absl::PrintF("kernel_release: %s\n", status->kernel_release());
  absl::PrintF("uptime_seconds: %.1f\n", status->uptime_seconds());
  absl::PrintF("sessions: %u (including this one)\n", status->sessions());
  absl::PrintF("pending_tickets: %u\n", status->pending_tickets());
  absl::PrintF("backend: %s\n", status->backend());
  absl::PrintF("netdev_family: %s\n", status->netdev_family() ? "yes" : "no");
  absl::PrintF("netdev_ops: %s\n",
               status->netdev_ops().empty()
                   ? "-"
                   : absl::StrJoin(status->netdev_ops(), ","));
  absl::PrintF("ethtool_family: %s\n", status->ethtool_family() ? "yes" : "no");
  absl::PrintF("fds_handed_off: %u\n", status->fds_handed_off());
  absl::PrintF("peer_uid: %u\n", status->peer_uid());
  absl::PrintF("peer_gid: %u\n", status->peer_gid());
  absl::PrintF("session_id: %u\n", (*session)->session_id());
  absl::PrintF("detached_sessions: %u\n", status->detached_sessions());
  absl::PrintF("bindings: %u\n", status->bindings());
  absl::PrintF("rules: %u\n", status->rules());
  absl::PrintF("journal_error: %s\n",
               status->journal_error().empty() ? "-" : status->journal_error());
  absl::PrintF("journal: %s\n", status->journal_durability().empty()
                                    ? "-"
                                    : status->journal_durability());
  absl::PrintF("journal_syncs: %u\n", status->journal_syncs());
  absl::PrintF("health: %s\n",
               status->health().empty() ? "-" : status->health());
  for (const std::string& line : status->health_reasons()) {
    absl::PrintF("health_reason: %s\n", line);
  }
  for (const std::string& line : status->degraded()) {
    absl::PrintF("degraded: %s\n", line);
  }
  for (const std::string& line : status->recovery()) {
    absl::PrintF("recovery: %s\n", line);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> InventoryCommands() {
  return {
      {"nics",
       "[NIC...] [--nic=a,b]",
       "List NICs and their devmem capabilities.",
       "Show the NICs devmemd sees (ethtool/netdev facts as the kernel reports "
       "them) and, per NIC, each capability it lacks with the kernel's errno "
       "and reason. Names given as arguments or --nic restrict the list.",
       {{"nic", "Comma-separated NIC names to show (default all)."}},
       /*takes_positional=*/true,
       RunNics},
      {"status",
       "",
       "Show devmemd's status.",
       "Show devmemd's status as key: value lines (or --json).",
       {},
       /*takes_positional=*/false,
       RunStatus},
  };
}

}  // namespace ctl
}  // namespace devmem
