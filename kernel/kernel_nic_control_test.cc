// KernelNicControl against the real kernel, on a veth pair with four RX and
// four TX queues in a private network namespace, with ethtool(8) as the
// independent witness. Needs root (CAP_SYS_ADMIN for the namespace,
// CAP_NET_ADMIN for the changes); skips with the reason otherwise.
//
// veth (drivers/net/veth.c) can change its channels and nothing else devmem
// needs: no ring parameters, ntuple rules, RSS, queue-management ops or
// netmem TX. Each refusal must reach the caller with the kernel's errno.

#include "kernel/kernel_nic_control.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/testing/kernel_version.h"
#include "kernel/testing/netns_veth.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kVeth[] = "dmctl0";
constexpr char kPeer[] = "dmctl1";
constexpr int kQueues = 4;

// "Current hardware settings" RX/TX of `ethtool -l IF`.
struct WitnessChannels {
  std::optional<uint32_t> rx, tx;
};

WitnessChannels ParseCurrentChannels(const std::string& text) {
  WitnessChannels out;
  bool current = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "Current hardware settings")) current = true;
    if (!current) continue;
    std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    uint32_t value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &value)) continue;
    if (kv[0] == "RX") out.rx = value;
    if (kv[0] == "TX") out.tx = value;
  }
  return out;
}

UniqueFd MakeMemfd() {
  UniqueFd fd(memfd_create("kernel_nic_control_test", MFD_CLOEXEC));
  if (fd) {
    EXPECT_EQ(ftruncate(fd.get_unowned(), 1 << 16), 0);
  }
  return fd;
}

class KernelNicControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to create a network namespace and a veth "
                      "pair and to change it (euid "
                   << geteuid() << ")";
    }
    absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
        testing::ScopedNetns::Enter();
    if (!ns.ok()) {
      if (StatusErrno(ns.status()) == EPERM) {
        GTEST_SKIP() << "cannot create a network namespace: " << ns.status();
      }
      FAIL() << ns.status();
    }
    ns_ = *std::move(ns);
    // ScopedVethPair makes single-queue pairs; channels need more. The
    // namespace deletes the pair when it goes, even if a step below fails.
    const std::string queues = std::to_string(kQueues);
    Witness({"ip", "link", "add", kVeth, "numrxqueues", queues, "numtxqueues",
             queues, "type", "veth", "peer", "name", kPeer, "numrxqueues",
             queues, "numtxqueues", queues});
    Witness({"ip", "link", "set", kVeth, "up"});
    Witness({"ip", "link", "set", kPeer, "up"});
    ifindex_ = if_nametoindex(kVeth);
    ASSERT_NE(ifindex_, 0u);
    absl::StatusOr<std::unique_ptr<KernelNicControl>> control =
        KernelNicControl::Create();
    if (absl::IsNotFound(control.status())) {
      GTEST_SKIP() << "this kernel lacks a family KernelNicControl needs: "
                   << control.status();
    }
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
  }

  void TearDown() override {
    control_.reset();
    if (ns_ != nullptr) (void)testing::RunQuiet({"ip", "link", "del", kVeth});
  }

  std::string Witness(const std::vector<std::string>& argv) {
    absl::StatusOr<testing::CommandResult> r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0)
        << absl::StrJoin(argv, " ") << " failed: " << r->output;
    return r->output;
  }

  std::unique_ptr<testing::ScopedNetns> ns_;
  uint32_t ifindex_ = 0;
  std::unique_ptr<KernelNicControl> control_;
};

TEST_F(KernelNicControlTest, Backend) {
  EXPECT_EQ(control_->BackendName(), "kernel");
  // RSS changes go over netlink from 6.17 (RSS_SET), by ioctl before.
  EXPECT_EQ(control_->RssSetUsesNetlink(), testing::KernelAtLeast(6, 17));
}

TEST_F(KernelNicControlTest, ChannelsRoundTrip) {
  absl::StatusOr<ChannelsInfo> before = control_->GetChannels(ifindex_);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->rx_count, static_cast<uint32_t>(kQueues));
  ASSERT_EQ(before->tx_count, static_cast<uint32_t>(kQueues));

  ChannelsSet two;
  two.rx_count = 2;
  two.tx_count = 2;
  absl::Status s = control_->SetChannels(ifindex_, two);
  ASSERT_TRUE(s.ok()) << s;
  WitnessChannels witness =
      ParseCurrentChannels(Witness({"ethtool", "-l", kVeth}));
  EXPECT_EQ(witness.rx, 2u);
  EXPECT_EQ(witness.tx, 2u);
  // The queues follow (netdev queue-get).
  absl::StatusOr<std::vector<QueueInfo>> queues = control_->GetQueues(ifindex_);
  ASSERT_TRUE(queues.ok()) << queues.status();
  EXPECT_EQ(queues->size(), 4u);

  ChannelsSet restore;
  restore.rx_count = before->rx_count;
  restore.tx_count = before->tx_count;
  ASSERT_TRUE(control_->SetChannels(ifindex_, restore).ok());
  witness = ParseCurrentChannels(Witness({"ethtool", "-l", kVeth}));
  EXPECT_EQ(witness.rx, static_cast<uint32_t>(kQueues));
  EXPECT_EQ(witness.tx, static_cast<uint32_t>(kQueues));
  queues = control_->GetQueues(ifindex_);
  ASSERT_TRUE(queues.ok()) << queues.status();
  size_t rx = 0;
  for (const QueueInfo& q : *queues) rx += q.type == QueueInfo::Type::kRx;
  EXPECT_EQ(rx, static_cast<size_t>(kQueues));
  EXPECT_EQ(queues->size(), 2u * kQueues);
}

TEST_F(KernelNicControlTest, RingsAreRefused) {
  absl::StatusOr<RingsInfo> rings = control_->GetRings(ifindex_);
  EXPECT_EQ(StatusErrno(rings.status()), EOPNOTSUPP) << rings.status();
  RingsSet split;
  split.tcp_data_split = TcpDataSplit::kEnabled;
  absl::Status s = control_->SetRings(ifindex_, split);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  EXPECT_EQ(StatusExtack(s), "setting TCP data split is not supported");
}

TEST_F(KernelNicControlTest, NtupleIsFixedOff) {
  absl::Status s = control_->SetNtuple(ifindex_, /*enable=*/true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("rx-ntuple-filter is fixed off on "
                                     "dmctl0"));
  absl::StatusOr<FeaturesInfo> features = control_->GetFeatures(ifindex_);
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_FALSE(features->ntuple_hw);
}

TEST_F(KernelNicControlTest, RssIsRefused) {
  absl::StatusOr<RssInfo> rss = control_->GetRss(ifindex_, 0);
  EXPECT_EQ(StatusErrno(rss.status()), EOPNOTSUPP) << rss.status();
  const std::vector<uint32_t> indir = {0, 1};
  absl::Status s = control_->SetRssIndir(ifindex_, 0, indir);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  absl::StatusOr<uint32_t> created =
      control_->CreateRssContext(ifindex_, indir);
  EXPECT_EQ(StatusErrno(created.status()), EOPNOTSUPP) << created.status();
  s = control_->DeleteRssContext(ifindex_, 1);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  // A table too large for one netlink message takes the ioctl path, which
  // veth refuses just the same (no get_rxfh).
  const std::vector<uint32_t> huge(4096, 0);
  s = control_->SetRssIndir(ifindex_, 0, huge);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
}

TEST_F(KernelNicControlTest, RulesAreRefused) {
  absl::StatusOr<NicControl::RuleTable> rules = control_->ListRules(ifindex_);
  EXPECT_EQ(StatusErrno(rules.status()), EOPNOTSUPP) << rules.status();
  FlowRule rule;
  rule.match.family = AF_INET;
  rule.match.dst_ip = "10.99.0.1";
  rule.match.dst_port = 5201;
  rule.queue = 3;
  absl::StatusOr<uint32_t> inserted = control_->InsertRule(ifindex_, rule);
  EXPECT_EQ(StatusErrno(inserted.status()), EOPNOTSUPP) << inserted.status();
  absl::Status s = control_->DeleteRule(ifindex_, 0);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  // ethtool -n agrees.
  absl::StatusOr<testing::CommandResult> n =
      testing::RunCommand({"ethtool", "-n", kVeth});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_NE(n->exit_code, 0);
  EXPECT_THAT(n->output, HasSubstr("Operation not supported"));
}

TEST_F(KernelNicControlTest, UnknownIfindexIsNotFound) {
  constexpr uint32_t kNoSuchIfindex = 0x7ffffff0;
  absl::StatusOr<NicControl::RuleTable> rules =
      control_->ListRules(kNoSuchIfindex);
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(rules.status().message(), HasSubstr("ifindex 2147483632"));
  EXPECT_EQ(StatusErrno(control_->GetChannels(kNoSuchIfindex).status()),
            ENODEV);
}

TEST_F(KernelNicControlTest, CheckBindableFdRejectsWhatIsNotADmabuf) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(sock);
  const char* tmpdir = std::getenv("TEST_TMPDIR");
  const std::string path =
      absl::StrCat(tmpdir != nullptr ? tmpdir : "/tmp", "/not-a-dmabuf");
  UniqueFd file(
      open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(file);
  unlink(path.c_str());
  UniqueFd memfd = MakeMemfd();
  ASSERT_TRUE(memfd);

  const struct {
    int fd;
    const char* kind;
  } cases[] = {
      {read_end.get_unowned(), "pipe"},
      {sock.get_unowned(), "socket (AF_INET, UDP)"},
      {file.get_unowned(), "regular file (/"},
      {memfd.get_unowned(), "memfd"},
  };
  for (const auto& c : cases) {
    absl::Status s = control_->CheckBindableFd(c.fd);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    // DescribeFd() names the kind (a file's path, a socket's family follow).
    EXPECT_THAT(std::string(s.message()),
                StartsWith(absl::StrCat("fd ", c.fd, " is a ", c.kind)));
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(", not a dma-buf: export device memory as a dma-buf "
                          "(e.g. cuMemGetHandleForAddressRange)"));
  }
  // A closed fd.
  const int closed = write_end.get_unowned();
  write_end.Reset();
  absl::Status s = control_->CheckBindableFd(closed);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(StatusErrno(s), EBADF);
  EXPECT_THAT(s.message(), HasSubstr("not an open file"));
}

TEST_F(KernelNicControlTest, BindRxOnVethIsRefusedByTheKernel) {
  // No dma-buf can be made here (no udmabuf, no heaps), and none is needed:
  // the kernel refuses veth before it looks at the fd (KERNEL_API.md
  // section 1: newer kernels reject a driver without queue-management ops
  // up front, flagging IFINDEX). BindRx does not pre-check the fd, so the
  // kernel's answer is what comes back.
  UniqueFd memfd = MakeMemfd();
  ASSERT_TRUE(memfd);
  const std::vector<uint32_t> queues = {kQueues - 1};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      control_->BindRx(ifindex_, memfd.get_unowned(), queues);
  ASSERT_FALSE(binding.ok());
  EXPECT_THAT(binding.status().message(), HasSubstr("bind-rx"));
  if (!testing::KernelAtLeast(6, 15)) {
    // 6.12-6.14 look at the fd first: a memfd is no dma-buf (dma_buf_get:
    // EINVAL, no text; seen in the kernel matrix's 6.12 guest).
    EXPECT_EQ(StatusErrno(binding.status()), EINVAL) << binding.status();
    EXPECT_EQ(binding.status().code(), absl::StatusCode::kInvalidArgument);
  } else {
    EXPECT_EQ(StatusErrno(binding.status()), EOPNOTSUPP) << binding.status();
    EXPECT_EQ(binding.status().code(), absl::StatusCode::kUnimplemented);
    // The attribute the kernel flagged (NLMSGERR_ATTR_OFFS), not a text.
    EXPECT_THAT(StatusExtack(binding.status()), HasSubstr("ifindex"));
  }
  // Nothing was bound: no queue reports a dmabuf.
  absl::StatusOr<std::vector<QueueInfo>> after = control_->GetQueues(ifindex_);
  ASSERT_TRUE(after.ok()) << after.status();
  for (const QueueInfo& q : *after) EXPECT_FALSE(q.dmabuf.has_value());
}

TEST_F(KernelNicControlTest, BindTxOnVethIsRefusedByTheKernel) {
  // net/core/netdev-genl.c netdev_nl_bind_tx_doit(): veth does not set
  // netmem_tx, checked before the fd is used.
  UniqueFd memfd = MakeMemfd();
  ASSERT_TRUE(memfd);
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      control_->BindTx(ifindex_, memfd.get_unowned());
  ASSERT_FALSE(binding.ok());
  if (!testing::KernelAtLeast(6, 16)) {
    // No bind-tx op before 6.16: refused before any request.
    EXPECT_EQ(binding.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(binding.status().message(),
                HasSubstr("kernel lacks netdev bind-tx (6.16+)"));
    return;
  }
  EXPECT_EQ(StatusErrno(binding.status()), EOPNOTSUPP) << binding.status();
  EXPECT_EQ(StatusExtack(binding.status()),
            "Driver does not support netmem TX");
}

TEST_F(KernelNicControlTest, AdoptBindingRejectsWhatIsNotAGenlSocket) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  const int pipe_fd = read_end.get_unowned();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
      control_->AdoptBinding(ifindex_, 1, /*is_tx=*/false, std::move(read_end));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument)
      << adopted.status();
  EXPECT_THAT(adopted.status().message(),
              HasSubstr(absl::StrCat("fd ", pipe_fd,
                                     " is a pipe, not a generic netlink "
                                     "socket")));

  UniqueFd tcp(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(tcp);
  adopted = control_->AdoptBinding(ifindex_, 1, false, std::move(tcp));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(adopted.status().message(),
              HasSubstr("is a socket (AF_INET6, TCP), not a generic netlink "
                        "socket"));

  // Netlink, but rtnetlink: bindings hang off generic netlink sockets only.
  UniqueFd rtnl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  ASSERT_TRUE(rtnl);
  adopted =
      control_->AdoptBinding(ifindex_, 1, /*is_tx=*/true, std::move(rtnl));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(adopted.status().message(),
              HasSubstr("is a socket (AF_NETLINK, NETLINK_ROUTE)"));

  // Not an fd at all.
  adopted = control_->AdoptBinding(ifindex_, 1, false, UniqueFd());
  EXPECT_EQ(StatusErrno(adopted.status()), EBADF) << adopted.status();
}

TEST_F(KernelNicControlTest, AdoptUnknownRxBindingIsNotFound) {
  Witness({"ip", "link", "set", "lo", "up"});
  const uint32_t lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  for (uint32_t ifindex : {lo, ifindex_}) {
    UniqueFd genl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
    ASSERT_TRUE(genl);
    absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
        control_->AdoptBinding(ifindex, 12345, /*is_tx=*/false,
                               std::move(genl));
    EXPECT_EQ(adopted.status().code(), absl::StatusCode::kNotFound)
        << adopted.status();
    EXPECT_THAT(adopted.status().message(),
                HasSubstr("no RX queue reports dmabuf 12345"));
  }
  // An unknown device: queue-get's ENODEV.
  UniqueFd genl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
  ASSERT_TRUE(genl);
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
      control_->AdoptBinding(0x7ffffff0, 12345, false, std::move(genl));
  EXPECT_EQ(StatusErrno(adopted.status()), ENODEV) << adopted.status();
}

TEST_F(KernelNicControlTest, AdoptTxBindingIsTakenOnTrust) {
  // The kernel shows TX bindings nowhere: after the socket check (and
  // dev-get) an id is believed. Documented in kernel_nic_control.h.
  UniqueFd genl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
  ASSERT_TRUE(genl);
  const int fd = genl.get_unowned();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
      control_->AdoptBinding(ifindex_, 12345, /*is_tx=*/true, std::move(genl));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_TRUE((*adopted)->is_tx());
  EXPECT_EQ((*adopted)->netlink_fd_unowned(), fd);
  UniqueFd other(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
  ASSERT_TRUE(other);
  adopted = control_->AdoptBinding(0x7ffffff0, 12345, true, std::move(other));
  EXPECT_EQ(StatusErrno(adopted.status()), ENODEV) << adopted.status();
}

}  // namespace
}  // namespace devmem
