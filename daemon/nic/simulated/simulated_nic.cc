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
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

// Extack texts, verbatim from the kernel functions named beside them.
// net/ethtool/netlink.c ethnl_parse_header_dev_get():
constexpr char kNoDevice[] = "no device matches ifindex";
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

bool ValidAddress(int family, const std::string& ip) {
  if (ip.empty()) return true;  // wildcard
  in6_addr buf;
  return inet_pton(family, ip.c_str(), &buf) == 1;
}

// --- Persistence (Options::state_dir) ---

// simnic::SimulatedNicState.version this code writes and reads.
constexpr uint32_t kStateVersion = 1;

// mkdir -p: the state directory itself mode 0700, parents it has to make
// 0755 (e.g. the daemon's runtime directory, which clients must traverse).
absl::Status MakeDirs(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string prefix = dir.substr(0, slash);
    const mode_t mode = slash == std::string::npos ? 0700 : 0755;
    if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus(
          errno, absl::StrCat("simulated NIC state dir: mkdir ", prefix));
    }
    if (slash == std::string::npos) break;
  }
  struct stat st = {};
  if (stat(dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("simulated NIC state dir: stat ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return ErrnoStatus(ENOTDIR, absl::StrCat("simulated NIC state dir ", dir));
  }
  return absl::OkStatus();
}

// Replaces `path` with `data` all at once: a reader (or a process killed
// mid-write) sees the old file or the new one, never a mix. No fsync: the
// state must outlive the process, not the machine (a reboot resets a real
// NIC too).
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& data) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd fd(
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        write(fd.get_unowned(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, absl::StrCat("write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd.Release()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat("close ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat("rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

// The whole of `path`; ENOENT (errno kept) if there is none.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string data;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd.get_unowned(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

// Whether some open file description holds the flock of anchor `path`, i.e.
// the binding's simulated netlink socket is still open somewhere. If nobody
// does, the file is deleted while this probe holds the lock, so no holder
// can appear in between. When it cannot tell (open fails for another reason
// than ENOENT), it says held: better a binding kept than one dropped while a
// workload uses it.
bool AnchorHeld(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return errno != ENOENT;
  if (flock(fd.get_unowned(), LOCK_EX | LOCK_NB) == 0) {
    unlink(path.c_str());
    return false;
  }
  return true;
}

}  // namespace

// Everything mutable, shared by the SimulatedNic and its bindings so that a
// binding destroyed after the NIC still finds valid state. One mutex guards it
// all; nothing calls out while holding it.
struct SimulatedNic::State {
  struct BindingRecord {
    bool tx = false;
    std::vector<uint32_t> queues;
  };
  struct Nic {
    SimulatedNicSpec cfg;  // current values (counts, rings, ntuple)
    uint32_t napi_base = 0;
    std::vector<uint32_t> rss;  // main indirection table
    // IFF_RXFH_CONFIGURED: a user wrote the main table. Unset, the driver
    // regenerates the default spread when the channel count changes and the
    // table does not limit channel changes.
    bool rss_configured = false;
    std::map<uint32_t, std::vector<uint32_t>> rss_contexts;
    std::map<uint32_t, FlowRule> rules;  // by location
    // The free rule slots, built on first use and kept in step with `rules`
    // so finding a slot costs O(log n), not a scan of the table.
    std::set<uint32_t> free_slots;
    bool free_slots_valid = false;
    std::set<uint32_t>& FreeSlots() {
      if (!free_slots_valid) {
        free_slots.clear();
        for (uint32_t l = 0; l < cfg.rule_table_size; ++l) {
          if (rules.count(l) == 0) free_slots.insert(free_slots.end(), l);
        }
        free_slots_valid = true;
      }
      return free_slots;
    }
    std::map<uint32_t, uint32_t> bound_rx;       // RX queue -> binding id
    std::map<uint32_t, BindingRecord> bindings;  // by binding id
    uint64_t changes = 0;
    uint64_t save_failures = 0;  // not saved itself

    uint32_t rx_count() const { return cfg.combined_count; }
    std::string What(absl::string_view op) const {
      return absl::StrCat(op, " ", cfg.name);
    }
  };

  // "" for in memory only. Set before the state is shared, then constant.
  std::string state_dir;
  absl::Mutex mu;
  std::map<uint32_t, Nic> nics ABSL_GUARDED_BY(mu);  // by ifindex
  // net/core/devmem.c: binding ids are global, cyclic from 1.
  uint32_t next_binding_id ABSL_GUARDED_BY(mu) = 1;
  absl::flat_hash_set<uint32_t> binding_ids ABSL_GUARDED_BY(mu);
  std::map<SimOp, std::deque<absl::Status>> faults ABSL_GUARDED_BY(mu);
  std::string last_save_error ABSL_GUARDED_BY(mu);

  bool persistent() const { return !state_dir.empty(); }
  std::string StatePath(const Nic& nic) const {
    return absl::StrCat(state_dir, "/", nic.cfg.name, ".simnic");
  }
  std::string AnchorPath(const Nic& nic, uint32_t id) const {
    return absl::StrCat(state_dir, "/", nic.cfg.name, ".binding-", id,
                        ".anchor");
  }

  absl::Status TakeFault(SimOp op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = faults.find(op);
    if (it == faults.end() || it->second.empty()) return absl::OkStatus();
    absl::Status status = std::move(it->second.front());
    it->second.pop_front();
    return status;
  }

  // ENODEV for an unknown ifindex; ethtool ops add the kernel's extack.
  absl::StatusOr<Nic*> Find(uint32_t ifindex, absl::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = nics.find(ifindex);
    if (it == nics.end()) {
      const bool ethtool = absl::StartsWith(op, "ethtool ");
      return ErrnoStatus(ENODEV, absl::StrCat(op, " ifindex ", ifindex),
                         ethtool ? kNoDevice : "");
    }
    return &it->second;
  }

  // xa_alloc_cyclic() in net_devmem_bind_dmabuf(): the lowest free id at or
  // after the last one handed out, wrapping to 1.
  uint32_t AllocateBindingId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    uint32_t id = next_binding_id;
    while (binding_ids.contains(id)) id = id == UINT32_MAX ? 1 : id + 1;
    next_binding_id = id == UINT32_MAX ? 1 : id + 1;
    binding_ids.insert(id);
    return id;
  }

  // A call changed `nic`: count it and save the state.
  void Changed(Nic& nic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++nic.changes;
    (void)Save(nic);
  }

  // Writes `nic`'s state file (no-op in memory). A failure leaves the change
  // in effect (the "hardware" did change) and is counted, not returned:
  // only Create() fails on it.
  absl::Status Save(Nic& nic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Takes `nic`'s saved state if there is a usable one; says what happened
  // ("<nic>: ..."). `max_next_id` collects the binding id counters.
  std::string Load(Nic& nic, uint32_t* max_next_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // net_devmem_unbind_dmabuf(): the queues restart with normal pages.
  void DropBinding(Nic& nic, uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    binding_ids.erase(id);
    if (nic.bindings.erase(id) == 0) return;
    for (auto q = nic.bound_rx.begin(); q != nic.bound_rx.end();) {
      q = q->second == id ? nic.bound_rx.erase(q) : std::next(q);
    }
    Changed(nic);
  }

  // Unbinds every binding of `nic` whose anchor nobody holds any more (the
  // kernel's netdev_nl_sock_priv_destroy() when the last fd of the socket
  // closes; here noticed lazily). Returns how many went. No-op in memory,
  // where a binding goes with its Binding object.
  size_t Reap(Nic& nic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!persistent()) return 0;
    std::vector<uint32_t> gone;
    for (const auto& [id, record] : nic.bindings) {
      if (!AnchorHeld(AnchorPath(nic, id))) gone.push_back(id);
    }
    for (uint32_t id : gone) DropBinding(nic, id);
    return gone.size();
  }

  // A Binding object for `id` went away (and closed its anchor fd). In
  // memory that ends the binding; with anchors, only if nobody else holds
  // one.
  void Release(uint32_t ifindex, uint32_t id) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    auto it = nics.find(ifindex);
    if (it == nics.end()) {
      binding_ids.erase(id);
      return;
    }
    Nic& nic = it->second;
    if (nic.bindings.count(id) == 0) return;
    if (persistent() && AnchorHeld(AnchorPath(nic, id))) return;
    DropBinding(nic, id);
  }

  // Creates binding `id`'s anchor file, flock()ed by the returned fd. It is
  // made under a temporary name and renamed into place already locked, so a
  // probe never sees it free; a stale file of the same name (a binding
  // forgotten by a crash before its state was saved) is replaced.
  absl::StatusOr<UniqueFd> CreateAnchor(const Nic& nic, uint32_t id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const std::string path = AnchorPath(nic, id);
    const std::string tmp = absl::StrCat(path, ".tmp");
    unlink(tmp.c_str());
    UniqueFd fd(open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
    if (flock(fd.get_unowned(), LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, absl::StrCat("flock ", tmp));
    }
    // For whoever finds it in /proc/PID/fd; nothing reads it.
    const std::string text =
        absl::StrCat("simulated devmem binding ", id, " on ", nic.cfg.name,
                     " (ifindex ", nic.cfg.ifindex, ")\n");
    (void)!write(fd.get_unowned(), text.data(), text.size());
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, absl::StrCat("rename ", tmp, " to ", path));
    }
    return fd;
  }
};

absl::Status SimulatedNic::State::Save(Nic& nic) {
  if (!persistent()) return absl::OkStatus();
  simnic::SimulatedNicState out;
  out.set_version(kStateVersion);
  out.set_name(nic.cfg.name);
  out.set_ifindex(nic.cfg.ifindex);
  out.set_combined_max(nic.cfg.combined_max);
  out.set_rss_table_size(nic.cfg.rss_table_size);
  out.set_rule_table_size(nic.cfg.rule_table_size);
  out.set_hds_thresh_max(nic.cfg.hds_thresh_max);
  out.set_driver_picks_location(nic.cfg.driver_picks_location);
  out.set_ntuple_off_flushes_rules(nic.cfg.ntuple_off_flushes_rules);
  out.set_combined_count(nic.cfg.combined_count);
  out.set_hds_thresh(nic.cfg.hds_thresh);
  out.set_tcp_data_split(static_cast<uint32_t>(nic.cfg.tcp_data_split));
  out.set_ntuple_active(nic.cfg.ntuple_active);
  out.mutable_rss_indir()->Add(nic.rss.begin(), nic.rss.end());
  out.set_rss_configured(nic.rss_configured);
  for (const auto& [id, table] : nic.rss_contexts) {
    simnic::RssContext* ctx = out.add_rss_contexts();
    ctx->set_id(id);
    ctx->mutable_indir()->Add(table.begin(), table.end());
  }
  for (const auto& [location, rule] : nic.rules) {
    simnic::Rule* r = out.add_rules();
    r->set_location(location);
    r->set_family(rule.match.family);
    r->set_src_ip(rule.match.src_ip);
    r->set_dst_ip(rule.match.dst_ip);
    r->set_src_port(rule.match.src_port);
    r->set_dst_port(rule.match.dst_port);
    r->set_queue(rule.queue);
    if (rule.rss_context.has_value()) r->set_rss_context(*rule.rss_context);
  }
  for (const auto& [id, record] : nic.bindings) {
    simnic::Binding* b = out.add_bindings();
    b->set_id(id);
    b->set_tx(record.tx);
    b->mutable_queues()->Add(record.queues.begin(), record.queues.end());
  }
  out.set_next_binding_id(next_binding_id);
  out.set_changes(nic.changes);
  std::string data;
  absl::Status s;
  if (!out.SerializeToString(&data)) {
    s = absl::InternalError(
        absl::StrCat("serialize the state of ", nic.cfg.name));
  } else {
    s = WriteFileAtomically(StatePath(nic), data);
  }
  if (!s.ok()) {
    ++nic.save_failures;
    last_save_error.assign(s.message().begin(), s.message().end());
  }
  return s;
}

namespace {

// `in` as the mutable part of a Nic whose spec is `nic.cfg`, checked as
// thoroughly as the calls that made it would have; the first problem
// otherwise.
absl::Status FromProto(const simnic::SimulatedNicState& in,
                       SimulatedNicSpec& cfg, std::vector<uint32_t>& rss,
                       bool& rss_configured,
                       std::map<uint32_t, std::vector<uint32_t>>& contexts,
                       std::map<uint32_t, FlowRule>& rules,
                       std::map<uint32_t, std::vector<uint32_t>>& rx_bindings,
                       std::set<uint32_t>& tx_bindings) {
  auto bad = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (in.combined_count() == 0 || in.combined_count() > cfg.combined_max) {
    return bad("combined_count ", in.combined_count(), " not in [1, ",
               cfg.combined_max, "]");
  }
  if (in.hds_thresh() > cfg.hds_thresh_max) {
    return bad("hds_thresh ", in.hds_thresh(), " above its max");
  }
  if (in.tcp_data_split() > static_cast<uint32_t>(TcpDataSplit::kEnabled)) {
    return bad("tcp_data_split ", in.tcp_data_split(), " out of range");
  }
  const uint32_t rx = in.combined_count();
  auto check_table = [&](absl::Span<const uint32_t> table,
                         absl::string_view what) -> absl::Status {
    if (table.size() != cfg.rss_table_size) {
      return bad(what, " has ", table.size(), " entries, not ",
                 cfg.rss_table_size);
    }
    for (uint32_t q : table) {
      if (q >= rx) return bad(what, " names queue ", q);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check_table(in.rss_indir(), "the main RSS table");
      !s.ok()) {
    return s;
  }
  for (const simnic::RssContext& ctx : in.rss_contexts()) {
    const std::string what = absl::StrCat("RSS context ", ctx.id());
    if (ctx.id() == 0 || contexts.count(ctx.id()) != 0) {
      return bad(what, ": zero or repeated id");
    }
    if (absl::Status s = check_table(ctx.indir(), what); !s.ok()) return s;
    contexts[ctx.id()].assign(ctx.indir().begin(), ctx.indir().end());
  }
  for (const simnic::Rule& r : in.rules()) {
    const std::string what = absl::StrCat("rule at ", r.location());
    if (r.location() >= cfg.rule_table_size || rules.count(r.location())) {
      return bad(what, ": location out of range or repeated");
    }
    if ((r.family() != AF_INET && r.family() != AF_INET6) ||
        !ValidAddress(r.family(), r.src_ip()) ||
        !ValidAddress(r.family(), r.dst_ip()) || r.src_port() > 0xffff ||
        r.dst_port() > 0xffff) {
      return bad(what, ": bad match");
    }
    FlowRule rule;
    rule.location = r.location();
    rule.match.family = r.family();
    rule.match.src_ip = r.src_ip();
    rule.match.dst_ip = r.dst_ip();
    rule.match.src_port = static_cast<uint16_t>(r.src_port());
    rule.match.dst_port = static_cast<uint16_t>(r.dst_port());
    rule.queue = r.queue();
    if (r.has_rss_context()) {
      if (r.rss_context() != 0 && contexts.count(r.rss_context()) == 0) {
        return bad(what, ": no RSS context ", r.rss_context());
      }
      rule.rss_context = r.rss_context();
    }
    rules[r.location()] = std::move(rule);
  }
  std::set<uint32_t> bound;
  for (const simnic::Binding& b : in.bindings()) {
    const std::string what = absl::StrCat("binding ", b.id());
    if (b.id() == 0 || rx_bindings.count(b.id()) != 0 ||
        tx_bindings.count(b.id()) != 0) {
      return bad(what, ": zero or repeated id");
    }
    if (b.tx()) {
      if (!b.queues().empty()) return bad(what, ": TX with queues");
      tx_bindings.insert(b.id());
      continue;
    }
    if (b.queues().empty()) return bad(what, ": RX without queues");
    for (uint32_t q : b.queues()) {
      if (q >= rx || !bound.insert(q).second) {
        return bad(what, ": queue ", q, " out of range or bound twice");
      }
    }
    rx_bindings[b.id()].assign(b.queues().begin(), b.queues().end());
  }
  cfg.combined_count = in.combined_count();
  cfg.hds_thresh = in.hds_thresh();
  cfg.tcp_data_split = static_cast<TcpDataSplit>(in.tcp_data_split());
  cfg.ntuple_active = in.ntuple_active();
  rss.assign(in.rss_indir().begin(), in.rss_indir().end());
  rss_configured = in.rss_configured();
  return absl::OkStatus();
}

}  // namespace

std::string SimulatedNic::State::Load(Nic& nic, uint32_t* max_next_id) {
  const std::string path = StatePath(nic);
  const std::string fresh = "; starting from the spec";
  absl::StatusOr<std::string> data = ReadFile(path);
  if (!data.ok()) {
    if (StatusErrno(data.status()) == ENOENT) {
      return absl::StrCat(nic.cfg.name, ": no saved state in ", state_dir,
                          fresh);
    }
    return absl::StrCat(nic.cfg.name, ": ", data.status().message(), fresh);
  }
  simnic::SimulatedNicState in;
  if (!in.ParseFromString(*data)) {
    return absl::StrCat(nic.cfg.name, ": ", path,
                        " is not a saved simulated NIC state", fresh);
  }
  const std::string forgotten =
      in.bindings_size() == 0
          ? fresh
          : absl::StrCat(fresh, " (its ", in.bindings_size(),
                         " binding(s) are forgotten)");
  if (in.version() != kStateVersion) {
    return absl::StrCat(nic.cfg.name, ": ", path, " has version ", in.version(),
                        ", not ", kStateVersion, forgotten);
  }
  if (in.name() != nic.cfg.name || in.ifindex() != nic.cfg.ifindex) {
    return absl::StrCat(nic.cfg.name, ": ", path, " is for ", in.name(),
                        " ifindex ", in.ifindex(), ", not ", nic.cfg.name,
                        " ifindex ", nic.cfg.ifindex, forgotten);
  }
  const SimulatedNicSpec& cfg = nic.cfg;
  if (in.combined_max() != cfg.combined_max ||
      in.rss_table_size() != cfg.rss_table_size ||
      in.rule_table_size() != cfg.rule_table_size ||
      in.hds_thresh_max() != cfg.hds_thresh_max ||
      in.driver_picks_location() != cfg.driver_picks_location ||
      in.ntuple_off_flushes_rules() != cfg.ntuple_off_flushes_rules) {
    return absl::StrCat(
        nic.cfg.name, ": ", path,
        " was saved for other hardware (combined_max, rss_table_size, "
        "rule_table_size, hds_thresh_max, driver_picks_location or "
        "ntuple_off_flushes_rules differ from the spec)",
        forgotten);
  }
  SimulatedNicSpec loaded_cfg = nic.cfg;
  std::vector<uint32_t> rss;
  bool rss_configured = false;
  std::map<uint32_t, std::vector<uint32_t>> contexts;
  std::map<uint32_t, FlowRule> rules;
  std::map<uint32_t, std::vector<uint32_t>> rx_bindings;
  std::set<uint32_t> tx_bindings;
  absl::Status s = FromProto(in, loaded_cfg, rss, rss_configured, contexts,
                             rules, rx_bindings, tx_bindings);
  for (const auto& [id, queues] : rx_bindings) {
    if (s.ok() && binding_ids.contains(id)) {
      s = absl::InvalidArgumentError(
          absl::StrCat("binding ", id, " is also on another NIC"));
    }
  }
  for (uint32_t id : tx_bindings) {
    if (s.ok() && binding_ids.contains(id)) {
      s = absl::InvalidArgumentError(
          absl::StrCat("binding ", id, " is also on another NIC"));
    }
  }
  if (!s.ok()) {
    return absl::StrCat(nic.cfg.name, ": ", path, ": ", s.message(), forgotten);
  }
  nic.cfg = loaded_cfg;
  nic.rss = std::move(rss);
  nic.rss_configured = rss_configured;
  nic.rss_contexts = std::move(contexts);
  nic.rules = std::move(rules);
  nic.free_slots_valid = false;
  nic.bound_rx.clear();
  nic.bindings.clear();
  for (auto& [id, queues] : rx_bindings) {
    for (uint32_t q : queues) nic.bound_rx[q] = id;
    nic.bindings[id].queues = std::move(queues);
    binding_ids.insert(id);
  }
  for (uint32_t id : tx_bindings) {
    nic.bindings[id].tx = true;
    binding_ids.insert(id);
  }
  nic.changes = in.changes();
  *max_next_id = std::max(*max_next_id, in.next_binding_id());
  const size_t saved = nic.bindings.size();
  const size_t gone = Reap(nic);
  return absl::StrCat(nic.cfg.name, ": restored from ", path, " (combined ",
                      nic.cfg.combined_count, ", ", nic.rules.size(),
                      " rule(s), ", nic.rss_contexts.size(),
                      " RSS context(s), ", saved - gone, " binding(s) alive, ",
                      gone, " gone)");
}

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
    if (absl::Status s = MakeDirs(state->state_dir); !s.ok()) return s;
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
  if (!ValidAddress(m.family, m.src_ip) || !ValidAddress(m.family, m.dst_ip)) {
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
