// The devmem receive path's own cost, against baselines measured in the same
// run (docs/DATAPATH.md):
//
//  1. Token return, through the syscall seam: FRAGMENTS fragments of 4 KiB
//     from FakeDevmemKernel (no payload is written: the device does that),
//     received by DevmemReceiver (tokens merged, up to 1,024 per
//     SO_DEVMEM_DONTNEED) and by ncdevmem's loop (one setsockopt per
//     fragment, expecting 1). Every setsockopt also runs the real syscall on
//     a loopback TCP socket with the same token array (the kernel frees
//     nothing: unknown tokens), so its cost is the kernel's. Prints
//     setsockopt calls and ns per fragment for both. Goals: <= 1/128 calls
//     per fragment, >= 10x less CPU per fragment.
//  2. Ordinary data on loopback TCP: DevmemReceiver (recvmsg with
//     MSG_SOCK_DEVMEM, cmsg parsing) against a plain read() loop on the
//     same kind of socket, BYTES each, alternating. Goal: ratio >= 0.95.
//
// Usage: bazel run -c opt //bench:datapath_bench [-- FRAGMENTS [BYTES]]

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "client/devmem_receiver.h"
#include "client/socket_calls.h"
#include "client/testing/fake_devmem_kernel.h"
#include "client/testing/loopback_tcp.h"
#include "kernel/devmem_socket.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The fake kernel, with each SO_DEVMEM_DONTNEED also made for real on a
// TCP socket (same tokens; the kernel knows none of them).
class RealCostCalls final : public SocketCalls {
 public:
  RealCostCalls(FakeDevmemKernel& fake, int tcp_fd)
      : fake_(fake), tcp_fd_(tcp_fd) {}
  ssize_t RecvMsg(int fd, msghdr* msg, int flags) override {
    return fake_.RecvMsg(fd, msg, flags);
  }
  ssize_t SendMsg(int fd, const msghdr* msg, int flags) override {
    return fake_.SendMsg(fd, msg, flags);
  }
  int SetSockOpt(int fd, int level, int name, const void* value,
                 socklen_t size) override {
    ++calls_;
    setsockopt(tcp_fd_, level, name, value, size);
    return fake_.SetSockOpt(fd, level, name, value, size);
  }
  uint64_t calls() const { return calls_; }

 private:
  FakeDevmemKernel& fake_;
  int tcp_fd_;
  uint64_t calls_ = 0;
};

FakeDevmemOptions Fragments(uint64_t n) {
  FakeDevmemOptions o;
  o.stream_bytes = n * 4096;
  o.fragment_bytes = 4096;
  o.dmabuf_pages = 1 << 16;  // 256 MiB of "device memory"
  // The device wrote the payload; nothing to generate here.
  o.source = [](uint64_t, char*, size_t max) { return max; };
  return o;
}

struct TokenFigures {
  double ns_per_fragment = 0;
  double calls_per_fragment = 0;
  uint64_t fragments = 0;
};

TokenFigures RunReceiver(uint64_t n, int tcp_fd) {
  FakeDevmemKernel fake(Fragments(n));
  RealCostCalls calls(fake, tcp_fd);
  DevmemReceiver::Options o;
  o.dmabuf_id = 1;
  o.calls = &calls;
  DevmemReceiver rx(3, o);
  std::vector<char> buffer(1 << 20);
  const Clock::time_point t0 = Clock::now();
  for (;;) {
    absl::StatusOr<const RecvBatch*> b = rx.Receive(absl::MakeSpan(buffer));
    if (!b.ok() || (*b)->bytes == 0) break;
  }
  (void)rx.ReturnTokens();
  const double s = Seconds(Clock::now() - t0);
  const uint64_t frags = fake.seen().fragments;
  return {s * 1e9 / frags, static_cast<double>(calls.calls()) / frags, frags};
}

// ncdevmem's loop (6.18): an 80,000-byte control buffer; per DMABUF cmsg one
// SO_DEVMEM_DONTNEED of {token, 1}, expecting 1.
TokenFigures RunNcdevmemLoop(uint64_t n, int tcp_fd) {
  FakeDevmemKernel fake(Fragments(n));
  RealCostCalls calls(fake, tcp_fd);
  std::vector<char> buffer(1 << 20);
  std::vector<char> control(80000);
  const Clock::time_point t0 = Clock::now();
  for (;;) {
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    if (calls.RecvMsg(3, &msg, kMsgSockDevmem) <= 0) break;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_type != kScmDevmemDmabuf) continue;
      DmabufCmsg frag;
      std::memcpy(&frag, CMSG_DATA(c), sizeof(frag));
      DmabufToken token{frag.frag_token, 1};
      if (calls.SetSockOpt(3, SOL_SOCKET, kSoDevmemDontneed, &token,
                           sizeof(token)) != 1) {
        std::fprintf(stderr, "ncdevmem loop: a token was not freed\n");
      }
    }
  }
  const double s = Seconds(Clock::now() - t0);
  const uint64_t frags = fake.seen().fragments;
  return {s * 1e9 / frags, static_cast<double>(calls.calls()) / frags, frags};
}

// Gbit/s receiving `bytes` of ordinary data on loopback, with DevmemReceiver
// or with read().
double LoopbackGbps(uint64_t bytes, bool devmem) {
  TcpPair p = LoopbackTcpPair();
  std::thread sender([fd = p.client.get_unowned(), bytes] {
    std::vector<char> data(1 << 20, 'x');
    for (uint64_t sent = 0; sent < bytes;) {
      const ssize_t n =
          write(fd, data.data(), std::min<uint64_t>(data.size(), bytes - sent));
      if (n <= 0) break;
      sent += static_cast<uint64_t>(n);
    }
    shutdown(fd, SHUT_WR);
  });
  std::vector<char> buffer(1 << 20);
  uint64_t got = 0;
  const Clock::time_point t0 = Clock::now();
  if (devmem) {
    DevmemReceiver::Options o;
    o.dmabuf_id = 1;
    DevmemReceiver rx(p.server.get_unowned(), o);
    for (;;) {
      absl::StatusOr<const RecvBatch*> b = rx.Receive(absl::MakeSpan(buffer));
      if (!b.ok() || (*b)->bytes == 0) break;
      got += (*b)->bytes;
    }
  } else {
    for (;;) {
      const ssize_t n =
          read(p.server.get_unowned(), buffer.data(), buffer.size());
      if (n <= 0) break;
      got += static_cast<uint64_t>(n);
    }
  }
  const double s = Seconds(Clock::now() - t0);
  sender.join();
  return got * 8 / s / 1e9;
}

int Main(int argc, char** argv) {
  uint64_t fragments = 10'000'000;
  uint64_t bytes = 2ull << 30;
  if (argc > 1 && !absl::SimpleAtoi(argv[1], &fragments)) return 2;
  if (argc > 2 && !absl::SimpleAtoi(argv[2], &bytes)) return 2;
  TcpPair tcp = LoopbackTcpPair();
  const int fd = tcp.server.get_unowned();
  std::printf(
      "1. token return, %llu fragments of 4 KiB through the seam "
      "(real setsockopt cost)\n",
      static_cast<unsigned long long>(fragments));
  const TokenFigures base = RunNcdevmemLoop(fragments, fd);
  const TokenFigures ours = RunReceiver(fragments, fd);
  std::printf(
      "   ncdevmem loop    %8.1f ns/fragment  %.5f setsockopt/fragment\n",
      base.ns_per_fragment, base.calls_per_fragment);
  std::printf(
      "   DevmemReceiver   %8.1f ns/fragment  %.5f setsockopt/fragment "
      "(goal <= %.5f)\n",
      ours.ns_per_fragment, ours.calls_per_fragment, 1.0 / 128);
  std::printf("   CPU per fragment: %.1fx less (goal >= 10x)\n",
              base.ns_per_fragment / ours.ns_per_fragment);
  std::printf(
      "2. ordinary data on loopback TCP, %llu MiB per run, 3 runs "
      "each, alternating\n",
      static_cast<unsigned long long>(bytes >> 20));
  double plain = 0;
  double devmem = 0;
  for (int i = 0; i < 3; ++i) {
    plain += LoopbackGbps(bytes, false) / 3;
    devmem += LoopbackGbps(bytes, true) / 3;
  }
  std::printf("   read() loop      %6.2f Gbit/s\n", plain);
  std::printf("   DevmemReceiver   %6.2f Gbit/s\n", devmem);
  std::printf("   ratio %.3f (goal >= 0.95)\n", devmem / plain);
  return 0;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) { return devmem::Main(argc, argv); }
