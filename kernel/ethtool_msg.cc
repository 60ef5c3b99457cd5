#include "kernel/ethtool_msg.h"

#include <cstring>
#include <optional>
#include <utility>

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
// SETs and ACTs wait for the ACK: it is the only sign that they were applied.
constexpr uint16_t kSetFlags = NLM_F_REQUEST | NLM_F_ACK;
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
  void Bad(const NlAttr& attr, absl::string_view why) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(what_, ": attribute ", attr.type, " has ",
                       attr.payload.size(), " bytes, ", why));
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

// The u32 table as the bytes of a binary attribute (native endianness, as
// net/ethtool/rss.c reads it).
absl::Span<const uint8_t> IndirBytes(absl::Span<const uint32_t> indir) {
  return absl::Span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(indir.data()),
      indir.size() * sizeof(uint32_t));
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

GenlMsg BuildRingsSet(uint16_t family_id, const EthtoolDev& dev,
                      const RingsSet& rings) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RINGS_SET, kEthtoolGenlVersion, kSetFlags);
  PutHeader(msg, ETHTOOL_A_RINGS_HEADER, dev, std::nullopt);
  if (rings.tcp_data_split.has_value()) {
    msg.PutU8(ETHTOOL_A_RINGS_TCP_DATA_SPLIT,
              static_cast<uint8_t>(*rings.tcp_data_split));
  }
  if (rings.hds_thresh.has_value()) {
    msg.PutU32(ETHTOOL_A_RINGS_HDS_THRESH, *rings.hds_thresh);
  }
  return msg;
}

GenlMsg BuildFeaturesSetNtuple(uint16_t family_id, const EthtoolDev& dev,
                               bool enable) {
  GenlMsg msg(family_id, ETHTOOL_MSG_FEATURES_SET, kEthtoolGenlVersion,
              kSetFlags);
  PutHeader(msg, ETHTOOL_A_FEATURES_HEADER, dev, /*flags=*/0u);
  const size_t wanted = msg.BeginNest(ETHTOOL_A_FEATURES_WANTED);
  const size_t bits = msg.BeginNest(ETHTOOL_A_BITSET_BITS);
  const size_t bit = msg.BeginNest(ETHTOOL_A_BITSET_BITS_BIT);
  msg.PutStrz(ETHTOOL_A_BITSET_BIT_NAME, kNtupleFeature);
  if (enable) msg.PutFlag(ETHTOOL_A_BITSET_BIT_VALUE);
  msg.EndNest(bit);
  msg.EndNest(bits);
  msg.EndNest(wanted);
  return msg;
}

GenlMsg BuildChannelsSet(uint16_t family_id, const EthtoolDev& dev,
                         const ChannelsSet& channels) {
  GenlMsg msg(family_id, ETHTOOL_MSG_CHANNELS_SET, kEthtoolGenlVersion,
              kSetFlags);
  PutHeader(msg, ETHTOOL_A_CHANNELS_HEADER, dev, std::nullopt);
  const std::pair<uint16_t, const std::optional<uint32_t>*> counts[] = {
      {ETHTOOL_A_CHANNELS_RX_COUNT, &channels.rx_count},
      {ETHTOOL_A_CHANNELS_TX_COUNT, &channels.tx_count},
      {ETHTOOL_A_CHANNELS_OTHER_COUNT, &channels.other_count},
      {ETHTOOL_A_CHANNELS_COMBINED_COUNT, &channels.combined_count},
  };
  for (const auto& [type, value] : counts) {
    if (value->has_value()) msg.PutU32(type, **value);
  }
  return msg;
}

GenlMsg BuildRssGet(uint16_t family_id, const EthtoolDev& dev,
                    uint32_t context) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RSS_GET, kEthtoolGenlVersion, kGetFlags);
  PutHeader(msg, ETHTOOL_A_RSS_HEADER, dev, std::nullopt);
  if (context != 0) msg.PutU32(ETHTOOL_A_RSS_CONTEXT, context);
  return msg;
}

GenlMsg BuildRssSet(uint16_t family_id, const EthtoolDev& dev, uint32_t context,
                    absl::Span<const uint32_t> indir) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RSS_SET, kEthtoolGenlVersion, kSetFlags);
  PutHeader(msg, ETHTOOL_A_RSS_HEADER, dev, std::nullopt);
  if (context != 0) msg.PutU32(ETHTOOL_A_RSS_CONTEXT, context);
  // Present even when empty: that is the reset request.
  msg.PutBinary(ETHTOOL_A_RSS_INDIR, IndirBytes(indir));
  return msg;
}

GenlMsg BuildRssCreateAct(uint16_t family_id, const EthtoolDev& dev,
                          absl::Span<const uint32_t> indir) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RSS_CREATE_ACT, kEthtoolGenlVersion,
              kSetFlags);
  PutHeader(msg, ETHTOOL_A_RSS_HEADER, dev, std::nullopt);
  if (!indir.empty()) msg.PutBinary(ETHTOOL_A_RSS_INDIR, IndirBytes(indir));
  return msg;
}

GenlMsg BuildRssDeleteAct(uint16_t family_id, const EthtoolDev& dev,
                          uint32_t context) {
  GenlMsg msg(family_id, ETHTOOL_MSG_RSS_DELETE_ACT, kEthtoolGenlVersion,
              kSetFlags);
  PutHeader(msg, ETHTOOL_A_RSS_HEADER, dev, std::nullopt);
  msg.PutU32(ETHTOOL_A_RSS_CONTEXT, context);
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

absl::StatusOr<RssInfo> ParseRssReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "ethtool RSS_GET reply";
  auto attrs = GenlAttrs(msg, ETHTOOL_MSG_RSS_GET_REPLY, kWhat);
  if (!attrs.ok()) return attrs.status();
  RssInfo info;
  AttrErrors errors(kWhat);
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) {
        std::optional<uint32_t> value;
        switch (attr.type) {
          case ETHTOOL_A_RSS_CONTEXT:
            errors.Take(attr, attr.U32(), value);
            info.context = value.value_or(0);
            break;
          case ETHTOOL_A_RSS_HFUNC:
            errors.Take(attr, attr.U32(), value);
            info.hfunc = value.value_or(0);
            break;
          case ETHTOOL_A_RSS_INDIR:
            if (attr.payload.size() % sizeof(uint32_t) != 0) {
              errors.Bad(attr, "not a whole number of u32 queue indexes");
              break;
            }
            info.indir.resize(attr.payload.size() / sizeof(uint32_t));
            if (!info.indir.empty()) {
              std::memcpy(info.indir.data(), attr.payload.data(),
                          attr.payload.size());
            }
            break;
          case ETHTOOL_A_RSS_HKEY:
            info.hkey.assign(attr.payload.begin(), attr.payload.end());
            break;
          default:
            break;
        }
      })) {
    errors.Malformed();
  }
  if (!errors.status().ok()) return errors.status();
  return info;
}

absl::StatusOr<uint32_t> ParseRssCreateActReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "ethtool RSS_CREATE_ACT reply";
  auto attrs = GenlAttrs(msg, ETHTOOL_MSG_RSS_CREATE_ACT_REPLY, kWhat);
  if (!attrs.ok()) return attrs.status();
  AttrErrors errors(kWhat);
  std::optional<uint32_t> context;
  if (!ForEachAttr(*attrs, [&](const NlAttr& attr) {
        if (attr.type == ETHTOOL_A_RSS_CONTEXT) {
          errors.Take(attr, attr.U32(), context);
        }
      })) {
    errors.Malformed();
  }
  if (!errors.status().ok()) return errors.status();
  if (!context.has_value() || *context == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": no non-zero ETHTOOL_A_RSS_CONTEXT"));
  }
  return *context;
}

}  // namespace devmem
