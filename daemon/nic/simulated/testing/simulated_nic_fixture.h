#pragma once

// What the simulated NIC's tests share: sim0 at ifindex 7, memfds and pipes
// to bind, a TCP rule, and a fixture with the NIC and its common steps.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "daemon/nic/simulated/simulated_nic.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace simnic_test {

inline constexpr uint32_t kIfindex = 7;

inline UniqueFd MakeMemfd() {
  UniqueFd fd(memfd_create("simulated-devmem", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << "memfd_create: " << errno;
  return fd;
}

// The read end of a pipe: an fd that is neither a dma-buf nor a memfd.
struct Pipe {
  UniqueFd read, write;
};
inline Pipe MakePipe() {
  int fds[2] = {-1, -1};
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0) << "pipe2: " << errno;
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Expects `status` to carry `err` and exactly the kernel extack `extack`.
inline void ExpectErrno(const absl::Status& status, int err,
                        absl::string_view extack) {
  EXPECT_EQ(StatusErrno(status), err) << status;
  EXPECT_EQ(StatusExtack(status), extack) << status;
}

inline FlowRule TcpRule(uint32_t queue, uint16_t dst_port = 5201) {
  FlowRule rule;
  rule.match.family = AF_INET6;
  rule.match.dst_ip = "2001:db8::1";
  rule.match.dst_port = dst_port;
  rule.queue = queue;
  return rule;
}

class SimulatedNicTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(SimulatedNicSpec{"sim0", kIfindex}); }

  void Make(const SimulatedNicSpec& spec) {
    absl::StatusOr<std::unique_ptr<SimulatedNic>> nic =
        SimulatedNic::Create({spec});
    ASSERT_TRUE(nic.ok()) << nic.status();
    nic_ = *std::move(nic);
  }

  // tcp-data-split on and hds-thresh 0: what every bind needs.
  void EnableHds() {
    RingsSet rings;
    rings.tcp_data_split = TcpDataSplit::kEnabled;
    rings.hds_thresh = 0;
    ASSERT_TRUE(nic_->SetRings(kIfindex, rings).ok());
  }

  absl::Status SetCombined(uint32_t count) {
    ChannelsSet set;
    set.combined_count = count;
    return nic_->SetChannels(kIfindex, set);
  }

  SimulatedNic::Counters Counters() {
    absl::StatusOr<SimulatedNic::Counters> c = nic_->GetCounters(kIfindex);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.value_or(SimulatedNic::Counters());
  }

  std::unique_ptr<SimulatedNic> nic_;
};

}  // namespace simnic_test
}  // namespace devmem
