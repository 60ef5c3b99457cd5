#include "client/socket_requests.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

size_t Sum(const std::vector<size_t>& calls) {
  return std::accumulate(calls.begin(), calls.end(), size_t{0});
}

TEST(OpenSocketsCallsTest, AFewSocketsGoInOneCall) {
  EXPECT_THAT(OpenSocketsCalls(0, 1024, 4), IsEmpty());
  EXPECT_THAT(OpenSocketsCalls(1, 1024, 4), ElementsAre(1));
  EXPECT_THAT(OpenSocketsCalls(64, 1024, 4), ElementsAre(64));
}

TEST(OpenSocketsCallsTest, FirstCallsAreSmallerThenTheTicketShare) {
  // 1024 tickets over 4 calls in flight: 256 each, from 32 up.
  EXPECT_THAT(OpenSocketsCalls(256, 1024, 4), ElementsAre(32, 64, 128, 32));
  const std::vector<size_t> calls = OpenSocketsCalls(8000, 1024, 4);
  EXPECT_EQ(Sum(calls), 8000u);
  ASSERT_GE(calls.size(), 4u);
  EXPECT_THAT(std::vector<size_t>(calls.begin(), calls.begin() + 4),
              ElementsAre(32, 64, 128, 256));
  for (size_t n : calls) EXPECT_LE(n, 256u);
}

TEST(OpenSocketsCallsTest, CallsInFlightStayWithinTheTicketLimit) {
  for (size_t limit : {1u, 3u, 10u, 64u, 100u, 1024u}) {
    for (size_t n : {1u, 5u, 65u, 200u, 1000u, 4097u}) {
      // Session::OpenSocketsEach makes no more calls at once than tickets.
      const size_t in_flight = std::min<size_t>(4, limit);
      const std::vector<size_t> calls = OpenSocketsCalls(n, limit, in_flight);
      EXPECT_EQ(Sum(calls), n) << n << " sockets, " << limit << " tickets";
      for (size_t k = 0; k < calls.size(); ++k) {
        ASSERT_GE(calls[k], 1u);
        size_t window = 0;
        for (size_t j = k; j < std::min(calls.size(), k + in_flight); ++j) {
          window += calls[j];
        }
        EXPECT_LE(window, limit)
            << n << " sockets, " << limit << " tickets, call " << k;
      }
    }
  }
  // A limit of one ticket: one socket per call, one call at a time.
  EXPECT_THAT(OpenSocketsCalls(3, 1, 1), ElementsAre(1, 1, 1));
}

}  // namespace
}  // namespace devmem
