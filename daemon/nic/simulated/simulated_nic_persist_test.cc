// The simulated NIC with a state_dir: its state and binding anchors outlive
// the object (and the process), as hardware outlives devmemd.
#include "daemon/nic/simulated/simulated_nic.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/nic/simulated/testing/simulated_nic_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace simnic_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// --- Persistence (Options::state_dir) ---

// A fresh state dir under $TEST_TMPDIR per test (and run).
std::string StateDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/simnic-",
                      info->test_suite_name(), "-", info->name(), "-",
                      getpid());
}

bool Exists(const std::string& path) {
  struct stat st = {};
  return stat(path.c_str(), &st) == 0;
}

UniqueFd Dup(int fd) {
  UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  EXPECT_TRUE(copy.valid()) << "dup: " << errno;
  return copy;
}

class SimulatedNicPersistTest : public SimulatedNicTest {
 protected:
  void SetUp() override {
    dir_ = StateDir();
    Reopen();
  }

  // Destroys the NIC object (not the "hardware") and makes a new one from
  // the same state dir, as a restarted daemon does.
  void Reopen(SimulatedNicSpec spec = SimulatedNicSpec{"sim0", kIfindex}) {
    nic_.reset();
    absl::StatusOr<std::unique_ptr<SimulatedNic>> nic =
        SimulatedNic::Create({std::move(spec)}, SimulatedNic::Options{dir_});
    ASSERT_TRUE(nic.ok()) << nic.status();
    nic_ = *std::move(nic);
  }

  std::string AnchorPath(uint32_t id) const {
    return absl::StrCat(dir_, "/sim0.binding-", id, ".anchor");
  }

  // The binding id on each RX queue (0 = none), by queue-get.
  std::vector<uint32_t> RxDmabufs() {
    std::vector<uint32_t> out;
    absl::StatusOr<std::vector<QueueInfo>> q = nic_->GetQueues(kIfindex);
    EXPECT_TRUE(q.ok()) << q.status();
    if (!q.ok()) return out;
    for (const QueueInfo& queue : *q) {
      if (queue.type == QueueInfo::Type::kRx) {
        out.push_back(queue.dmabuf.value_or(0));
      }
    }
    return out;
  }

  std::string dir_;
};

TEST_F(SimulatedNicPersistTest, CreateMakesTheStateDir) {
  dir_ = absl::StrCat(StateDir(), "/a/b");
  Reopen();
  struct stat st = {};
  ASSERT_EQ(stat(dir_.c_str(), &st), 0) << errno;
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // The initial state is written at once.
  EXPECT_TRUE(Exists(absl::StrCat(dir_, "/sim0.simnic")));
  EXPECT_THAT(nic_->load_report(), HasSubstr("sim0: no saved state in"));
  // In memory: no report, no files.
  absl::StatusOr<std::unique_ptr<SimulatedNic>> memory =
      SimulatedNic::Create({SimulatedNicSpec{"sim0", kIfindex}});
  ASSERT_TRUE(memory.ok());
  EXPECT_EQ((*memory)->load_report(), "");
}

TEST_F(SimulatedNicPersistTest, StateSurvivesTheObject) {
  EnableHds();
  ASSERT_TRUE(SetCombined(6).ok());
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  const std::vector<uint32_t> main_table = {0, 1};
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, main_table).ok());
  const std::vector<uint32_t> ctx_table = {2, 3, 4, 5};
  absl::StatusOr<uint32_t> ctx = nic_->CreateRssContext(kIfindex, ctx_table);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  FlowRule to_ctx = TcpRule(0, 7000);
  to_ctx.rss_context = *ctx;
  to_ctx.match.src_ip = "2001:db8::2";
  to_ctx.match.src_port = 40000;
  absl::StatusOr<uint32_t> loc1 = nic_->InsertRule(kIfindex, TcpRule(5));
  absl::StatusOr<uint32_t> loc2 = nic_->InsertRule(kIfindex, to_ctx);
  ASSERT_TRUE(loc1.ok() && loc2.ok());

  const SimulatedNic::Counters before = Counters();
  absl::StatusOr<RssInfo> rss_before = nic_->GetRss(kIfindex, 0);
  absl::StatusOr<RssInfo> ctx_before = nic_->GetRss(kIfindex, *ctx);
  ASSERT_TRUE(rss_before.ok() && ctx_before.ok());

  Reopen();
  EXPECT_THAT(nic_->load_report(),
              HasSubstr("sim0: restored from " + dir_ + "/sim0.simnic"));
  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(kIfindex);
  ASSERT_TRUE(channels.ok());
  EXPECT_EQ(channels->combined_count, 6u);
  absl::StatusOr<RingsInfo> rings = nic_->GetRings(kIfindex);
  ASSERT_TRUE(rings.ok());
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_EQ(rings->hds_thresh, 0u);
  absl::StatusOr<FeaturesInfo> features = nic_->GetFeatures(kIfindex);
  ASSERT_TRUE(features.ok());
  EXPECT_TRUE(features->ntuple_active);
  absl::StatusOr<RssInfo> rss = nic_->GetRss(kIfindex, 0);
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ(rss->indir, rss_before->indir);
  absl::StatusOr<RssInfo> ctx_after = nic_->GetRss(kIfindex, *ctx);
  ASSERT_TRUE(ctx_after.ok()) << ctx_after.status();
  EXPECT_EQ(ctx_after->indir, ctx_before->indir);
  absl::StatusOr<NicControl::RuleTable> rules = nic_->ListRules(kIfindex);
  ASSERT_TRUE(rules.ok());
  EXPECT_THAT(rules->locations, ElementsAre(*loc2, *loc1));
  absl::StatusOr<FlowRule> rule = nic_->GetRule(kIfindex, *loc2);
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ(rule->match, to_ctx.match);
  EXPECT_EQ(rule->rss_context, *ctx);
  const SimulatedNic::Counters after = Counters();
  EXPECT_EQ(after.changes, before.changes);
  EXPECT_EQ(after.rules, 2u);
  EXPECT_EQ(after.rss_contexts, 1u);
  EXPECT_TRUE(after.rss_configured);
  // The restored state enforces as before: the context keeps queue 5.
  ExpectErrno(SetCombined(5), EINVAL,
              "requested channel counts are too low for existing "
              "indirection table (5)");
  // The rule slot search continues from the restored table.
  absl::StatusOr<uint32_t> loc3 = nic_->InsertRule(kIfindex, TcpRule(1, 9));
  ASSERT_TRUE(loc3.ok());
  EXPECT_NE(*loc3, *loc1);
  EXPECT_NE(*loc3, *loc2);
}

TEST_F(SimulatedNicPersistTest, UnusableSavedStateStartsFromTheSpec) {
  ASSERT_TRUE(SetCombined(3).ok());
  // Another ifindex (the link was re-created): not this NIC's state.
  Reopen(SimulatedNicSpec{"sim0", kIfindex + 1});
  EXPECT_THAT(nic_->load_report(),
              HasSubstr("is for sim0 ifindex 7, not sim0 ifindex 8; starting "
                        "from the spec"));
  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(kIfindex + 1);
  ASSERT_TRUE(channels.ok());
  EXPECT_EQ(channels->combined_count, 8u);

  // Other hardware limits.
  SimulatedNicSpec smaller{"sim0", kIfindex + 1};
  smaller.combined_max = 4;
  smaller.combined_count = 4;
  Reopen(smaller);
  EXPECT_THAT(nic_->load_report(), HasSubstr("saved for other hardware"));

  // Not a state file at all.
  const std::string path = absl::StrCat(dir_, "/sim0.simnic");
  {
    UniqueFd f(open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    ASSERT_TRUE(f.valid());
    const char junk[] = "\xff\xff\xff\xff";
    ASSERT_EQ(write(f.get_unowned(), junk, 4), 4);
  }
  Reopen();
  EXPECT_THAT(nic_->load_report(),
              HasSubstr("is not a saved simulated NIC state; starting from "
                        "the spec"));
  // ... and it was replaced by a good one.
  Reopen();
  EXPECT_THAT(nic_->load_report(), HasSubstr("restored"));
}

TEST_F(SimulatedNicPersistTest, BindingOutlivesTheNicWhileAnAnchorCopyIsHeld) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {3, 2};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();
  const uint32_t id = (*binding)->id();
  ASSERT_GE((*binding)->netlink_fd_unowned(), 0);
  EXPECT_TRUE(Exists(AnchorPath(id)));
  // What the daemon puts in the fd store.
  UniqueFd copy = Dup((*binding)->netlink_fd_unowned());
  binding->reset();
  // The copy keeps it alive.
  EXPECT_EQ(nic_->LiveBindings(), 1u);

  Reopen();
  EXPECT_THAT(nic_->load_report(), HasSubstr("1 binding(s) alive, 0 gone"));
  EXPECT_THAT(RxDmabufs(), ElementsAre(0, 0, id, id, 0, 0, 0, 0));
  EXPECT_EQ(nic_->LiveBindings(), 1u);
  const std::vector<uint32_t> three = {3};
  ExpectErrno(nic_->BindRx(kIfindex, mem.get_unowned(), three).status(), EEXIST,
              "designated queue already memory provider bound");
  ExpectErrno(SetCombined(4), EINVAL,
              "requested channel counts are too low for existing memory "
              "provider setting (4)");

  // Not the anchor: a pipe, and the anchor file opened anew (it does not
  // hold the binding).
  Pipe pipe = MakePipe();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
      nic_->AdoptBinding(kIfindex, id, /*is_tx=*/false, std::move(pipe.read));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument)
      << adopted.status();
  EXPECT_THAT(adopted.status().message(),
              HasSubstr("is a pipe, not the binding's anchor"));
  UniqueFd reopened(open(AnchorPath(id).c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(reopened.valid());
  adopted = nic_->AdoptBinding(kIfindex, id, false, std::move(reopened));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument)
      << adopted.status();
  EXPECT_THAT(adopted.status().message(), HasSubstr("opened anew"));
  // Unknown id, wrong direction, unknown NIC.
  adopted =
      nic_->AdoptBinding(kIfindex, id + 100, false, Dup(copy.get_unowned()));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kNotFound)
      << adopted.status();
  adopted =
      nic_->AdoptBinding(kIfindex, id, /*is_tx=*/true, Dup(copy.get_unowned()));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument)
      << adopted.status();
  EXPECT_EQ(StatusErrno(nic_->AdoptBinding(kIfindex + 1, id, false,
                                           Dup(copy.get_unowned()))
                            .status()),
            ENODEV);
  EXPECT_EQ(nic_->LiveBindings(), 1u);

  // The real anchor.
  const int copy_fd = copy.get_unowned();
  adopted = nic_->AdoptBinding(kIfindex, id, false, std::move(copy));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ((*adopted)->id(), id);
  EXPECT_EQ((*adopted)->ifindex(), kIfindex);
  EXPECT_FALSE((*adopted)->is_tx());
  EXPECT_THAT((*adopted)->queues(), ElementsAre(3, 2));
  EXPECT_EQ((*adopted)->netlink_fd_unowned(), copy_fd);

  // It held the last copy: destroying it unbinds.
  adopted->reset();
  EXPECT_EQ(nic_->LiveBindings(), 0u);
  EXPECT_THAT(RxDmabufs(), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_FALSE(Exists(AnchorPath(id)));
  absl::StatusOr<std::unique_ptr<DevmemBinding>> again =
      nic_->BindRx(kIfindex, mem.get_unowned(), three);
  ASSERT_TRUE(again.ok()) << again.status();
  // The cyclic id counter survived the restart too: the refused bind on
  // queue 3 above took id + 1.
  EXPECT_EQ((*again)->id(), id + 2);
}

TEST_F(SimulatedNicPersistTest, BindingDiesWhenTheLastCopyCloses) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> seven = {7};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindRx(kIfindex, mem.get_unowned(), seven);
  ASSERT_TRUE(binding.ok()) << binding.status();
  const uint32_t id = (*binding)->id();
  UniqueFd copy1 = Dup((*binding)->netlink_fd_unowned());
  UniqueFd copy2 = Dup(copy1.get_unowned());
  binding->reset();
  EXPECT_EQ(Counters().rx_bindings, 1u);
  copy1.Reset();
  EXPECT_EQ(Counters().bound_rx_queues, 1u);
  ExpectErrno(nic_->BindRx(kIfindex, mem.get_unowned(), seven).status(), EEXIST,
              "designated queue already memory provider bound");
  const uint64_t changes = Counters().changes;
  copy2.Reset();
  // The next call that looks notices.
  EXPECT_THAT(RxDmabufs(), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  const SimulatedNic::Counters after = Counters();
  EXPECT_EQ(after.rx_bindings, 0u);
  EXPECT_EQ(after.changes, changes + 1);
  EXPECT_FALSE(Exists(AnchorPath(id)));
  EXPECT_TRUE(SetCombined(2).ok());
  ASSERT_TRUE(SetCombined(8).ok());
  absl::StatusOr<std::unique_ptr<DevmemBinding>> again =
      nic_->BindRx(kIfindex, mem.get_unowned(), seven);
  ASSERT_TRUE(again.ok()) << again.status();
  // A dead binding found at load is reported.
  UniqueFd held = Dup((*again)->netlink_fd_unowned());
  again->reset();
  EXPECT_EQ(nic_->LiveBindings(), 1u);
  nic_.reset();
  held.Reset();
  Reopen();
  EXPECT_THAT(nic_->load_report(), HasSubstr("0 binding(s) alive, 1 gone"));
  EXPECT_EQ(nic_->LiveBindings(), 0u);
}

TEST_F(SimulatedNicPersistTest, BindingHeldByAnotherProcess) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {0, 1};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();
  const uint32_t id = (*binding)->id();
  const int anchor = (*binding)->netlink_fd_unowned();
  Pipe gate = MakePipe();
  const pid_t child = fork();
  ASSERT_GE(child, 0) << errno;
  if (child == 0) {
    // The workload: keeps a copy of the anchor until the gate closes. Only
    // async-signal-safe calls here.
    const int keep = dup(anchor);
    close(gate.write.get_unowned());
    char byte;
    while (read(gate.read.get_unowned(), &byte, 1) < 0 && errno == EINTR) {
    }
    _exit(keep >= 0 ? 0 : 1);
  }
  gate.read.Reset();
  // The daemon "dies": every copy of its own is closed.
  binding->reset();
  nic_.reset();
  Reopen();
  EXPECT_THAT(nic_->load_report(), HasSubstr("1 binding(s) alive"));
  EXPECT_THAT(RxDmabufs(), ElementsAre(id, id, 0, 0, 0, 0, 0, 0));
  // The workload exits.
  gate.write.Reset();
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child) << errno;
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  EXPECT_THAT(RxDmabufs(), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_EQ(nic_->LiveBindings(), 0u);
  EXPECT_FALSE(Exists(AnchorPath(id)));
}

TEST_F(SimulatedNicPersistTest, TxBindingIsAdopted) {
  UniqueFd mem = MakeMemfd();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindTx(kIfindex, mem.get_unowned());
  ASSERT_TRUE(binding.ok()) << binding.status();
  const uint32_t id = (*binding)->id();
  UniqueFd copy = Dup((*binding)->netlink_fd_unowned());
  binding->reset();
  Reopen();
  EXPECT_EQ(Counters().tx_bindings, 1u);
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted = nic_->AdoptBinding(
      kIfindex, id, /*is_tx=*/false, Dup(copy.get_unowned()));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(adopted.status().message(), HasSubstr("is a TX binding"));
  adopted = nic_->AdoptBinding(kIfindex, id, /*is_tx=*/true, std::move(copy));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_TRUE((*adopted)->is_tx());
  EXPECT_THAT((*adopted)->queues(), IsEmpty());
  adopted->reset();
  EXPECT_EQ(Counters().tx_bindings, 0u);
}

TEST_F(SimulatedNicPersistTest, SaveFailureIsCountedAndTheChangeStands) {
  // A directory where the state file goes: rename() cannot replace it.
  const std::string path = absl::StrCat(dir_, "/sim0.simnic");
  ASSERT_EQ(unlink(path.c_str()), 0) << errno;
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << errno;
  ASSERT_EQ(mkdir((path + "/full").c_str(), 0700), 0) << errno;
  EXPECT_EQ(nic_->persist_error(), "");
  ASSERT_TRUE(SetCombined(5).ok());
  EXPECT_EQ(Counters().save_failures, 1u);
  EXPECT_THAT(nic_->persist_error(), HasSubstr("rename"));
  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(kIfindex);
  ASSERT_TRUE(channels.ok());
  EXPECT_EQ(channels->combined_count, 5u);
  // Nor can Create() start there.
  nic_.reset();
  absl::StatusOr<std::unique_ptr<SimulatedNic>> nic = SimulatedNic::Create(
      {SimulatedNicSpec{"sim0", kIfindex}}, SimulatedNic::Options{dir_});
  EXPECT_FALSE(nic.ok());
}

TEST_F(SimulatedNicTest, AdoptNeedsAStateDir) {
  Pipe pipe = MakePipe();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> adopted =
      nic_->AdoptBinding(kIfindex, 1, false, std::move(pipe.read));
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kFailedPrecondition)
      << adopted.status();
}

}  // namespace
}  // namespace simnic_test
}  // namespace devmem
