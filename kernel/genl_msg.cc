#include "kernel/genl_msg.h"

#include <libmnl/libmnl.h>

#include <string>

namespace devmem {

GenlMsg::GenlMsg(uint16_t family_id, uint8_t cmd, uint8_t version,
                 uint16_t flags)
    : buf_(kMaxBytes, 0) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
  nlh->nlmsg_type = family_id;
  nlh->nlmsg_flags = flags;
  auto* genl = static_cast<genlmsghdr*>(
      mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  genl->cmd = cmd;
  genl->version = version;
}

nlmsghdr* GenlMsg::header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }

const nlmsghdr* GenlMsg::header() const {
  return reinterpret_cast<const nlmsghdr*>(buf_.data());
}

void GenlMsg::PutU8(uint16_t type, uint8_t value) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_u8_check(header(), buf_.size(), type, value);
  }
}

void GenlMsg::PutU16(uint16_t type, uint16_t value) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_u16_check(header(), buf_.size(), type, value);
  }
}

void GenlMsg::PutU32(uint16_t type, uint32_t value) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_u32_check(header(), buf_.size(), type, value);
  }
}

void GenlMsg::PutU64(uint16_t type, uint64_t value) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_u64_check(header(), buf_.size(), type, value);
  }
}

void GenlMsg::PutFlag(uint16_t type) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_check(header(), buf_.size(), type, 0, nullptr);
  }
}

void GenlMsg::PutStrz(uint16_t type, absl::string_view value) {
  if (!overflowed_) {
    const std::string copy(value);  // libmnl wants a C string
    overflowed_ =
        !mnl_attr_put_strz_check(header(), buf_.size(), type, copy.c_str());
  }
}

void GenlMsg::PutBinary(uint16_t type, absl::Span<const uint8_t> value) {
  if (!overflowed_) {
    overflowed_ = !mnl_attr_put_check(header(), buf_.size(), type, value.size(),
                                      value.data());
  }
}

size_t GenlMsg::BeginNest(uint16_t type) {
  if (overflowed_) return 0;
  nlattr* nest = mnl_attr_nest_start_check(header(), buf_.size(), type);
  if (nest == nullptr) {
    overflowed_ = true;
    return 0;
  }
  // Older libmnl does not set NLA_F_NESTED; strict genl policies require it
  // (lib/nlattr.c validate_nla(), NL_VALIDATE_NESTED).
  nest->nla_type |= NLA_F_NESTED;
  return reinterpret_cast<uint8_t*>(nest) - buf_.data();
}

void GenlMsg::EndNest(size_t token) {
  if (overflowed_ || token == 0) return;
  mnl_attr_nest_end(header(), reinterpret_cast<nlattr*>(buf_.data() + token));
}

void GenlMsg::set_seq(uint32_t seq) { header()->nlmsg_seq = seq; }

uint32_t GenlMsg::seq() const { return header()->nlmsg_seq; }

uint8_t GenlMsg::cmd() const {
  return static_cast<const genlmsghdr*>(mnl_nlmsg_get_payload(header()))->cmd;
}

absl::Span<const uint8_t> GenlMsg::bytes() const {
  return absl::MakeConstSpan(buf_.data(), header()->nlmsg_len);
}

}  // namespace devmem
