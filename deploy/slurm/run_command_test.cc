#include "deploy/slurm/run_command.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace slurm {
namespace {

using ::testing::HasSubstr;

TEST(RunCommand, ExitCodeAndBothStreams) {
  absl::StatusOr<CommandResult> r = RunCommand(
      {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_THAT(r->output, HasSubstr("out"));
  EXPECT_THAT(r->output, HasSubstr("err"));
}

TEST(RunCommand, KillsWhatOutlivesTheTimeout) {
  const absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> r =
      RunCommand({"/bin/sleep", "30"}, absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.status().message(), HasSubstr("/bin/sleep 30"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(RunCommand, AClosedOutputDoesNotEndTheWait) {
  absl::StatusOr<CommandResult> r = RunCommand(
      {"/bin/sh", "-c", "exec >&- 2>&-; sleep 30"}, absl::Milliseconds(300));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RunCommand, NeedsAnAbsoluteExecutablePath) {
  EXPECT_EQ(RunCommand({"scontrol"}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RunCommand({"/nonexistent/scontrol"}, absl::Seconds(1)).status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace slurm
}  // namespace devmem
