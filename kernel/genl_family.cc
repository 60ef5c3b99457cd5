#include "kernel/genl_family.h"

#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/netlink_attr.h"

namespace devmem {

bool GenlFamily::HasOp(uint32_t cmd) const {
  return std::any_of(ops.begin(), ops.end(),
                     [cmd](const GenlOp& op) { return op.id == cmd; });
}

namespace {

// CTRL_ATTR_OPS: net/netlink/genetlink.c ctrl_fill_info() puts one nest per
// op, typed by position (1..n), holding OP_ID and OP_FLAGS. False if an
// attribute list is malformed.
bool ParseOps(absl::Span<const uint8_t> payload, std::vector<GenlOp>* ops) {
  bool malformed = false;
  malformed |= !ForEachAttr(payload, [&](const NlAttr& nest) {
    GenlOp op;
    bool has_op_id = false;
    malformed |= !ForEachAttr(nest.payload, [&](const NlAttr& f) {
      if (f.type == CTRL_ATTR_OP_ID && f.U32()) {
        op.id = *f.U32();
        has_op_id = true;
      } else if (f.type == CTRL_ATTR_OP_FLAGS && f.U32()) {
        op.flags = *f.U32();
      }
    });
    if (has_op_id) ops->push_back(op);
  });
  return !malformed;
}

// CTRL_ATTR_MCAST_GROUPS: one nest per group with its name and id.
bool ParseMcastGroups(absl::Span<const uint8_t> payload,
                      std::map<std::string, uint32_t>* groups) {
  bool malformed = false;
  malformed |= !ForEachAttr(payload, [&](const NlAttr& nest) {
    std::string name;
    std::optional<uint32_t> id;
    malformed |= !ForEachAttr(nest.payload, [&](const NlAttr& f) {
      if (f.type == CTRL_ATTR_MCAST_GRP_NAME) {
        name = f.Str();
      } else if (f.type == CTRL_ATTR_MCAST_GRP_ID) {
        id = f.U32();
      }
    });
    if (!name.empty() && id.has_value()) (*groups)[name] = *id;
  });
  return !malformed;
}

}  // namespace

absl::StatusOr<GenlFamily> ParseGenlFamilyReply(absl::Span<const uint8_t> msg) {
  constexpr absl::string_view kWhat = "CTRL_CMD_GETFAMILY reply";
  nlmsghdr nlh;
  genlmsghdr genl;
  if (msg.size() < NLMSG_HDRLEN + GENL_HDRLEN) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": ", msg.size(), " bytes is too short"));
  }
  std::memcpy(&nlh, msg.data(), sizeof(nlh));
  std::memcpy(&genl, msg.data() + NLMSG_HDRLEN, sizeof(genl));
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN ||
      nlh.nlmsg_len > msg.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": bad nlmsg_len ", nlh.nlmsg_len));
  }
  if (genl.cmd != CTRL_CMD_NEWFAMILY) {
    return absl::InvalidArgumentError(absl::StrCat(
        kWhat, ": command ", genl.cmd, ", expected CTRL_CMD_NEWFAMILY"));
  }
  GenlFamily family;
  bool has_id = false;
  bool malformed = false;
  auto attrs = msg.subspan(NLMSG_HDRLEN + GENL_HDRLEN,
                           nlh.nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
  if (!ForEachAttr(attrs,
                   [&](const NlAttr& attr) {
                     switch (attr.type) {
                       case CTRL_ATTR_FAMILY_ID:
                         if (auto v = attr.U16()) {
                           family.id = *v;
                           has_id = true;
                         }
                         break;
                       case CTRL_ATTR_FAMILY_NAME:
                         family.name = attr.Str();
                         break;
                       case CTRL_ATTR_VERSION:
                         family.version = attr.U32().value_or(0);
                         break;
                       case CTRL_ATTR_HDRSIZE:
                         family.hdrsize = attr.U32().value_or(0);
                         break;
                       case CTRL_ATTR_MAXATTR:
                         family.maxattr = attr.U32().value_or(0);
                         break;
                       case CTRL_ATTR_OPS:
                         malformed |= !ParseOps(attr.payload, &family.ops);
                         break;
                       case CTRL_ATTR_MCAST_GROUPS:
                         malformed |= !ParseMcastGroups(attr.payload,
                                                        &family.mcast_groups);
                         break;
                       default:
                         break;
                     }
                   }) ||
      malformed) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": malformed attribute list"));
  }
  if (!has_id) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": no CTRL_ATTR_FAMILY_ID"));
  }
  return family;
}

absl::StatusOr<GenlFamily> ResolveGenlFamily(LibnlGenlSocket& sock,
                                             absl::string_view name) {
  const std::string what =
      absl::StrCat("resolve generic netlink family \"", name, "\"");
  LibnlGenlSocket::MsgPtr msg = LibnlGenlSocket::NewMessage();
  absl::Status s = LibnlGenlSocket::PutGenlHeader(
      msg.get(), GENL_ID_CTRL, CTRL_CMD_GETFAMILY, /*version=*/1, /*flags=*/0);
  if (!s.ok()) return s;
  const std::string name_copy(name);
  if (nla_put_string(msg.get(), CTRL_ATTR_FAMILY_NAME, name_copy.c_str()) < 0) {
    return ErrnoStatus(EMSGSIZE, absl::StrCat(what, ": name too long"));
  }
  std::optional<GenlFamily> family;
  s = sock.Transact(msg.get(), what, [&](absl::Span<const uint8_t> reply) {
    absl::StatusOr<GenlFamily> parsed = ParseGenlFamilyReply(reply);
    if (!parsed.ok()) return parsed.status();
    family = *std::move(parsed);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!family.has_value()) {
    return absl::InternalError(
        absl::StrCat(what, ": the kernel sent no reply"));
  }
  return *std::move(family);
}

absl::StatusOr<GenlFamily> ResolveGenlFamily(absl::string_view name) {
  absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> sock =
      LibnlGenlSocket::Open();
  if (!sock.ok()) return sock.status();
  return ResolveGenlFamily(**sock, name);
}

}  // namespace devmem
