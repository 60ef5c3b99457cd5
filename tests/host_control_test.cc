// Cordon, drain and the event stream end to end through the real daemon
// code (gRPC streams, NicManager, the journal) on a simulated devmem NIC over
// lo, driven through libdevmem as devmemctl and devmem-agent drive them.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/libdevmem.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/testing/simulated_lo_daemon.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/pci_topology.h"
#include "kernel/testing/fake_pci.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

UniqueFd Memfd() { return UniqueFd(memfd_create("gpu-mem", MFD_CLOEXEC)); }

v1::ReserveRequest Ask(const std::string& job, uint32_t queues = 1) {
  v1::ReserveRequest req;
  req.set_job_id(job);
  req.set_ttl_s(600);
  auto* item = req.add_items();
  item->set_nic("lo");
  item->set_queue_count(queues);
  return req;
}

PciTopology MakeTopology(FakePci& pci) {
  pci.Add({"pci0000:10", "0000:10:01.0", "0000:11:00.0"}, 0x030200, 0,
          "nvidia");
  return PciTopology(pci.root());
}

class HostControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = absl::StrCat("/tmp/devmemd_hc_", getpid(), "_", n++);
    state_dir_ =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/state", getpid(), "_", n);
    Start();
  }
  void Start() {
    Daemon::Options o;
    o.topology = &topology_;
    o.config.set_runtime_dir(dir_);
    o.config.add_allow_uids(getuid());
    o.config.add_admin_uids(getuid());
    o.config.set_state_dir(state_dir_);
    auto* p = o.config.add_nic_profiles();
    p->set_nic("lo");
    p->set_pool_queues(2);
    ASSERT_TRUE(FinalizeConfig(&o.config, "test").ok());
    o.event_capacity = 8;
    auto d = StartSimulatedLoDaemon(std::move(o));
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(d->daemon);
    admin_ = Open();
    ASSERT_NE(admin_, nullptr);
  }
  // A stop that leaves leases, reservations and the cordon in the journal
  // for the next devmemd, then that devmemd.
  void Restart() {
    admin_.reset();
    daemon_->Shutdown(/*release_leases=*/false);
    daemon_.reset();
    Start();
  }
  void TearDown() override {
    admin_.reset();
    if (daemon_) daemon_->Shutdown();
    ::rmdir(dir_.c_str());
  }
  std::unique_ptr<Session> Open() {
    auto s = Session::Open(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  absl::Status CordonHost(const std::string& reason) {
    v1::CordonRequest req;
    req.set_reason(reason);
    return admin_->Cordon(req).status();
  }
  // Events after `since`, at most `count` of them (the stream is cancelled
  // then), and whether the first message was a snapshot.
  std::vector<v1::Event> Watch(uint64_t since, int count, bool* snapshot,
                               uint64_t* snapshot_revision = nullptr) {
    std::vector<v1::Event> got;
    v1::WatchRequest req;
    req.set_since_revision(since);
    *snapshot = false;
    absl::Status s = admin_->Watch(req, [&](const v1::WatchResponse& w) {
      if (w.snapshot()) {
        *snapshot = true;
        if (snapshot_revision != nullptr) *snapshot_revision = w.revision();
      }
      for (const v1::Event& e : w.events()) got.push_back(e);
      return static_cast<int>(got.size()) < count;
    });
    EXPECT_TRUE(s.ok()) << s;
    return got;
  }

  // A fake PCI tree with one GPU (lo, the NIC, is not on PCI).
  FakePci pci_;
  PciTopology topology_{MakeTopology(pci_)};
  // The last progress message of a drain that must end without error.
  v1::DrainProgress DrainToTheEnd(const v1::DrainRequest& req) {
    v1::DrainProgress last;
    absl::Status s = admin_->Drain(req, [&](const v1::DrainProgress& p) {
      last = p;
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return last;
  }
  // A binding of one queue made with a reservation's token (the memory is
  // closed again: the daemon keeps its own reference).
  absl::StatusOr<v1::Binding> BindWithToken(Session& workload,
                                            const std::string& token) {
    UniqueFd mem = Memfd();
    BindOptions opts;
    opts.reservation_token = token;
    return workload.BindRx(mem.get_unowned(), opts);
  }

  std::string dir_;
  std::string state_dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Session> admin_;
};

TEST_F(HostControlTest, InventoryListsGpusAndTheirDistanceToEachNic) {
  auto inv = admin_->GetInventory({"lo"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus_size(), 1);
  EXPECT_EQ(inv->gpus(0).pci_address(), "0000:11:00.0");
  EXPECT_EQ(inv->gpus(0).vendor_id(), 0x10deu);
  EXPECT_EQ(inv->gpus(0).driver(), "nvidia");
  EXPECT_EQ(inv->gpus(0).numa_node(), 0);
  ASSERT_EQ(inv->topology_size(), 1);
  EXPECT_EQ(inv->topology(0).nic(), "lo");
  EXPECT_EQ(inv->topology(0).distance(), "SYS");  // lo is not on PCI
  // A reservation for that GPU lands on the nearest applied NIC (lo).
  v1::ReserveRequest req = Ask("job-gpu");
  req.mutable_items(0)->clear_nic();
  req.mutable_items(0)->set_gpu_pci_address("0000:11:00.0");
  auto made = admin_->Reserve(req);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->reservation().items(0).nic(), "lo");
  EXPECT_EQ(made->reservation().items(0).gpu_pci_address(), "0000:11:00.0");
  req.set_job_id("job-gpu2");
  req.mutable_items(0)->set_gpu_pci_address("0000:99:00.0");
  EXPECT_EQ(admin_->Reserve(req).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HostControlTest, CordonRefusesNewWorkButNotAdmittedWork) {
  auto made = admin_->Reserve(Ask("job-a"));
  ASSERT_TRUE(made.ok()) << made.status();
  auto nic = admin_->GetNicState({"lo"});
  ASSERT_TRUE(nic.ok()) << nic.status();
  ASSERT_EQ(nic->nics_size(), 1);
  EXPECT_EQ(nic->nics(0).reserved_queues_size(),
            made->reservation().items(0).queues_size())
      << "GetNicState counts reserved queues apart from free ones";
  ASSERT_TRUE(CordonHost("rack 7 maintenance").ok());
  auto status = admin_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(status->cordon().cordoned());
  EXPECT_EQ(status->cordon().reason(), "rack 7 maintenance");
  EXPECT_EQ(status->reservations_active(), 1U);
  auto refused = admin_->Reserve(Ask("job-b"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("rack 7 maintenance"));
  auto workload = Open();
  ASSERT_NE(workload, nullptr);
  UniqueFd mem = Memfd();
  BindOptions free_bind;
  free_bind.nic = "lo";
  auto unreserved = workload->BindRx(mem.get_unowned(), free_bind);
  EXPECT_EQ(unreserved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unreserved.status().message(),
              HasSubstr("without a reservation token"));
  BindOptions reserved;
  reserved.reservation_token = made->token();
  EXPECT_TRUE(workload->BindRx(mem.get_unowned(), reserved).ok());
  // Bad input: no reason.
  EXPECT_EQ(CordonHost("").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(admin_->Uncordon({}).ok());
  EXPECT_TRUE(admin_->Reserve(Ask("job-b")).ok());
}

TEST_F(HostControlTest, DrainCompletesWhenTheJobReleases) {
  auto made = admin_->Reserve(Ask("job-a"));
  ASSERT_TRUE(made.ok()) << made.status();
  std::vector<v1::DrainProgress> progress;
  absl::Notification first;
  std::thread job([&] {
    first.WaitForNotification();
    v1::ReleaseReservationRequest rel;
    rel.set_job_id("job-a");
    auto drain_side = Open();
    ASSERT_NE(drain_side, nullptr);
    EXPECT_TRUE(drain_side->ReleaseReservation(rel).ok());
  });
  v1::DrainRequest req;
  req.set_reason("kernel upgrade");
  req.set_deadline_s(60);
  absl::Status s = admin_->Drain(req, [&](const v1::DrainProgress& p) {
    progress.push_back(p);
    if (progress.size() == 1) first.Notify();
    return true;
  });
  job.join();
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_GE(progress.size(), 2u);
  EXPECT_EQ(progress.front().reservations(), 1u);
  EXPECT_TRUE(progress.front().cordon().cordoned());
  EXPECT_EQ(progress.front().cordon().reason(), "kernel upgrade");
  EXPECT_TRUE(progress.back().done());
  EXPECT_FALSE(progress.back().deadline_passed());
  // Still cordoned afterwards.
  EXPECT_EQ(admin_->Reserve(Ask("job-c")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HostControlTest, DrainDeadlineReportsWhatRemainsAndBreaksNothing) {
  auto made = admin_->Reserve(Ask("job-a"));
  ASSERT_TRUE(made.ok()) << made.status();
  auto workload = Open();
  auto b = BindWithToken(*workload, made->token());
  ASSERT_TRUE(b.ok()) << b.status();
  v1::DrainRequest req;
  req.set_deadline_s(1);
  v1::DrainProgress last = DrainToTheEnd(req);
  EXPECT_TRUE(last.deadline_passed());
  EXPECT_FALSE(last.done());
  EXPECT_EQ(last.bindings(), 1u);
  EXPECT_THAT(
      last.remaining(),
      testing::Contains(HasSubstr(absl::StrCat("binding ", b->handle()))));
  EXPECT_EQ(daemon_->nics().binding_count(), 1u);  // not broken
  // Asked explicitly, the deadline releases what remains.
  req.set_release_at_deadline(true);
  last = DrainToTheEnd(req);
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.released_bindings(), 1u);
  EXPECT_EQ(last.released_reservations(), 1u);
  EXPECT_EQ(daemon_->nics().binding_count(), 0u);
}

TEST_F(HostControlTest, WatchSeesEventsInOrderAndResumesWithoutAGap) {
  const uint64_t start = daemon_->events().revision();
  auto made = admin_->Reserve(Ask("job-w"));
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(CordonHost("maintenance").ok());
  ASSERT_TRUE(admin_->Uncordon({}).ok());
  bool snapshot = false;
  std::vector<v1::Event> seen = Watch(start, 3, &snapshot);
  EXPECT_FALSE(snapshot);
  ASSERT_EQ(seen.size(), 3u);
  std::vector<std::string> types;
  types.reserve(seen.size());
  for (const auto& e : seen) types.push_back(e.type());
  EXPECT_THAT(types, ElementsAre("reservation.made", "host.cordoned",
                                 "host.uncordoned"));
  EXPECT_EQ(seen[0].reservation().id(), made->reservation().id());
  EXPECT_LT(seen[0].revision(), seen[1].revision());
  EXPECT_LT(seen[1].revision(), seen[2].revision());
  // Resume after the first: the next two, nothing lost or repeated.
  std::vector<v1::Event> rest = Watch(seen[0].revision(), 2, &snapshot);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].revision(), seen[1].revision());
  // A live event reaches a waiting watcher.
  std::thread later([&] {
    absl::SleepFor(absl::Milliseconds(100));
    v1::ReleaseReservationRequest rel;
    rel.set_id(made->reservation().id());
    auto other = Open();
    EXPECT_TRUE(other->ReleaseReservation(rel).ok());
  });
  std::vector<v1::Event> live = Watch(seen[2].revision(), 1, &snapshot);
  later.join();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].type(), "reservation.released");
}

TEST_F(HostControlTest, ATooOldRevisionGetsASnapshotFirst) {
  const uint64_t start = daemon_->events().revision();
  // 10 events with a ring of 8: the first ones are gone.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(CordonHost(absl::StrCat("m", i)).ok());
    ASSERT_TRUE(admin_->Uncordon({}).ok());
  }
  auto made = admin_->Reserve(Ask("job-s"));
  ASSERT_TRUE(made.ok());
  bool snapshot = false;
  uint64_t at = 0;
  Watch(start, 0, &snapshot, &at);
  // count 0 stops at the first message: the snapshot.
  EXPECT_TRUE(snapshot);
  EXPECT_EQ(at, daemon_->events().revision());
  v1::WatchRequest req;
  req.set_since_revision(start);
  v1::WatchResponse first;
  ASSERT_TRUE(admin_
                  ->Watch(req,
                          [&](const v1::WatchResponse& w) {
                            first = w;
                            return false;
                          })
                  .ok());
  EXPECT_TRUE(first.snapshot());
  EXPECT_GT(first.compacted_revision(), start + 1);
  ASSERT_EQ(first.reservations_size(), 1);
  EXPECT_EQ(first.reservations(0).id(), made->reservation().id());
}

TEST_F(HostControlTest, CordonAndReservationsSurviveARestart) {
  auto made = admin_->Reserve(Ask("job-r"));
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(CordonHost("hold for the upgrade").ok());
  const uint64_t before = daemon_->events().revision();
  Restart();
  EXPECT_THAT(daemon_->recovery_report(),
              testing::Contains(HasSubstr("stays cordoned (hold for the "
                                          "upgrade")));
  EXPECT_EQ(admin_->Reserve(Ask("job-x")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Revisions keep increasing; the old one gets a snapshot.
  EXPECT_GT(daemon_->events().revision(), before);
  bool snapshot = false;
  Watch(before, 0, &snapshot);
  EXPECT_TRUE(snapshot);
  // The token still binds.
  auto workload = Open();
  EXPECT_TRUE(BindWithToken(*workload, made->token()).ok());
}

}  // namespace
}  // namespace devmem
