#include "deploy/slurm/job_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace slurm {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/jfXXXXXX";
  return mkdtemp(dir.data());
}

TEST(JobFiles, RefusesWhatIsNotAJobId) {
  for (const char* bad : {"", "../x", "12a", "1/2", "123456789012345678901"}) {
    EXPECT_EQ(JobFiles::For("/tmp", bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(JobFiles, TokenIsTheUsersAloneAndStateIsRoots) {
  const std::string dir = TempDir() + "/tokens";
  absl::StatusOr<JobFiles> files = JobFiles::For(dir, "42");
  ASSERT_TRUE(files.ok());
  ASSERT_TRUE(files->MakeDir().ok());
  ASSERT_TRUE(files->MakeDir().ok()) << "twice is fine";
  ASSERT_TRUE(files->WriteToken("dmr1-abc", getuid(), getgid()).ok());
  ASSERT_TRUE(files->WriteState("r-1 (lo queues 1)").ok());
  struct stat st {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  ASSERT_EQ(stat(files->token_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  ASSERT_EQ(stat(files->state_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(*files->ReadToken(), "dmr1-abc");
  EXPECT_EQ(*files->ReadState(), "r-1 (lo queues 1)");
  ASSERT_TRUE(files->WriteToken("dmr1-def", getuid(), getgid()).ok())
      << "a Prolog run again replaces the token";
  EXPECT_EQ(*files->ReadToken(), "dmr1-def");
  ASSERT_TRUE(files->Remove().ok());
  ASSERT_TRUE(files->Remove().ok()) << "idempotent";
  EXPECT_TRUE(absl::IsNotFound(files->ReadToken().status()));
  EXPECT_TRUE(absl::IsNotFound(files->ReadState().status()));
}

TEST(JobFiles, NeverFollowsASymlinkNorTrustsAnOpenDirectory) {
  const std::string base = TempDir();
  const std::string dir = base + "/tokens";
  ASSERT_EQ(mkdir(dir.c_str(), 0777), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  absl::StatusOr<JobFiles> files = JobFiles::For(dir, "7");
  absl::Status made = files->MakeDir();
  EXPECT_EQ(made.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(made.message(), HasSubstr("writable by it alone"));
  ASSERT_EQ(chmod(dir.c_str(), 0711), 0);
  ASSERT_EQ(symlink((base + "/elsewhere").c_str(), files->token_path().c_str()),
            0);
  EXPECT_FALSE(files->ReadToken().ok());
  ASSERT_TRUE(files->WriteToken("dmr1-x", getuid(), getgid()).ok());
  struct stat st {};
  EXPECT_NE(lstat((base + "/elsewhere").c_str(), &st), 0)
      << "the symlink was replaced, not written through";
  const std::string link = base + "/link";
  ASSERT_EQ(symlink(dir.c_str(), link.c_str()), 0);
  EXPECT_FALSE(JobFiles::For(link, "7")->MakeDir().ok());
}

}  // namespace
}  // namespace slurm
}  // namespace devmem
