#include "daemon/nic/simulated/simulated_nic_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cerrno>

#include "daemon/nic/simulated/simulated_nic.pb.h"

namespace devmem {
namespace simnic_internal {

bool ValidAddress(int family, const std::string& ip) {
  if (ip.empty()) return true;  // wildcard
  in6_addr buf;
  return inet_pton(family, ip.c_str(), &buf) == 1;
}

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

}  // namespace simnic_internal

namespace {

// simnic::SimulatedNicState.version this code writes and reads.
constexpr uint32_t kStateVersion = 1;

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

}  // namespace

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
        !simnic_internal::ValidAddress(r.family(), r.src_ip()) ||
        !simnic_internal::ValidAddress(r.family(), r.dst_ip()) ||
        r.src_port() > 0xffff || r.dst_port() > 0xffff) {
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

// Why a saved state cannot be loaded for the NIC `cfg` describes (another
// version, NIC or hardware), or "" if it can.
std::string SavedForOther(const simnic::SimulatedNicState& in,
                          const SimulatedNicSpec& cfg,
                          const std::string& path) {
  if (in.version() != kStateVersion) {
    return absl::StrCat(cfg.name, ": ", path, " has version ", in.version(),
                        ", not ", kStateVersion);
  }
  if (in.name() != cfg.name || in.ifindex() != cfg.ifindex) {
    return absl::StrCat(cfg.name, ": ", path, " is for ", in.name(),
                        " ifindex ", in.ifindex(), ", not ", cfg.name,
                        " ifindex ", cfg.ifindex);
  }
  if (in.combined_max() != cfg.combined_max ||
      in.rss_table_size() != cfg.rss_table_size ||
      in.rule_table_size() != cfg.rule_table_size ||
      in.hds_thresh_max() != cfg.hds_thresh_max ||
      in.driver_picks_location() != cfg.driver_picks_location ||
      in.ntuple_off_flushes_rules() != cfg.ntuple_off_flushes_rules) {
    return absl::StrCat(
        cfg.name, ": ", path,
        " was saved for other hardware (combined_max, rss_table_size, "
        "rule_table_size, hds_thresh_max, driver_picks_location or "
        "ntuple_off_flushes_rules differ from the spec)");
  }
  return "";
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
  const std::string mismatch = SavedForOther(in, nic.cfg, path);
  if (!mismatch.empty()) return absl::StrCat(mismatch, forgotten);
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

}  // namespace devmem
