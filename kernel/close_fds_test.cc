#include "kernel/close_fds.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"

namespace devmem {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

int NewFd() { return ::eventfd(0, EFD_CLOEXEC); }

TEST(CloseFdsTest, ClosesRunsAndLeavesAnFdBetweenThemAlone) {
  // Ten fresh fds, most likely consecutive; the fourth is not ours.
  std::vector<int> numbers;
  for (int i = 0; i < 10; ++i) numbers.push_back(NewFd());
  for (int n : numbers) ASSERT_GE(n, 0);
  std::vector<UniqueFd> ours;
  for (int i = 0; i < 10; ++i) {
    if (i != 3) ours.emplace_back(numbers[i]);
  }
  ours.emplace_back();  // an empty one is skipped
  CloseFds(&ours);
  EXPECT_TRUE(ours.empty());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(IsOpen(numbers[i]), i == 3) << "fd " << numbers[i];
  }
  ::close(numbers[3]);
}

TEST(CloseFdsTest, OrderDoesNotMatterAndNothingIsEmpty) {
  std::vector<UniqueFd> none;
  CloseFds(&none);
  const int a = NewFd(), b = NewFd(), c = NewFd();
  std::vector<UniqueFd> fds;
  fds.emplace_back(c);
  fds.emplace_back(a);
  fds.emplace_back(b);
  CloseFds(&fds);
  EXPECT_FALSE(IsOpen(a));
  EXPECT_FALSE(IsOpen(b));
  EXPECT_FALSE(IsOpen(c));
}

}  // namespace
}  // namespace devmem
