#include "kernel/netlink_error.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "kernel/errno_status.h"
#include "kernel/netlink_attr.h"

namespace devmem {

absl::StatusOr<NetlinkAck> ParseNetlinkAck(absl::Span<const uint8_t> bytes) {
  nlmsghdr hdr;
  if (bytes.size() < sizeof(hdr)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "netlink ack: truncated message (", bytes.size(), " bytes)"));
  }
  std::memcpy(&hdr, bytes.data(), sizeof(hdr));
  if (hdr.nlmsg_len < NLMSG_HDRLEN || hdr.nlmsg_len > bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("netlink ack: nlmsg_len ", hdr.nlmsg_len,
                     " does not fit the ", bytes.size(), " bytes received"));
  }
  const absl::Span<const uint8_t> msg = bytes.first(hdr.nlmsg_len);
  size_t tlv_offset = 0;
  int32_t raw_error = 0;
  if (hdr.nlmsg_type == NLMSG_ERROR) {
    nlmsgerr err;
    if (msg.size() < NLMSG_HDRLEN + sizeof(err)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "netlink ack: NLMSG_ERROR of ", msg.size(), " bytes is too short"));
    }
    std::memcpy(&err, msg.data() + NLMSG_HDRLEN, sizeof(err));
    raw_error = err.error;
    // net/netlink/af_netlink.c netlink_ack(): the request's payload is echoed
    // after its header unless the ack is NLM_F_CAPPED; TLVs follow, aligned.
    size_t echoed = 0;
    if (!(hdr.nlmsg_flags & NLM_F_CAPPED) && err.msg.nlmsg_len > NLMSG_HDRLEN) {
      echoed = NLMSG_ALIGN(err.msg.nlmsg_len - NLMSG_HDRLEN);
    }
    tlv_offset = NLMSG_HDRLEN + sizeof(err) + echoed;
  } else if (hdr.nlmsg_type == NLMSG_DONE) {
    // net/netlink/af_netlink.c netlink_dump_done(): an int error, then TLVs.
    if (msg.size() < NLMSG_HDRLEN + sizeof(raw_error)) return NetlinkAck{};
    std::memcpy(&raw_error, msg.data() + NLMSG_HDRLEN, sizeof(raw_error));
    tlv_offset = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(raw_error));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("netlink ack: message type ", hdr.nlmsg_type,
                     " is neither NLMSG_ERROR nor NLMSG_DONE"));
  }

  // The kernel sends 0 or a negated errno, at most MAX_ERRNO (4095,
  // include/linux/err.h). Anything larger is not an error code, and negating
  // INT32_MIN would overflow.
  constexpr int32_t kMaxErrno = 4095;
  if (raw_error < -kMaxErrno || raw_error > kMaxErrno) {
    return absl::InvalidArgumentError(absl::StrCat(
        "netlink ack: error code ", raw_error, " is not an errno"));
  }
  NetlinkAck ack;
  ack.error = raw_error < 0 ? -raw_error : raw_error;
  if (!(hdr.nlmsg_flags & NLM_F_ACK_TLVS) || tlv_offset >= msg.size()) {
    return ack;
  }
  ForEachAttr(msg.subspan(tlv_offset), [&](const NlAttr& attr) {
    switch (attr.type) {
      case NLMSGERR_ATTR_MSG:
        ack.message = attr.Str();
        break;
      case NLMSGERR_ATTR_OFFS:
        ack.bad_offset = attr.U32();
        break;
      case NLMSGERR_ATTR_MISS_TYPE:
        ack.missing_attr_type = attr.U32();
        break;
      default:
        break;
    }
  });
  if (ack.message.empty() && ack.missing_attr_type.has_value()) {
    ack.message =
        absl::StrCat("missing required attribute ", *ack.missing_attr_type);
  }
  return ack;
}

absl::Status NetlinkAckStatus(const NetlinkAck& ack, absl::string_view what) {
  return ErrnoStatus(ack.error, what, ack.message);
}

}  // namespace devmem
