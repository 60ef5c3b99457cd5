#include "kernel/devmem_selftest.h"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

// Closing a binding's netlink socket unbinds it from the socket's release
// path (net/core/netdev-genl.c netdev_nl_sock_priv_destroy()); queue-get is
// polled briefly in case a kernel defers that work.
constexpr absl::Duration kUnbindDeadline = absl::Seconds(2);
constexpr absl::Duration kUnbindPoll = absl::Milliseconds(10);

// net/core/netdev_rx_queue.c __net_mp_open_rxq() (6.14+).
constexpr char kSplitDisabledExtack[] = "tcp-data-split is disabled";

std::string Describe(const absl::Status& status) {
  if (StatusErrno(status) != 0) return std::string(status.message());
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

const char* SplitName(TcpDataSplit split) {
  switch (split) {
    case TcpDataSplit::kEnabled:
      return "enabled";
    case TcpDataSplit::kDisabled:
      return "disabled";
    case TcpDataSplit::kUnknown:
      break;
  }
  return "unknown (auto)";
}

// "4-7", "4" or "-".
std::string QueueRange(uint32_t start, uint32_t n) {
  if (n == 0) return "-";
  if (n == 1) return absl::StrCat(start);
  return absl::StrCat(start, "-", start + n - 1);
}

std::string DescribeChannels(const ChannelsInfo& c) {
  std::vector<std::string> parts;
  auto add = [&parts](const char* name, const std::optional<uint32_t>& count,
                      const std::optional<uint32_t>& max) {
    if (!count.has_value() && !max.has_value()) return;
    if (count.value_or(0) == 0 && max.value_or(0) == 0) return;
    parts.push_back(absl::StrCat(name, " ", count.value_or(0), " (max ",
                                 max.value_or(0), ")"));
  };
  add("combined", c.combined_count, c.combined_max);
  add("rx", c.rx_count, c.rx_max);
  add("tx", c.tx_count, c.tx_max);
  add("other", c.other_count, c.other_max);
  return parts.empty() ? "no channels reported" : absl::StrJoin(parts, ", ");
}

std::string DescribeRings(const RingsInfo& r) {
  std::string out =
      absl::StrCat("tcp-data-split ", SplitName(r.tcp_data_split));
  if (r.hds_thresh.has_value()) {
    absl::StrAppend(&out, ", hds-thresh ", *r.hds_thresh);
    if (r.hds_thresh_max.has_value()) {
      absl::StrAppend(&out, " (max ", *r.hds_thresh_max, ")");
    }
  } else {
    absl::StrAppend(&out, ", no hds-thresh (kernel < 6.14 or driver without)");
  }
  return out;
}

// "128 entries over queues 0-7", or the distinct queues when they are not
// one contiguous range.
std::string DescribeIndir(const std::vector<uint32_t>& indir) {
  if (indir.empty()) return "no entries";
  std::vector<uint32_t> queues = indir;
  std::sort(queues.begin(), queues.end());
  queues.erase(std::unique(queues.begin(), queues.end()), queues.end());
  const bool contiguous = queues.back() - queues.front() + 1 == queues.size();
  return absl::StrCat(
      indir.size(), " entries over queues ",
      contiguous
          ? QueueRange(queues.front(), static_cast<uint32_t>(queues.size()))
          : absl::StrJoin(queues, ","));
}

// include/linux/ethtool.h ethtool_rxfh_indir_default().
bool IsDefaultSpread(const std::vector<uint32_t>& indir, uint32_t rxq) {
  if (indir.empty() || rxq == 0) return false;
  for (size_t i = 0; i < indir.size(); ++i) {
    if (indir[i] != i % rxq) return false;
  }
  return true;
}

uint32_t RxQueueCount(const ChannelsInfo& c) {
  return c.rx_count.value_or(0) + c.combined_count.value_or(0);
}

bool SameCounts(const ChannelsInfo& a, const ChannelsInfo& b) {
  return a.rx_count.value_or(0) == b.rx_count.value_or(0) &&
         a.tx_count.value_or(0) == b.tx_count.value_or(0) &&
         a.other_count.value_or(0) == b.other_count.value_or(0) &&
         a.combined_count.value_or(0) == b.combined_count.value_or(0);
}

Capability Missing(std::string name, int error, std::string reason) {
  Capability cap;
  cap.name = std::move(name);
  cap.support = Support::kUnsupported;
  cap.error = error;
  cap.reason = std::move(reason);
  return cap;
}

class Runner {
 public:
  Runner(NicControl& control, uint32_t ifindex, const std::string& ifname,
         const absl::StatusOr<int>& dmabuf_fd, const SelftestReporter& report)
      : control_(control),
        ifindex_(ifindex),
        ifname_(ifname),
        dmabuf_fd_(dmabuf_fd),
        report_(report) {}

  SelftestResult Run() {
    result_.restored = true;  // nothing changed yet
    if (!Probe()) return std::move(result_);
    result_.ran = true;
    Record();
    Sequence();
    Restore();
    return std::move(result_);
  }

 private:
  void Step(std::string name, bool passed, std::string detail) {
    SelftestStep step{std::move(name), passed, std::move(detail)};
    if (report_) report_(step);
    result_.steps.push_back(std::move(step));
  }

  // Every step after a broken one is listed as not run, so the report shows
  // the whole sequence and where it stopped.
  void NotRun(const char* name, absl::string_view why) {
    Step(name, false, absl::StrCat("not run: ", why));
  }

  std::string Queues() const { return QueueRange(start_, n_); }

  // ---- probe: read-only ----
  bool Probe() {
    std::vector<Capability>& missing = result_.missing;
    absl::StatusOr<ChannelsInfo> channels = control_.GetChannels(ifindex_);
    if (!channels.ok()) {
      missing.push_back(CapabilityFromStatus("channels", channels.status()));
    } else {
      channels_ = *channels;
      rxq_ = RxQueueCount(*channels);
      if (rxq_ < 2) {
        missing.push_back(Missing(
            "channels", 0,
            absl::StrCat(rxq_,
                         " RX queue(s); the test binds the upper half of at "
                         "least 2 (ethtool -L ",
                         ifname_, " combined 2)")));
      }
    }
    absl::StatusOr<RingsInfo> rings = control_.GetRings(ifindex_);
    if (!rings.ok()) {
      // tcp-data-split and hds-thresh are ring parameters.
      missing.push_back(CapabilityFromStatus("rings", rings.status()));
    } else {
      rings_ = *rings;
    }
    absl::StatusOr<FeaturesInfo> features = control_.GetFeatures(ifindex_);
    if (!features.ok()) {
      missing.push_back(CapabilityFromStatus("features", features.status()));
    } else if (!features->ntuple_hw && !features->ntuple_active) {
      missing.push_back(Missing(
          "ntuple", EOPNOTSUPP,
          "rx-ntuple-filter is neither active nor changeable (ethtool -k "
          "shows it off [fixed]): flows cannot be steered to devmem queues"));
    } else {
      ntuple_active_ = features->ntuple_active;
    }
    absl::StatusOr<RssInfo> rss = control_.GetRss(ifindex_, 0);
    if (!rss.ok()) {
      missing.push_back(CapabilityFromStatus("rss", rss.status()));
    } else if (rss->indir.empty()) {
      missing.push_back(
          Missing("rss", EOPNOTSUPP,
                  "the driver reports no RSS indirection table, so the "
                  "devmem queues cannot be kept out of the default spread"));
    } else {
      rss_ = rss->indir;
    }
    start_ = rxq_ / 2;
    n_ = rxq_ / 2;
    absl::StatusOr<std::vector<QueueInfo>> queues =
        control_.GetQueues(ifindex_);
    if (!queues.ok()) {
      missing.push_back(CapabilityFromStatus("queues", queues.status()));
    } else {
      for (const QueueInfo& q : *queues) {
        if (q.type != QueueInfo::Type::kRx || q.id < start_ ||
            q.id >= start_ + n_) {
          continue;
        }
        std::string owner;
        if (q.dmabuf.has_value()) owner = absl::StrCat("dma-buf ", *q.dmabuf);
        if (q.io_uring) owner = "io_uring zero-copy RX";
        if (q.xsk) owner = "AF_XDP";
        if (!owner.empty()) {
          missing.push_back(Missing(
              "queues", EBUSY,
              absl::StrCat("RX queue ", q.id, " is already owned by ", owner,
                           " (release it first, e.g. devmemctl nic restore ",
                           ifname_, ")")));
          break;
        }
      }
    }
    if (!dmabuf_fd_.ok()) {
      missing.push_back(Missing("dma-buf", StatusErrno(dmabuf_fd_.status()),
                                Describe(dmabuf_fd_.status())));
    } else if (absl::Status bindable = control_.CheckBindableFd(*dmabuf_fd_);
               !bindable.ok()) {
      missing.push_back(
          Missing("dma-buf", StatusErrno(bindable), Describe(bindable)));
    } else {
      memory_kind_ = DmabufKindName(ClassifyFd(*dmabuf_fd_));
    }

    if (!missing.empty()) {
      std::vector<std::string> lines;
      for (const Capability& cap : missing) {
        lines.push_back(absl::StrCat(cap.name, ": ", cap.reason));
      }
      Step("probe", false,
           absl::StrCat("cannot run on ", ifname_, ", nothing was changed; ",
                        absl::StrJoin(lines, "; ")));
      return false;
    }
    Step("probe", true,
         absl::StrCat(rxq_, " RX queues, testing queues ", Queues(),
                      "; ntuple ", ntuple_active_ ? "on" : "off (changeable)",
                      "; memory: ", memory_kind_));
    return true;
  }

  void Record() {
    Step("record", true,
         absl::StrCat("channels: ", DescribeChannels(channels_), "; ",
                      DescribeRings(rings_), "; RSS ", DescribeIndir(rss_)));
  }

  // ---- the test-mode sequence ----
  void Sequence() {
    // RSS: only queues below start_ in the main table (ethtool -X equal).
    std::vector<uint32_t> indir(rss_.size());
    for (size_t i = 0; i < indir.size(); ++i) {
      indir[i] = static_cast<uint32_t>(i % start_);
    }
    rss_touched_ = true;
    absl::Status s = control_.SetRssIndir(ifindex_, 0, indir);
    if (!s.ok()) {
      Step("rss", false,
           absl::StrCat("could not keep queues ", Queues(),
                        " out of the RSS table: ", Describe(s)));
      NotRun("hds on", "the RSS table could not be set");
      return NotRunFrom(0, "the RSS table could not be set");
    }
    Step("rss", true,
         absl::StrCat("main table spread over queues ", QueueRange(0, start_),
                      " (ethtool -X ", ifname_, " equal ", start_, ")"));

    rings_touched_ = true;
    s = SetSplit(TcpDataSplit::kEnabled, /*with_hds=*/true);
    if (!s.ok()) {
      Step("hds on", false,
           absl::StrCat("could not enable header split: ", Describe(s)));
      return NotRunFrom(0, "header split could not be enabled");
    }
    Step("hds on", true,
         absl::StrCat("tcp-data-split enabled",
                      rings_.hds_thresh.has_value() ? ", hds-thresh 0" : ""));

    StepA();
    StepB();
    std::unique_ptr<DevmemBinding> binding = StepC();
    if (binding == nullptr) return NotRunFrom(3, "no binding (step c)");
    StepD();
    StepE(std::move(binding));
  }

  // Lists the steps from index `first` of the bind tests as not run.
  void NotRunFrom(int first, absl::string_view why) {
    static constexpr const char* kNames[] = {
        "(a) bind without queues fails", "(b) bind with split off fails",
        "(c) bind succeeds", "(d) channels below bound queues refused",
        "(e) unbind on close"};
    for (int i = first; i < 5; ++i) NotRun(kNames[i], why);
  }

  absl::Status SetSplit(TcpDataSplit split, bool with_hds) {
    RingsSet set;
    set.tcp_data_split = split;
    // RINGS_SET's policy is strict: send HDS_THRESH only if GET had it.
    if (with_hds && rings_.hds_thresh.has_value()) set.hds_thresh = 0;
    return control_.SetRings(ifindex_, set);
  }

  std::vector<uint32_t> BoundQueues() const {
    std::vector<uint32_t> q;
    for (uint32_t i = 0; i < n_; ++i) q.push_back(start_ + i);
    return q;
  }

  // A bind that should have been refused but was not: dropped at once.
  std::string Unexpected(std::unique_ptr<DevmemBinding> binding) {
    const uint32_t id = binding->id();
    binding.reset();
    return absl::StrCat("the kernel accepted it (binding id ", id,
                        ", dropped again)");
  }

  void StepA() {
    constexpr char kName[] = "(a) bind without queues fails";
    absl::StatusOr<std::unique_ptr<DevmemBinding>> b =
        control_.BindRx(ifindex_, *dmabuf_fd_, {});
    if (b.ok()) return Step(kName, false, Unexpected(*std::move(b)));
    Step(kName, true, absl::StrCat("refused: ", Describe(b.status())));
  }

  void StepB() {
    constexpr char kName[] = "(b) bind with split off fails";
    absl::Status s = SetSplit(TcpDataSplit::kUnknown, /*with_hds=*/false);
    if (!s.ok()) {
      return Step(kName, false,
                  absl::StrCat("could not set tcp-data-split to unknown: ",
                               Describe(s)));
    }
    const std::vector<uint32_t> queues = BoundQueues();
    absl::StatusOr<std::unique_ptr<DevmemBinding>> b =
        control_.BindRx(ifindex_, *dmabuf_fd_, queues);
    if (b.ok()) return Step(kName, false, Unexpected(*std::move(b)));
    std::string detail = absl::StrCat("refused: ", Describe(b.status()));
    if (StatusExtack(b.status()) != kSplitDisabledExtack) {
      absl::StrAppend(&detail, " (6.14+ kernels say \"", kSplitDisabledExtack,
                      "\")");
    }
    Step(kName, true, detail);
  }

  std::unique_ptr<DevmemBinding> StepC() {
    constexpr char kName[] = "(c) bind succeeds";
    absl::Status s = SetSplit(TcpDataSplit::kEnabled, /*with_hds=*/false);
    if (!s.ok()) {
      Step(
          kName, false,
          absl::StrCat("could not enable tcp-data-split again: ", Describe(s)));
      return nullptr;
    }
    const std::vector<uint32_t> queues = BoundQueues();
    absl::StatusOr<std::unique_ptr<DevmemBinding>> b =
        control_.BindRx(ifindex_, *dmabuf_fd_, queues);
    if (!b.ok()) {
      Step(kName, false,
           absl::StrCat("bind-rx on queues ", Queues(),
                        " failed: ", Describe(b.status())));
      return nullptr;
    }
    std::unique_ptr<DevmemBinding> binding = *std::move(b);
    bound_id_ = binding->id();
    absl::StatusOr<std::vector<QueueInfo>> got = control_.GetQueues(ifindex_);
    if (!got.ok()) {
      Step(kName, false,
           absl::StrCat("bound (id ", bound_id_,
                        ") but queue-get failed: ", Describe(got.status())));
      return binding;
    }
    std::vector<std::string> wrong;
    for (uint32_t q : queues) {
      auto it = std::find_if(got->begin(), got->end(), [q](const QueueInfo& i) {
        return i.type == QueueInfo::Type::kRx && i.id == q;
      });
      if (it == got->end()) {
        wrong.push_back(absl::StrCat("queue ", q, " missing"));
      } else if (it->dmabuf != bound_id_) {
        wrong.push_back(absl::StrCat("queue ", q, " shows ",
                                     it->dmabuf.has_value()
                                         ? absl::StrCat("dma-buf ", *it->dmabuf)
                                         : std::string("no dma-buf")));
      }
    }
    if (!wrong.empty()) {
      Step(kName, false,
           absl::StrCat("bound (id ", bound_id_, ") but queue-get disagrees: ",
                        absl::StrJoin(wrong, ", ")));
      return binding;
    }
    Step(kName, true,
         absl::StrCat("binding id ", bound_id_, " on RX queues ", Queues(),
                      "; queue-get shows it there"));
    return binding;
  }

  void StepD() {
    constexpr char kName[] = "(d) channels below bound queues refused";
    ChannelsSet shrink;
    if (channels_.combined_count.value_or(0) > 0) {
      shrink.combined_count = n_;
    } else {
      shrink.rx_count = n_;
    }
    const std::string asked = absl::StrCat(
        channels_.combined_count.value_or(0) > 0 ? "combined " : "rx ", n_);
    channels_touched_ = true;
    absl::Status s = control_.SetChannels(ifindex_, shrink);
    if (!s.ok()) {
      std::string detail = absl::StrCat(asked, " refused: ", Describe(s));
      if (StatusExtack(s).find("memory provider") == std::string::npos) {
        absl::StrAppend(&detail,
                        " (expected the memory-provider refusal, 6.12+)");
      }
      return Step(kName, true, detail);
    }
    // The NIC let a bound queue go: put the channels back right away.
    absl::Status back = control_.SetChannels(ifindex_, RecordedChannels());
    Step(kName, false,
         absl::StrCat(
             "the kernel accepted ", asked, " under bound queues ", Queues(),
             "; channels put back: ", back.ok() ? "ok" : Describe(back)));
  }

  void StepE(std::unique_ptr<DevmemBinding> binding) {
    constexpr char kName[] = "(e) unbind on close";
    binding.reset();  // closes the binding's netlink socket
    const absl::Time deadline = absl::Now() + kUnbindDeadline;
    std::string still;
    for (;;) {
      absl::StatusOr<std::vector<QueueInfo>> got = control_.GetQueues(ifindex_);
      if (!got.ok()) {
        return Step(kName, false,
                    absl::StrCat("queue-get after the close failed: ",
                                 Describe(got.status())));
      }
      still.clear();
      for (const QueueInfo& q : *got) {
        if (q.type == QueueInfo::Type::kRx && q.id >= start_ &&
            q.id < start_ + n_ && q.dmabuf.has_value()) {
          still =
              absl::StrCat("queue ", q.id, " still shows dma-buf ", *q.dmabuf);
          break;
        }
      }
      if (still.empty() || absl::Now() >= deadline) break;
      absl::SleepFor(kUnbindPoll);
    }
    if (!still.empty()) {
      return Step(
          kName, false,
          absl::StrCat(still, " ", absl::FormatDuration(kUnbindDeadline),
                       " after its netlink socket closed"));
    }
    Step(kName, true,
         absl::StrCat("binding ", bound_id_,
                      " gone with its netlink socket; queues ", Queues(),
                      " show no dma-buf"));
  }

  // ---- restore: everything that was (or may have been) changed ----
  ChannelsSet RecordedChannels() const {
    ChannelsSet set;
    set.rx_count = channels_.rx_count;
    set.tx_count = channels_.tx_count;
    set.other_count = channels_.other_count;
    set.combined_count = channels_.combined_count;
    return set;
  }

  void Restore() {
    std::vector<std::string> errors;
    // Rings only now: the binding is gone, so split may be turned off again
    // (net/ethtool/rings.c refuses it while a memory provider is bound).
    if (rings_touched_) {
      RingsSet set;
      set.tcp_data_split = rings_.tcp_data_split;
      set.hds_thresh = rings_.hds_thresh;
      absl::Status s = control_.SetRings(ifindex_, set);
      if (!s.ok()) errors.push_back(absl::StrCat("rings: ", Describe(s)));
    }
    if (rss_touched_) {
      // The default spread is restored as a reset, which also clears
      // IFF_RXFH_CONFIGURED (net/ethtool/ioctl.c: size 0 resets), so the
      // table keeps following channel changes as before.
      std::vector<uint32_t> indir;
      if (!IsDefaultSpread(rss_, rxq_)) indir = rss_;
      absl::Status s = control_.SetRssIndir(ifindex_, 0, indir);
      if (!s.ok()) errors.push_back(absl::StrCat("RSS: ", Describe(s)));
    }
    if (channels_touched_) {
      absl::StatusOr<ChannelsInfo> now = control_.GetChannels(ifindex_);
      if (!now.ok() || !SameCounts(*now, channels_)) {
        absl::Status s = control_.SetChannels(ifindex_, RecordedChannels());
        if (!s.ok()) errors.push_back(absl::StrCat("channels: ", Describe(s)));
      }
    }

    // Read everything back and compare with the record.
    std::vector<std::string> differ;
    absl::StatusOr<RingsInfo> rings = control_.GetRings(ifindex_);
    if (!rings.ok()) {
      errors.push_back(absl::StrCat("rings-get: ", Describe(rings.status())));
    } else {
      if (rings->tcp_data_split != rings_.tcp_data_split) {
        differ.push_back(
            absl::StrCat("tcp-data-split is ", SplitName(rings->tcp_data_split),
                         ", was ", SplitName(rings_.tcp_data_split)));
      }
      if (rings->hds_thresh != rings_.hds_thresh) {
        differ.push_back(absl::StrCat("hds-thresh is ",
                                      rings->hds_thresh.value_or(0), ", was ",
                                      rings_.hds_thresh.value_or(0)));
      }
    }
    absl::StatusOr<ChannelsInfo> channels = control_.GetChannels(ifindex_);
    if (!channels.ok()) {
      errors.push_back(
          absl::StrCat("channels-get: ", Describe(channels.status())));
    } else if (!SameCounts(*channels, channels_)) {
      differ.push_back(absl::StrCat("channels are ",
                                    DescribeChannels(*channels), ", were ",
                                    DescribeChannels(channels_)));
    }
    absl::StatusOr<RssInfo> rss = control_.GetRss(ifindex_, 0);
    if (!rss.ok()) {
      errors.push_back(absl::StrCat("rss-get: ", Describe(rss.status())));
    } else if (rss->indir != rss_) {
      differ.push_back(absl::StrCat("RSS table has ", DescribeIndir(rss->indir),
                                    ", had ", DescribeIndir(rss_)));
    }

    result_.restored = errors.empty() && differ.empty();
    if (result_.restored) {
      Step("restore", true,
           absl::StrCat("read back as recorded: channels ",
                        DescribeChannels(channels_), "; ",
                        DescribeRings(rings_), "; RSS ", DescribeIndir(rss_)));
      return;
    }
    std::vector<std::string> all = errors;
    all.insert(all.end(), differ.begin(), differ.end());
    Step("restore", false,
         absl::StrCat(ifname_,
                      " is NOT as recorded: ", absl::StrJoin(all, "; ")));
  }

  NicControl& control_;
  const uint32_t ifindex_;
  const std::string& ifname_;
  const absl::StatusOr<int>& dmabuf_fd_;
  const SelftestReporter& report_;

  SelftestResult result_;
  // What the probe recorded.
  ChannelsInfo channels_;
  RingsInfo rings_;
  std::vector<uint32_t> rss_;
  bool ntuple_active_ = false;
  std::string memory_kind_;
  uint32_t rxq_ = 0;
  uint32_t start_ = 0;
  uint32_t n_ = 0;
  uint32_t bound_id_ = 0;
  // What the sequence tried to change (a failed SET may still have changed
  // something, so an attempt counts).
  bool rss_touched_ = false;
  bool rings_touched_ = false;
  bool channels_touched_ = false;
};

}  // namespace

bool SelftestResult::passed() const {
  if (!ran || !restored) return false;
  return std::all_of(steps.begin(), steps.end(),
                     [](const SelftestStep& s) { return s.passed; });
}

SelftestResult RunDevmemSelftest(NicControl& control, uint32_t ifindex,
                                 const std::string& ifname,
                                 const absl::StatusOr<int>& dmabuf_fd,
                                 const SelftestReporter& report) {
  return Runner(control, ifindex, ifname, dmabuf_fd, report).Run();
}

}  // namespace devmem
