// End to end through the real daemon code (gRPC, session socket, SCM_RIGHTS,
// NicManager) on a simulated devmem NIC that overlays the loopback device,
// so the sockets it hands out carry real traffic while the NIC side (header
// split, RSS, ntuple rules, bind-rx) is the simulation that enforces the
// kernel's rules. The real-kernel side of the same calls is covered by
// kernel/kernel_nic_control_test (veth in a netns).
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/libdevmem.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/testing/simulated_lo_daemon.h"
#include "daemon/testing/wait.h"

namespace devmem {
namespace {

UniqueFd Memfd() { return UniqueFd(memfd_create("gpu-mem", MFD_CLOEXEC)); }

class SteeringDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = absl::StrCat("/tmp/devmemd_st_", getpid(), "_", n++);
    Daemon::Options o;
    o.config.set_runtime_dir(dir_);
    o.config.add_allow_uids(getuid());
    o.config.set_state_dir(
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/state", n));
    o.config.set_max_rules_per_session(4);
    auto* p = o.config.add_nic_profiles();
    p->set_nic("lo");
    p->set_pool_queues(2);
    ASSERT_TRUE(FinalizeConfig(&o.config, "test").ok());
    auto d = StartSimulatedLoDaemon(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(d->daemon);
    sim_ = d->sim;
    ASSERT_EQ(daemon_->profile_report().size(), 1u);
  }
  void TearDown() override {
    if (daemon_) daemon_->Shutdown();
    ::rmdir(dir_.c_str());
  }

  std::unique_ptr<Session> Open() {
    auto s = Session::Open(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  uint32_t Rules() { return sim_->GetCounters(if_nametoindex("lo"))->rules; }

  std::string dir_;
  SimulatedNic* sim_ = nullptr;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(SteeringDaemonTest, ProfileIsAppliedBeforeServing) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  auto st = s->GetNicState();
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->nics_size(), 1);
  EXPECT_EQ(st->nics(0).state(), devmem::v1::PROFILE_STATE_APPLIED)
      << st->nics(0).reason();
  EXPECT_EQ(st->nics(0).backend(), "simulated");
  EXPECT_EQ(st->nics(0).actual().tcp_data_split(),
            devmem::v1::TCP_DATA_SPLIT_ENABLED);
  auto inv = s->GetInventory();
  ASSERT_TRUE(inv.ok());
  EXPECT_NE(inv->backend().find("simulated"), std::string::npos);
}

TEST_F(SteeringDaemonTest, BindListenSteerReceiveAndReleaseOnClose) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  UniqueFd mem = Memfd();
  BindOptions bo;
  bo.nic = "lo";
  bo.queue_count = 1;
  auto binding = s->BindRx(mem.get_unowned(), bo);
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_EQ(binding->nic(), "lo");
  EXPECT_EQ(binding->queues_size(), 1);

  ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = binding->handle();  // nic comes from the binding
  auto listener = s->Listen(lo);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const devmem::v1::FlowRule& rule = listener->info.rule();
  EXPECT_EQ(rule.dst_ip(), "127.0.0.1");
  EXPECT_EQ(rule.dst_port(), listener->info.local().port());
  EXPECT_FALSE(rule.five_tuple());
  EXPECT_EQ(rule.queue(), binding->queues(0));
  EXPECT_EQ(Rules(), 1u);
  auto installed = sim_->GetRule(if_nametoindex("lo"), rule.location());
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(installed->match.dst_port, listener->info.local().port());

  // Data flows through the handed socket.
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(listener->info.local().port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(client.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                    sizeof(addr)),
            0);
  UniqueFd conn(
      accept4(listener->fd.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn.valid());
  ASSERT_EQ(write(client.get_unowned(), "devmem", 6), 6);
  char buf[8] = {};
  ASSERT_EQ(read(conn.get_unowned(), buf, sizeof(buf)), 6);
  EXPECT_EQ(std::string(buf, 6), "devmem");

  // Connect with the binding: a 5-tuple rule for the new flow.
  ConnectOptions co;
  co.binding = binding->handle();
  co.remote = HostPort{"127.0.0.1",
                       static_cast<uint16_t>(listener->info.local().port())};
  auto dialed = s->Connect(co);
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  EXPECT_TRUE(dialed->info.rule().five_tuple());
  EXPECT_EQ(dialed->info.rule().src_port(), listener->info.local().port());
  EXPECT_EQ(Rules(), 2u);

  // Steer a socket the workload made itself.
  UniqueFd own(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(
      bind(own.get_unowned(), reinterpret_cast<sockaddr*>(&any), sizeof(any)),
      0);
  ASSERT_EQ(listen(own.get_unowned(), 1), 0);
  auto steered = s->Steer(own.get_unowned(), binding->handle());
  ASSERT_TRUE(steered.ok()) << steered.status();
  EXPECT_EQ(Rules(), 3u);
  char dev[IFNAMSIZ] = {};
  socklen_t len = sizeof(dev);
  ASSERT_EQ(
      getsockopt(own.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, dev, &len), 0);
  EXPECT_STREQ(dev, "lo");
  // Steering the same socket again is idempotent.
  auto again = s->Steer(own.get_unowned(), binding->handle());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->location(), steered->location());
  EXPECT_EQ(Rules(), 3u);

  // Closing the session releases rules, bindings and queues.
  s.reset();
  ASSERT_TRUE(
      WaitUntil([&] { return sim_->LiveBindings() == 0; }, absl::Seconds(10)));
  ASSERT_TRUE(WaitUntil([&] { return Rules() == 0; }, absl::Seconds(10)));
  auto s2 = Open();
  ASSERT_NE(s2, nullptr);
  auto st = s2->GetNicState({"lo"});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->nics(0).free_queues_size(), 2);
  EXPECT_EQ(st->nics(0).bindings(), 0u);
}

TEST_F(SteeringDaemonTest, BadFdsAndRequestsGetClearErrorsAndLeaveNothing) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]);
  UniqueFd w(p[1]);
  BindOptions bo;
  bo.nic = "lo";
  auto bad = s->BindRx(r.get_unowned(), bo);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not a dma-buf"), std::string::npos)
      << bad.status();
  bo.nic = "eth99";
  UniqueFd mem = Memfd();
  EXPECT_EQ(s->BindRx(mem.get_unowned(), bo).status().code(),
            absl::StatusCode::kNotFound);
  bo.nic = "lo";
  bo.queue_count = 3;  // pool has 2
  auto exhausted = s->BindRx(mem.get_unowned(), bo);
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(exhausted.status().message().find("2 free of 2"), std::string::npos)
      << exhausted.status();
  bo.queue_count = 1;
  auto binding = s->BindRx(mem.get_unowned(), bo);
  ASSERT_TRUE(binding.ok()) << binding.status();

  // Steer needs a TCP socket.
  auto not_tcp = s->Steer(w.get_unowned(), binding->handle());
  EXPECT_EQ(not_tcp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(not_tcp.status().message().find("pipe"), std::string::npos)
      << not_tcp.status();
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(s->Steer(udp.get_unowned(), binding->handle()).status().code(),
            absl::StatusCode::kInvalidArgument);
  UniqueFd unbound(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(s->Steer(unbound.get_unowned(), binding->handle()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Unknown binding handle.
  ListenOptions lo;
  lo.binding = 999;
  EXPECT_EQ(s->Listen(lo).status().code(), absl::StatusCode::kNotFound);
  // A binding's NIC and a different nic.
  lo.binding = binding->handle();
  lo.nic = "eth0";
  EXPECT_EQ(s->Listen(lo).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rules(), 0u);

  // Another session cannot use this session's binding.
  auto other = Open();
  ASSERT_NE(other, nullptr);
  ListenOptions theirs;
  theirs.binding = binding->handle();
  EXPECT_EQ(other->Listen(theirs).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other->ReleaseBinding(binding->handle()).status().code(),
            absl::StatusCode::kNotFound);

  // Per-session rule quota (4) gives RESOURCE_EXHAUSTED with numbers.
  lo.nic.clear();
  lo.ip = "127.0.0.1";
  std::vector<SocketHandle> held;
  for (int i = 0; i < 4; ++i) {
    auto l = s->Listen(lo);
    ASSERT_TRUE(l.ok()) << l.status();
    held.push_back(*std::move(l));
  }
  auto fifth = s->Listen(lo);
  EXPECT_EQ(fifth.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(fifth.status().message().find("4 of 4"), std::string::npos)
      << fifth.status();
  EXPECT_EQ(Rules(), 4u);
  auto removed = s->ReleaseBinding(binding->handle());
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 4u);
  EXPECT_EQ(Rules(), 0u);
}

TEST_F(SteeringDaemonTest, RestoreIsAdminOnlyAndPutsTheNicBack) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  UniqueFd mem = Memfd();
  BindOptions bo;
  bo.nic = "lo";
  ASSERT_TRUE(s->BindRx(mem.get_unowned(), bo).ok());
  auto restored = s->RestoreNic("lo");
  if (getuid() != 0) {
    EXPECT_EQ(restored.status().code(), absl::StatusCode::kPermissionDenied);
    GTEST_SKIP() << "restore as admin needs uid 0 (CI runs as root)";
  }
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->bindings_released(), 1u);
  EXPECT_EQ(restored->state().state(), devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(s->RestoreNic("eth99").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace devmem
