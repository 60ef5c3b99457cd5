#include "daemon/nic/inventory_proto.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace devmem {
namespace {

devmem::v1::Support SupportToProto(Support s) {
  switch (s) {
    case Support::kSupported:
      return devmem::v1::SUPPORT_SUPPORTED;
    case Support::kUnsupported:
      return devmem::v1::SUPPORT_UNSUPPORTED;
    case Support::kUnknown:
      return devmem::v1::SUPPORT_UNKNOWN;
  }
  return devmem::v1::SUPPORT_UNSPECIFIED;
}

template <typename T>
void SetIf(const std::optional<uint32_t>& v, T* msg,
           void (T::*setter)(uint32_t)) {
  if (v.has_value()) (msg->*setter)(*v);
}

// What devmem RX needs from a NIC (DESIGN.md, "The job, step by step").
constexpr const char* kRequired[] = {"rings",  "tcp_data_split", "hds_thresh",
                                     "ntuple", "queues",         "bind_rx"};

}  // namespace

void ChannelsToProto(const ChannelsInfo& c, devmem::v1::Channels* out) {
  using C = devmem::v1::Channels;
  SetIf(c.rx_max, out, &C::set_rx_max);
  SetIf(c.tx_max, out, &C::set_tx_max);
  SetIf(c.other_max, out, &C::set_other_max);
  SetIf(c.combined_max, out, &C::set_combined_max);
  SetIf(c.rx_count, out, &C::set_rx_count);
  SetIf(c.tx_count, out, &C::set_tx_count);
  SetIf(c.other_count, out, &C::set_other_count);
  SetIf(c.combined_count, out, &C::set_combined_count);
}

void CapabilityToProto(const Capability& c, devmem::v1::Capability* out) {
  out->set_name(c.name);
  out->set_support(SupportToProto(c.support));
  out->set_errno_value(c.error);
  out->set_reason(c.reason);
}

devmem::v1::Nic NicToProto(const NicInfo& info) {
  devmem::v1::Nic n;
  n.set_name(info.link.name);
  n.set_ifindex(info.link.ifindex);
  n.set_kind(info.link.kind);
  n.set_driver(info.link.driver);
  n.set_mac(info.link.mac);
  n.set_mtu(info.link.mtu);
  n.set_admin_up(info.link.admin_up);
  n.set_oper_state(info.link.oper_state);
  n.set_pci_address(info.link.pci_address);
  n.set_numa_node(info.link.numa_node);
  if (info.channels) ChannelsToProto(*info.channels, n.mutable_channels());
  if (info.rings) {
    const RingsInfo& r = *info.rings;
    auto* m = n.mutable_rings();
    using R = devmem::v1::Rings;
    SetIf(r.rx_max, m, &R::set_rx_max);
    SetIf(r.rx_mini_max, m, &R::set_rx_mini_max);
    SetIf(r.rx_jumbo_max, m, &R::set_rx_jumbo_max);
    SetIf(r.tx_max, m, &R::set_tx_max);
    SetIf(r.rx, m, &R::set_rx);
    SetIf(r.rx_mini, m, &R::set_rx_mini);
    SetIf(r.rx_jumbo, m, &R::set_rx_jumbo);
    SetIf(r.tx, m, &R::set_tx);
    SetIf(r.rx_buf_len, m, &R::set_rx_buf_len);
    m->set_tcp_data_split(static_cast<devmem::v1::TcpDataSplit>(
        static_cast<int>(r.tcp_data_split)));
    SetIf(r.hds_thresh, m, &R::set_hds_thresh);
    SetIf(r.hds_thresh_max, m, &R::set_hds_thresh_max);
  }
  if (info.features) {
    auto* m = n.mutable_features();
    m->set_ntuple_hw(info.features->ntuple_hw);
    m->set_ntuple_active(info.features->ntuple_active);
    m->set_feature_count(info.features->feature_count);
  }
  for (const QueueInfo& q : info.queues) {
    auto* m = n.add_queues();
    m->set_id(q.id);
    m->set_type(q.type == QueueInfo::Type::kTx ? devmem::v1::Queue::TYPE_TX
                                               : devmem::v1::Queue::TYPE_RX);
    if (q.napi_id) m->set_napi_id(*q.napi_id);
    if (q.dmabuf) m->set_dmabuf(*q.dmabuf);
    m->set_io_uring(q.io_uring);
    m->set_xsk(q.xsk);
  }
  for (const Capability& c : info.capabilities) {
    CapabilityToProto(c, n.add_capabilities());
  }
  bool capable = true;
  for (const char* need : kRequired) {
    const Capability* found = nullptr;
    for (const Capability& c : info.capabilities) {
      if (c.name == need) found = &c;
    }
    if (found == nullptr) {
      capable = false;
      n.add_devmem_missing(absl::StrCat(need, ": not probed"));
    } else if (found->support != Support::kSupported) {
      capable = false;
      n.add_devmem_missing(absl::StrCat(
          need, ": ",
          found->support == Support::kUnsupported ? "unsupported" : "unknown",
          found->reason.empty() ? "" : absl::StrCat(" (", found->reason, ")")));
    }
  }
  n.set_devmem_capable(capable);
  return n;
}

}  // namespace devmem
