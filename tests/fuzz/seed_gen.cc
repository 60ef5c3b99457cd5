// Writes the generated part of the seed corpora under OUT_DIR/<target>/:
//
//   fuzz_session_frame  one valid frame per SessionFrame body type
//   fuzz_ethtool_reply  hand-built replies the kernel here cannot produce
//   fuzz_netdev_reply   (rings with header split, RSS context create, bind,
//   fuzz_netlink_ack     queue, family, acks with every extack TLV)
//
// With --live (root, Linux with the ethtool and netdev families) it also asks
// the running kernel about `lo` and saves every message it answers: family
// replies, ethtool and netdev replies, NLMSG_ERROR acks with extack and
// NLMSG_DONE. Read-only: it sends GETs, dumps, and a bind-rx that the kernel
// must refuse (no dma-buf fd).
//
// Usage: seed_gen OUT_DIR [--live]. The captured netlink arrays in
// kernel/testdata and the unit tests come from extract_seeds.py instead; the
// configs are plain files in corpus/fuzz_config. See README.md.

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "kernel/ethtool_msg.h"
#include "kernel/genl_family.h"
#include "kernel/genl_msg.h"
#include "kernel/netdev_genl.h"
#include "kernel/uapi_compat.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

std::string out_dir;
int written = 0;

void Write(const std::string& target, const std::string& name,
           absl::Span<const uint8_t> bytes) {
  const std::string dir = absl::StrCat(out_dir, "/", target);
  mkdir(dir.c_str(), 0755);
  const std::string path = absl::StrCat(dir, "/", name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!out) {
    std::fprintf(stderr, "seed_gen: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  ++written;
}

// --- session frames ---

void WriteFrame(const std::string& name, const v1::SessionFrame& frame) {
  absl::StatusOr<std::string> bytes = EncodeFrame(frame);
  if (!bytes.ok()) {
    std::fprintf(stderr, "seed_gen: %s\n", bytes.status().ToString().c_str());
    std::exit(1);
  }
  Write("fuzz_session_frame", name,
        absl::Span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
}

void Frames() {
  v1::SessionFrame f;
  v1::Hello* hello = f.mutable_hello();
  hello->set_session_id(42);
  hello->set_session_token("0123456789abcdef0123456789abcdef");
  hello->set_ticket_ttl_ms(10000);
  hello->set_max_fds_per_frame(1);
  hello->set_max_frame_bytes(kMaxFrameBytes);
  hello->set_protocol_version(kProtocolVersion);
  hello->set_peer_uid(1000);
  hello->set_peer_gid(1000);
  hello->set_peer_pid(4242);
  WriteFrame("hello", f);
  f.Clear();
  f.mutable_hello()->set_code(7);
  f.mutable_hello()->set_message("uid 1000 is not allowed");
  f.mutable_hello()->set_peer_pid(-1);
  WriteFrame("hello_denied", f);
  f.Clear();
  f.mutable_redeem()->set_ticket("t-0000000000000001");
  WriteFrame("redeem", f);
  f.Clear();
  f.mutable_fd_grant()->set_ticket("t-0000000000000001");
  WriteFrame("fd_grant", f);
  f.Clear();
  f.mutable_deposit()->set_label("rx-buffer");
  WriteFrame("deposit", f);
  f.Clear();
  f.mutable_deposit();
  WriteFrame("deposit_empty", f);
  f.Clear();
  f.mutable_deposited()->set_ticket("t-0000000000000002");
  f.mutable_deposited()->set_label("rx-buffer");
  f.mutable_deposited()->set_ticket_ttl_ms(10000);
  WriteFrame("deposited", f);
  f.Clear();
  f.mutable_error()->set_code(5);
  f.mutable_error()->set_message("no such ticket");
  f.mutable_error()->set_ticket("t-ffffffffffffffff");
  WriteFrame("error", f);
  f.Clear();
  f.mutable_ping()->set_nonce(0x0123456789abcdefULL);
  WriteFrame("ping", f);
  f.Clear();
  f.mutable_pong()->set_nonce(0xfedcba9876543210ULL);
  WriteFrame("pong", f);
}

// --- hand-built netlink replies ---

constexpr uint16_t kEthtoolFamily = 21;  // any id: parsers do not check it
constexpr uint16_t kNetdevFamily = 20;

void WriteMsg(const std::string& target, const std::string& name,
              const GenlMsg& msg) {
  Write(target, name, msg.bytes());
}

void EthtoolReplies() {
  const std::string t = "fuzz_ethtool_reply";
  {
    GenlMsg m(kEthtoolFamily, ETHTOOL_MSG_RINGS_GET_REPLY, 1, 0);
    const size_t h = m.BeginNest(ETHTOOL_A_RINGS_HEADER);
    m.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, 2);
    m.PutStrz(ETHTOOL_A_HEADER_DEV_NAME, "eth1");
    m.EndNest(h);
    m.PutU32(ETHTOOL_A_RINGS_RX_MAX, 4096);
    m.PutU32(ETHTOOL_A_RINGS_RX_MINI_MAX, 0);
    m.PutU32(ETHTOOL_A_RINGS_RX_JUMBO_MAX, 0);
    m.PutU32(ETHTOOL_A_RINGS_TX_MAX, 4096);
    m.PutU32(ETHTOOL_A_RINGS_RX, 1024);
    m.PutU32(ETHTOOL_A_RINGS_TX, 1024);
    m.PutU32(ETHTOOL_A_RINGS_RX_BUF_LEN, 4096);
    m.PutU8(ETHTOOL_A_RINGS_TCP_DATA_SPLIT, 2);
    m.PutU32(ETHTOOL_A_RINGS_HDS_THRESH, 0);
    m.PutU32(ETHTOOL_A_RINGS_HDS_THRESH_MAX, 1024);
    WriteMsg(t, "built_rings_hds", m);
  }
  {
    GenlMsg m(kEthtoolFamily, ETHTOOL_MSG_RSS_CREATE_ACT_REPLY, 1, 0);
    const size_t h = m.BeginNest(ETHTOOL_A_RSS_HEADER);
    m.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, 2);
    m.EndNest(h);
    m.PutU32(ETHTOOL_A_RSS_CONTEXT, 1);
    WriteMsg(t, "built_rss_create_act", m);
  }
  {
    GenlMsg m(kEthtoolFamily, ETHTOOL_MSG_RSS_GET_REPLY, 1, 0);
    const size_t h = m.BeginNest(ETHTOOL_A_RSS_HEADER);
    m.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, 2);
    m.EndNest(h);
    m.PutU32(ETHTOOL_A_RSS_CONTEXT, 3);
    m.PutU32(ETHTOOL_A_RSS_HFUNC, 1);
    const uint32_t indir[] = {0, 1, 2, 3, 0, 1, 2, 3};
    m.PutBinary(ETHTOOL_A_RSS_INDIR,
                absl::Span<const uint8_t>(
                    reinterpret_cast<const uint8_t*>(indir), sizeof(indir)));
    const uint8_t key[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2};
    m.PutBinary(ETHTOOL_A_RSS_HKEY, key);
    WriteMsg(t, "built_rss_context", m);
  }
  {
    // A compact bitset (no names), which the parser refuses.
    GenlMsg m(kEthtoolFamily, ETHTOOL_MSG_FEATURES_GET_REPLY, 1, 0);
    for (uint16_t type : {ETHTOOL_A_FEATURES_HW, ETHTOOL_A_FEATURES_WANTED,
                          ETHTOOL_A_FEATURES_ACTIVE}) {
      const size_t b = m.BeginNest(type);
      m.PutU32(ETHTOOL_A_BITSET_SIZE, 64);
      const uint8_t bits[8] = {0xff, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x80};
      m.PutBinary(ETHTOOL_A_BITSET_VALUE, bits);
      m.PutBinary(ETHTOOL_A_BITSET_MASK, bits);
      m.EndNest(b);
    }
    WriteMsg(t, "built_features_compact", m);
  }
  {
    GenlMsg m(kEthtoolFamily, ETHTOOL_MSG_FEATURES_GET_REPLY, 1, 0);
    for (uint16_t type : {ETHTOOL_A_FEATURES_HW, ETHTOOL_A_FEATURES_ACTIVE}) {
      const size_t b = m.BeginNest(type);
      m.PutU32(ETHTOOL_A_BITSET_SIZE, 64);
      if (type == ETHTOOL_A_FEATURES_ACTIVE) m.PutFlag(ETHTOOL_A_BITSET_NOMASK);
      const size_t bits = m.BeginNest(ETHTOOL_A_BITSET_BITS);
      for (const char* name : {"rx-checksum", "rx-ntuple-filter"}) {
        const size_t bit = m.BeginNest(ETHTOOL_A_BITSET_BITS_BIT);
        m.PutU32(ETHTOOL_A_BITSET_BIT_INDEX, 1);
        m.PutStrz(ETHTOOL_A_BITSET_BIT_NAME, name);
        m.PutFlag(ETHTOOL_A_BITSET_BIT_VALUE);
        m.EndNest(bit);
      }
      m.EndNest(bits);
      m.EndNest(b);
    }
    WriteMsg(t, "built_features_nomask", m);
  }
}

void NetdevReplies() {
  const std::string t = "fuzz_netdev_reply";
  {
    GenlMsg m(kNetdevFamily, NETDEV_CMD_DEV_GET, 1, 0);
    m.PutU32(NETDEV_A_DEV_IFINDEX, 1);
    m.PutU64(NETDEV_A_DEV_XDP_FEATURES, 0x7f);
    WriteMsg(t, "built_dev_u64", m);
  }
  for (const bool rx : {true, false}) {
    GenlMsg m(kNetdevFamily, NETDEV_CMD_QUEUE_GET, 1, 0);
    m.PutU32(NETDEV_A_QUEUE_ID, 3);
    m.PutU32(NETDEV_A_QUEUE_IFINDEX, 2);
    m.PutU32(NETDEV_A_QUEUE_TYPE,
             rx ? NETDEV_QUEUE_TYPE_RX : NETDEV_QUEUE_TYPE_TX);
    m.PutU32(NETDEV_A_QUEUE_NAPI_ID, 8193);
    if (rx) m.PutU32(NETDEV_A_QUEUE_DMABUF, 7);
    m.EndNest(m.BeginNest(NETDEV_A_QUEUE_IO_URING));
    m.EndNest(m.BeginNest(NETDEV_A_QUEUE_XSK));
    WriteMsg(t, rx ? "built_queue_rx" : "built_queue_tx", m);
  }
  for (const uint8_t cmd : {NETDEV_CMD_BIND_RX, NETDEV_CMD_BIND_TX}) {
    GenlMsg m(kNetdevFamily, cmd, 1, 0);
    m.PutU32(NETDEV_A_DMABUF_ID, 5);
    WriteMsg(t, absl::StrCat("built_bind_", cmd), m);
  }
  {
    // A bind-rx request, for DescribeBindAttrAtOffset (offset in nlmsg_seq:
    // 44 is queues[0]).
    const uint32_t queues[] = {14, 15};
    GenlMsg m = BuildNetdevBindRx(kNetdevFamily, 2, 9, queues);
    m.set_seq(44);
    WriteMsg(t, "built_bind_rx_request", m);
  }
  {
    GenlMsg m(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, 2, 0);
    m.PutU16(CTRL_ATTR_FAMILY_ID, kNetdevFamily);
    m.PutStrz(CTRL_ATTR_FAMILY_NAME, "netdev");
    m.PutU32(CTRL_ATTR_VERSION, 1);
    m.PutU32(CTRL_ATTR_HDRSIZE, 0);
    m.PutU32(CTRL_ATTR_MAXATTR, 16);
    const size_t ops = m.BeginNest(CTRL_ATTR_OPS);
    for (uint16_t i = 1; i <= 3; ++i) {
      const size_t op = m.BeginNest(i);
      m.PutU32(CTRL_ATTR_OP_ID, i == 3 ? NETDEV_CMD_BIND_RX : i);
      m.PutU32(CTRL_ATTR_OP_FLAGS, 0x0a);
      m.EndNest(op);
    }
    m.EndNest(ops);
    const size_t groups = m.BeginNest(CTRL_ATTR_MCAST_GROUPS);
    const size_t g = m.BeginNest(1);
    m.PutStrz(CTRL_ATTR_MCAST_GRP_NAME, "mgmt");
    m.PutU32(CTRL_ATTR_MCAST_GRP_ID, 9);
    m.EndNest(g);
    m.EndNest(groups);
    WriteMsg(t, "built_family", m);
  }
}

// --- hand-built acks ---

class NlBytes {
 public:
  NlBytes(uint16_t type, uint16_t flags) {
    nlmsghdr h = {};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    Put(&h, sizeof(h));
  }
  void Put(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    buf_.resize(NLMSG_ALIGN(buf_.size()));
  }
  void Attr(uint16_t type, const void* p, size_t n) {
    nlattr a = {};
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + n);
    a.nla_type = type;
    Put(&a, sizeof(a));
    Put(p, n);
  }
  std::vector<uint8_t> Done() {
    const uint32_t len = static_cast<uint32_t>(buf_.size());
    std::memcpy(buf_.data(), &len, sizeof(len));
    return buf_;
  }

 private:
  std::vector<uint8_t> buf_;
};

void Acks() {
  const std::string t = "fuzz_netlink_ack";
  const GenlMsg request =
      BuildChannelsGet(kEthtoolFamily, EthtoolDev::ByIndex(2));
  nlmsgerr err = {};
  std::memcpy(&err.msg, request.bytes().data(), sizeof(err.msg));
  {
    NlBytes m(NLMSG_ERROR, NLM_F_CAPPED);
    Write(t, "built_ack_ok", m.Done());
  }
  {
    err.error = -EOPNOTSUPP;
    NlBytes m(NLMSG_ERROR, 0);
    m.Put(&err, sizeof(err));
    m.Put(request.bytes().data() + NLMSG_HDRLEN,
          request.bytes().size() - NLMSG_HDRLEN);
    Write(t, "built_error_echoed", m.Done());
  }
  {
    err.error = -EINVAL;
    NlBytes m(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS);
    m.Put(&err, sizeof(err));
    const char text[] = "invalid queue id";
    m.Attr(NLMSGERR_ATTR_MSG, text, sizeof(text));
    const uint32_t offs = 40;
    m.Attr(NLMSGERR_ATTR_OFFS, &offs, sizeof(offs));
    Write(t, "built_error_extack", m.Done());
  }
  {
    err.error = -EINVAL;
    NlBytes m(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS);
    m.Put(&err, sizeof(err));
    const uint32_t miss = 3;
    m.Attr(NLMSGERR_ATTR_MISS_TYPE, &miss, sizeof(miss));
    const uint32_t nest = 28;
    m.Attr(NLMSGERR_ATTR_MISS_NEST, &nest, sizeof(nest));
    Write(t, "built_error_missing", m.Done());
  }
  {
    const int32_t e = -EOPNOTSUPP;
    NlBytes m(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS);
    m.Put(&e, sizeof(e));
    const char text[] = "device does not support queue stats";
    m.Attr(NLMSGERR_ATTR_MSG, text, sizeof(text));
    Write(t, "built_done_error", m.Done());
  }
  {
    const int32_t e = 0;
    NlBytes m(NLMSG_DONE, NLM_F_MULTI);
    m.Put(&e, sizeof(e));
    Write(t, "built_done", m.Done());
  }
}

// --- live capture ---

class Live {
 public:
  bool Open() {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd_ < 0) return false;
    const int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    return true;
  }
  ~Live() {
    if (fd_ >= 0) close(fd_);
  }

  // Sends `req` and saves each message of the answer as
  // <target>/live_<name>_<n>, except NLMSG_ERROR and NLMSG_DONE, which go to
  // the ack corpus. Returns the replies.
  std::vector<std::vector<uint8_t>> Ask(const std::string& target,
                                        const std::string& name, GenlMsg req) {
    req.set_seq(++seq_);
    std::vector<std::vector<uint8_t>> replies;
    if (send(fd_, req.bytes().data(), req.bytes().size(), 0) < 0) {
      std::fprintf(stderr, "seed_gen: send %s: %s\n", name.c_str(),
                   std::strerror(errno));
      return replies;
    }
    int n = 0;
    std::vector<uint8_t> buf(1 << 16);
    // Until the answer's last message; then whatever else is queued (a dump
    // with NLM_F_ACK may add an ACK after NLMSG_DONE).
    for (bool more = true;;) {
      const ssize_t got =
          recv(fd_, buf.data(), buf.size(), more ? 0 : MSG_DONTWAIT);
      if (got <= 0) break;
      size_t at = 0;
      while (at + NLMSG_HDRLEN <= static_cast<size_t>(got)) {
        nlmsghdr h;
        std::memcpy(&h, buf.data() + at, sizeof(h));
        if (h.nlmsg_len < NLMSG_HDRLEN || at + h.nlmsg_len > size_t(got)) break;
        const absl::Span<const uint8_t> msg(buf.data() + at, h.nlmsg_len);
        const std::string file = absl::StrCat("live_", name, "_", n++);
        if (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE) {
          Write("fuzz_netlink_ack", file, msg);
          more = false;
        } else {
          Write(target, file, msg);
          replies.emplace_back(msg.begin(), msg.end());
          if (!(h.nlmsg_flags & NLM_F_MULTI)) more = false;
        }
        at += NLMSG_ALIGN(h.nlmsg_len);
      }
    }
    return replies;
  }

  uint16_t Family(const std::string& name) {
    GenlMsg req(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_REQUEST);
    req.PutStrz(CTRL_ATTR_FAMILY_NAME, name);
    for (const auto& r : Ask("fuzz_netdev_reply", "family_" + name, req)) {
      absl::StatusOr<GenlFamily> f = ParseGenlFamilyReply(r);
      if (f.ok()) return f->id;
    }
    return 0;
  }

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

int Capture() {
  Live live;
  if (!live.Open()) {
    std::perror("seed_gen: socket(NETLINK_GENERIC)");
    return 1;
  }
  live.Family("nlctrl");
  live.Family("no-such-family");
  const uint16_t ethtool = live.Family("ethtool");
  const uint16_t netdev = live.Family("netdev");
  const uint32_t lo = 1;
  if (ethtool != 0) {
    const std::string t = "fuzz_ethtool_reply";
    const EthtoolDev dev = EthtoolDev::ByName("lo");
    live.Ask(t, "lo_channels", BuildChannelsGet(ethtool, dev));
    live.Ask(t, "lo_rings", BuildRingsGet(ethtool, dev));
    live.Ask(t, "lo_features", BuildFeaturesGet(ethtool, dev));
    live.Ask(t, "lo_rss", BuildRssGet(ethtool, dev, 0));
    live.Ask(
        t, "lo_rss_create",
        BuildRssCreateAct(ethtool, EthtoolDev::ByName("no-such-dev0"), {}));
  }
  if (netdev != 0) {
    const std::string t = "fuzz_netdev_reply";
    GenlMsg dev(netdev, NETDEV_CMD_DEV_GET, 1, NLM_F_REQUEST);
    dev.PutU32(NETDEV_A_DEV_IFINDEX, lo);
    live.Ask(t, "lo_dev", dev);
    GenlMsg queues(netdev, NETDEV_CMD_QUEUE_GET, 1,
                   NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
    queues.PutU32(NETDEV_A_QUEUE_IFINDEX, lo);
    live.Ask(t, "lo_queues", queues);
    GenlMsg queue(netdev, NETDEV_CMD_QUEUE_GET, 1, NLM_F_REQUEST);
    queue.PutU32(NETDEV_A_QUEUE_IFINDEX, lo);
    queue.PutU32(NETDEV_A_QUEUE_ID, 0);
    queue.PutU32(NETDEV_A_QUEUE_TYPE, NETDEV_QUEUE_TYPE_RX);
    live.Ask(t, "lo_queue", queue);
    GenlMsg missing(netdev, NETDEV_CMD_QUEUE_GET, 1, NLM_F_REQUEST);
    missing.PutU32(NETDEV_A_QUEUE_IFINDEX, lo);
    live.Ask(t, "queue_missing_attr", missing);
    live.Ask(t, "lo_napi", BuildNetdevNapiGetDump(netdev, lo));
    live.Ask(t, "lo_qstats", BuildNetdevQstatsGetDump(netdev, lo, false));
    const uint32_t q[] = {0};
    live.Ask(t, "lo_bind_rx_bad_fd",
             BuildNetdevBindRx(netdev, lo, 0x7ffffff0, q));
  }
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::string(argv[2]) != "--live")) {
    std::fprintf(stderr, "usage: %s OUT_DIR [--live]\n", argv[0]);
    return 2;
  }
  devmem::out_dir = argv[1];
  mkdir(devmem::out_dir.c_str(), 0755);
  devmem::Frames();
  devmem::EthtoolReplies();
  devmem::NetdevReplies();
  devmem::Acks();
  int rc = 0;
  if (argc == 3) rc = devmem::Capture();
  std::printf("seed_gen: wrote %d files under %s\n", devmem::written,
              devmem::out_dir.c_str());
  return rc;
}
