#include "kernel/netdev_genl.h"

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/ifname_util.h"
#include "kernel/netlink_attr.h"
#include "kernel/netlink_error.h"
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

// Typed attribute reads for the reply parsers: a malformed attribute gives
// nullopt and is noted in `*status` (the first one only), so a parser reads
// every attribute in one pass and then reports.
struct AttrReader {
  absl::string_view what;
  absl::Status* status;

  std::optional<uint32_t> U32(const NlAttr& attr) const {
    std::optional<uint32_t> v = attr.U32();
    if (!v.has_value() && status->ok()) *status = Malformed(what, attr);
    return v;
  }
  // A netlink "uint" (nla_put_uint()): 4 or 8 bytes.
  std::optional<uint64_t> Uint(const NlAttr& attr) const {
    if (attr.payload.size() != 4 && attr.payload.size() != 8) {
      if (status->ok()) *status = Malformed(what, attr);
      return std::nullopt;
    }
    return attr.Uint();
  }
};

// Reads the attributes of a `cmd` reply, handing each to `visit` together
// with a reader that notes the first malformed one. The error names `what`:
// a bad header or command, a malformed attribute list, or the first
// malformed attribute.
template <typename Visit>
absl::Status ParseReplyAttrs(absl::Span<const uint8_t> msg, uint8_t cmd,
                             absl::string_view what, Visit&& visit) {
  absl::StatusOr<absl::Span<const uint8_t>> attrs = GenlAttrs(msg, cmd, what);
  if (!attrs.ok()) return attrs.status();
  absl::Status status;
  const AttrReader read{what, &status};
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) { visit(attr, read); })) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": malformed attribute list"));
  }
  return status;
}

// A libnl message holding `msg`'s bytes, for LibnlGenlSocket::Transact. seq
// and pid are 0 (NL_AUTO_SEQ/NL_AUTO_PORT): nl_send_auto() stamps them.
LibnlGenlSocket::MsgPtr ToNlMsg(const GenlMsg& msg) {
  // nlmsg_convert() only copies from the header it is given.
  auto* nlh =
      reinterpret_cast<nlmsghdr*>(const_cast<uint8_t*>(msg.bytes().data()));
  return LibnlGenlSocket::MsgPtr(nlmsg_convert(nlh), &nlmsg_free);
}

// `s` with "what: " in front of its message, keeping its payloads (errno,
// extack).
absl::Status WithContext(const absl::Status& s, absl::string_view what) {
  absl::Status out(s.code(), absl::StrCat(what, ": ", s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

constexpr uint16_t kGetFlags = NLM_F_REQUEST | NLM_F_ACK;
constexpr uint16_t kDumpFlags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;

// One request/reply exchange on a raw netlink fd, sending `msg` as is (its
// seq must be set). Unlike LibnlGenlSocket::Transact this keeps
// NLMSGERR_ATTR_OFFS: when the kernel flags an attribute without text,
// `describe_offset` names it for the status's extack. Used for the bind ops,
// whose socket must stay open afterwards.
absl::Status RawExchange(
    int fd, const GenlMsg& msg, absl::string_view what,
    absl::FunctionRef<absl::Status(absl::Span<const uint8_t>)> on_reply,
    absl::FunctionRef<std::string(uint32_t)> describe_offset) {
  const absl::Span<const uint8_t> request = msg.bytes();
  ssize_t sent;
  do {
    sent = send(fd, request.data(), request.size(), 0);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return ErrnoStatus(errno, absl::StrCat(what, ": send"));
  if (static_cast<size_t>(sent) != request.size()) {
    return ErrnoStatus(EMSGSIZE, absl::StrCat(what, ": short send"));
  }
  // Replies to bind ops are a few dozen bytes; an error echoes no request
  // (NETLINK_CAP_ACK) but may carry extack TLVs.
  alignas(NLMSG_ALIGNTO) uint8_t buf[16384];
  absl::Status reply_status;
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // OpenNlSock() sets SO_RCVTIMEO: the kernel did not answer in time.
        return ErrnoStatus(ETIMEDOUT, absl::StrCat(what, ": no reply"));
      }
      return ErrnoStatus(errno, absl::StrCat(what, ": receive"));
    }
    if (static_cast<size_t>(n) > sizeof(buf)) {
      return ErrnoStatus(EMSGSIZE,
                         absl::StrCat(what, ": reply of ", n, " bytes"));
    }
    absl::Span<const uint8_t> left(buf, static_cast<size_t>(n));
    while (left.size() >= NLMSG_HDRLEN) {
      nlmsghdr hdr;
      std::memcpy(&hdr, left.data(), sizeof(hdr));
      if (hdr.nlmsg_len < NLMSG_HDRLEN || hdr.nlmsg_len > left.size()) {
        return ErrnoStatus(EPROTO, absl::StrCat(what, ": malformed reply"));
      }
      const absl::Span<const uint8_t> one = left.first(hdr.nlmsg_len);
      left.remove_prefix(
          std::min<size_t>(NLMSG_ALIGN(hdr.nlmsg_len), left.size()));
      if (hdr.nlmsg_seq != msg.seq()) continue;  // not ours
      if (hdr.nlmsg_type == NLMSG_ERROR || hdr.nlmsg_type == NLMSG_DONE) {
        absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(one);
        if (!ack.ok()) {
          return ErrnoStatus(EPROTO,
                             absl::StrCat(what, ": ", ack.status().message()));
        }
        if (ack->error == 0) {
          if (!reply_status.ok()) return WithContext(reply_status, what);
          return absl::OkStatus();
        }
        std::string extack = ack->message;
        if (ack->bad_offset.has_value()) {
          const std::string attr = describe_offset(*ack->bad_offset);
          if (!attr.empty()) {
            extack = extack.empty()
                         ? absl::StrCat("bad attribute: ", attr)
                         : absl::StrCat(extack, " (bad attribute: ", attr, ")");
          }
        }
        return ErrnoStatus(ack->error, what, extack);
      }
      if (hdr.nlmsg_type >= NLMSG_MIN_TYPE) {
        absl::Status s = on_reply(one);
        if (!s.ok() && reply_status.ok()) reply_status = std::move(s);
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> Bind(
    uint8_t cmd, uint32_t ifindex, int dmabuf_fd,
    absl::Span<const uint32_t> queues) {
  const bool tx = cmd == NETDEV_CMD_BIND_TX;
  const std::string what = absl::StrCat(
      tx ? "netdev bind-tx " : "netdev bind-rx ", IfNameForMessages(ifindex));
  if (dmabuf_fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": invalid dmabuf fd ", dmabuf_fd));
  }
  // A new socket per binding: the binding lives exactly as long as it.
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  if (!sock.ok()) return WithContext(sock.status(), what);
  absl::StatusOr<GenlFamily> family =
      ResolveGenlFamily(**sock, NETDEV_FAMILY_NAME);
  if (!family.ok()) return WithContext(family.status(), what);
  if (!family->HasOp(cmd)) {
    return absl::UnimplementedError(
        absl::StrCat(what, ": ",
                     tx ? "kernel lacks netdev bind-tx (6.16+)"
                        : "kernel lacks netdev bind-rx (6.12+)"));
  }
  GenlMsg msg = tx ? BuildNetdevBindTx(family->id, ifindex, dmabuf_fd)
                   : BuildNetdevBindRx(family->id, ifindex, dmabuf_fd, queues);
  if (msg.overflowed()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", queues.size(), " queues do not fit one netlink message"));
  }
  nl_sock* nl = (*sock)->sock_unowned();
  msg.set_seq(nl_socket_use_seq(nl));
  uint32_t id = 0;
  absl::Status s = RawExchange(
      nl_socket_get_fd(nl), msg, what,
      [&](absl::Span<const uint8_t> reply) -> absl::Status {
        absl::StatusOr<uint32_t> parsed = ParseNetdevBindReply(reply, cmd);
        if (!parsed.ok()) return parsed.status();
        id = *parsed;
        return absl::OkStatus();
      },
      [&](uint32_t offset) {
        return DescribeBindAttrAtOffset(msg.bytes(), offset);
      });
  if (!s.ok()) return s;
  if (id == 0) {
    return absl::InternalError(
        absl::StrCat(what, ": ACK without a binding id"));
  }
  return std::unique_ptr<DevmemBinding>(new NetdevBinding(
      *std::move(sock), id, ifindex,
      std::vector<uint32_t>(queues.begin(), queues.end()), tx));
}

}  // namespace

GenlMsg BuildNetdevBindRx(uint16_t family_id, uint32_t ifindex, int dmabuf_fd,
                          absl::Span<const uint32_t> queues) {
  GenlMsg msg(family_id, NETDEV_CMD_BIND_RX, NETDEV_FAMILY_VERSION, kGetFlags);
  msg.PutU32(NETDEV_A_DMABUF_IFINDEX, ifindex);
  msg.PutU32(NETDEV_A_DMABUF_FD, static_cast<uint32_t>(dmabuf_fd));
  for (uint32_t queue : queues) {
    const size_t nest = msg.BeginNest(NETDEV_A_DMABUF_QUEUES);
    msg.PutU32(NETDEV_A_QUEUE_ID, queue);
    msg.PutU32(NETDEV_A_QUEUE_TYPE, NETDEV_QUEUE_TYPE_RX);
    msg.EndNest(nest);
  }
  return msg;
}

GenlMsg BuildNetdevBindTx(uint16_t family_id, uint32_t ifindex, int dmabuf_fd) {
  GenlMsg msg(family_id, NETDEV_CMD_BIND_TX, NETDEV_FAMILY_VERSION, kGetFlags);
  msg.PutU32(NETDEV_A_DMABUF_IFINDEX, ifindex);
  msg.PutU32(NETDEV_A_DMABUF_FD, static_cast<uint32_t>(dmabuf_fd));
  return msg;
}

GenlMsg BuildNetdevNapiGetDump(uint16_t family_id, uint32_t ifindex) {
  GenlMsg msg(family_id, NETDEV_CMD_NAPI_GET, NETDEV_FAMILY_VERSION,
              kDumpFlags);
  msg.PutU32(NETDEV_A_NAPI_IFINDEX, ifindex);
  return msg;
}

GenlMsg BuildNetdevQstatsGetDump(uint16_t family_id, uint32_t ifindex,
                                 bool per_queue) {
  GenlMsg msg(family_id, NETDEV_CMD_QSTATS_GET, NETDEV_FAMILY_VERSION,
              kDumpFlags);
  msg.PutU32(NETDEV_A_QSTATS_IFINDEX, ifindex);
  // The policy is NLA_UINT (u32 or u64); u32 as ynl sends it.
  if (per_queue) msg.PutU32(NETDEV_A_QSTATS_SCOPE, NETDEV_QSTATS_SCOPE_QUEUE);
  return msg;
}

GenlMsg BuildNetdevPagePoolGetDump(uint16_t family_id) {
  return GenlMsg(family_id, NETDEV_CMD_PAGE_POOL_GET, NETDEV_FAMILY_VERSION,
                 kDumpFlags);
}

std::string DescribeBindAttrAtOffset(absl::Span<const uint8_t> request,
                                     uint32_t offset) {
  constexpr size_t kAttrsStart = NLMSG_HDRLEN + GENL_HDRLEN;
  if (request.size() < kAttrsStart || offset < kAttrsStart) return "";
  const uint8_t* base = request.data();
  std::string found;
  int queue_index = 0;
  ForEachAttr(request.subspan(kAttrsStart), [&](const NlAttr& attr) {
    const size_t at =
        static_cast<size_t>(attr.payload.data() - base) - NLA_HDRLEN;
    switch (attr.type) {
      case NETDEV_A_DMABUF_IFINDEX:
        if (at == offset) found = "ifindex";
        break;
      case NETDEV_A_DMABUF_FD:
        if (at == offset) found = "fd";
        break;
      case NETDEV_A_DMABUF_QUEUES: {
        const std::string name = absl::StrCat("queues[", queue_index, "]");
        if (at == offset) found = name;
        ForEachAttr(attr.payload, [&](const NlAttr& inner) {
          const size_t inner_at =
              static_cast<size_t>(inner.payload.data() - base) - NLA_HDRLEN;
          if (inner_at != offset) return;
          if (inner.type == NETDEV_A_QUEUE_ID) found = name + ".id";
          if (inner.type == NETDEV_A_QUEUE_TYPE) found = name + ".type";
        });
        ++queue_index;
        break;
      }
      default:
        if (at == offset) found = absl::StrCat("attribute ", attr.type);
        break;
    }
  });
  return found;
}

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
  QueueInfo queue;
  bool has_id = false;
  bool has_type = false;
  absl::Status status = ParseReplyAttrs(
      msg, NETDEV_CMD_QUEUE_GET, kWhat,
      [&](const NlAttr& attr, const AttrReader& read) {
        switch (attr.type) {
          case NETDEV_A_QUEUE_ID:
            if (auto v = read.U32(attr)) {
              queue.id = *v;
              has_id = true;
            }
            break;
          case NETDEV_A_QUEUE_IFINDEX:
            if (auto v = read.U32(attr); v && ifindex != nullptr) *ifindex = *v;
            break;
          case NETDEV_A_QUEUE_TYPE:
            if (auto v = read.U32(attr)) {
              queue.type = static_cast<QueueInfo::Type>(*v);
              has_type = true;
            }
            break;
          case NETDEV_A_QUEUE_NAPI_ID:
            queue.napi_id = read.U32(attr);
            break;
          case NETDEV_A_QUEUE_DMABUF:
            queue.dmabuf = read.U32(attr);
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
  if (!status.ok()) return status;
  if (!has_id || !has_type) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": queue without ", has_id ? "type" : "id"));
  }
  return queue;
}

absl::StatusOr<NapiInfo> ParseNetdevNapiReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "netdev napi-get reply";
  NapiInfo napi;
  bool has_id = false;
  absl::Status status = ParseReplyAttrs(
      msg, NETDEV_CMD_NAPI_GET, kWhat,
      [&](const NlAttr& attr, const AttrReader& read) {
        switch (attr.type) {
          case NETDEV_A_NAPI_ID:
            if (auto v = read.U32(attr)) {
              napi.id = *v;
              has_id = true;
            }
            break;
          case NETDEV_A_NAPI_IFINDEX:
            if (auto v = read.U32(attr)) napi.ifindex = *v;
            break;
          case NETDEV_A_NAPI_IRQ:
            napi.irq = read.U32(attr);
            break;
          case NETDEV_A_NAPI_PID:
            napi.pid = read.U32(attr);
            break;
          default:  // 6.13+ per-NAPI config, 6.17+ threaded: not needed here
            break;
        }
      });
  if (!status.ok()) return status;
  if (!has_id) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": NAPI without id"));
  }
  return napi;
}

absl::StatusOr<PagePoolInfo> ParseNetdevPagePoolReply(
    absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "netdev page-pool-get reply";
  PagePoolInfo pool;
  bool has_id = false;
  absl::Status status =
      ParseReplyAttrs(msg, NETDEV_CMD_PAGE_POOL_GET, kWhat,
                      [&](const NlAttr& attr, const AttrReader& read) {
                        switch (attr.type) {
                          case NETDEV_A_PAGE_POOL_ID:
                            if (auto v = read.Uint(attr)) {
                              pool.id = *v;
                              has_id = true;
                            }
                            break;
                          case NETDEV_A_PAGE_POOL_IFINDEX:
                            pool.ifindex = read.U32(attr);
                            break;
                          case NETDEV_A_PAGE_POOL_NAPI_ID:
                            pool.napi_id = read.Uint(attr);
                            break;
                          case NETDEV_A_PAGE_POOL_INFLIGHT:
                            pool.inflight = read.Uint(attr);
                            break;
                          case NETDEV_A_PAGE_POOL_INFLIGHT_MEM:
                            pool.inflight_mem = read.Uint(attr);
                            break;
                          case NETDEV_A_PAGE_POOL_DETACH_TIME:
                            pool.detach_time = read.Uint(attr);
                            break;
                          case NETDEV_A_PAGE_POOL_DMABUF:
                            pool.dmabuf = read.U32(attr);
                            break;
                          default:  // 6.15+ io_uring nest: not ours
                            break;
                        }
                      });
  if (!status.ok()) return status;
  if (!has_id) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": page pool without id"));
  }
  return pool;
}

absl::StatusOr<QstatsInfo> ParseNetdevQstatsReply(
    absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "netdev qstats-get reply";
  QstatsInfo stats;
  bool has_ifindex = false;
  absl::Status status = ParseReplyAttrs(
      msg, NETDEV_CMD_QSTATS_GET, kWhat,
      [&](const NlAttr& attr, const AttrReader& read) {
        switch (attr.type) {
          case NETDEV_A_QSTATS_IFINDEX:
            if (auto v = read.U32(attr)) {
              stats.ifindex = *v;
              has_ifindex = true;
            }
            break;
          case NETDEV_A_QSTATS_QUEUE_TYPE:
            if (auto v = read.U32(attr)) {
              stats.queue_type = static_cast<QueueInfo::Type>(*v);
            }
            break;
          case NETDEV_A_QSTATS_QUEUE_ID:
            stats.queue_id = read.U32(attr);
            break;
          case NETDEV_A_QSTATS_RX_PACKETS:
            stats.rx_packets = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_RX_BYTES:
            stats.rx_bytes = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_PACKETS:
            stats.tx_packets = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_BYTES:
            stats.tx_bytes = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_RX_ALLOC_FAIL:
            stats.rx_alloc_fail = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_RX_HW_DROPS:
            stats.rx_hw_drops = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_RX_HW_DROP_OVERRUNS:
            stats.rx_hw_drop_overruns = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_RX_HW_DROP_RATELIMITS:
            stats.rx_hw_drop_ratelimits = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_HW_DROPS:
            stats.tx_hw_drops = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_HW_DROP_ERRORS:
            stats.tx_hw_drop_errors = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_HW_DROP_RATELIMITS:
            stats.tx_hw_drop_ratelimits = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_STOP:
            stats.tx_stop = read.Uint(attr);
            break;
          case NETDEV_A_QSTATS_TX_WAKE:
            stats.tx_wake = read.Uint(attr);
            break;
          default:  // checksum and GRO/GSO counters
            break;
        }
      });
  if (!status.ok()) return status;
  if (!has_ifindex) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": no ifindex"));
  }
  if (stats.queue_type.has_value() != stats.queue_id.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": queue type without queue id or the reverse"));
  }
  return stats;
}

absl::StatusOr<uint32_t> ParseNetdevBindReply(absl::Span<const uint8_t> msg,
                                              uint8_t cmd) {
  constexpr absl::string_view kWhat = "netdev bind reply";
  std::optional<uint32_t> id;
  absl::Status status = ParseReplyAttrs(
      msg, cmd, kWhat, [&](const NlAttr& attr, const AttrReader& read) {
        if (attr.type == NETDEV_A_DMABUF_ID) id = read.U32(attr);
      });
  if (!status.ok()) return status;
  if (!id.has_value() || *id == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": no NETDEV_A_DMABUF_ID"));
  }
  return *id;
}

std::unique_ptr<NetdevBinding> NetdevBinding::Adopt(
    UniqueFd netlink_fd, uint32_t id, uint32_t ifindex,
    std::vector<uint32_t> queues, bool is_tx) {
  return std::unique_ptr<NetdevBinding>(new NetdevBinding(
      std::move(netlink_fd), id, ifindex, std::move(queues), is_tx));
}

int NetdevBinding::netlink_fd_unowned() const {
  if (sock_ != nullptr) return nl_socket_get_fd(sock_->sock_unowned());
  return adopted_fd_.get_unowned();
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> NetdevBindRx(
    uint32_t ifindex, int dmabuf_fd, absl::Span<const uint32_t> queues) {
  return Bind(NETDEV_CMD_BIND_RX, ifindex, dmabuf_fd, queues);
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> NetdevBindTx(uint32_t ifindex,
                                                            int dmabuf_fd) {
  return Bind(NETDEV_CMD_BIND_TX, ifindex, dmabuf_fd, {});
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

absl::StatusOr<std::vector<NapiInfo>> NetdevGenl::NapiGet(uint32_t ifindex) {
  const std::string what =
      absl::StrCat("netdev napi-get ", IfNameForMessages(ifindex));
  LibnlGenlSocket::MsgPtr msg =
      ToNlMsg(BuildNetdevNapiGetDump(family_.id, ifindex));
  if (msg == nullptr) return ErrnoStatus(ENOMEM, what);
  std::vector<NapiInfo> napis;
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    s = sock_->Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
      absl::StatusOr<NapiInfo> parsed = ParseNetdevNapiReply(reply);
      if (!parsed.ok()) return parsed.status();
      if (parsed->ifindex == ifindex) napis.push_back(*parsed);
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  return napis;
}

absl::StatusOr<std::vector<QstatsInfo>> NetdevGenl::QstatsGet(uint32_t ifindex,
                                                              bool per_queue) {
  const std::string what =
      absl::StrCat("netdev qstats-get ", IfNameForMessages(ifindex));
  LibnlGenlSocket::MsgPtr msg =
      ToNlMsg(BuildNetdevQstatsGetDump(family_.id, ifindex, per_queue));
  if (msg == nullptr) return ErrnoStatus(ENOMEM, what);
  std::vector<QstatsInfo> stats;
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    s = sock_->Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
      absl::StatusOr<QstatsInfo> parsed = ParseNetdevQstatsReply(reply);
      if (!parsed.ok()) return parsed.status();
      if (parsed->ifindex == ifindex) stats.push_back(*parsed);
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  return stats;
}

absl::StatusOr<std::vector<PagePoolInfo>> NetdevGenl::PagePoolGet(
    uint32_t ifindex) {
  const std::string what =
      absl::StrCat("netdev page-pool-get ", IfNameForMessages(ifindex));
  LibnlGenlSocket::MsgPtr msg = ToNlMsg(BuildNetdevPagePoolGetDump(family_.id));
  if (msg == nullptr) return ErrnoStatus(ENOMEM, what);
  std::vector<PagePoolInfo> pools;
  absl::Status s;
  {
    absl::MutexLock lock(&mu_);
    s = sock_->Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
      absl::StatusOr<PagePoolInfo> parsed = ParseNetdevPagePoolReply(reply);
      if (!parsed.ok()) return parsed.status();
      if (parsed->ifindex == ifindex) pools.push_back(*parsed);
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  return pools;
}

}  // namespace devmem
