#pragma once

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace devmem {

// A generic-netlink request under construction, built with libmnl:
//
//   0        4      6       8        12       16   17   18     20
//   +--------+------+-------+--------+--------+----+----+------+----------+
//   | len    | type | flags | seq    | pid    |cmd |ver | rsvd | attrs... |
//   +--------+------+-------+--------+--------+----+----+------+----------+
//   |<----------- nlmsghdr (16) ------------->|<- genlmsghdr ->|
//
// A value: copyable, no socket. Builders fill it with the typed Put* helpers
// and a socket sends bytes() after stamping the sequence number. `seq` and
// `pid` stay 0 until then (pid 0 lets the kernel fill in the sender's port).
// If the message would exceed kMaxBytes every further Put* is dropped and
// overflowed() turns true; sockets refuse such a message.
class GenlMsg {
 public:
  static constexpr size_t kMaxBytes = 4096;

  GenlMsg(uint16_t family_id, uint8_t cmd, uint8_t version, uint16_t flags);

  void PutU8(uint16_t type, uint8_t value);
  void PutU16(uint16_t type, uint16_t value);
  void PutU32(uint16_t type, uint32_t value);
  void PutU64(uint16_t type, uint64_t value);
  void PutFlag(uint16_t type);
  // NUL-terminated string (NLA_NUL_STRING / NLA_STRING policies).
  void PutStrz(uint16_t type, absl::string_view value);
  void PutBinary(uint16_t type, absl::Span<const uint8_t> value);

  // Opens a nest (NLA_F_NESTED is set: genl families validate strictly);
  // pass the returned token to EndNest() once its attributes are in.
  size_t BeginNest(uint16_t type);
  void EndNest(size_t token);

  void set_seq(uint32_t seq);
  uint32_t seq() const;
  uint8_t cmd() const;
  bool overflowed() const { return overflowed_; }

  // The whole message: nlmsg_len bytes.
  absl::Span<const uint8_t> bytes() const;

 private:
  nlmsghdr* header();
  const nlmsghdr* header() const;

  // Zero-filled, so padding bytes are always 0 and byte comparisons are exact.
  std::vector<uint8_t> buf_;
  bool overflowed_ = false;
};

}  // namespace devmem
