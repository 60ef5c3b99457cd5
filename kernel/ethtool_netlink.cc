#include "kernel/ethtool_netlink.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/ifname_util.h"
#include "kernel/netlink_error.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

// A kernel that never answers must not hang a gRPC thread forever.
constexpr int kReceiveTimeoutSeconds = 5;
// Holds any single ethtool reply; mnl_socket_recvfrom() fails with ENOSPC
// rather than truncate one.
constexpr size_t kReceiveBufferBytes = 64 * 1024;

absl::Status SetIntOption(mnl_socket* sock, int option, const char* name) {
  int one = 1;
  if (mnl_socket_setsockopt(sock, option, &one, sizeof(one)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("setsockopt(", name, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

void EthtoolNetlink::MnlSocketCloser::operator()(mnl_socket* sock) const {
  mnl_socket_close(sock);
}

EthtoolNetlink::EthtoolNetlink(
    std::unique_ptr<mnl_socket, MnlSocketCloser> sock, GenlFamily family)
    : family_(std::move(family)),
      sock_(std::move(sock)),
      rx_buf_(kReceiveBufferBytes) {}

EthtoolNetlink::~EthtoolNetlink() = default;

absl::StatusOr<std::unique_ptr<EthtoolNetlink>> EthtoolNetlink::Open() {
  absl::StatusOr<GenlFamily> family = ResolveGenlFamily("ethtool");
  if (!family.ok()) {
    if (absl::IsNotFound(family.status())) {
      return absl::NotFoundError(absl::StrCat(
          "the kernel has no \"ethtool\" generic netlink family (built "
          "without CONFIG_ETHTOOL_NETLINK?): ",
          family.status().message()));
    }
    return family.status();
  }
  std::unique_ptr<mnl_socket, MnlSocketCloser> sock(
      mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC));
  if (sock == nullptr) {
    return ErrnoStatus(errno, "mnl_socket_open2(NETLINK_GENERIC)");
  }
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) != 0) {
    return ErrnoStatus(errno, "mnl_socket_bind");
  }
  absl::Status s = SetIntOption(sock.get(), NETLINK_EXT_ACK, "NETLINK_EXT_ACK");
  if (!s.ok()) return s;
  s = SetIntOption(sock.get(), NETLINK_CAP_ACK, "NETLINK_CAP_ACK");
  if (!s.ok()) return s;
  timeval timeout = {};
  timeout.tv_sec = kReceiveTimeoutSeconds;
  if (setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO,
                 &timeout, sizeof(timeout)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_RCVTIMEO)");
  }
  return std::unique_ptr<EthtoolNetlink>(
      new EthtoolNetlink(std::move(sock), *std::move(family)));
}

absl::Status EthtoolNetlink::Transact(const GenlMsg& request,
                                      absl::string_view what,
                                      ReplyFn on_reply) {
  return TransactLazy(
      request, [what] { return std::string(what); }, on_reply);
}

absl::Status EthtoolNetlink::TransactLazy(const GenlMsg& request,
                                          absl::FunctionRef<std::string()> what,
                                          ReplyFn on_reply) {
  if (request.overflowed()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what(), ": request exceeds ", GenlMsg::kMaxBytes, " bytes"));
  }
  const absl::Span<const uint8_t> bytes = request.bytes();
  nlmsghdr request_header;
  std::memcpy(&request_header, bytes.data(), sizeof(request_header));
  // Without ACK or DUMP the kernel sends one message: reply or error.
  const bool single_reply =
      !(request_header.nlmsg_flags & (NLM_F_ACK | NLM_F_DUMP));

  absl::MutexLock lock(&mu_);
  const uint32_t seq = next_seq_++;
  tx_buf_.assign(bytes.begin(), bytes.end());
  std::memcpy(tx_buf_.data() + offsetof(nlmsghdr, nlmsg_seq), &seq,
              sizeof(seq));
  if (mnl_socket_sendto(sock_.get(), tx_buf_.data(), tx_buf_.size()) < 0) {
    return ErrnoStatus(errno, absl::StrCat(what(), ": send"));
  }

  absl::Status reply_status;
  std::optional<NetlinkAck> kernel_error;
  bool done = false;
  while (!done) {
    const ssize_t n =
        mnl_socket_recvfrom(sock_.get(), rx_buf_.data(), rx_buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return ErrnoStatus(ETIMEDOUT,
                           absl::StrCat(what(), ": no reply within ",
                                        kReceiveTimeoutSeconds, "s"));
      }
      // libmnl reports a datagram larger than the buffer as ENOSPC.
      return ErrnoStatus(errno, absl::StrCat(what(), ": receive"));
    }
    int remaining = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rx_buf_.data());
         mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
      // A reply to an earlier request that gave up early: not ours.
      if (nlh->nlmsg_seq != seq) continue;
      const absl::Span<const uint8_t> one(reinterpret_cast<const uint8_t*>(nlh),
                                          nlh->nlmsg_len);
      if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
        done = true;
        absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(one);
        if (!ack.ok()) {
          return absl::InternalError(
              absl::StrCat(what(), ": ", ack.status().message()));
        }
        if (ack->error != 0) kernel_error = *std::move(ack);
        break;
      }
      if (nlh->nlmsg_type == NLMSG_NOOP) continue;
      if (nlh->nlmsg_type == NLMSG_OVERRUN) {
        return ErrnoStatus(ENOBUFS, absl::StrCat(what(), ": NLMSG_OVERRUN"));
      }
      if (nlh->nlmsg_type != family_.id) continue;
      absl::Status s = on_reply(one);
      if (!s.ok() && reply_status.ok()) reply_status = std::move(s);
      if (single_reply) {
        done = true;
        break;
      }
    }
  }
  if (kernel_error.has_value()) return NetlinkAckStatus(*kernel_error, what());
  if (!reply_status.ok()) {
    return absl::Status(reply_status.code(),
                        absl::StrCat(what(), ": ", reply_status.message()));
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> EthtoolNetlink::GetOne(
    const GenlMsg& request, absl::string_view op, uint32_t ifindex,
    absl::StatusOr<T> (*parse)(absl::Span<const uint8_t>)) {
  std::optional<T> result;
  auto what = [&] {
    return absl::StrCat("ethtool ", op, " ", IfNameForMessages(ifindex));
  };
  absl::Status s =
      TransactLazy(request, what, [&](absl::Span<const uint8_t> reply) {
        absl::StatusOr<T> parsed = parse(reply);
        if (!parsed.ok()) return parsed.status();
        result = *std::move(parsed);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (!result.has_value()) {
    return absl::InternalError(absl::StrCat(what(), ": ACK without a reply"));
  }
  return *std::move(result);
}

absl::StatusOr<ChannelsInfo> EthtoolNetlink::GetChannels(uint32_t ifindex) {
  return GetOne<ChannelsInfo>(
      BuildChannelsGet(family_.id, EthtoolDev::ByIndex(ifindex)),
      "channels-get", ifindex, &ParseChannelsReply);
}

absl::StatusOr<RingsInfo> EthtoolNetlink::GetRings(uint32_t ifindex) {
  return GetOne<RingsInfo>(
      BuildRingsGet(family_.id, EthtoolDev::ByIndex(ifindex)), "rings-get",
      ifindex, &ParseRingsReply);
}

absl::StatusOr<FeaturesInfo> EthtoolNetlink::GetFeatures(uint32_t ifindex) {
  return GetOne<FeaturesInfo>(
      BuildFeaturesGet(family_.id, EthtoolDev::ByIndex(ifindex)),
      "features-get", ifindex, &ParseFeaturesReply);
}

absl::Status EthtoolNetlink::SetAcked(const GenlMsg& request,
                                      absl::string_view op, uint32_t ifindex) {
  return TransactLazy(
      request,
      [&] {
        return absl::StrCat("ethtool ", op, " ", IfNameForMessages(ifindex));
      },
      [](absl::Span<const uint8_t>) { return absl::OkStatus(); });
}

absl::Status EthtoolNetlink::RequireOp(uint8_t cmd, absl::string_view op,
                                       absl::string_view op_name,
                                       uint32_t ifindex) const {
  if (HasOp(cmd)) return absl::OkStatus();
  // What ethtool(8) does too: an op list without the command means this
  // kernel predates it (KERNEL_API.md section 3, ethtool(8)).
  return ErrnoStatus(
      EOPNOTSUPP,
      absl::StrCat("ethtool ", op, " ", IfNameForMessages(ifindex),
                   ": the running kernel's ethtool netlink family has no ",
                   op_name, " (op ", cmd,
                   ", added in 6.17); use the SIOCETHTOOL ioctl instead"));
}

absl::Status EthtoolNetlink::SetChannels(uint32_t ifindex,
                                         const ChannelsSet& channels) {
  return SetAcked(
      BuildChannelsSet(family_.id, EthtoolDev::ByIndex(ifindex), channels),
      "channels-set", ifindex);
}

absl::Status EthtoolNetlink::SetRings(uint32_t ifindex, const RingsSet& rings) {
  return SetAcked(
      BuildRingsSet(family_.id, EthtoolDev::ByIndex(ifindex), rings),
      "rings-set", ifindex);
}

absl::Status EthtoolNetlink::SetNtuple(uint32_t ifindex, bool enable) {
  absl::Status s = SetAcked(
      BuildFeaturesSetNtuple(family_.id, EthtoolDev::ByIndex(ifindex), enable),
      "features-set", ifindex);
  if (!s.ok()) return s;
  // The SET succeeds even when the bit cannot change; only a fresh read says
  // what the device did with it.
  absl::StatusOr<FeaturesInfo> after = GetFeatures(ifindex);
  if (!after.ok()) return after.status();
  if (after->ntuple_active == enable) return absl::OkStatus();
  const std::string ifname = IfNameForMessages(ifindex);
  const char* state = after->ntuple_active ? "on" : "off";
  if (!after->ntuple_hw) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ethtool features-set ", ifname, ": rx-ntuple-filter is fixed ", state,
        " on ", ifname,
        ": it is not in the device's changeable (hw) features, so the driver "
        "has no ntuple filtering to turn ",
        enable ? "on" : "off"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "ethtool features-set ", ifname, ": rx-ntuple-filter is fixed ", state,
      " on ", ifname,
      ": the kernel accepted the request but the driver kept it ", state,
      " (net/core/dev.c __netdev_update_features(): ndo_fix_features or "
      "ndo_set_features refused)"));
}

absl::StatusOr<RssInfo> EthtoolNetlink::GetRss(uint32_t ifindex,
                                               uint32_t context) {
  absl::StatusOr<RssInfo> info = GetOne<RssInfo>(
      BuildRssGet(family_.id, EthtoolDev::ByIndex(ifindex), context), "rss-get",
      ifindex, &ParseRssReply);
  // net/ethtool/rss.c rss_fill_reply() names the context only if non-zero.
  if (info.ok()) info->context = context;
  return info;
}

absl::Status EthtoolNetlink::SetRssIndir(uint32_t ifindex, uint32_t context,
                                         absl::Span<const uint32_t> indir) {
  absl::Status s =
      RequireOp(ETHTOOL_MSG_RSS_SET, "rss-set", "RSS_SET", ifindex);
  if (!s.ok()) return s;
  return SetAcked(
      BuildRssSet(family_.id, EthtoolDev::ByIndex(ifindex), context, indir),
      "rss-set", ifindex);
}

absl::StatusOr<uint32_t> EthtoolNetlink::CreateRssContext(
    uint32_t ifindex, absl::Span<const uint32_t> indir) {
  absl::Status s = RequireOp(ETHTOOL_MSG_RSS_CREATE_ACT, "rss-create-act",
                             "RSS_CREATE_ACT", ifindex);
  if (!s.ok()) return s;
  std::optional<uint32_t> context;
  auto what = [&] {
    return absl::StrCat("ethtool rss-create-act ", IfNameForMessages(ifindex));
  };
  s = TransactLazy(
      BuildRssCreateAct(family_.id, EthtoolDev::ByIndex(ifindex), indir), what,
      [&](absl::Span<const uint8_t> reply) {
        absl::StatusOr<uint32_t> parsed = ParseRssCreateActReply(reply);
        if (!parsed.ok()) return parsed.status();
        context = *parsed;
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (!context.has_value()) {
    return absl::InternalError(
        absl::StrCat(what(), ": ACK without the new context's id"));
  }
  return *context;
}

absl::Status EthtoolNetlink::DeleteRssContext(uint32_t ifindex,
                                              uint32_t context) {
  absl::Status s = RequireOp(ETHTOOL_MSG_RSS_DELETE_ACT, "rss-delete-act",
                             "RSS_DELETE_ACT", ifindex);
  if (!s.ok()) return s;
  return SetAcked(
      BuildRssDeleteAct(family_.id, EthtoolDev::ByIndex(ifindex), context),
      "rss-delete-act", ifindex);
}

}  // namespace devmem
