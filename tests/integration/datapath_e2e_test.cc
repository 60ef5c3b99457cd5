// The data path end to end through the simulated backend: a real devmemd
// (simulated devmem NIC on lo), a memfd bound with BindRx, a listener
// steered to it, a sender on loopback, and DevmemReceiver reading the
// accepted socket through FakeDevmemKernel: the stand-in for the device
// that puts the socket's real bytes into the bound memfd as fragments with
// tokens (this kernel has no devmem NIC to do it). Every byte is checked
// through a CPU view of the memfd, and every token comes back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/devmem_receiver.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "client/testing/fake_devmem_kernel.h"
#include "gtest/gtest.h"
#include "kernel/dmabuf_view.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"
#include "tests/integration/daemon_process.h"

namespace devmem {
namespace {

constexpr size_t kMemfdBytes = 16 << 20;
constexpr uint64_t kStreamBytes = 64ull << 20;

class DatapathE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short: a unix socket path has 107 bytes at most.
    dir_ = absl::StrCat("/tmp/devmemd-dp-", getpid());
    const std::string config = dir_ + ".textproto";
    std::ofstream(config) << "allow_uids: " << getuid()
                          << "\nadmin_uids: " << getuid()
                          << "\nnic_backend: \"simulated\"\n"
                          << "nic_profiles { nic: \"lo\" pool_queues: 2 }\n";
    auto d = DaemonProcess::Start(
        "daemon/devmemd", dir_ + "/run",
        {"--config=" + config, "--state_dir=" + dir_ + "/state", "--dbus="});
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
  }
  void TearDown() override {
    daemon_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::remove(dir_ + ".textproto");
  }
  std::string dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(DatapathE2eTest, SteeredSocketIntoTheBoundMemfdEveryByteChecked) {
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Open(dir_ + "/run");
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(kMemfdBytes, "e2e");
  ASSERT_TRUE(memfd.ok());
  BindOptions bind;
  bind.nic = "lo";
  absl::StatusOr<v1::Binding> binding =
      (*session)->BindRx(memfd->get_unowned(), bind);
  ASSERT_TRUE(binding.ok()) << binding.status();
  ListenOptions listen;
  listen.nic = "lo";
  listen.ip = "127.0.0.1";
  listen.binding = binding->handle();
  absl::StatusOr<SocketHandle> sock = (*session)->Listen(listen);
  ASSERT_TRUE(sock.ok()) << sock.status();
  ASSERT_TRUE(sock->info.has_rule()) << "the listener is steered";
  const uint16_t port = static_cast<uint16_t>(sock->info.local().port());

  std::thread sender([port] {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(
        connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&to), sizeof(to)),
        0);
    std::vector<char> chunk(kPatternPeriod);
    FillPattern(0, absl::MakeSpan(chunk));
    for (uint64_t sent = 0; sent < kStreamBytes; sent += chunk.size()) {
      ASSERT_EQ(write(fd.get_unowned(), chunk.data(), chunk.size()),
                static_cast<ssize_t>(chunk.size()));
    }
  });
  UniqueFd conn(accept(sock->fd.get_unowned(), nullptr, nullptr));
  ASSERT_TRUE(conn.valid());

  // The device's side: writes into the memfd as the NIC would DMA into it.
  void* device = mmap(nullptr, kMemfdBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                      memfd->get_unowned(), 0);
  ASSERT_NE(device, MAP_FAILED);
  FakeDevmemOptions o;
  o.dmabuf_id = binding->kernel_id();
  o.dmabuf_memory = static_cast<char*>(device);
  o.dmabuf_pages = kMemfdBytes / 4096;
  o.linear_every = 16;  // now and then a header copied into the iov
  o.source = SocketSource(conn.get_unowned());
  FakeDevmemKernel kernel(o);

  DevmemReceiver::Options options;
  options.dmabuf_id = binding->kernel_id();
  options.calls = &kernel;
  DevmemReceiver rx(conn.get_unowned(), options);
  absl::StatusOr<DmabufView> view = DmabufView::Map(memfd->get_unowned());
  ASSERT_TRUE(view.ok()) << view.status();
  std::vector<char> buffer(1 << 20);
  uint64_t offset = 0;
  uint64_t bad = 0;
  for (;;) {
    absl::StatusOr<const RecvBatch*> batch = rx.Receive(absl::MakeSpan(buffer));
    ASSERT_TRUE(batch.ok()) << batch.status();
    if ((*batch)->bytes == 0) break;
    ASSERT_TRUE((*batch)->steered);
    for (const RecvPiece& p : (*batch)->pieces) {
      absl::Span<const char> data =
          p.kind == RecvPiece::kDevice
              ? *view->Bytes(p.dmabuf_offset, p.size)
              : absl::MakeConstSpan(buffer.data() + p.buffer_offset, p.size);
      if (FirstPatternMismatch(offset, data) >= 0) ++bad;
      offset += p.size;
    }
  }
  sender.join();
  ASSERT_TRUE(rx.ReturnTokens().ok());
  munmap(device, kMemfdBytes);
  EXPECT_EQ(offset, kStreamBytes);
  EXPECT_EQ(bad, 0u) << "pieces with a wrong byte";
  EXPECT_GT(rx.stats().device_bytes, kStreamBytes / 2);
  EXPECT_GT(rx.stats().linear_bytes, 0u);
  EXPECT_EQ(kernel.seen().freed, kernel.seen().fragments);
  EXPECT_EQ(kernel.outstanding(), 0u);
  EXPECT_EQ(rx.token_stats().unknown, 0u);
}

}  // namespace
}  // namespace devmem
