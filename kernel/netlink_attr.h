#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace devmem {

// A read-only view of one netlink attribute inside a received message. Works
// on any byte alignment (values are read with memcpy), so replies can be
// parsed straight from a receive buffer or from a test's byte array.
struct NlAttr {
  uint16_t type = 0;    // with NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off
  bool nested = false;  // NLA_F_NESTED was set
  absl::Span<const uint8_t> payload;

  // Fixed-size readers: nullopt if the payload is shorter than the type.
  std::optional<uint8_t> U8() const { return Read<uint8_t>(); }
  std::optional<uint16_t> U16() const { return Read<uint16_t>(); }
  std::optional<uint32_t> U32() const { return Read<uint32_t>(); }
  std::optional<uint64_t> U64() const { return Read<uint64_t>(); }
  // netlink "uint"/"sint" (u32 or u64 depending on the value's size).
  std::optional<uint64_t> Uint() const {
    if (payload.size() == sizeof(uint32_t)) return Read<uint32_t>();
    return Read<uint64_t>();
  }
  // NUL-terminated (or length-bounded) string payload, borrowed from the
  // message; Str() copies it.
  absl::string_view StrView() const {
    const char* p = reinterpret_cast<const char*>(payload.data());
    return absl::string_view(p, strnlen(p, payload.size()));
  }
  std::string Str() const { return std::string(StrView()); }

 private:
  template <typename T>
  std::optional<T> Read() const {
    if (payload.size() < sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, payload.data(), sizeof(T));
    return v;
  }
};

// Calls `fn` for each attribute in `bytes` (a run of TLVs, e.g. a message's
// payload after its fixed headers, or a nest's payload). Returns false if an
// attribute's length is impossible; attributes before it were still visited.
// Fewer than 4 trailing bytes are ignored, as the kernel's nla_parse() does.
// A template rather than absl::FunctionRef: reply parsing is the hot part of
// every read, and the callback then costs one direct call per attribute.
template <typename Fn>
bool ForEachAttr(absl::Span<const uint8_t> bytes, Fn&& fn) {
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left >= NLA_HDRLEN) {
    nlattr hdr;
    std::memcpy(&hdr, p, sizeof(hdr));
    if (hdr.nla_len < NLA_HDRLEN || hdr.nla_len > left) return false;
    NlAttr attr;
    attr.type = hdr.nla_type & NLA_TYPE_MASK;
    attr.nested = (hdr.nla_type & NLA_F_NESTED) != 0;
    attr.payload =
        absl::Span<const uint8_t>(p + NLA_HDRLEN, hdr.nla_len - NLA_HDRLEN);
    fn(static_cast<const NlAttr&>(attr));
    const size_t step = NLA_ALIGN(hdr.nla_len);
    if (step >= left) break;
    p += step;
    left -= step;
  }
  return true;
}

}  // namespace devmem
