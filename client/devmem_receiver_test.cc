// DevmemReceiver and TokenReturn through the syscall seam (exact kernel
// answers from FakeDevmemKernel or a script), and against the real kernel
// on loopback (no devmem NIC here: ordinary data, token-return errors).
#include "client/devmem_receiver.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/ncdevmem_pattern.h"
#include "client/pattern.h"
#include "client/testing/fake_devmem_kernel.h"
#include "client/testing/loopback_tcp.h"
#include "client/token_return.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/devmem_socket.h"
#include "kernel/unique_fd.h"

namespace devmem {
// Every allocation of this test binary, counted, so a test can check that
// the receive loop allocates nothing per fragment.
std::atomic<uint64_t> g_allocations{0};
}  // namespace devmem

void* operator new(size_t size) {
  devmem::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace devmem {
namespace {

using ::testing::HasSubstr;

// Runs the receive loop to the end of the stream, checking every byte
// (device fragments through the fake's dma-buf, linear bytes in the buffer).
struct LoopResult {
  uint64_t bytes = 0;
  uint64_t bad_bytes = 0;
  absl::Status status;
};

LoopResult ReceiveAll(DevmemReceiver& rx, const FakeDevmemKernel& kernel,
                      size_t buffer_bytes) {
  std::vector<char> buffer(buffer_bytes);
  LoopResult r;
  for (;;) {
    absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
    if (!batch.ok()) {
      r.status = batch.status();
      return r;
    }
    if ((*batch)->bytes == 0) break;
    for (const RecvPiece& p : (*batch)->pieces) {
      const char* data = p.kind == RecvPiece::kDevice
                             ? kernel.dmabuf() + p.dmabuf_offset
                             : buffer.data() + p.buffer_offset;
      const int64_t bad =
          FirstPatternMismatch(r.bytes, absl::MakeConstSpan(data, p.size));
      if (bad >= 0) ++r.bad_bytes;
      r.bytes += p.size;
    }
  }
  r.status = rx.ReturnTokens();
  return r;
}

// A receiver's options for binding 1 through `calls`.
DevmemReceiver::Options OptionsFor(SocketCalls& calls) {
  DevmemReceiver::Options o;
  o.dmabuf_id = 1;
  o.calls = &calls;
  return o;
}

FakeDevmemOptions Stream(uint64_t bytes, uint32_t fragment_bytes) {
  FakeDevmemOptions o;
  o.stream_bytes = bytes;
  o.fragment_bytes = fragment_bytes;
  o.source = GeneratedSource(PatternByte);
  return o;
}

TEST(DevmemReceiver, AMillionFragmentsEveryByteCheckedEveryTokenBackOnce) {
  constexpr uint64_t kFragments = 1'000'000;
  FakeDevmemOptions o = Stream(kFragments * 16, 16);
  o.linear_every = 7;  // mixed linear and device pieces
  o.linear_bytes = 16;
  FakeDevmemKernel kernel(o);
  DevmemReceiver::Options options = OptionsFor(kernel);
  DevmemReceiver rx(3, options);
  LoopResult r = ReceiveAll(rx, kernel, 64 << 10);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.bytes, o.stream_bytes);
  EXPECT_EQ(r.bad_bytes, 0u);
  const FakeDevmemSeen& seen = kernel.seen();
  EXPECT_EQ(seen.freed, seen.fragments) << "every token back";
  EXPECT_EQ(kernel.outstanding(), 0u);
  EXPECT_EQ(seen.unknown_frees, 0u) << "none twice";
  EXPECT_EQ(seen.einval, 0u);
  EXPECT_LE(seen.most_ranges, kMaxDontneedRanges);
  EXPECT_LE(seen.most_frags, kMaxDontneedFrags);
  EXPECT_LE(seen.dontneed_calls * 128, seen.fragments + 128 * 128)
      << "at most about 1 call per 128 fragments";
  EXPECT_EQ(rx.stats().fragments, seen.fragments);
  EXPECT_EQ(rx.stats().device_bytes + rx.stats().linear_bytes, o.stream_bytes);
  EXPECT_EQ(rx.token_stats().returned, seen.fragments);
  EXPECT_EQ(rx.token_stats().unknown, 0u);
}

TEST(DevmemReceiver, NoAllocationPerFragmentInSteadyState) {
  FakeDevmemOptions o = Stream(200'000 * 64, 64);
  o.linear_every = 5;
  FakeDevmemKernel kernel(o);
  DevmemReceiver::Options options = OptionsFor(kernel);
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(1 << 16);
  for (int i = 0; i < 10; ++i) {  // warm up
    ASSERT_TRUE(rx.Receive(absl::MakeSpan(buffer)).ok());
  }
  const uint64_t before = g_allocations.load();
  uint64_t fragments = rx.stats().fragments;
  for (;;) {
    absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
    ASSERT_TRUE(batch.ok());
    if ((*batch)->bytes == 0) break;
  }
  ASSERT_TRUE(rx.ReturnTokens().ok());
  fragments = rx.stats().fragments - fragments;
  EXPECT_GT(fragments, 100'000u);
  EXPECT_EQ(g_allocations.load() - before, 0u)
      << "allocations while receiving " << fragments << " fragments";
}

TEST(DevmemReceiver, ManyFragmentsPerCallUpToTheControlBuffer) {
  FakeDevmemKernel kernel(Stream(4096 * 64, 64));
  DevmemReceiver::Options options;
  options.dmabuf_id = 1;
  options.max_fragments = 100;
  options.calls = &kernel;
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(1 << 20);
  absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE((*batch)->steered);
  EXPECT_EQ((*batch)->pieces.size(), 100u) << "a full control buffer";
  EXPECT_EQ((*batch)->bytes, 6400u);
}

TEST(DevmemReceiver, PartialFreesAreSentAgain) {
  FakeDevmemOptions o = Stream(50'000 * 64, 64);
  o.free_at_most = 100;
  FakeDevmemKernel kernel(o);
  DevmemReceiver::Options options = OptionsFor(kernel);
  DevmemReceiver rx(3, options);
  LoopResult r = ReceiveAll(rx, kernel, 1 << 20);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(kernel.seen().freed, kernel.seen().fragments);
  EXPECT_EQ(kernel.outstanding(), 0u);
  EXPECT_EQ(rx.token_stats().unknown, 0u);
  EXPECT_GT(kernel.seen().dontneed_calls, kernel.seen().fragments / 256);
}

TEST(DevmemReceiver, AFragmentOfAnotherBindingIsRefusedAndItsTokenReturned) {
  FakeDevmemOptions o = Stream(4096 * 4, 4096);
  o.dmabuf_id = 7;
  FakeDevmemKernel kernel(o);
  DevmemReceiver::Options options;
  options.dmabuf_id = 3;
  options.calls = &kernel;
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(1 << 16);
  absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(batch.status().message(),
              HasSubstr("binding 7 arrived, but this receiver's binding is 3"));
  EXPECT_EQ(kernel.outstanding(), 0u) << "nothing left pinned";
}

TEST(DevmemReceiver, ManualTokensWaitForTheCaller) {
  FakeDevmemKernel kernel(Stream(4096 * 8, 4096));
  DevmemReceiver::Options options;
  options.dmabuf_id = 1;
  options.tokens = DevmemReceiver::TokenPolicy::kManual;
  options.calls = &kernel;
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(1 << 20);
  absl::StatusOr<const RecvBatch*> first = rx.Receive(absl::MakeSpan(buffer));
  ASSERT_TRUE(first.ok());
  const std::vector<RecvPiece> held = (*first)->pieces;
  ASSERT_TRUE(rx.Receive(absl::MakeSpan(buffer)).ok());
  EXPECT_EQ(kernel.outstanding(), 8u) << "a GPU kernel still reads them";
  for (const RecvPiece& p : held) ASSERT_TRUE(rx.Release(p).ok());
  ASSERT_TRUE(rx.ReturnTokens().ok());
  EXPECT_EQ(kernel.outstanding(), 0u);
  EXPECT_EQ(rx.token_stats().dontneed_calls, 1u) << "8 tokens, one range";
}

TEST(DevmemReceiver, HoldingEveryPageIsNamed) {
  FakeDevmemOptions o = Stream(4096 * 64, 4096);
  o.dmabuf_pages = 16;
  FakeDevmemKernel kernel(o);
  DevmemReceiver::Options options;
  options.dmabuf_id = 1;
  options.tokens = DevmemReceiver::TokenPolicy::kManual;
  options.calls = &kernel;
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(1 << 20);
  ASSERT_TRUE(rx.Receive(absl::MakeSpan(buffer)).ok());
  absl::StatusOr<const RecvBatch*> stuck = rx.Receive(absl::MakeSpan(buffer));
  EXPECT_EQ(stuck.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(stuck.status().message(), HasSubstr("return tokens sooner"));
}

// A recvmsg answer written out by hand.
class Scripted final : public SocketCalls {
 public:
  std::function<ssize_t(msghdr*)> recv;
  ssize_t RecvMsg(int, msghdr* msg, int) override { return recv(msg); }
  ssize_t SendMsg(int, const msghdr*, int) override { return -1; }
  int SetSockOpt(int, int, int, const void*, socklen_t size) override {
    return static_cast<int>(size / sizeof(DmabufToken));
  }
};

absl::Status ReceiveOnce(Scripted& calls, size_t max_fragments = 16) {
  DevmemReceiver::Options options;
  options.dmabuf_id = 1;
  options.max_fragments = max_fragments;
  options.calls = &calls;
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(4096);
  return rx.Receive(absl::MakeSpan(buffer)).status();
}

TEST(DevmemReceiver, KernelErrorsAreNamed) {
  Scripted calls;
  const std::vector<std::pair<int, std::string>> cases = {
      {kEtoosmall, "ETOOSMALL"},
      {EFAULT, "before kernel 6.18"},
      {ENODEV, "binding or its NIC went away"},
  };
  for (const auto& [err, words] : cases) {
    calls.recv = [err = err](msghdr*) {
      errno = err;
      return ssize_t{-1};
    };
    EXPECT_THAT(ReceiveOnce(calls).message(), HasSubstr(words)) << err;
  }
  calls.recv = [](msghdr* msg) {
    msg->msg_controllen = 0;
    msg->msg_flags = MSG_CTRUNC;
    return ssize_t{100};
  };
  EXPECT_EQ(ReceiveOnce(calls).code(), absl::StatusCode::kDataLoss);
}

TEST(DevmemReceiver, OrdinaryDataIsNotSteered) {
  Scripted calls;
  calls.recv = [](msghdr* msg) {
    std::memcpy(msg->msg_iov[0].iov_base, "hello", 5);
    msg->msg_controllen = 0;
    msg->msg_flags = 0;
    return ssize_t{5};
  };
  DevmemReceiver::Options options = OptionsFor(calls);
  DevmemReceiver rx(3, options);
  std::vector<char> buffer(64);
  absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
  ASSERT_TRUE(batch.ok());
  EXPECT_FALSE((*batch)->steered);
  EXPECT_EQ((*batch)->bytes, 5u);
  EXPECT_EQ(rx.stats().unsteered_bytes, 5u);
}

// --- The real kernel, on loopback ---

// Whether this kernel knows SO_DEVMEM_DONTNEED (6.12+); else why not.
std::string NoDevmemSockopts(int tcp_fd) {
  DmabufToken t{1u << 30, 1};
  if (setsockopt(tcp_fd, SOL_SOCKET, kSoDevmemDontneed, &t, sizeof(t)) < 0 &&
      errno == ENOPROTOOPT) {
    return "this kernel has no SO_DEVMEM_DONTNEED (before 6.12)";
  }
  return "";
}

TEST(DevmemReceiverKernel, OrdinaryStreamIsReportedNotSteered) {
  TcpPair p = LoopbackTcpPair();
  const std::string sent = "plain bytes from a queue with no binding";
  ASSERT_EQ(write(p.client.get_unowned(), sent.data(), sent.size()),
            static_cast<ssize_t>(sent.size()));
  p.client.Reset();
  DevmemReceiver::Options options;
  options.dmabuf_id = 1;
  DevmemReceiver rx(p.server.get_unowned(), options);
  std::vector<char> buffer(4096);
  std::string got;
  for (;;) {
    absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
    ASSERT_TRUE(batch.ok()) << batch.status();
    if ((*batch)->bytes == 0) break;
    EXPECT_FALSE((*batch)->steered);
    got.append(buffer.data(), (*batch)->bytes);
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(rx.stats().unsteered_bytes, sent.size());
  EXPECT_EQ(rx.stats().fragments, 0u);
}

TEST(TokenReturnKernel, UnknownTokensFreeNothing) {
  TcpPair p = LoopbackTcpPair();
  const std::string why = NoDevmemSockopts(p.server.get_unowned());
  if (!why.empty()) GTEST_SKIP() << why;
  TokenReturn tokens(p.server.get_unowned(), KernelSocketCalls(), 1024);
  for (uint32_t t = 0; t < 300; ++t) ASSERT_TRUE(tokens.Add(t * 2).ok());
  ASSERT_TRUE(tokens.Flush().ok());
  EXPECT_EQ(tokens.stats().returned, 0u);
  EXPECT_EQ(tokens.stats().unknown, 300u);
  EXPECT_EQ(tokens.stats().dontneed_calls, 3u) << "128 + 128 + 44 ranges";
}

TEST(TokenReturnKernel, TheKernelsLimitsAndErrors) {
  TcpPair p = LoopbackTcpPair();
  const std::string why = NoDevmemSockopts(p.server.get_unowned());
  if (!why.empty()) GTEST_SKIP() << why;
  std::vector<DmabufToken> ranges(129, DmabufToken{1u << 30, 1});
  EXPECT_EQ(setsockopt(p.server.get_unowned(), SOL_SOCKET, kSoDevmemDontneed,
                       ranges.data(), 128 * sizeof(DmabufToken)),
            0);
  EXPECT_EQ(setsockopt(p.server.get_unowned(), SOL_SOCKET, kSoDevmemDontneed,
                       ranges.data(), 129 * sizeof(DmabufToken)),
            -1);
  EXPECT_EQ(errno, EINVAL) << "129 ranges";
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM, 0));
  TokenReturn tokens(udp.get_unowned(), KernelSocketCalls(), 8);
  ASSERT_TRUE(tokens.Add(5).ok());
  absl::Status flushed = tokens.Flush();
  EXPECT_THAT(flushed.message(), HasSubstr("not a TCP socket"));
}

// --- ncdevmem's pattern ---

TEST(NcdevmemPattern, AgreesWithTheShellSender) {
  // The sender of the kernel's documentation, corrected (KERNEL_API.md).
  FILE* yes =
      popen("yes \"$(printf '\\1\\2\\3\\4\\5\\6')\" | head -c 100000", "r");
  ASSERT_NE(yes, nullptr);
  std::string data(100000, '\0');
  ASSERT_EQ(fread(data.data(), 1, data.size(), yes), data.size());
  pclose(yes);
  NcdevmemPattern pattern(7);
  // In pieces of odd sizes: the pattern continues across fragments.
  for (size_t at = 0; at < data.size(); at += 4093) {
    const size_t n = std::min<size_t>(4093, data.size() - at);
    ASSERT_TRUE(pattern.Check(absl::MakeConstSpan(data.data() + at, n)));
  }
  EXPECT_EQ(pattern.mismatches(), 0u);
  EXPECT_EQ(pattern.checked(), data.size());
  NcdevmemPattern wrong(6);
  EXPECT_FALSE(wrong.Check(absl::MakeConstSpan(data)));
  EXPECT_EQ(wrong.first_mismatch(), 5u);
}

}  // namespace
}  // namespace devmem
