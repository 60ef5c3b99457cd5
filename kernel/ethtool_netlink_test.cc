#include "kernel/ethtool_netlink.h"

#include <net/if.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/ethtool_msg.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

// Runs against the real kernel on `lo`, which exists in every namespace:
// loopback has ethtool features but no channels or ring parameters
// (drivers/net/loopback.c loopback_ethtool_ops).

class EthtoolNetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EthtoolNetlink>> opened =
        EthtoolNetlink::Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    ethtool_ = *std::move(opened);
    lo_ = if_nametoindex("lo");
    ASSERT_NE(lo_, 0u);
  }

  std::unique_ptr<EthtoolNetlink> ethtool_;
  uint32_t lo_ = 0;
};

TEST_F(EthtoolNetlinkTest, ResolvedTheFamily) {
  EXPECT_GE(ethtool_->family_id(), GENL_MIN_ID);
  EXPECT_EQ(ethtool_->family().name, "ethtool");
  EXPECT_TRUE(ethtool_->family().HasOp(ETHTOOL_MSG_RINGS_SET));
}

TEST_F(EthtoolNetlinkTest, FeaturesOfLoopback) {
  absl::StatusOr<FeaturesInfo> features = ethtool_->GetFeatures(lo_);
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_GT(features->feature_count, 10u);
  EXPECT_FALSE(features->ntuple_hw);
  EXPECT_FALSE(features->ntuple_active);
}

TEST_F(EthtoolNetlinkTest, ChannelsOfLoopbackAreNotSupported) {
  absl::StatusOr<ChannelsInfo> channels = ethtool_->GetChannels(lo_);
  ASSERT_FALSE(channels.ok());
  EXPECT_EQ(StatusErrno(channels.status()), EOPNOTSUPP);
  EXPECT_EQ(channels.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(channels.status().message(),
              HasSubstr("ethtool channels-get lo"));
}

TEST_F(EthtoolNetlinkTest, RingsOfLoopbackAreNotSupported) {
  absl::StatusOr<RingsInfo> rings = ethtool_->GetRings(lo_);
  ASSERT_FALSE(rings.ok());
  EXPECT_EQ(StatusErrno(rings.status()), EOPNOTSUPP);
  EXPECT_THAT(rings.status().message(), HasSubstr("ethtool rings-get lo"));
}

TEST_F(EthtoolNetlinkTest, HasOpFollowsTheFamilysOpList) {
  EXPECT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_CHANNELS_SET));
  EXPECT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_FEATURES_SET));
  EXPECT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_RSS_GET));
  // A command no kernel has.
  EXPECT_FALSE(ethtool_->HasOp(200));
  EXPECT_EQ(ethtool_->HasOp(ETHTOOL_MSG_RSS_SET),
            ethtool_->family().HasOp(ETHTOOL_MSG_RSS_SET));
}

TEST_F(EthtoolNetlinkTest, RssOfLoopbackIsNotSupported) {
  // drivers/net/loopback.c has no get_rxfh; net/ethtool/rss.c
  // rss_prepare_data() says EOPNOTSUPP. A GET needs no privileges.
  absl::StatusOr<RssInfo> rss = ethtool_->GetRss(lo_, 0);
  ASSERT_FALSE(rss.ok());
  EXPECT_EQ(StatusErrno(rss.status()), EOPNOTSUPP);
  EXPECT_THAT(rss.status().message(), HasSubstr("ethtool rss-get lo"));
  // The socket is in step after the error.
  EXPECT_TRUE(ethtool_->GetFeatures(lo_).ok());
}

TEST_F(EthtoolNetlinkTest, UnknownIfindexCarriesExtack) {
  constexpr uint32_t kNoSuchIfindex = 0x7ffffff0;
  absl::StatusOr<ChannelsInfo> channels = ethtool_->GetChannels(kNoSuchIfindex);
  ASSERT_FALSE(channels.ok());
  EXPECT_EQ(StatusErrno(channels.status()), ENODEV);
  // net/ethtool/netlink.c ethnl_parse_header_dev_get(): this text is the
  // kernel's, not ours.
  EXPECT_EQ(StatusExtack(channels.status()), "no device matches ifindex");
  EXPECT_THAT(channels.status().message(),
              HasSubstr("ethtool channels-get ifindex 2147483632"));
}

TEST_F(EthtoolNetlinkTest, TransactSeamTakesAnyBuiltRequest) {
  GenlMsg request =
      BuildFeaturesGet(ethtool_->family_id(), EthtoolDev::ByName("lo"));
  int replies = 0;
  absl::Status s = ethtool_->Transact(
      request, "features-get by name", [&](absl::Span<const uint8_t> reply) {
        ++replies;
        return ParseFeaturesReply(reply).status();
      });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(replies, 1);

  GenlMsg bad =
      BuildRingsGet(ethtool_->family_id(), EthtoolDev::ByName("no-such-if0"));
  s = ethtool_->Transact(
      bad, "rings-get no-such-if0",
      [](absl::Span<const uint8_t>) { return absl::OkStatus(); });
  EXPECT_EQ(StatusErrno(s), ENODEV);
  EXPECT_THAT(s.message(), HasSubstr("rings-get no-such-if0"));
}

TEST_F(EthtoolNetlinkTest, TransactWaitsForTheAckWhenAskedFor) {
  // What SET requests will look like: REQUEST|ACK, reply (if any) then ACK.
  GenlMsg request(ethtool_->family_id(), ETHTOOL_MSG_FEATURES_GET,
                  kEthtoolGenlVersion, NLM_F_REQUEST | NLM_F_ACK);
  const size_t nest = request.BeginNest(ETHTOOL_A_FEATURES_HEADER);
  request.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, lo_);
  request.EndNest(nest);
  for (int round = 0; round < 3; ++round) {
    int replies = 0;
    absl::Status s =
        ethtool_->Transact(request, "features-get lo with ack",
                           [&](absl::Span<const uint8_t> reply) {
                             ++replies;
                             return ParseFeaturesReply(reply).status();
                           });
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(replies, 1);
  }
  // Had an ACK been left behind, this single-reply GET would read it.
  EXPECT_TRUE(ethtool_->GetFeatures(lo_).ok());
}

TEST_F(EthtoolNetlinkTest, TransactRunsDumpsToDone) {
  GenlMsg dump(ethtool_->family_id(), ETHTOOL_MSG_FEATURES_GET,
               kEthtoolGenlVersion, NLM_F_REQUEST | NLM_F_DUMP);
  const size_t nest = dump.BeginNest(ETHTOOL_A_FEATURES_HEADER);
  dump.EndNest(nest);
  int replies = 0;
  absl::Status s = ethtool_->Transact(
      dump, "features-get dump", [&](absl::Span<const uint8_t> reply) {
        ++replies;
        return ParseFeaturesReply(reply).status();
      });
  ASSERT_TRUE(s.ok()) << s;
  // One per device in this namespace: at least lo.
  EXPECT_GE(replies, 1);
  EXPECT_TRUE(ethtool_->GetFeatures(lo_).ok());
}

TEST_F(EthtoolNetlinkTest, ParserErrorsNameTheRequest) {
  // A features request parsed as channels: wrong reply command.
  GenlMsg features =
      BuildFeaturesGet(ethtool_->family_id(), EthtoolDev::ByIndex(lo_));
  absl::Status s = ethtool_->Transact(
      features, "features-get lo", [](absl::Span<const uint8_t> reply) {
        return ParseChannelsReply(reply).status();
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("features-get lo: "));
  // The socket is still in step afterwards.
  EXPECT_TRUE(ethtool_->GetFeatures(lo_).ok());
}

TEST_F(EthtoolNetlinkTest, ConcurrentCallersShareTheSocketSafely) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (!ethtool_->GetFeatures(lo_).ok()) ++failures;
        if (StatusErrno(ethtool_->GetChannels(lo_).status()) != EOPNOTSUPP) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace devmem
