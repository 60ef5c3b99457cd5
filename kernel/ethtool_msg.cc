#include "kernel/ethtool_msg.h"

#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernel/netlink_attr.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

// GETs ask for no ACK: the kernel answers a "do" request with exactly one
// message, the reply or an NLMSG_ERROR, and acks only if asked or on error
// (net/netlink/af_netlink.c netlink_rcv_skb()). One message fewer per read.
constexpr uint16_t kGetFlags = NLM_F_REQUEST;
constexpr absl::string_view kNtupleFeature = "rx-ntuple-filter";

void PutHeader(GenlMsg& msg, uint16_t nest_type, const EthtoolDev& dev,
               std::optional<uint32_t> flags) {
  const size_t nest = msg.BeginNest(nest_type);
  if (dev.ifindex() != 0) {
    msg.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, dev.ifindex());
  } else {
    msg.PutStrz(ETHTOOL_A_HEADER_DEV_NAME, dev.ifname());
  }
  if (flags.has_value()) msg.PutU32(ETHTOOL_A_HEADER_FLAGS, *flags);
  msg.EndNest(nest);
}

// The attributes of a genl message after checking it is `want_cmd`.
absl::StatusOr<absl::Span<const uint8_t>> GenlAttrs(
    absl::Span<const uint8_t> msg, uint8_t want_cmd, absl::string_view what) {
  nlmsghdr nlh;
  genlmsghdr genl;
  if (msg.size() < NLMSG_HDRLEN + GENL_HDRLEN) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": message of ", msg.size(),
                     " bytes is shorter than its headers"));
  }
  std::memcpy(&nlh, msg.data(), sizeof(nlh));
  std::memcpy(&genl, msg.data() + NLMSG_HDRLEN, sizeof(genl));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN ||
      nlh.nlmsg_len > msg.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": nlmsg_len ", nlh.nlmsg_len, " does not fit the ",
                     msg.size(), " bytes given"));
  }
  if (genl.cmd != want_cmd) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": reply command is ", genl.cmd, ", expected ", want_cmd));
  }
  return msg.subspan(NLMSG_HDRLEN + GENL_HDRLEN,
                     nlh.nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
}

// Collects the first size error seen while walking attributes.
class AttrErrors {
 public:
  explicit AttrErrors(absl::string_view what) : what_(what) {}

  template <typename T>
  void Take(const NlAttr& attr, const std::optional<T>& value,
            std::optional<uint32_t>& out) {
    if (value.has_value()) {
      out = static_cast<uint32_t>(*value);
    } else {
      Fail(attr, sizeof(T));
    }
  }
  void Fail(const NlAttr& attr, size_t want) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(what_, ": attribute ", attr.type, " has ",
                       attr.payload.size(), " bytes, expected ", want));
    }
  }
  void Malformed() {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(what_, ": malformed attribute list"));
    }
  }
  const absl::Status& status() const { return status_; }

 private:
  std::string what_;
  absl::Status status_;
};

// One verbose bitset (net/ethtool/bitset.c ethnl_put_bitset32()): finds a bit
// by name. With NOMASK only set bits are listed; otherwise bits carry a VALUE
// flag when set.
struct BitsetLookup {
  bool compact = false;  // VALUE/MASK blobs, no names
  bool found = false;
  bool on = false;
  uint32_t named_bits = 0;
};

BitsetLookup LookupBit(absl::Span<const uint8_t> bitset, absl::string_view name,
                       AttrErrors& errors) {
  BitsetLookup out;
  bool nomask = false;
  bool has_bits = false;
  bool has_value_blob = false;
  std::optional<absl::Span<const uint8_t>> bits;
  if (!ForEachAttr(bitset, [&](const NlAttr& attr) {
        switch (attr.type) {
          case ETHTOOL_A_BITSET_NOMASK:
            nomask = true;
            break;
          case ETHTOOL_A_BITSET_BITS:
            has_bits = true;
            bits = attr.payload;
            break;
          case ETHTOOL_A_BITSET_VALUE:
            has_value_blob = true;
            break;
          default:
            break;
        }
      })) {
    errors.Malformed();
  }
  if (!has_bits && has_value_blob) {
    out.compact = true;
    return out;
  }
  if (!bits.has_value()) return out;
  if (!ForEachAttr(*bits, [&](const NlAttr& bit) {
        if (bit.type != ETHTOOL_A_BITSET_BITS_BIT) return;
        absl::string_view bit_name;
        bool value = false;
        if (!ForEachAttr(bit.payload, [&](const NlAttr& field) {
              if (field.type == ETHTOOL_A_BITSET_BIT_NAME) {
                bit_name = field.StrView();
              } else if (field.type == ETHTOOL_A_BITSET_BIT_VALUE) {
                value = true;
              }
            })) {
          errors.Malformed();
        }
        if (bit_name.empty()) return;
        ++out.named_bits;
        if (bit_name == name) {
          out.found = true;
          out.on = nomask || value;
        }
      })) {
    errors.Malformed();
  }
  return out;
}

}  // namespace

GenlMsg BuildChannelsGet(uint16_t family_id, const EthtoolDev& dev) {
  GenlMsg msg(family_id, ETHTOOL_MSG_CHANNELS_GET, kEthtoolGenlVersion,
              kGetFlags);
  PutHeader(msg, ETHTOOL_A_CHANNELS_HEADER, dev, std::nullopt);
  return msg;
}

GenlMsg BuildRingsGet(uint16_t family_id, const EthtoolDev& dev) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RINGS_GET, kEthtoolGenlVersion, kGetFlags);
  PutHeader(msg, ETHTOOL_A_RINGS_HEADER, dev, std::nullopt);
  return msg;
}

GenlMsg BuildFeaturesGet(uint16_t family_id, const EthtoolDev& dev) {
  GenlMsg msg(family_id, ETHTOOL_MSG_FEATURES_GET, kEthtoolGenlVersion,
              kGetFlags);
  // Flags 0: verbose bitsets, so every bit comes with its name.
  PutHeader(msg, ETHTOOL_A_FEATURES_HEADER, dev, /*flags=*/0u);
  return msg;
}

absl::StatusOr<ChannelsInfo> ParseChannelsReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "ethtool CHANNELS_GET reply";
  auto attrs = GenlAttrs(msg, ETHTOOL_MSG_CHANNELS_GET_REPLY, kWhat);
  if (!attrs.ok()) return attrs.status();
  ChannelsInfo info;
  AttrErrors errors(kWhat);
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) {
        std::optional<uint32_t>* field = nullptr;
        switch (attr.type) {
          case ETHTOOL_A_CHANNELS_RX_MAX:
            field = &info.rx_max;
            break;
          case ETHTOOL_A_CHANNELS_TX_MAX:
            field = &info.tx_max;
            break;
          case ETHTOOL_A_CHANNELS_OTHER_MAX:
            field = &info.other_max;
            break;
          case ETHTOOL_A_CHANNELS_COMBINED_MAX:
            field = &info.combined_max;
            break;
          case ETHTOOL_A_CHANNELS_RX_COUNT:
            field = &info.rx_count;
            break;
          case ETHTOOL_A_CHANNELS_TX_COUNT:
            field = &info.tx_count;
            break;
          case ETHTOOL_A_CHANNELS_OTHER_COUNT:
            field = &info.other_count;
            break;
          case ETHTOOL_A_CHANNELS_COMBINED_COUNT:
            field = &info.combined_count;
            break;
          default:
            return;
        }
        errors.Take(attr, attr.U32(), *field);
      })) {
    errors.Malformed();
  }
  if (!errors.status().ok()) return errors.status();
  return info;
}

absl::StatusOr<RingsInfo> ParseRingsReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "ethtool RINGS_GET reply";
  auto attrs = GenlAttrs(msg, ETHTOOL_MSG_RINGS_GET_REPLY, kWhat);
  if (!attrs.ok()) return attrs.status();
  RingsInfo info;
  AttrErrors errors(kWhat);
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) {
        std::optional<uint32_t>* field = nullptr;
        switch (attr.type) {
          case ETHTOOL_A_RINGS_RX_MAX:
            field = &info.rx_max;
            break;
          case ETHTOOL_A_RINGS_RX_MINI_MAX:
            field = &info.rx_mini_max;
            break;
          case ETHTOOL_A_RINGS_RX_JUMBO_MAX:
            field = &info.rx_jumbo_max;
            break;
          case ETHTOOL_A_RINGS_TX_MAX:
            field = &info.tx_max;
            break;
          case ETHTOOL_A_RINGS_RX:
            field = &info.rx;
            break;
          case ETHTOOL_A_RINGS_RX_MINI:
            field = &info.rx_mini;
            break;
          case ETHTOOL_A_RINGS_RX_JUMBO:
            field = &info.rx_jumbo;
            break;
          case ETHTOOL_A_RINGS_TX:
            field = &info.tx;
            break;
          case ETHTOOL_A_RINGS_RX_BUF_LEN:
            field = &info.rx_buf_len;
            break;
          case ETHTOOL_A_RINGS_HDS_THRESH:
            field = &info.hds_thresh;
            break;
          case ETHTOOL_A_RINGS_HDS_THRESH_MAX:
            field = &info.hds_thresh_max;
            break;
          case ETHTOOL_A_RINGS_TCP_DATA_SPLIT: {
            // net/ethtool/rings.c rings_fill_reply(): omitted when UNKNOWN (0).
            const std::optional<uint8_t> split = attr.U8();
            if (split.has_value()) {
              info.tcp_data_split = static_cast<TcpDataSplit>(*split);
            } else {
              errors.Fail(attr, sizeof(uint8_t));
            }
            return;
          }
          default:
            return;
        }
        errors.Take(attr, attr.U32(), *field);
      })) {
    errors.Malformed();
  }
  if (!errors.status().ok()) return errors.status();
  return info;
}

absl::StatusOr<FeaturesInfo> ParseFeaturesReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "ethtool FEATURES_GET reply";
  auto attrs = GenlAttrs(msg, ETHTOOL_MSG_FEATURES_GET_REPLY, kWhat);
  if (!attrs.ok()) return attrs.status();
  AttrErrors errors(kWhat);
  std::optional<BitsetLookup> hw, active;
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) {
        if (attr.type == ETHTOOL_A_FEATURES_HW) {
          hw = LookupBit(attr.payload, kNtupleFeature, errors);
        } else if (attr.type == ETHTOOL_A_FEATURES_ACTIVE) {
          active = LookupBit(attr.payload, kNtupleFeature, errors);
        }
      })) {
    errors.Malformed();
  }
  if (!errors.status().ok()) return errors.status();
  if (!hw.has_value() || !active.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kWhat, ": missing the ", hw.has_value() ? "ACTIVE" : "HW", " bitset"));
  }
  if (hw->compact || active->compact) {
    return absl::InvalidArgumentError(absl::StrCat(
        kWhat, ": compact bitset without names; request verbose bitsets"));
  }
  FeaturesInfo info;
  info.ntuple_hw = hw->found && hw->on;
  info.ntuple_active = active->found && active->on;
  info.feature_count = hw->named_bits;
  return info;
}

}  // namespace devmem
