#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"

namespace devmem {

// The devmem self-test of one NIC: the kernel's own acceptance sequence
// (tools/testing/selftests/drivers/net/hw/ncdevmem.c, run_devmem_tests(),
// 6.18; KERNEL_API.md section 4 "Test mode") driven through NicControl, so
// it runs on a real devmem NIC (KernelNicControl + a udmabuf dma-buf) and
// on the simulated one (SimulatedNic + a memfd).
//
//   probe       channels (>= 2 RX queues), rings, rx-ntuple-filter, RSS
//               table, queue-get, and the memory to bind; if anything is
//               missing the test stops here and changes nothing
//   record      channels, rings (tcp-data-split, hds-thresh), RSS table
//   rss         main table spread over queues [0, start): the tested queues
//               [start, start + n) get no RSS traffic (ethtool -X equal)
//   hds on      tcp-data-split ENABLED, hds-thresh 0 (if RINGS_GET has it)
//   (a)         bind-rx with no queues must fail
//   (b)         tcp-data-split UNKNOWN: bind-rx must fail
//   (c)         tcp-data-split ENABLED: bind-rx on [start, start + n) must
//               succeed, and queue-get must show the binding id there
//   (d)         shrinking channels to n (below the bound queues) must fail;
//               if the NIC allows it, the channels are put back at once
//   (e)         dropping the binding (its netlink socket) unbinds: queue-get
//               shows no dma-buf on those queues
//   restore     rings (after the unbind), RSS and channels put back exactly
//               as recorded, then read back and compared
//
// where rxq = rx_count + combined_count, start = rxq / 2, n = rxq / 2.

// One step's outcome. `detail` holds the kernel's errno and extack text
// whenever the kernel refused something (expected or not).
struct SelftestStep {
  std::string name;
  bool passed = false;
  std::string detail;
};

struct SelftestResult {
  // The probe found everything devmem needs and the sequence ran. When
  // false, `missing` says why and nothing on the NIC was changed.
  bool ran = false;
  // Each capability the NIC (or the host: the dma-buf exporter) lacks, with
  // the kernel's errno and message.
  std::vector<Capability> missing;
  std::vector<SelftestStep> steps;
  // The original channels, rings and RSS table were put back and read back
  // equal (true also when nothing was changed).
  bool restored = false;

  // Ran, every step passed and the NIC is as it was.
  bool passed() const;
};

// Called once per step as soon as it is decided, so a caller can print
// progress while the sequence runs.
using SelftestReporter = std::function<void(const SelftestStep&)>;

// Runs the self-test on `ifindex` (`ifname` is for messages only).
// `dmabuf_fd` is the memory to bind (borrowed; a dma-buf for the kernel, a
// dma-buf or memfd for the simulated NIC), or why there is none: the probe
// then reports it as the missing "dma-buf" capability. Never throws away
// the NIC's state: every change is undone before returning, whatever fails.
// Not thread-safe with other users of the same NIC.
SelftestResult RunDevmemSelftest(NicControl& control, uint32_t ifindex,
                                 const std::string& ifname,
                                 const absl::StatusOr<int>& dmabuf_fd,
                                 const SelftestReporter& report = nullptr);

}  // namespace devmem
