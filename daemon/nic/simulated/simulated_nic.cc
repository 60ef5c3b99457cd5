// The simulated NIC's operations: one NicControl method after another, each
// checking the kernel's rule for it (cited beside it) against the one State
// they share. The state and its persistence live in simulated_nic_state.
// This file stays at about 900 lines on purpose: the rest is one class
// implementing one interface, and spreading its methods over files would
// split the file, not the state.
#include "daemon/nic/simulated/simulated_nic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <iterator>
#include <map>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "daemon/nic/simulated/simulated_nic.pb.h"
#include "daemon/nic/simulated/simulated_nic_state.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

// Extack texts, verbatim from the kernel functions named beside them.
// net/ethtool/channels.c ethnl_set_channels():
constexpr char kChannelsExceedMax[] = "requested channel count exceeds maximum";
constexpr char kChannelsNone[] =
    "requested channel counts would result in no RX or TX channel being "
    "configured";
// net/ethtool/common.c ethtool_check_max_channel():
constexpr char kChannelsBelowRxnfc[] =
    "requested channel counts are too low for existing ntuple filter settings";
// net/ethtool/rings.c ethnl_set_rings():
constexpr char kRingsSplitWhileMp[] =
    "can't disable tcp-data-split while device has memory provider enabled";
constexpr char kRingsHdsWhileMp[] =
    "can't set non-zero hds_thresh while device is memory provider enabled";
constexpr char kRingsExceedMax[] = "requested ring size exceeds maximum";
// net/ethtool/rss.c rss_set_prep_indir():
constexpr char kRssResetContext[] = "can't reset table for a context";
// net/core/netdev_rx_queue.c __net_mp_open_rxq():
constexpr char kBindRange[] = "rx queue index out of range";
constexpr char kBindSplitOff[] = "tcp-data-split is disabled";
constexpr char kBindHdsNonZero[] = "hds-thresh is not zero";
constexpr char kBindQueueBusy[] =
    "designated queue already memory provider bound";

// ETH_RSS_HASH_TOP (Toeplitz) and the well-known default Toeplitz key that
// many drivers use; only reported, never used for hashing.
constexpr uint32_t kHashToeplitz = 1;
constexpr uint8_t kDefaultRssKey[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
    0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
    0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
    0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// Fixed descriptor ring sizes, reported by GetRings only (not settable).
constexpr uint32_t kRingMax = 4096;
constexpr uint32_t kRingSize = 1024;

// NAPI ids are made up: above NR_CPUS like the kernel's (MIN_NAPI_ID), one
// per combined channel, distinct across the simulated NICs.
constexpr uint32_t kFirstNapiId = 8193;

// include/linux/ethtool.h ethtool_rxfh_indir_default().
std::vector<uint32_t> DefaultSpread(uint32_t table_size, uint32_t rx_count) {
  std::vector<uint32_t> table(table_size);
  for (uint32_t i = 0; i < table_size; ++i) table[i] = i % rx_count;
  return table;
}

uint32_t MaxEntry(const std::vector<uint32_t>& table) {
  return table.empty() ? 0 : *std::max_element(table.begin(), table.end());
}

// net/ethtool/rss.c rss_set_prep_indir(): an empty table means the default
// spread; otherwise its length must divide the device's table size, every
// entry must be an existing RX queue, and it is repeated to fill the table.
absl::StatusOr<std::vector<uint32_t>> ExpandIndir(
    absl::Span<const uint32_t> indir, uint32_t table_size, uint32_t rx_count,
    absl::string_view what) {
  if (indir.empty()) return DefaultSpread(table_size, rx_count);
  const uint32_t user_size = static_cast<uint32_t>(indir.size());
  if (table_size % user_size != 0) {
    return ErrnoStatus(
        EINVAL, what,
        absl::StrCat("size (", user_size,
                     ") mismatch with device indir table (", table_size, ")"));
  }
  for (uint32_t i = 0; i < user_size; ++i) {
    if (indir[i] >= rx_count) {
      return ErrnoStatus(
          EINVAL, what,
          absl::StrCat("entry ", i, ": queue out of range (", indir[i], ")"));
    }
  }
  std::vector<uint32_t> table(table_size);
  for (uint32_t i = 0; i < table_size; ++i) table[i] = indir[i % user_size];
  return table;
}

}  // namespace

class SimulatedNic::Binding final : public DevmemBinding {
 public:
  // `anchor` is invalid in memory-only mode.
  Binding(std::shared_ptr<State> state, uint32_t id, uint32_t ifindex,
          std::vector<uint32_t> queues, bool tx, UniqueFd memory,
          UniqueFd anchor)
      : state_(std::move(state)),
        id_(id),
        ifindex_(ifindex),
        queues_(std::move(queues)),
        tx_(tx),
        memory_(std::move(memory)),
        anchor_(std::move(anchor)) {}
  ~Binding() override {
    anchor_.Reset();  // first, so the probe sees only other holders
    state_->Release(ifindex_, id_);
  }

  uint32_t id() const override { return id_; }
  uint32_t ifindex() const override { return ifindex_; }
  const std::vector<uint32_t>& queues() const override { return queues_; }
  bool is_tx() const override { return tx_; }
  int netlink_fd_unowned() const override { return anchor_.get_unowned(); }

 private:
  const std::shared_ptr<State> state_;
  const uint32_t id_;
  const uint32_t ifindex_;
  const std::vector<uint32_t> queues_;
  const bool tx_;
  UniqueFd memory_;  // the kernel holds a dma-buf reference while bound
  UniqueFd anchor_;  // plays the netlink socket (persistent mode)
};

absl::StatusOr<std::unique_ptr<SimulatedNic>> SimulatedNic::Create(
    std::vector<SimulatedNicSpec> specs, const Options& options) {
  auto state = std::make_shared<State>();
  absl::MutexLock lock(&state->mu);
  std::set<std::string> names;
  uint32_t napi_base = kFirstNapiId;
  for (const SimulatedNicSpec& spec : specs) {
    auto bad = [&spec](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("simulated NIC \"",
                                                     spec.name, "\" (ifindex ",
                                                     spec.ifindex, "): ", why));
    };
    if (spec.name.empty() || spec.name.size() >= IFNAMSIZ) {
      return bad(absl::StrCat("name must be 1 to ", IFNAMSIZ - 1, " bytes"));
    }
    if (!names.insert(spec.name).second) return bad("duplicate name");
    if (spec.ifindex == 0) return bad("ifindex must be >= 1");
    if (state->nics.count(spec.ifindex) != 0) return bad("duplicate ifindex");
    if (spec.combined_max == 0 || spec.combined_count == 0 ||
        spec.combined_count > spec.combined_max) {
      return bad("need 1 <= combined_count <= combined_max");
    }
    if (spec.rss_table_size == 0) return bad("rss_table_size must be >= 1");
    if (spec.rule_table_size == 0) return bad("rule_table_size must be >= 1");
    if (spec.hds_thresh > spec.hds_thresh_max) {
      return bad("hds_thresh exceeds hds_thresh_max");
    }
    if (static_cast<uint8_t>(spec.tcp_data_split) >
        static_cast<uint8_t>(TcpDataSplit::kEnabled)) {
      return bad("tcp_data_split out of range");
    }
    State::Nic& nic = state->nics[spec.ifindex];
    nic.cfg = spec;
    nic.napi_base = napi_base;
    napi_base += spec.combined_max;
    nic.rss = DefaultSpread(spec.rss_table_size, spec.combined_count);
  }
  std::vector<std::string> report;
  if (!options.state_dir.empty()) {
    state->state_dir = options.state_dir;
    if (absl::Status s = simnic_internal::MakeDirs(state->state_dir); !s.ok()) {
      return s;
    }
    uint32_t next_id = 1;
    for (const SimulatedNicSpec& spec : specs) {
      report.push_back(state->Load(state->nics[spec.ifindex], &next_id));
    }
    state->next_binding_id = next_id;
    // Every NIC has a state file from now on; a directory that cannot take
    // one fails here rather than at the first change.
    for (auto& [ifindex, nic] : state->nics) {
      if (absl::Status s = state->Save(nic); !s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat("simulated NIC state: ", s.message()));
      }
    }
  }
  return std::unique_ptr<SimulatedNic>(new SimulatedNic(
      std::move(specs), std::move(state), absl::StrJoin(report, "; ")));
}

SimulatedNic::SimulatedNic(std::vector<SimulatedNicSpec> specs,
                           std::shared_ptr<State> state,
                           std::string load_report)
    : specs_(std::move(specs)),
      state_(std::move(state)),
      load_report_(std::move(load_report)) {}

std::string SimulatedNic::persist_error() const {
  absl::MutexLock lock(&state_->mu);
  return state_->last_save_error;
}

// Bindings keep state_ alive; nothing to undo here.
SimulatedNic::~SimulatedNic() = default;

const SimulatedNicSpec* SimulatedNic::FindSpec(absl::string_view name) const {
  for (const SimulatedNicSpec& spec : specs_) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// --- Channels (net/ethtool/channels.c) ---

absl::StatusOr<ChannelsInfo> SimulatedNic::GetChannels(uint32_t ifindex) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kGetChannels); !f.ok()) {
    return f;
  }
  absl::StatusOr<State::Nic*> nic =
      state_->Find(ifindex, "ethtool channels-get");
  if (!nic.ok()) return nic.status();
  // channels_fill_reply() sends an rx/tx/other pair only when its max is
  // non-zero: a combined-only device reports just the combined pair.
  ChannelsInfo info;
  info.combined_max = (*nic)->cfg.combined_max;
  info.combined_count = (*nic)->cfg.combined_count;
  return info;
}

absl::Status SimulatedNic::SetChannels(uint32_t ifindex,
                                       const ChannelsSet& channels) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kSetChannels); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool channels-set";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  state_->Reap(nic);
  const std::string what = nic.What(kOp);

  // ethnl_set_channels(): nothing changed -> success without any check.
  // rx/tx/other are 0 now (max 0), so only a non-zero value changes them.
  const bool other_mod = channels.rx_count.value_or(0) != 0 ||
                         channels.tx_count.value_or(0) != 0 ||
                         channels.other_count.value_or(0) != 0;
  const uint32_t combined =
      channels.combined_count.value_or(nic.cfg.combined_count);
  if (!other_mod && combined == nic.cfg.combined_count) {
    return absl::OkStatus();
  }
  if (other_mod || combined > nic.cfg.combined_max) {
    return ErrnoStatus(EINVAL, what, kChannelsExceedMax);
  }
  if (combined == 0) return ErrnoStatus(EINVAL, what, kChannelsNone);

  // ethtool_check_max_channel(): the highest queue an RSS table uses (the
  // main table only once a user set it; every context), the highest queue
  // an ntuple rule can steer to, and the memory providers. The kernel
  // compares the new count with "<=" in all three; for providers the value
  // is the highest bound queue + 1 (dev_get_min_mp_channel_count()), so the
  // kernel also refuses a count equal to it.
  uint32_t max_rxfh = nic.rss_configured ? MaxEntry(nic.rss) : 0;
  for (const auto& [id, table] : nic.rss_contexts) {
    max_rxfh = std::max(max_rxfh, MaxEntry(table));
  }
  if (combined <= max_rxfh) {
    return ErrnoStatus(
        EINVAL, what,
        absl::StrCat("requested channel counts are too low for existing "
                     "indirection table (",
                     max_rxfh, ")"));
  }
  uint64_t max_rxnfc = 0;
  for (const auto& [location, rule] : nic.rules) {
    uint64_t ring = rule.queue;
    if (rule.rss_context.has_value()) {
      auto ctx = nic.rss_contexts.find(*rule.rss_context);
      ring += ctx != nic.rss_contexts.end() ? MaxEntry(ctx->second)
                                            : MaxEntry(nic.rss);
    }
    max_rxnfc = std::max(max_rxnfc, ring);
  }
  if (combined <= max_rxnfc) {
    return ErrnoStatus(EINVAL, what, kChannelsBelowRxnfc);
  }
  const uint32_t min_mp =
      nic.bound_rx.empty() ? 0 : nic.bound_rx.rbegin()->first + 1;
  if (combined <= min_mp) {
    return ErrnoStatus(
        EINVAL, what,
        absl::StrCat("requested channel counts are too low for existing "
                     "memory provider setting (",
                     min_mp, ")"));
  }

  nic.cfg.combined_count = combined;
  if (!nic.rss_configured) {
    nic.rss = DefaultSpread(nic.cfg.rss_table_size, combined);
  }
  state_->Changed(nic);
  return absl::OkStatus();
}

// --- Rings (net/ethtool/rings.c) ---

absl::StatusOr<RingsInfo> SimulatedNic::GetRings(uint32_t ifindex) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kGetRings); !f.ok()) return f;
  absl::StatusOr<State::Nic*> nic = state_->Find(ifindex, "ethtool rings-get");
  if (!nic.ok()) return nic.status();
  RingsInfo info;
  info.rx_max = kRingMax;
  info.tx_max = kRingMax;
  info.rx = kRingSize;
  info.tx = kRingSize;
  info.tcp_data_split = (*nic)->cfg.tcp_data_split;
  // HDS_THRESH and its max: this device advertises HDS-threshold support.
  info.hds_thresh = (*nic)->cfg.hds_thresh;
  info.hds_thresh_max = (*nic)->cfg.hds_thresh_max;
  return info;
}

absl::Status SimulatedNic::SetRings(uint32_t ifindex, const RingsSet& rings) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kSetRings); !f.ok()) return f;
  constexpr absl::string_view kOp = "ethtool rings-set";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  state_->Reap(nic);
  const std::string what = nic.What(kOp);

  const TcpDataSplit split =
      rings.tcp_data_split.value_or(nic.cfg.tcp_data_split);
  const uint32_t hds = rings.hds_thresh.value_or(nic.cfg.hds_thresh);
  // The attribute policy caps TCP_DATA_SPLIT at ENABLED (2).
  if (static_cast<uint8_t>(split) >
      static_cast<uint8_t>(TcpDataSplit::kEnabled)) {
    return ErrnoStatus(EINVAL,
                       absl::StrCat(what, ": tcp-data-split value ",
                                    static_cast<int>(split), " out of range"));
  }
  // ethnl_set_rings(): nothing changed -> success without any check.
  if (split == nic.cfg.tcp_data_split && hds == nic.cfg.hds_thresh) {
    return absl::OkStatus();
  }
  // The memory-provider guard comes before the range check, on the
  // resulting configuration (KERNEL_API.md section 1, "While bound").
  if (!nic.bound_rx.empty()) {
    if (split != TcpDataSplit::kEnabled) {
      return ErrnoStatus(EINVAL, what, kRingsSplitWhileMp);
    }
    if (hds != 0) return ErrnoStatus(EINVAL, what, kRingsHdsWhileMp);
  }
  if (hds > nic.cfg.hds_thresh_max) {
    return ErrnoStatus(EINVAL, what, kRingsExceedMax);
  }
  nic.cfg.tcp_data_split = split;
  nic.cfg.hds_thresh = hds;
  state_->Changed(nic);
  return absl::OkStatus();
}

// --- Features ---

absl::StatusOr<FeaturesInfo> SimulatedNic::GetFeatures(uint32_t ifindex) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kGetFeatures); !f.ok()) {
    return f;
  }
  absl::StatusOr<State::Nic*> nic =
      state_->Find(ifindex, "ethtool features-get");
  if (!nic.ok()) return nic.status();
  FeaturesInfo info;
  info.ntuple_hw = true;
  info.ntuple_active = (*nic)->cfg.ntuple_active;
  info.feature_count = 1;  // the only feature simulated
  return info;
}

absl::Status SimulatedNic::SetNtuple(uint32_t ifindex, bool enable) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kSetNtuple); !f.ok()) return f;
  absl::StatusOr<State::Nic*> found =
      state_->Find(ifindex, "ethtool features-set");
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  if (nic.cfg.ntuple_active == enable) return absl::OkStatus();
  nic.cfg.ntuple_active = enable;
  // bnxt_set_features() clears the user's filters when NTUPLE goes off.
  if (!enable && nic.cfg.ntuple_off_flushes_rules) {
    nic.rules.clear();
    nic.free_slots_valid = false;
  }
  state_->Changed(nic);
  return absl::OkStatus();
}

// --- RSS (net/ethtool/rss.c) ---

absl::StatusOr<RssInfo> SimulatedNic::GetRss(uint32_t ifindex,
                                             uint32_t context) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kGetRss); !f.ok()) return f;
  constexpr absl::string_view kOp = "ethtool rss-get";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  const State::Nic& nic = **found;
  RssInfo info;
  info.context = context;
  info.hfunc = kHashToeplitz;
  info.hkey.assign(std::begin(kDefaultRssKey), std::end(kDefaultRssKey));
  if (context == 0) {
    info.indir = nic.rss;
    return info;
  }
  // rss_prepare_ctx(): an unknown context is ENOENT.
  auto ctx = nic.rss_contexts.find(context);
  if (ctx == nic.rss_contexts.end()) {
    return ErrnoStatus(ENOENT,
                       absl::StrCat(nic.What(kOp), " context ", context));
  }
  info.indir = ctx->second;
  return info;
}

absl::Status SimulatedNic::SetRssIndir(uint32_t ifindex, uint32_t context,
                                       absl::Span<const uint32_t> indir) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kSetRssIndir); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool rss-set";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  const std::string what = absl::StrCat(nic.What(kOp), " context ", context);

  std::vector<uint32_t>* table = &nic.rss;
  if (context != 0) {
    auto ctx = nic.rss_contexts.find(context);
    if (ctx == nic.rss_contexts.end()) return ErrnoStatus(ENOENT, what);
    if (indir.empty()) return ErrnoStatus(EINVAL, what, kRssResetContext);
    table = &ctx->second;
  }
  absl::StatusOr<std::vector<uint32_t>> expanded =
      ExpandIndir(indir, nic.cfg.rss_table_size, nic.rx_count(), what);
  if (!expanded.ok()) return expanded.status();
  // ethnl_rss_set(): a reset clears IFF_RXFH_CONFIGURED, any table sets it
  // (even one equal to the default).
  const bool configured = context == 0 ? !indir.empty() : nic.rss_configured;
  if (*table == *expanded && configured == nic.rss_configured) {
    return absl::OkStatus();
  }
  *table = *std::move(expanded);
  nic.rss_configured = configured;
  state_->Changed(nic);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> SimulatedNic::CreateRssContext(
    uint32_t ifindex, absl::Span<const uint32_t> indir) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kCreateRssContext); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool rss-create";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  absl::StatusOr<std::vector<uint32_t>> table =
      ExpandIndir(indir, nic.cfg.rss_table_size, nic.rx_count(), nic.What(kOp));
  if (!table.ok()) return table.status();
  // ethnl_rss_create_doit(): xa_alloc() from 1, i.e. the lowest free id.
  uint32_t id = 1;
  while (nic.rss_contexts.count(id) != 0) ++id;
  nic.rss_contexts[id] = *std::move(table);
  state_->Changed(nic);
  return id;
}

absl::Status SimulatedNic::DeleteRssContext(uint32_t ifindex,
                                            uint32_t context) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kDeleteRssContext); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool rss-delete";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  const std::string what = absl::StrCat(nic.What(kOp), " context ", context);
  // The policy of ETHTOOL_A_RSS_CONTEXT has a minimum of 1.
  if (context == 0) {
    return ErrnoStatus(EINVAL,
                       absl::StrCat(what, ": the main table is no context"));
  }
  // ethnl_rss_delete_doit(): ethtool_check_rss_ctx_busy() runs before the
  // lookup, and sends no extack.
  for (const auto& [location, rule] : nic.rules) {
    if (rule.rss_context == context) {
      return ErrnoStatus(
          EBUSY, absl::StrCat(what, ": used by the ntuple rule at location ",
                              location));
    }
  }
  if (nic.rss_contexts.erase(context) == 0) return ErrnoStatus(ENOENT, what);
  state_->Changed(nic);
  return absl::OkStatus();
}

// --- ntuple rules (net/ethtool/ioctl.c ethtool_set_rxnfc() + driver) ---

absl::StatusOr<uint32_t> SimulatedNic::InsertRule(uint32_t ifindex,
                                                  const FlowRule& rule) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kInsertRule); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool ntuple-insert";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  const std::string what = nic.What(kOp);

  // Drivers refuse filters while NETIF_F_NTUPLE is off (bnxt, ixgbe, ...).
  if (!nic.cfg.ntuple_active) {
    return ErrnoStatus(
        EOPNOTSUPP, absl::StrCat(what, ": rx-ntuple-filter is off (ethtool -K ",
                                 nic.cfg.name, " ntuple on)"));
  }
  const FlowTuple& m = rule.match;
  if (m.family != AF_INET && m.family != AF_INET6) {
    return ErrnoStatus(EINVAL,
                       absl::StrCat(what, ": address family ", m.family,
                                    " is neither AF_INET nor AF_INET6"));
  }
  if (!simnic_internal::ValidAddress(m.family, m.src_ip) ||
      !simnic_internal::ValidAddress(m.family, m.dst_ip)) {
    return ErrnoStatus(
        EINVAL, absl::StrCat(what, ": address \"", m.src_ip, "\" or \"",
                             m.dst_ip, "\" is not of the rule's family"));
  }
  // ethtool_set_rxnfc(): a FLOW_RSS rule must name an existing context; the
  // queue is then an offset added to the context's entries (this device sets
  // cap_rss_rxnfc_adds), and the sum must still be an RX queue.
  uint64_t highest = rule.queue;
  if (rule.rss_context.has_value()) {
    const std::vector<uint32_t>* table = &nic.rss;
    if (*rule.rss_context != 0) {
      auto ctx = nic.rss_contexts.find(*rule.rss_context);
      if (ctx == nic.rss_contexts.end()) {
        return ErrnoStatus(
            EINVAL, absl::StrCat(what, ": no RSS context ", *rule.rss_context));
      }
      table = &ctx->second;
    }
    highest += MaxEntry(*table);
  }
  if (highest >= nic.rx_count()) {
    return ErrnoStatus(
        EINVAL, absl::StrCat(what, ": queue ", highest, " out of range (",
                             nic.rx_count(), " RX queues)"));
  }

  const uint32_t size = nic.cfg.rule_table_size;
  uint32_t location = rule.location;
  if (location == kRxClsLocAny) {
    if (nic.rules.size() >= size) {
      return ErrnoStatus(
          ENOSPC, absl::StrCat(what, ": rule table full (", nic.rules.size(),
                               " of ", size, " used)"));
    }
    // The driver takes the lowest free slot; ethtool(8)
    // rmgr_find_empty_slot() searches down from the top.
    std::set<uint32_t>& free = nic.FreeSlots();
    location = nic.cfg.driver_picks_location ? *free.begin() : *free.rbegin();
  } else if (location >= size) {
    return ErrnoStatus(EINVAL,
                       absl::StrCat(what, ": location ", location,
                                    " out of range (table size ", size, ")"));
  } else if (nic.rules.count(location) != 0) {
    return ErrnoStatus(EEXIST,
                       absl::StrCat(what, ": location ", location, " in use"));
  }
  FlowRule stored = rule;
  stored.location = location;
  nic.rules[location] = std::move(stored);
  if (nic.free_slots_valid) nic.free_slots.erase(location);
  state_->Changed(nic);
  return location;
}

absl::Status SimulatedNic::DeleteRule(uint32_t ifindex, uint32_t location) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kDeleteRule); !f.ok()) {
    return f;
  }
  constexpr absl::string_view kOp = "ethtool ntuple-delete";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  if (nic.rules.erase(location) == 0) {
    return ErrnoStatus(ENOENT,
                       absl::StrCat(nic.What(kOp), " location ", location));
  }
  if (nic.free_slots_valid) nic.free_slots.insert(location);
  state_->Changed(nic);
  return absl::OkStatus();
}

absl::StatusOr<NicControl::RuleTable> SimulatedNic::ListRules(
    uint32_t ifindex) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kListRules); !f.ok()) return f;
  absl::StatusOr<State::Nic*> found =
      state_->Find(ifindex, "ethtool ntuple-list");
  if (!found.ok()) return found.status();
  RuleTable table;
  table.table_size = (*found)->cfg.rule_table_size;
  for (const auto& [location, rule] : (*found)->rules) {
    table.locations.push_back(location);
  }
  return table;
}

absl::StatusOr<FlowRule> SimulatedNic::GetRule(uint32_t ifindex,
                                               uint32_t location) {
  absl::MutexLock lock(&state_->mu);
  constexpr absl::string_view kOp = "ethtool ntuple-get";
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  auto it = (*found)->rules.find(location);
  if (it == (*found)->rules.end()) {
    return ErrnoStatus(
        ENOENT, absl::StrCat((*found)->What(kOp), " location ", location));
  }
  return it->second;
}

// --- Queues and bindings (net/core/netdev-genl.c, net/core/devmem.c) ---

absl::StatusOr<std::vector<QueueInfo>> SimulatedNic::GetQueues(
    uint32_t ifindex) {
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kGetQueues); !f.ok()) return f;
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, "netdev queue-get");
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  state_->Reap(nic);
  // RX then TX, as the dump lists them; a combined channel's RX and TX queue
  // share one NAPI instance.
  std::vector<QueueInfo> queues;
  for (QueueInfo::Type type : {QueueInfo::Type::kRx, QueueInfo::Type::kTx}) {
    for (uint32_t i = 0; i < nic.rx_count(); ++i) {
      QueueInfo q;
      q.id = i;
      q.type = type;
      q.napi_id = nic.napi_base + i;
      if (type == QueueInfo::Type::kRx) {
        auto bound = nic.bound_rx.find(i);
        if (bound != nic.bound_rx.end()) q.dmabuf = bound->second;
      }
      queues.push_back(q);
    }
  }
  return queues;
}

absl::Status SimulatedNic::CheckBindableFd(int fd) {
  const DmabufKind kind = ClassifyFd(fd);
  if (kind == DmabufKind::kDmabuf || kind == DmabufKind::kMemfd) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "fd ", fd, " is ", DescribeFd(fd),
      ", not a dma-buf; the simulated NIC binds only a dma-buf or a memfd"));
}

namespace {

// The binding's own reference to the memory (F_DUPFD_CLOEXEC).
absl::StatusOr<UniqueFd> DupMemory(int fd, absl::string_view what) {
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) return ErrnoStatus(errno, what);
  return dup;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DevmemBinding>> SimulatedNic::BindRx(
    uint32_t ifindex, int dmabuf_fd, absl::Span<const uint32_t> queues) {
  constexpr absl::string_view kOp = "netdev bind-rx";
  {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status f = state_->TakeFault(SimOp::kBindRx); !f.ok()) return f;
  }
  if (absl::Status fd_ok = CheckBindableFd(dmabuf_fd); !fd_ok.ok()) {
    return fd_ok;
  }
  absl::StatusOr<UniqueFd> memory =
      DupMemory(dmabuf_fd, absl::StrCat(kOp, " ifindex ", ifindex, ": dup"));
  if (!memory.ok()) return memory.status();

  absl::MutexLock lock(&state_->mu);
  // netdev_nl_bind_rx_doit(): QUEUES is a required attribute, checked before
  // the device is looked up; the kernel sends only its type, no text.
  if (queues.empty()) {
    return ErrnoStatus(EINVAL,
                       absl::StrCat(kOp, " ifindex ", ifindex,
                                    ": no queues (NETDEV_A_DMABUF_QUEUES is "
                                    "required)"));
  }
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  const std::string what = nic.What(kOp);
  state_->Reap(nic);

  // net_devmem_bind_dmabuf() takes the id before any queue is bound, so a
  // bind that fails on a queue still advances the cyclic allocator.
  const uint32_t id = state_->AllocateBindingId();
  // __net_mp_open_rxq(), per queue in request order; a failure unbinds the
  // queues this request already bound (nothing of it is kept).
  std::set<uint32_t> taken;
  absl::Status failed;
  for (uint32_t q : queues) {
    if (q >= nic.rx_count()) {
      failed = ErrnoStatus(ERANGE, what, kBindRange);
    } else if (nic.cfg.tcp_data_split != TcpDataSplit::kEnabled) {
      // Only an explicit ENABLED passes; "auto" (UNKNOWN) fails.
      failed = ErrnoStatus(EINVAL, what, kBindSplitOff);
    } else if (nic.cfg.hds_thresh != 0) {
      failed = ErrnoStatus(EINVAL, what, kBindHdsNonZero);
    } else if (nic.bound_rx.count(q) != 0 || !taken.insert(q).second) {
      failed = ErrnoStatus(EEXIST, what, kBindQueueBusy);
    }
    if (!failed.ok()) break;
  }
  UniqueFd anchor;
  if (failed.ok() && state_->persistent()) {
    absl::StatusOr<UniqueFd> made = state_->CreateAnchor(nic, id);
    if (made.ok()) {
      anchor = *std::move(made);
    } else {
      failed = ErrnoStatus(
          StatusErrno(made.status()),
          absl::StrCat(what, ": binding anchor: ", made.status().message()));
    }
  }
  if (!failed.ok()) {
    state_->binding_ids.erase(id);
    (void)state_->Save(nic);  // the id counter moved
    return failed;
  }
  for (uint32_t q : taken) nic.bound_rx[q] = id;
  State::BindingRecord& record = nic.bindings[id];
  record.tx = false;
  record.queues.assign(queues.begin(), queues.end());
  state_->Changed(nic);
  return std::unique_ptr<DevmemBinding>(
      new Binding(state_, id, ifindex, record.queues, /*tx=*/false,
                  *std::move(memory), std::move(anchor)));
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> SimulatedNic::BindTx(
    uint32_t ifindex, int dmabuf_fd) {
  constexpr absl::string_view kOp = "netdev bind-tx";
  {
    absl::MutexLock lock(&state_->mu);
    if (absl::Status f = state_->TakeFault(SimOp::kBindTx); !f.ok()) return f;
  }
  if (absl::Status fd_ok = CheckBindableFd(dmabuf_fd); !fd_ok.ok()) {
    return fd_ok;
  }
  absl::StatusOr<UniqueFd> memory =
      DupMemory(dmabuf_fd, absl::StrCat(kOp, " ifindex ", ifindex, ": dup"));
  if (!memory.ok()) return memory.status();

  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, kOp);
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  state_->Reap(nic);
  // netdev_nl_bind_tx_doit(): no queues; this device has netmem TX.
  const uint32_t id = state_->AllocateBindingId();
  UniqueFd anchor;
  if (state_->persistent()) {
    absl::StatusOr<UniqueFd> made = state_->CreateAnchor(nic, id);
    if (!made.ok()) {
      state_->binding_ids.erase(id);
      (void)state_->Save(nic);  // the id counter moved
      return ErrnoStatus(StatusErrno(made.status()),
                         absl::StrCat(nic.What(kOp), ": binding anchor: ",
                                      made.status().message()));
    }
    anchor = *std::move(made);
  }
  nic.bindings[id].tx = true;
  state_->Changed(nic);
  return std::unique_ptr<DevmemBinding>(
      new Binding(state_, id, ifindex, /*queues=*/{}, /*tx=*/true,
                  *std::move(memory), std::move(anchor)));
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> SimulatedNic::AdoptBinding(
    uint32_t ifindex, uint32_t binding_id, bool is_tx, UniqueFd anchor) {
  const std::string what =
      absl::StrCat("adopt ", is_tx ? "TX" : "RX", " binding ", binding_id);
  absl::MutexLock lock(&state_->mu);
  if (absl::Status f = state_->TakeFault(SimOp::kAdoptBinding); !f.ok()) {
    return f;
  }
  absl::StatusOr<State::Nic*> found =
      state_->Find(ifindex, absl::StrCat(what, " on"));
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  const std::string where = absl::StrCat(what, " on ", nic.cfg.name);
  const int fd = anchor.get_unowned();
  struct stat fd_st = {};
  if (fstat(fd, &fd_st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(where, ": fd ", fd));
  }
  if (!state_->persistent()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where,
        ": this simulated NIC keeps no state outside the process (no "
        "state_dir), so no binding can outlive its maker"));
  }
  state_->Reap(nic);
  auto record = nic.bindings.find(binding_id);
  if (record == nic.bindings.end()) {
    return absl::NotFoundError(
        absl::StrCat(where, ": no such binding is alive"));
  }
  if (record->second.tx != is_tx) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": binding ", binding_id, " is a ",
                     record->second.tx ? "TX" : "RX", " binding"));
  }
  const std::string path = state_->AnchorPath(nic, binding_id);
  struct stat anchor_st = {};
  if (stat(path.c_str(), &anchor_st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(where, ": stat ", path));
  }
  if (fd_st.st_dev != anchor_st.st_dev || fd_st.st_ino != anchor_st.st_ino) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": fd ", fd, " is ", DescribeFd(fd),
                     ", not the binding's anchor ", path));
  }
  // Only a copy of the locked open file description keeps the binding
  // alive; flock() on it again is a no-op, on a fresh open() it conflicts.
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": fd ", fd, " is the anchor file ", path,
        " opened anew, not a copy (dup, SCM_RIGHTS) of the fd that holds the "
        "binding"));
  }
  return std::unique_ptr<DevmemBinding>(
      new Binding(state_, binding_id, ifindex, record->second.queues, is_tx,
                  /*memory=*/UniqueFd(), std::move(anchor)));
}

// --- Test and inventory helpers ---

absl::StatusOr<SimulatedNic::Counters> SimulatedNic::GetCounters(
    uint32_t ifindex) const {
  absl::MutexLock lock(&state_->mu);
  absl::StatusOr<State::Nic*> found = state_->Find(ifindex, "counters");
  if (!found.ok()) return found.status();
  State::Nic& nic = **found;
  state_->Reap(nic);
  Counters c;
  c.rules = static_cast<uint32_t>(nic.rules.size());
  c.rss_contexts = static_cast<uint32_t>(nic.rss_contexts.size());
  for (const auto& [id, record] : nic.bindings) {
    ++(record.tx ? c.tx_bindings : c.rx_bindings);
  }
  c.bound_rx_queues = static_cast<uint32_t>(nic.bound_rx.size());
  c.rss_configured = nic.rss_configured;
  c.changes = nic.changes;
  c.save_failures = nic.save_failures;
  return c;
}

size_t SimulatedNic::LiveBindings() const {
  absl::MutexLock lock(&state_->mu);
  for (auto& [ifindex, nic] : state_->nics) state_->Reap(nic);
  return state_->binding_ids.size();
}

void SimulatedNic::FailNext(SimOp op, absl::Status status) {
  if (status.ok()) return;
  absl::MutexLock lock(&state_->mu);
  state_->faults[op].push_back(std::move(status));
}

}  // namespace devmem
