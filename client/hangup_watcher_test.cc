#include "client/hangup_watcher.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

struct Pair {
  UniqueFd ours;
  UniqueFd peer;
};

Pair SocketPair() {
  int sv[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return Pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

constexpr absl::Duration kWait = absl::Seconds(10);

TEST(HangupWatcherTest, FiresOnceWhenThePeerGoesAndNotForData) {
  HangupWatcher watcher;
  Pair chatty = SocketPair();
  Pair closing = SocketPair();
  std::atomic<int> chatty_calls{0};
  absl::Notification closed;
  ASSERT_TRUE(
      watcher.Watch(chatty.ours.get_unowned(), [&] { ++chatty_calls; }).ok());
  ASSERT_TRUE(
      watcher.Watch(closing.ours.get_unowned(), [&] { closed.Notify(); }).ok());
  EXPECT_EQ(watcher.watched(), 2u);
  // Readable data is the owner's business, not a hang-up.
  ASSERT_EQ(::write(chatty.peer.get_unowned(), "x", 1), 1);
  closing.peer.Reset();
  ASSERT_TRUE(closed.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(chatty_calls.load(), 0);
  EXPECT_EQ(watcher.watched(), 1u);  // a fired registration is gone

  chatty.peer.Reset();
  const absl::Time deadline = absl::Now() + kWait;
  while (chatty_calls.load() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(chatty_calls.load(), 1);
  EXPECT_EQ(watcher.watched(), 0u);
}

TEST(HangupWatcherTest, AnUnwatchedSocketNeverFires) {
  HangupWatcher watcher;
  Pair quiet = SocketPair();
  Pair sentinel = SocketPair();
  std::atomic<bool> fired{false};
  absl::StatusOr<uint64_t> id =
      watcher.Watch(quiet.ours.get_unowned(), [&] { fired = true; });
  ASSERT_TRUE(id.ok());
  watcher.Unwatch(*id);
  watcher.Unwatch(*id);  // twice is harmless
  EXPECT_EQ(watcher.watched(), 0u);
  // Its fd number taken by another socket: the old id must not touch it.
  quiet.ours.Reset();
  absl::Notification sentinel_fired;
  ASSERT_TRUE(
      watcher
          .Watch(sentinel.ours.get_unowned(), [&] { sentinel_fired.Notify(); })
          .ok());
  watcher.Unwatch(*id);
  quiet.peer.Reset();
  sentinel.peer.Reset();
  ASSERT_TRUE(sentinel_fired.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(fired.load());
}

TEST(HangupWatcherTest, UnwatchWaitsForARunningCallback) {
  HangupWatcher watcher;
  Pair p = SocketPair();
  absl::Notification entered;
  absl::Notification release;
  std::atomic<bool> finished{false};
  absl::StatusOr<uint64_t> id = watcher.Watch(p.ours.get_unowned(), [&] {
    entered.Notify();
    release.WaitForNotification();
    finished = true;
  });
  ASSERT_TRUE(id.ok());
  p.peer.Reset();
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kWait));
  std::atomic<bool> returned{false};
  std::thread unwatcher([&] {
    watcher.Unwatch(*id);
    returned = true;
  });
  // While the callback runs, Unwatch must not return.
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(returned.load());
    absl::SleepFor(absl::Milliseconds(1));
  }
  release.Notify();
  unwatcher.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(finished.load());
}

// A thousand sockets cost one thread, and each fires its own callback.
TEST(HangupWatcherTest, ManySocketsOneThread) {
  HangupWatcher watcher;
  constexpr int kSockets = 1000;
  std::vector<Pair> pairs;
  std::vector<std::atomic<int>> calls(kSockets);
  for (int i = 0; i < kSockets; ++i) {
    pairs.push_back(SocketPair());
    ASSERT_TRUE(watcher
                    .Watch(pairs.back().ours.get_unowned(),
                           [&calls, i] { ++calls[static_cast<size_t>(i)]; })
                    .ok());
  }
  EXPECT_EQ(watcher.watched(), static_cast<size_t>(kSockets));
  for (Pair& p : pairs) p.peer.Reset();
  const absl::Time deadline = absl::Now() + kWait;
  while (watcher.watched() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(watcher.watched(), 0u);
  watcher.Unwatch(1);  // waits out the last callback
  for (int i = 0; i < kSockets; ++i) {
    EXPECT_EQ(calls[static_cast<size_t>(i)].load(), 1) << i;
  }
}

// The callback may watch another socket (what a resumed session does).
TEST(HangupWatcherTest, ACallbackMayWatchAgain) {
  HangupWatcher watcher;
  Pair first = SocketPair();
  Pair second = SocketPair();
  absl::Notification second_fired;
  ASSERT_TRUE(watcher
                  .Watch(first.ours.get_unowned(),
                         [&] {
                           ASSERT_TRUE(
                               watcher
                                   .Watch(second.ours.get_unowned(),
                                          [&] { second_fired.Notify(); })
                                   .ok());
                         })
                  .ok());
  first.peer.Reset();
  second.peer.Reset();
  ASSERT_TRUE(second_fired.WaitForNotificationWithTimeout(kWait));
}

}  // namespace
}  // namespace devmem
