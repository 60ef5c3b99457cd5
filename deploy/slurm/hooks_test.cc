// The hooks' decisions without a cluster: a stand-in scontrol (a script
// that prints a job and records what it was asked) and no devmemd. The real
// cluster is //tests/slurm:slurm_test.
#include "deploy/slurm/hooks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "deploy/slurm/job_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace slurm {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class HooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        getenv("TEST_TMPDIR"), "/hooks-",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir_.c_str(), 0755);
    config_.runtime_dir = dir_ + "/no-devmemd";
    config_.token_dir = dir_ + "/tokens";
    config_.scontrol = dir_ + "/scontrol";
    config_.ttl_margin = absl::Minutes(10);
    config_.max_ttl = absl::Hours(24);
    config_.scontrol_timeout = absl::Seconds(10);
    config_.drain_on_failure = true;
    setenv("SLURM_JOB_ID", "42", 1);
    setenv("SLURMD_NODENAME", "n1", 1);
    setenv("SLURM_JOB_UID", absl::StrCat(getuid()).c_str(), 1);
    setenv("SLURM_JOB_GID", absl::StrCat(getgid()).c_str(), 1);
  }

  // scontrol: `show job` prints `job_text`; anything else is recorded.
  void FakeScontrol(const std::string& job_text) {
    std::ofstream(dir_ + "/job.txt") << job_text;
    std::ofstream(config_.scontrol)
        << "#!/bin/sh\nif [ \"$1\" = show ]; then cat " << dir_
        << "/job.txt; exit 0; fi\necho \"$@\" >> " << dir_ << "/asked\n";
    chmod(config_.scontrol.c_str(), 0755);
  }

  std::string Asked() { return ReadAll(dir_ + "/asked"); }

  std::string dir_;
  HookConfig config_;
};

TEST_F(HooksTest, PrologWithoutDevmemqLeavesDevmemdAlone) {
  FakeScontrol("JobId=42 TimeLimit=00:05:00\n   Nodes=n1 CPU_IDs=0 GRES=\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunProlog(config_), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), IsEmpty());
  EXPECT_THAT(Asked(), IsEmpty());
}

TEST_F(HooksTest, PrologWithDevmemdDownFailsAndDrainsWithTheReason) {
  FakeScontrol(
      "JobId=42 TimeLimit=00:05:00\n   Nodes=n[1-2] CPU_IDs=0 "
      "GRES=devmemq(CNT:2)\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunProlog(config_), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("devmem-slurm prolog: job 42: devmemd is not "
                             "reachable"));
  EXPECT_THAT(err, HasSubstr("(UNAVAILABLE)"));
  EXPECT_THAT(Asked(), HasSubstr("update nodename=n1 state=drain "
                                 "reason=devmem prolog: job 42: devmemd is "
                                 "not reachable"));
}

TEST_F(HooksTest, PrologWithoutSlurmsEnvironmentSaysWhere) {
  unsetenv("SLURM_JOB_UID");
  FakeScontrol("");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunProlog(config_), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("$SLURM_JOB_UID is not set to a number"));
}

TEST_F(HooksTest, ScontrolThatFailsIsNamed) {
  std::ofstream(config_.scontrol)
      << "#!/bin/sh\necho 'slurm_load_jobs error: Socket timed out'; exit 1\n";
  chmod(config_.scontrol.c_str(), 0755);
  config_.drain_on_failure = false;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunProlog(config_), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("show job -d 42 failed (exit 1): slurm_load_jobs "
                        "error: Socket timed out"));
}

TEST_F(HooksTest, EpilogWithNothingReservedHereSucceedsWithoutDevmemd) {
  FakeScontrol("");
  EXPECT_EQ(RunEpilog(config_), 0);
  EXPECT_EQ(RunEpilog(config_), 0) << "and again";
  EXPECT_THAT(Asked(), IsEmpty());
}

TEST_F(HooksTest, EpilogThatCannotReleaseWhatWasReservedFails) {
  FakeScontrol("");
  absl::StatusOr<JobFiles> files = JobFiles::For(config_.token_dir, "42");
  ASSERT_TRUE(files->MakeDir().ok());
  ASSERT_TRUE(files->WriteState("r-1 (eth1 queues 4,5)").ok());
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunEpilog(config_), 1);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("reservation r-1 (eth1 queues 4,5) stays until its "
                        "TTL ends"));
  EXPECT_THAT(Asked(), HasSubstr("state=drain reason=devmem epilog: job 42"));
}

TEST_F(HooksTest, TaskPrologExportsTheTokenOrNothing) {
  absl::StatusOr<JobFiles> files = JobFiles::For(config_.token_dir, "42");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunTaskProlog(config_), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), IsEmpty())
      << "no token: a job without devmemq";
  ASSERT_TRUE(files->MakeDir().ok());
  ASSERT_TRUE(files->WriteToken("dmr1-ab-cd", getuid(), getgid()).ok());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunTaskProlog(config_), 0);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            "export DEVMEM_RESERVATION=dmr1-ab-cd\n");
  ASSERT_TRUE(files->WriteToken("x; rm -rf ~", getuid(), getgid()).ok());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunTaskProlog(config_), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), IsEmpty())
      << "what is not a token is never exported";
}

}  // namespace
}  // namespace slurm
}  // namespace devmem
