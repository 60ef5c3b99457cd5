#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// NIC profiles (DESIGN.md "The job", step 1): what a NIC must offer, the
// settings devmem needs, and how to put a NIC back. Pure functions over a
// NicControl; NicManager decides when they run. Each returns the first
// kernel error with its errno and extack (ErrnoStatus).

// A profile resolved against the NIC it names.
struct ProfilePlan {
  std::string nic;
  uint32_t ifindex = 0;
  devmem::v1::RssMode rss_mode = devmem::v1::RSS_MODE_EXCLUDE_POOL;
  // The RX queue count after the profile's channel change (if any).
  uint32_t rx_queues = 0;
  std::vector<uint32_t> pool;  // sorted
  std::optional<uint32_t> combined_channels;
};

// RX queues a NIC has: rx_count + combined_count (as the kernel's ncdevmem
// counts them, tools/testing/selftests/drivers/net/hw/ncdevmem.c).
uint32_t RxQueueCount(const ChannelsInfo& channels);

// The capabilities devmem needs that `control` lacks on `ifindex`, each with
// the kernel's errno and message; empty if the NIC can do it. Only reads.
std::vector<Capability> ProbeDevmem(NicControl& control, uint32_t ifindex);

// Resolves `profile` for a NIC with `channels`. INVALID_ARGUMENT if the pool
// does not fit (a queue out of range, or no queue left for ordinary traffic).
absl::StatusOr<ProfilePlan> PlanProfile(const devmem::v1::NicProfile& profile,
                                        uint32_t ifindex,
                                        const ChannelsInfo& channels);

// Reads the settings a profile touches; with `steering` false (a
// header_split_only profile) only channels and rings, not ntuple or RSS.
absl::StatusOr<devmem::v1::NicSettings> ReadSettings(NicControl& control,
                                                     uint32_t ifindex,
                                                     bool steering = true);

// For a header_split_only profile: true if every capability in `missing` is
// one that profile does without (ntuple, its rules, RSS).
bool OnlySteeringMissing(const std::vector<Capability>& missing);

// A header_split_only profile's settings: channels and header split, with
// ntuple and RSS left out (never changed, never restored).
devmem::v1::NicSettings HeaderSplitSettings(
    const devmem::v1::NicSettings& original, const ProfilePlan& plan);

// The settings the profile wants, given what the NIC had. rss_indir spreads
// the main table over the non-pool queues (indir[i] = rest[i % rest.size()],
// ethtool's "-X equal" generalised to any pool).
devmem::v1::NicSettings DesiredSettings(const devmem::v1::NicSettings& original,
                                        const ProfilePlan& plan);

// Applies `desired` in the order ncdevmem uses: channels, ntuple, rings
// (tcp-data-split ENABLED + hds-thresh 0), RSS. On failure puts back what it
// changed (RestoreSettings with `original`) and returns the error, prefixed
// with the failing step.
absl::Status ApplySettings(NicControl& control, uint32_t ifindex,
                           const devmem::v1::NicSettings& original,
                           const devmem::v1::NicSettings& desired);

// Puts back `original`. The caller must already have released every binding,
// rule and RSS context (the kernel refuses split off while bound and channel
// shrinks under bound queues: KERNEL_API.md section 1 "While bound"). Order:
// channels grow first / shrink last, so the RSS table never names a missing
// queue; RSS, then rings, then ntuple. Every step is tried; the first error is
// returned.
absl::Status RestoreSettings(NicControl& control, uint32_t ifindex,
                             const devmem::v1::NicSettings& original);

// The records of original NIC state: one textproto per NIC under
// <state_dir>/nics/, written with fsync before the first change, so a crash
// never loses what must be put back. Not thread-safe; NicManager serializes.
class OriginalStateStore {
 public:
  explicit OriginalStateStore(const std::string& state_dir);

  std::string PathFor(absl::string_view nic) const;
  // nullopt if nothing is recorded. INVALID_ARGUMENT for a corrupt record.
  absl::StatusOr<std::optional<devmem::v1::NicSettings>> Load(
      absl::string_view nic) const;
  // Writes to a temporary file, fsyncs it, renames it in place and fsyncs
  // the directory. Creates the directories (mode 0750) if needed.
  absl::Status Save(absl::string_view nic,
                    const devmem::v1::NicSettings& settings) const;
  absl::Status Remove(absl::string_view nic) const;

 private:
  std::string dir_;
};

}  // namespace devmem
