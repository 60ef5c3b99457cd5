#include "daemon/ops/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/base/testing/fake_clock.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

class HealthTest : public ::testing::Test {
 protected:
  HealthTest() : monitor_(&clock_) {
    monitor_.AddProbe([this] { return issues_; });
    monitor_.AddListener(
        [this](const HealthReport& r) { changes_.push_back(r.state); });
  }

  FakeClock clock_;
  HealthMonitor monitor_;
  std::vector<HealthIssue> issues_;
  std::vector<HealthState> changes_;
};

TEST_F(HealthTest, StartingUntilServingAndProbesNotAskedBefore) {
  issues_ = {{"nic/dm-a", "link is down", false}};
  HealthReport r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kStarting);
  EXPECT_TRUE(r.reasons.empty());
  EXPECT_EQ(r.HttpStatus(), 503);
  EXPECT_FALSE(r.AcceptsWork());
  issues_.clear();
  monitor_.SetServing();
  r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kReady);
  EXPECT_EQ(r.HttpStatus(), 200);
  EXPECT_TRUE(r.AcceptsWork());
  EXPECT_EQ(changes_, (std::vector<HealthState>{HealthState::kStarting,
                                                HealthState::kReady}));
}

TEST_F(HealthTest, DegradedKeepsSinceWhileTheReasonLasts) {
  monitor_.SetServing();
  monitor_.Check();
  clock_.Advance(absl::Seconds(5));
  const absl::Time first = clock_.Now();
  issues_ = {{"nic/dm-a", "link is down", false}};
  HealthReport r = monitor_.Check();
  ASSERT_EQ(r.state, HealthState::kDegraded);
  EXPECT_EQ(r.state_since, first);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0].since, first);
  EXPECT_EQ(r.HttpStatus(), 200);
  EXPECT_TRUE(r.AcceptsWork());

  clock_.Advance(absl::Seconds(7));
  r = monitor_.Check();
  EXPECT_EQ(r.reasons[0].since, first);
  EXPECT_EQ(r.checked, first + absl::Seconds(7));
  EXPECT_EQ(changes_.size(), 2u) << "an unchanged report is not a change";

  issues_.clear();
  clock_.Advance(absl::Seconds(1));
  r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kReady);
  EXPECT_EQ(r.state_since, first + absl::Seconds(8));
  // A reason that comes back starts a new `since`.
  issues_ = {{"nic/dm-a", "link is down", false}};
  clock_.Advance(absl::Seconds(1));
  r = monitor_.Check();
  EXPECT_EQ(r.reasons[0].since, first + absl::Seconds(9));
}

TEST_F(HealthTest, JournalAndFatalReasonsStopNewWork) {
  monitor_.SetServing();
  issues_ = {{"journal", "No space left on device", false}};
  HealthReport r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kDegraded);
  EXPECT_EQ(r.HttpStatus(), 200);
  EXPECT_FALSE(r.AcceptsWork());

  issues_ = {{"nic/dm-a", "down", false}, {"profiles", "none applied", true}};
  r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kFailed);
  EXPECT_EQ(r.HttpStatus(), 503);
  EXPECT_FALSE(r.AcceptsWork());
  ASSERT_EQ(r.reasons.size(), 2u);
  EXPECT_EQ(r.reasons[0].key, "nic/dm-a") << "sorted by key";
}

TEST_F(HealthTest, StoppingIsFailed) {
  monitor_.SetServing();
  monitor_.SetStopping();
  monitor_.SetServing();  // no way back
  HealthReport r = monitor_.Check();
  EXPECT_EQ(r.state, HealthState::kFailed);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0].message, "stopping");
}

TEST_F(HealthTest, JsonNamesEverythingAndEscapes) {
  monitor_.SetServing();
  clock_.Advance(absl::Milliseconds(1500));
  issues_ = {{"nic/dm-a", "say \"hi\"\n\x01", false}};
  const std::string json = monitor_.Check().ToJson();
  EXPECT_THAT(json, HasSubstr("\"state\":\"degraded\""));
  EXPECT_THAT(json, HasSubstr("\"started\":\"2023-11-14T22:13:20.000Z\""));
  EXPECT_THAT(json, HasSubstr("\"checked\":\"2023-11-14T22:13:21.500Z\""));
  EXPECT_THAT(json, HasSubstr("\"uptime_seconds\":1.500"));
  EXPECT_THAT(json, HasSubstr("\"component\":\"nic/dm-a\""));
  EXPECT_THAT(json, HasSubstr("\"message\":\"say \\\"hi\\\"\\n\\u0001\""));
  EXPECT_THAT(json, HasSubstr("\"severity\":\"degraded\""));
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

}  // namespace
}  // namespace devmem
