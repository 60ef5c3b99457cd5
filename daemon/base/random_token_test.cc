#include "daemon/base/random_token.h"

#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(RandomTokenTest, TokensAreWellFormedAndNeverRepeat) {
  absl::flat_hash_set<std::string> seen;
  // Many refills of the per-thread pool.
  for (int i = 0; i < 10000; ++i) {
    const std::string t = RandomHex128();
    ASSERT_TRUE(IsTicketFormat(t)) << t;
    ASSERT_TRUE(seen.insert(t).second) << "repeated token " << t;
  }
}

TEST(RandomTokenTest, ThreadsDrawTheirOwnBits) {
  std::vector<std::vector<std::string>> drawn(4);
  std::vector<std::thread> threads;
  threads.reserve(drawn.size());
  for (auto& out : drawn) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 100; ++i) out.push_back(RandomHex128());
    });
  }
  for (auto& t : threads) t.join();
  absl::flat_hash_set<std::string> seen;
  for (const auto& out : drawn) {
    for (const std::string& t : out) EXPECT_TRUE(seen.insert(t).second) << t;
  }
}

// A forked child must not hand out the tokens its parent will: the pool the
// child inherited is drawn afresh.
TEST(RandomTokenTest, ForkedChildDoesNotRepeatItsParent) {
  (void)RandomHex128();  // the pool holds unused bits now
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string all;
    for (int i = 0; i < 8; ++i) all += RandomHex128();
    const bool ok = ::write(pipe_fds[1], all.data(), all.size()) ==
                    static_cast<ssize_t>(all.size());
    ::_exit(ok ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  constexpr size_t kHex = 32;
  std::string child(8 * kHex, '\0');
  size_t got = 0;
  while (got < child.size()) {
    const ssize_t n =
        ::read(pipe_fds[0], child.data() + got, child.size() - got);
    ASSERT_GT(n, 0);
    got += static_cast<size_t>(n);
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  absl::flat_hash_set<std::string> parent;
  for (int i = 0; i < 8; ++i) parent.insert(RandomHex128());
  for (size_t i = 0; i < 8; ++i) {
    const std::string token = child.substr(i * kHex, kHex);
    EXPECT_FALSE(parent.contains(token))
        << "the child repeated its parent's token " << token;
  }
}

}  // namespace
}  // namespace devmem
