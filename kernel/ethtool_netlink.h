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
