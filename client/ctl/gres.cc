// devmemctl gres-conf: devmemd's live devmem queue pools as Slurm's GRES
// devmemq, the gres.conf lines and slurm.conf's Gres= for this host, with
// Cores= from each NIC's NUMA node (docs/SLURM.md).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/struct.pb.h>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/ctl/cli.h"
#include "client/ctl/slurm_cores.h"
#include "client/libdevmem.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_FLAG(std::string, node_name, "",
          "gres-conf: the node's NodeName in slurm.conf (default: the short "
          "host name).");
ABSL_FLAG(bool, typed, false,
          "gres-conf: one Type=<nic> per NIC even with one NIC (always so "
          "with several).");
ABSL_FLAG(std::string, sysfs, "/sys",
          "gres-conf: where sysfs is (CPU topology for Cores=).");

namespace devmem {
namespace ctl {
namespace {

struct GresNic {
  std::string nic;
  int pool = 0;
  int numa = -1;
  std::string cores;  // Slurm core indices; "" if unknown
};

absl::StatusOr<std::vector<GresNic>> PoolNics(Session& session) {
  absl::StatusOr<v1::GetNicStateResponse> state = session.GetNicState();
  if (!state.ok()) return state.status();
  std::vector<GresNic> nics;
  for (const v1::NicState& nic : state->nics()) {
    if (nic.pool_queues().empty()) continue;
    GresNic n;
    n.nic = nic.nic();
    n.pool = nic.pool_queues_size();
    nics.push_back(std::move(n));
  }
  if (nics.empty()) return nics;
  std::vector<std::string> names;
  names.reserve(nics.size());
  for (const GresNic& n : nics) names.push_back(n.nic);
  absl::StatusOr<v1::GetInventoryResponse> inv = session.GetInventory(names);
  if (!inv.ok()) return inv.status();
  for (GresNic& n : nics) {
    for (const v1::Nic& k : inv->nics()) {
      if (k.name() == n.nic) n.numa = k.numa_node();
    }
    if (n.numa >= 0) {
      n.cores = SlurmCoresOfNode(absl::GetFlag(FLAGS_sysfs), n.numa);
    }
  }
  return nics;
}

std::string NodeName() {
  std::string name = absl::GetFlag(FLAGS_node_name);
  if (!name.empty()) return name;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string{
      absl::string_view(host).substr(0, absl::string_view(host).find('.'))};
}

void PrintJson(const std::string& node, const std::vector<GresNic>& nics,
               const std::vector<std::string>& lines, const std::string& gres) {
  google::protobuf::Struct out;
  auto& f = *out.mutable_fields();
  f["node"].set_string_value(node);
  f["slurm_conf_gres"].set_string_value(gres);
  for (const std::string& line : lines) {
    f["gres_conf"].mutable_list_value()->add_values()->set_string_value(line);
  }
  for (const GresNic& n : nics) {
    google::protobuf::Struct nic;
    auto& g = *nic.mutable_fields();
    g["nic"].set_string_value(n.nic);
    g["count"].set_number_value(n.pool);
    g["numa_node"].set_number_value(n.numa);
    g["cores"].set_string_value(n.cores);
    *f["nics"].mutable_list_value()->add_values()->mutable_struct_value() = nic;
  }
  absl::PrintF("%s\n", ToJson(out));
}

int RunGresConf(const std::vector<std::string>&) {
  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("gres-conf", session.status());
  absl::StatusOr<std::vector<GresNic>> nics = PoolNics(**session);
  if (!nics.ok()) return Fail("gres-conf", "GetNicState", nics.status());
  if (nics->empty()) {
    return Fail("gres-conf", "no devmem pool",
                absl::FailedPreconditionError(
                    "devmemd has no NIC with a devmem queue pool"),
                "give a nic_profiles entry pool_queues (docs/CONFIG.md)");
  }
  const std::string node = NodeName();
  const bool typed = absl::GetFlag(FLAGS_typed) || nics->size() > 1;
  std::vector<std::string> lines;
  std::vector<std::string> gres;
  for (const GresNic& n : *nics) {
    lines.push_back(absl::StrCat(
        "NodeName=", node, " Name=devmemq", typed ? " Type=" + n.nic : "",
        " Count=", n.pool, n.cores.empty() ? "" : " Cores=" + n.cores));
    gres.push_back(absl::StrCat("devmemq:", typed ? n.nic + ":" : "", n.pool));
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(node, *nics, lines, absl::StrJoin(gres, ","));
    return kExitOk;
  }
  absl::PrintF("# gres.conf (devmemctl gres-conf: devmemd's live pools)\n");
  for (size_t i = 0; i < lines.size(); ++i) {
    const GresNic& n = (*nics)[i];
    absl::PrintF(
        "%s\n# ^ %s: %d pool queues, %s\n", lines[i], n.nic, n.pool,
        n.numa < 0 ? "NUMA node unknown, so no Cores="
                   : absl::StrCat("NUMA node ", n.numa,
                                  n.cores.empty() ? " (CPU topology unreadable)"
                                                  : ", its cores"));
  }
  absl::PrintF(
      "# slurm.conf: GresTypes=devmemq, and on this node's line:\n"
      "#   NodeName=%s ... Gres=%s\n",
      node, absl::StrJoin(gres, ","));
  return kExitOk;
}

}  // namespace

std::vector<Command> GresCommands() {
  return {{"gres-conf",
           "[--node_name=NAME] [--typed] [--json]",
           "Print Slurm's gres.conf lines for this host's devmem pools.",
           "Read devmemd's live devmem queue pools and print them as Slurm's "
           "generic resource devmemq: one gres.conf line per NIC (Count= the "
           "pool's queues, Cores= the cores of the NIC's NUMA node when "
           "known), and the Gres= for the node's slurm.conf line. With "
           "several NICs each gets Type=<nic>, and devmem-slurm reserves a "
           "typed devmemq on that NIC. docs/SLURM.md.",
           {{"node_name"}, {"typed"}, {"sysfs"}},
           /*takes_positional=*/false,
           RunGresConf}};
}

}  // namespace ctl
}  // namespace devmem
