#include "deploy/slurm/job_gres.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace slurm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(ExpandHostlist, NamesRangesAndPadding) {
  EXPECT_THAT(*ExpandHostlist("n1"), ElementsAre("n1"));
  EXPECT_THAT(*ExpandHostlist("n[1-3]"), ElementsAre("n1", "n2", "n3"));
  EXPECT_THAT(*ExpandHostlist("gpu[08-10,12]x,login"),
              ElementsAre("gpu08x", "gpu09x", "gpu10x", "gpu12x", "login"));
}

TEST(ExpandHostlist, RefusesWhatItCannotRead) {
  for (const char* bad :
       {"n[1-3", "n1-3]", "n[3-1]", "n[a-b]", "n[1][2]", "", "n[1-9999999]"}) {
    EXPECT_FALSE(ExpandHostlist(bad).ok()) << bad;
  }
}

TEST(ParseTimeLimit, EverySlurmForm) {
  EXPECT_EQ(*ParseTimeLimit("5"), absl::Minutes(5));
  EXPECT_EQ(*ParseTimeLimit("5:30"), absl::Minutes(5) + absl::Seconds(30));
  EXPECT_EQ(*ParseTimeLimit("01:02:03"),
            absl::Hours(1) + absl::Minutes(2) + absl::Seconds(3));
  EXPECT_EQ(*ParseTimeLimit("2-03"), absl::Hours(51));
  EXPECT_EQ(*ParseTimeLimit("1-00:30"), absl::Hours(24) + absl::Minutes(30));
  EXPECT_EQ(*ParseTimeLimit("1-00:00:10"), absl::Hours(24) + absl::Seconds(10));
  EXPECT_EQ(*ParseTimeLimit("UNLIMITED"), std::nullopt);
  EXPECT_FALSE(ParseTimeLimit("1:2:3:4").ok());
  EXPECT_FALSE(ParseTimeLimit("soon").ok());
  EXPECT_FALSE(ParseTimeLimit("-5").ok());
}

// What Slurm 22.05's `scontrol show job -d` prints for a three-node job.
constexpr char kThreeNodes[] = R"(JobId=17 JobName=train
   UserId=dmuser1(64101) GroupId=dmusers(64100) MCS_label=N/A
   JobState=RUNNING Reason=None Dependency=(null)
   RunTime=00:00:01 TimeLimit=00:05:00 TimeMin=N/A
   NodeList=dmsn[1-3]
   BatchHost=dmsn1
   NumNodes=3 NumCPUs=3 NumTasks=3 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=3,node=3,billing=3,gres/devmemq=6
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=devmemq:6
     Nodes=dmsn[1-2] CPU_IDs=0 Mem=0 GRES=devmemq(CNT:2)
     Nodes=dmsn3 CPU_IDs=1 Mem=0 GRES=devmemq:eth1(CNT:1),gpu:a100:2(IDX:0,2)
   TresPerNode=gres:devmemq:2
)";

TEST(ParseJobGres, ThisNodesCountAndTheTimeLimit) {
  absl::StatusOr<JobGres> n2 = ParseJobGres(kThreeNodes, "dmsn2");
  ASSERT_TRUE(n2.ok()) << n2.status();
  EXPECT_THAT(n2->queues, ElementsAre(Pair("", 2u)));
  EXPECT_EQ(n2->time_limit, absl::Minutes(5));
  absl::StatusOr<JobGres> n3 = ParseJobGres(kThreeNodes, "dmsn3");
  ASSERT_TRUE(n3.ok()) << n3.status();
  EXPECT_THAT(n3->queues, ElementsAre(Pair("eth1", 1u)));
  absl::StatusOr<JobGres> other = ParseJobGres(kThreeNodes, "dmsn4");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->queues.empty());
}

TEST(ParseJobGres, TypedWithCountAndNoGresAtAll) {
  absl::StatusOr<JobGres> typed = ParseJobGres(
      "JobId=3 TimeLimit=UNLIMITED\n  Nodes=a CPU_IDs=0 Mem=0 "
      "GRES=devmemq:eth2:4(IDX:0-3)\n",
      "a");
  ASSERT_TRUE(typed.ok()) << typed.status();
  EXPECT_THAT(typed->queues, ElementsAre(Pair("eth2", 4u)));
  EXPECT_EQ(typed->time_limit, std::nullopt);
  absl::StatusOr<JobGres> none = ParseJobGres(
      "JobId=4 TimeLimit=10\n  Nodes=a CPU_IDs=0 Mem=0 GRES=\n", "a");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->queues.empty());
}

TEST(ParseJobGres, NamesWhatItCannotRead) {
  EXPECT_EQ(
      ParseJobGres("slurm_load_jobs error: Invalid job id specified\n", "a")
          .status()
          .code(),
      absl::StatusCode::kNotFound);
  absl::StatusOr<JobGres> bad =
      ParseJobGres("JobId=5\n  Nodes=a CPU_IDs=0 GRES=devmemq(CNT:x)\n", "a");
  EXPECT_THAT(bad.status().message(), HasSubstr("devmemq(CNT:x)"));
  EXPECT_THAT(ParseJobGres("JobId=5 TimeLimit=never\n", "a").status().message(),
              HasSubstr("TimeLimit"));
}

}  // namespace
}  // namespace slurm
}  // namespace devmem
