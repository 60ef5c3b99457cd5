#pragma once

// The simulated NIC's state, shared by SimulatedNic and the bindings it hands
// out, and its persistence: <state_dir>/<nic>.simnic (simnic.SimulatedNicState)
// and one flock()ed anchor file per binding. Internal to the simulated
// backend: only simulated_nic.cc and simulated_nic_state.cc include it.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace simnic_internal {

// net/ethtool/netlink.c ethnl_parse_header_dev_get():
constexpr char kNoDevice[] = "no device matches ifindex";

// Whether `ip` is a numeric address of `family` ("" is the wildcard).
bool ValidAddress(int family, const std::string& ip);

// mkdir -p: the state directory itself mode 0700, parents it has to make
// 0755 (e.g. the daemon's runtime directory, which clients must traverse).
absl::Status MakeDirs(const std::string& dir);

// Whether some open file description holds the flock of anchor `path`, i.e.
// the binding's simulated netlink socket is still open somewhere. If nobody
// does, the file is deleted while this probe holds the lock, so no holder
// can appear in between. When it cannot tell (open fails for another reason
// than ENOENT), it says held: better a binding kept than one dropped while a
// workload uses it.
bool AnchorHeld(const std::string& path);

}  // namespace simnic_internal

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
                         ethtool ? simnic_internal::kNoDevice : "");
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
      if (!simnic_internal::AnchorHeld(AnchorPath(nic, id))) gone.push_back(id);
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
    if (persistent() && simnic_internal::AnchorHeld(AnchorPath(nic, id)))
      return;
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

}  // namespace devmem
