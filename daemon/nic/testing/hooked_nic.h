#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"

namespace devmem {

// Forwards to a SimulatedNic, letting a test replace single calls: a hook
// that returns a status answers the call instead of the NIC.
class HookedNic final : public NicControl {
 public:
  explicit HookedNic(SimulatedNic* nic) : nic_(nic) {}

  // Per call: the n-th call (from 1) of SetRings / SetChannels.
  std::function<std::optional<absl::Status>(int)> set_rings_hook;
  std::function<std::optional<absl::Status>(int)> set_channels_hook;
  std::function<std::optional<absl::StatusOr<FeaturesInfo>>()> features_hook;
  // Called before ("insert_rule", "bind_rx") and after ("insert_rule_done",
  // "bind_rx_done") every InsertRule and BindRx, e.g. to kill the process at
  // that step.
  std::function<void(absl::string_view step)> step_hook;

  std::string BackendName() const override { return nic_->BackendName(); }
  absl::StatusOr<ChannelsInfo> GetChannels(uint32_t i) override {
    return nic_->GetChannels(i);
  }
  absl::Status SetChannels(uint32_t i, const ChannelsSet& c) override {
    ++set_channels_calls_;
    if (set_channels_hook) {
      if (auto s = set_channels_hook(set_channels_calls_)) return *s;
    }
    return nic_->SetChannels(i, c);
  }
  absl::StatusOr<RingsInfo> GetRings(uint32_t i) override {
    return nic_->GetRings(i);
  }
  absl::Status SetRings(uint32_t i, const RingsSet& r) override {
    ++set_rings_calls_;
    if (set_rings_hook) {
      if (auto s = set_rings_hook(set_rings_calls_)) return *s;
    }
    return nic_->SetRings(i, r);
  }
  absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t i) override {
    if (features_hook) {
      if (auto f = features_hook()) return *f;
    }
    return nic_->GetFeatures(i);
  }
  absl::Status SetNtuple(uint32_t i, bool e) override {
    return nic_->SetNtuple(i, e);
  }
  absl::StatusOr<RssInfo> GetRss(uint32_t i, uint32_t c) override {
    return nic_->GetRss(i, c);
  }
  absl::Status SetRssIndir(uint32_t i, uint32_t c,
                           absl::Span<const uint32_t> t) override {
    return nic_->SetRssIndir(i, c, t);
  }
  absl::StatusOr<uint32_t> CreateRssContext(
      uint32_t i, absl::Span<const uint32_t> t) override {
    return nic_->CreateRssContext(i, t);
  }
  absl::Status DeleteRssContext(uint32_t i, uint32_t c) override {
    return nic_->DeleteRssContext(i, c);
  }
  absl::StatusOr<uint32_t> InsertRule(uint32_t i, const FlowRule& r) override {
    return Stepped("insert_rule", [&] { return nic_->InsertRule(i, r); });
  }
  absl::Status DeleteRule(uint32_t i, uint32_t l) override {
    return nic_->DeleteRule(i, l);
  }
  absl::StatusOr<RuleTable> ListRules(uint32_t i) override {
    return nic_->ListRules(i);
  }
  absl::StatusOr<FlowRule> GetRule(uint32_t i, uint32_t l) override {
    return nic_->GetRule(i, l);
  }
  absl::StatusOr<std::vector<QueueInfo>> GetQueues(uint32_t i) override {
    return nic_->GetQueues(i);
  }
  absl::Status CheckBindableFd(int fd) override {
    return nic_->CheckBindableFd(fd);
  }
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindRx(
      uint32_t i, int fd, absl::Span<const uint32_t> q) override {
    return Stepped("bind_rx", [&] { return nic_->BindRx(i, fd, q); });
  }
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindTx(uint32_t i,
                                                        int fd) override {
    return nic_->BindTx(i, fd);
  }
  absl::StatusOr<std::unique_ptr<DevmemBinding>> AdoptBinding(
      uint32_t i, uint32_t id, bool tx, UniqueFd anchor) override {
    return nic_->AdoptBinding(i, id, tx, std::move(anchor));
  }

 private:
  // `call()` between step_hook(name) and step_hook(name + "_done").
  template <typename Call>
  std::invoke_result_t<Call> Stepped(absl::string_view name, Call call) {
    if (step_hook) step_hook(name);
    auto result = call();
    if (step_hook) step_hook(absl::StrCat(name, "_done"));
    return result;
  }

  SimulatedNic* nic_;
  int set_rings_calls_ = 0;
  int set_channels_calls_ = 0;
};

}  // namespace devmem
