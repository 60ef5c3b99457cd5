#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "kernel/ethtool_msg.h"
#include "kernel/genl_family.h"
#include "kernel/genl_msg.h"
#include "kernel/nic_info.h"

struct mnl_socket;

namespace devmem {

// The ethtool generic-netlink family over one libmnl NETLINK_GENERIC socket
// (SOCK_CLOEXEC, NETLINK_EXT_ACK=1, NETLINK_CAP_ACK=1), in the network
// namespace of the thread that called Open().
//
// Thread-safe: one exchange at a time under an internal mutex. Errors carry
// the kernel's errno and extack text: ErrnoStatus(errno, "<op> <ifname>",
// extack), e.g. "ethtool rings-get veth0: Operation not supported (errno 95)".
class EthtoolNetlink {
 public:
  using ReplyFn = absl::FunctionRef<absl::Status(absl::Span<const uint8_t>)>;

  // Opens the socket and resolves the "ethtool" family id once. NOT_FOUND if
  // the kernel has no ethtool netlink (CONFIG_ETHTOOL_NETLINK=n).
  static absl::StatusOr<std::unique_ptr<EthtoolNetlink>> Open();
  ~EthtoolNetlink();
  EthtoolNetlink(const EthtoolNetlink&) = delete;
  EthtoolNetlink& operator=(const EthtoolNetlink&) = delete;

  absl::StatusOr<ChannelsInfo> GetChannels(uint32_t ifindex);
  absl::StatusOr<RingsInfo> GetRings(uint32_t ifindex);
  absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t ifindex);

  // SETs, each acknowledged by the kernel before it returns (NLM_F_ACK).
  // They need CAP_NET_ADMIN (EPERM otherwise). Errors as the GETs', with the
  // op named "channels-set", "rings-set", "features-set", "rss-set", ...
  absl::Status SetChannels(uint32_t ifindex, const ChannelsSet& channels);
  absl::Status SetRings(uint32_t ifindex, const RingsSet& rings);
  // Turns "rx-ntuple-filter" on or off (no other feature changes), then
  // re-reads the features: the kernel accepts a request for a bit the device
  // cannot change and just leaves it alone (net/ethtool/features.c
  // ethnl_set_features() masks the request with hw_features). If the bit did
  // not end up as asked: FAILED_PRECONDITION "rx-ntuple-filter is fixed
  // off|on on <if>", saying whether it is outside the device's changeable
  // (hw) set. OK if it already was as asked.
  absl::Status SetNtuple(uint32_t ifindex, bool enable);

  // RSS of `context` (0 = main table). EOPNOTSUPP from drivers without
  // get_rxfh (veth, loopback).
  absl::StatusOr<RssInfo> GetRss(uint32_t ifindex, uint32_t context);
  // RSS_SET / RSS_CREATE_ACT / RSS_DELETE_ACT arrived in 6.17. On an older
  // kernel (op missing from the family) they fail without asking the kernel:
  // UNIMPLEMENTED with errno EOPNOTSUPP, naming the op and "6.17", so the
  // caller can fall back to SIOCETHTOOL (ETHTOOL_SRSSH).
  absl::Status SetRssIndir(uint32_t ifindex, uint32_t context,
                           absl::Span<const uint32_t> indir);
  absl::StatusOr<uint32_t> CreateRssContext(uint32_t ifindex,
                                            absl::Span<const uint32_t> indir);
  absl::Status DeleteRssContext(uint32_t ifindex, uint32_t context);

  // Whether the kernel's ethtool family registered command `cmd`
  // (ETHTOOL_MSG_*), e.g. ETHTOOL_MSG_RSS_SET on 6.17+.
  bool HasOp(uint8_t cmd) const { return family_.HasOp(cmd); }

  // The seam for every other ethtool request (RINGS_SET, CHANNELS_SET,
  // FEATURES_SET, RSS_*): sends `request` (built by an ethtool_msg builder
  // with family_id(); its seq is stamped on a copy) and calls `on_reply` for
  // each reply message until the exchange ends: the ACK if the request has
  // NLM_F_ACK, NLMSG_DONE for NLM_F_DUMP, else the first reply. A kernel
  // error becomes ErrnoStatus(errno, what, extack).
  absl::Status Transact(const GenlMsg& request, absl::string_view what,
                        ReplyFn on_reply);

  uint16_t family_id() const { return family_.id; }
  // The family's op list, for "does this kernel have RSS_SET?" checks.
  const GenlFamily& family() const { return family_; }

 private:
  struct MnlSocketCloser {
    void operator()(mnl_socket* sock) const;
  };

  EthtoolNetlink(std::unique_ptr<mnl_socket, MnlSocketCloser> sock,
                 GenlFamily family);

  // Transact, building the error context only if there is an error (the
  // happy path then costs no if_indextoname()).
  absl::Status TransactLazy(const GenlMsg& request,
                            absl::FunctionRef<std::string()> what,
                            ReplyFn on_reply);

  // Runs a SET/ACT whose only answer that matters is the ACK; any reply
  // (FEATURES_SET sends one) is read and dropped.
  absl::Status SetAcked(const GenlMsg& request, absl::string_view op,
                        uint32_t ifindex);

  // OK if the family has `cmd`; else the UNIMPLEMENTED status described at
  // SetRssIndir(), for `op` on `ifindex`.
  absl::Status RequireOp(uint8_t cmd, absl::string_view op,
                         absl::string_view op_name, uint32_t ifindex) const;

  // Runs a GET that must produce exactly one reply, parsed by `parse`.
  template <typename T>
  absl::StatusOr<T> GetOne(
      const GenlMsg& request, absl::string_view op, uint32_t ifindex,
      absl::StatusOr<T> (*parse)(absl::Span<const uint8_t>));

  const GenlFamily family_;
  absl::Mutex mu_;
  std::unique_ptr<mnl_socket, MnlSocketCloser> sock_ ABSL_GUARDED_BY(mu_);
  uint32_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<uint8_t> tx_buf_ ABSL_GUARDED_BY(mu_);
  std::vector<uint8_t> rx_buf_ ABSL_GUARDED_BY(mu_);
};

}  // namespace devmem
