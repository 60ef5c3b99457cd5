#include "daemon/state/host_key.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

std::string Dir() {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

TEST(HostKeyTest, MadeOnceWith0600AndReadBackTheSame) {
  ::mkdir(Dir().c_str(), 0700);
  const std::string path = Dir() + "/reservation.key";
  auto first = LoadOrCreateHostKey(path);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 64u);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = LoadOrCreateHostKey(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  // Another directory, another key.
  ::mkdir((Dir() + "/other").c_str(), 0700);
  auto other = LoadOrCreateHostKey(Dir() + "/other/reservation.key");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *first);
}

TEST(HostKeyTest, DamagedKeyIsRefusedNotReplaced) {
  ::mkdir(Dir().c_str(), 0700);
  const std::string path = Dir() + "/reservation.key";
  std::ofstream(path) << "not a key\n";
  auto key = LoadOrCreateHostKey(path);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(key.status().message(), HasSubstr("remove it to make a new one"));
  std::string content;
  std::getline(std::ifstream(path), content);
  EXPECT_EQ(content, "not a key");
}

}  // namespace
}  // namespace devmem
