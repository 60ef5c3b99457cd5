// DevmemSender and ZerocopyCompletions: the exact sendmsg through the seam,
// the kernel's answers to malformed devmem sends on loopback, and the
// completion tracker with ordinary MSG_ZEROCOPY on loopback.
#include "client/devmem_sender.h"

#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/testing/loopback_tcp.h"
#include "client/zerocopy_completions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/devmem_socket.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

// Records each sendmsg; answers EMSGSIZE above `max_send` bytes.
class RecordingCalls final : public SocketCalls {
 public:
  struct Sent {
    uint64_t offset;
    size_t size;
    int flags;
    uint32_t id;
    size_t cmsg_len;
  };
  size_t max_send = SIZE_MAX;
  std::vector<Sent> sent;
  int zerocopy = 0;

  ssize_t RecvMsg(int, msghdr*, int) override {
    errno = EAGAIN;
    return -1;
  }
  ssize_t SendMsg(int, const msghdr* msg, int flags) override {
    const cmsghdr* c = CMSG_FIRSTHDR(msg);
    uint32_t id = 0;
    std::memcpy(&id, CMSG_DATA(c), sizeof(id));
    const size_t size = msg->msg_iov[0].iov_len;
    if (size > max_send) {
      errno = EMSGSIZE;
      return -1;
    }
    sent.push_back({reinterpret_cast<uintptr_t>(msg->msg_iov[0].iov_base), size,
                    flags, id, c->cmsg_len});
    return static_cast<ssize_t>(size);
  }
  int SetSockOpt(int, int level, int name, const void* value,
                 socklen_t) override {
    if (level == SOL_SOCKET && name == kSoZerocopy) {
      zerocopy = *static_cast<const int*>(value);
    }
    return 0;
  }
};

TEST(DevmemSender, OffsetsIntoTheDmabufWithTheBareBindingId) {
  RecordingCalls calls;
  calls.max_send = 256 << 10;  // the kernel's EMSGSIZE above this
  DevmemSender::Options o;
  o.binding_id = 9;
  o.dmabuf_size = 8 << 20;
  o.calls = &calls;
  absl::StatusOr<std::unique_ptr<DevmemSender>> tx = DevmemSender::Create(3, o);
  ASSERT_TRUE(tx.ok()) << tx.status();
  EXPECT_EQ(calls.zerocopy, 1) << "SO_ZEROCOPY on";
  ASSERT_TRUE((*tx)->Send(4096, 1 << 20).ok());
  EXPECT_EQ((*tx)->chunk(), 256u << 10) << "halved on EMSGSIZE";
  ASSERT_EQ(calls.sent.size(), 4u);
  uint64_t at = 4096;
  for (const RecordingCalls::Sent& s : calls.sent) {
    EXPECT_EQ(s.offset, at);
    EXPECT_EQ(s.flags, kMsgZerocopy);
    EXPECT_EQ(s.id, 9u);
    EXPECT_EQ(s.cmsg_len, CMSG_LEN(sizeof(uint32_t)));
    at += s.size;
  }
  EXPECT_EQ(at, 4096u + (1 << 20));
  EXPECT_EQ((*tx)->completions().outstanding(), 4u);
  EXPECT_FALSE((*tx)->completions().Reusable(0, 8192));
  EXPECT_TRUE((*tx)->completions().Reusable(0, 4096));
}

TEST(DevmemSender, RefusesWhatCannotBeRight) {
  RecordingCalls calls;
  DevmemSender::Options o;
  o.dmabuf_size = 4096;
  o.calls = &calls;
  EXPECT_THAT(DevmemSender::Create(3, o).status().message(),
              HasSubstr("binding id 0"));
  o.binding_id = 1;
  absl::StatusOr<std::unique_ptr<DevmemSender>> tx = DevmemSender::Create(3, o);
  ASSERT_TRUE(tx.ok());
  EXPECT_EQ((*tx)->Send(4000, 200).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*tx)->Send(UINT64_MAX, 1).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(calls.sent.empty());
  UniqueFd tcp(socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(setsockopt(tcp.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, "lo", 3),
            0);
  o.device = "eth7";
  absl::Status other = DevmemSender::Create(tcp.get_unowned(), o).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.message(), HasSubstr("bound to device \"lo\""));
}

TEST(ZerocopyCompletions, MergedAndWrappedRanges) {
  ZerocopyCompletions c;
  for (int i = 0; i < 5; ++i) c.Sent(i * 100, 100);
  c.Completed(1, 3, /*copied=*/false);
  EXPECT_EQ(c.outstanding(), 5u) << "send 0 still out";
  EXPECT_FALSE(c.Reusable(0, 1));
  EXPECT_TRUE(c.Reusable(100, 300));
  c.Completed(0, 0, /*copied=*/true);
  EXPECT_EQ(c.outstanding(), 1u);
  EXPECT_EQ(c.completed(), 4u);
  EXPECT_EQ(c.copied(), 1u);
  c.Completed(4, 4, false);
  c.Completed(4, 4, false);  // twice: counted once
  EXPECT_EQ(c.completed(), 5u);
  EXPECT_EQ(c.outstanding(), 0u);
}

// --- The real kernel, on loopback ---

bool KernelAtLeast(int major, int minor) {
  utsname u{};
  uname(&u);
  int ma = 0, mi = 0;  // NOLINT(readability-isolate-declaration)
  sscanf(u.release, "%d.%d", &ma, &mi);
  return ma > major || (ma == major && mi >= minor);
}

// One devmem sendmsg by hand: cmsg payload of `cmsg_bytes`, id 77.
int RawDevmemSend(int fd, size_t cmsg_bytes) {
  iovec iov{reinterpret_cast<void*>(uintptr_t{0}), 4096};
  alignas(cmsghdr) char control[CMSG_SPACE(8)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(cmsg_bytes);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = kScmDevmemDmabuf;
  c->cmsg_len = CMSG_LEN(cmsg_bytes);
  const uint64_t id = 77;
  std::memcpy(CMSG_DATA(c), &id, cmsg_bytes);
  return sendmsg(fd, &msg, kMsgZerocopy) < 0 ? errno : 0;
}

TEST(DevmemSenderKernel, MalformedDevmemSendsAreEinval) {
  if (!KernelAtLeast(6, 16)) GTEST_SKIP() << "devmem TX needs kernel 6.16+";
  TcpPair p = LoopbackTcpPair();
  EXPECT_EQ(RawDevmemSend(p.client.get_unowned(), 4), EINVAL)
      << "without SO_ZEROCOPY";
  const int one = 1;
  ASSERT_EQ(setsockopt(p.client.get_unowned(), SOL_SOCKET, kSoZerocopy, &one,
                       sizeof(one)),
            0);
  EXPECT_EQ(RawDevmemSend(p.client.get_unowned(), 8), EINVAL)
      << "a cmsg of 8 bytes, not the bare u32";
  EXPECT_EQ(RawDevmemSend(p.client.get_unowned(), 4), EINVAL)
      << "an id no bind-tx made";
  DevmemSender::Options o;
  o.binding_id = 77;
  o.dmabuf_size = 1 << 20;
  absl::StatusOr<std::unique_ptr<DevmemSender>> tx =
      DevmemSender::Create(p.client.get_unowned(), o);
  ASSERT_TRUE(tx.ok()) << tx.status();
  absl::Status sent = (*tx)->Send(0, 4096);
  EXPECT_EQ(sent.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sent.message(), HasSubstr("no bind-tx binding of that id"));
}

TEST(ZerocopyCompletionsKernel, OrdinaryZerocopyOnLoopbackCompletes) {
  TcpPair p = LoopbackTcpPair();
  const int one = 1;
  ASSERT_EQ(setsockopt(p.client.get_unowned(), SOL_SOCKET, kSoZerocopy, &one,
                       sizeof(one)),
            0);
  std::thread reader([fd = p.server.get_unowned()] {
    std::vector<char> buf(1 << 16);
    while (read(fd, buf.data(), buf.size()) > 0) {
    }
  });
  std::vector<char> data(64 << 10, 'z');
  ZerocopyCompletions c;
  constexpr int kSends = 64;
  for (int i = 0; i < kSends; ++i) {
    const ssize_t n =
        send(p.client.get_unowned(), data.data(), data.size(), kMsgZerocopy);
    ASSERT_GT(n, 0) << strerror(errno);
    c.Sent(0, static_cast<uint64_t>(n));
  }
  EXPECT_FALSE(c.Reusable(0, data.size()) && c.outstanding() == kSends);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (c.outstanding() > 0 && absl::Now() < deadline) {
    pollfd pfd{p.client.get_unowned(), POLLERR, 0};
    poll(&pfd, 1, 100);
    absl::StatusOr<size_t> got =
        c.Drain(p.client.get_unowned(), KernelSocketCalls());
    ASSERT_TRUE(got.ok()) << got.status();
  }
  shutdown(p.client.get_unowned(), SHUT_WR);
  reader.join();
  EXPECT_EQ(c.completed(), static_cast<uint64_t>(kSends));
  EXPECT_EQ(c.outstanding(), 0u);
  EXPECT_TRUE(c.Reusable(0, data.size()));
  EXPECT_EQ(c.copied(), c.completed()) << "loopback copies: the COPIED code";
  EXPECT_LE(c.notifications(), static_cast<uint64_t>(kSends))
      << "ranges may merge";
}

}  // namespace
}  // namespace devmem
