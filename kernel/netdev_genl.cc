#include "kernel/netdev_genl.h"

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/ifname_util.h"
#include "kernel/netlink_attr.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

// The attributes of a genl message whose command is `want_cmd`.
absl::StatusOr<absl::Span<const uint8_t>> GenlAttrs(
    absl::Span<const uint8_t> msg, uint8_t want_cmd, absl::string_view what) {
  nlmsghdr nlh;
  genlmsghdr genl;
  if (msg.size() < NLMSG_HDRLEN + GENL_HDRLEN) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", msg.size(), " bytes is too short"));
  }
  std::memcpy(&nlh, msg.data(), sizeof(nlh));
  std::memcpy(&genl, msg.data() + NLMSG_HDRLEN, sizeof(genl));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN ||
      nlh.nlmsg_len > msg.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad nlmsg_len ", nlh.nlmsg_len));
  }
  if (genl.cmd != want_cmd) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": reply command is ", genl.cmd, ", expected ", want_cmd));
  }
  return msg.subspan(NLMSG_HDRLEN + GENL_HDRLEN,
                     nlh.nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
}

absl::Status Malformed(absl::string_view what, const NlAttr& attr) {
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": attribute ", attr.type, " has ", attr.payload.size(), " bytes"));
}

}  // namespace

absl::StatusOr<NetdevDevInfo> ParseNetdevDevReply(
    absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "netdev dev-get reply";
  absl::StatusOr<absl::Span<const uint8_t>> attrs =
      GenlAttrs(msg, NETDEV_CMD_DEV_GET, kWhat);
  if (!attrs.ok()) return attrs.status();
  NetdevDevInfo info;
  absl::Status status;
  const bool well_formed = ForEachAttr(*attrs, [&](const NlAttr& attr) {
    if (attr.type == NETDEV_A_DEV_IFINDEX) {
      if (auto v = attr.U32()) {
        info.ifindex = *v;
      } else if (status.ok()) {
        status = Malformed(kWhat, attr);
      }
    } else if (attr.type == NETDEV_A_DEV_XDP_FEATURES) {
      if (auto v = attr.Uint()) {
        info.xdp_features = *v;
      } else if (status.ok()) {
        status = Malformed(kWhat, attr);
      }
    }
  });
  if (!well_formed) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": malformed attribute list"));
  }
  if (!status.ok()) return status;
  return info;
}

absl::StatusOr<QueueInfo> ParseNetdevQueueReply(absl::Span<const uint8_t> msg,
                                                uint32_t* ifindex) {
  constexpr absl::string_view kWhat = "netdev queue-get reply";
  absl::StatusOr<absl::Span<const uint8_t>> attrs =
      GenlAttrs(msg, NETDEV_CMD_QUEUE_GET, kWhat);
  if (!attrs.ok()) return attrs.status();
  QueueInfo queue;
  bool has_id = false;
  bool has_type = false;
  absl::Status status;
  auto u32 = [&](const NlAttr& attr) -> std::optional<uint32_t> {
    std::optional<uint32_t> v = attr.U32();
    if (!v.has_value() && status.ok()) status = Malformed(kWhat, attr);
    return v;
  };
  const bool well_formed = ForEachAttr(*attrs, [&](const NlAttr& attr) {
    switch (attr.type) {
      case NETDEV_A_QUEUE_ID:
        if (auto v = u32(attr)) {
          queue.id = *v;
          has_id = true;
        }
        break;
      case NETDEV_A_QUEUE_IFINDEX:
        if (auto v = u32(attr); v && ifindex != nullptr) *ifindex = *v;
        break;
      case NETDEV_A_QUEUE_TYPE:
        if (auto v = u32(attr)) {
          queue.type = static_cast<QueueInfo::Type>(*v);
          has_type = true;
        }
        break;
      case NETDEV_A_QUEUE_NAPI_ID:
        queue.napi_id = u32(attr);
        break;
      case NETDEV_A_QUEUE_DMABUF:
        queue.dmabuf = u32(attr);
        break;
      case NETDEV_A_QUEUE_IO_URING:
        // An (empty through 6.18) nest: its presence is the information.
        queue.io_uring = true;
        break;
      case NETDEV_A_QUEUE_XSK:
        queue.xsk = true;
        break;
      default:
        break;
    }
  });
  if (!well_formed) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": malformed attribute list"));
  }
  if (!status.ok()) return status;
  if (!has_id || !has_type) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": queue without ", has_id ? "type" : "id"));
  }
  return queue;
}

absl::StatusOr<std::unique_ptr<NetdevGenl>> NetdevGenl::Open() {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  if (!sock.ok()) return sock.status();
  absl::StatusOr<GenlFamily> family =
      ResolveGenlFamily(**sock, NETDEV_FAMILY_NAME);
  if (!family.ok()) {
    if (absl::IsNotFound(family.status())) {
      return absl::NotFoundError(absl::StrCat(
          "the kernel has no \"netdev\" generic netlink family (added in "
          "6.3): ",
          family.status().message()));
    }
    return family.status();
  }
  return std::unique_ptr<NetdevGenl>(
      new NetdevGenl(*std::move(sock), *std::move(family)));
}

bool NetdevGenl::HasBindRx() const { return family_.HasOp(NETDEV_CMD_BIND_RX); }

absl::StatusOr<NetdevDevInfo> NetdevGenl::DevGet(uint32_t ifindex) {
  const std::string what =
      absl::StrCat("netdev dev-get ", IfNameForMessages(ifindex));
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  absl::Status s = LibnlGenlSocket::PutGenlHeader(
      msg.get(), family_.id, NETDEV_CMD_DEV_GET, NETDEV_FAMILY_VERSION, 0);
  if (!s.ok()) return s;
  if (nla_put_u32(msg.get(), NETDEV_A_DEV_IFINDEX, ifindex) < 0) {
    return ErrnoStatus(EMSGSIZE, what);
  }
  std::optional<NetdevDevInfo> info;
  {
    absl::MutexLock lock(&mu_);
    s = sock_->Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
      absl::StatusOr<NetdevDevInfo> parsed = ParseNetdevDevReply(reply);
      if (!parsed.ok()) return parsed.status();
      info = *parsed;
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  if (!info.has_value()) {
    return absl::InternalError(absl::StrCat(what, ": ACK without a reply"));
  }
  return *info;
}

absl::StatusOr<std::vector<QueueInfo>> NetdevGenl::QueueGet(uint32_t ifindex) {
  const std::string what =
      absl::StrCat("netdev queue-get ", IfNameForMessages(ifindex));
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  absl::Status s = LibnlGenlSocket::PutGenlHeader(
      msg.get(), family_.id, NETDEV_CMD_QUEUE_GET, NETDEV_FAMILY_VERSION,
      NLM_F_DUMP);
  if (!s.ok()) return s;
  if (nla_put_u32(msg.get(), NETDEV_A_QUEUE_IFINDEX, ifindex) < 0) {
    return ErrnoStatus(EMSGSIZE, what);
  }
  std::vector<QueueInfo> queues;
  {
    absl::MutexLock lock(&mu_);
    s = sock_->Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
      uint32_t queue_ifindex = ifindex;
      absl::StatusOr<QueueInfo> parsed =
          ParseNetdevQueueReply(reply, &queue_ifindex);
      if (!parsed.ok()) return parsed.status();
      // Belt and braces: keep only the device asked about.
      if (queue_ifindex == ifindex) queues.push_back(*parsed);
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  return queues;
}

}  // namespace devmem
