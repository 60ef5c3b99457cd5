#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/devmem_service.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/ops/admin_bus.h"
#include "daemon/ops/health.h"
#include "daemon/ops/http_server.h"
#include "daemon/ops/metrics.h"
#include "daemon/ops/periodic_task.h"
#include "daemon/session/grpc_listener.h"
#include "daemon/session/peer_cred.h"
#include "daemon/session/session_manager.h"
#include "daemon/session/session_server.h"
#include "daemon/state/anchor_store.h"
#include "daemon/state/event_log.h"
#include "daemon/state/lease_journal.h"
#include "kernel/nic_control.h"
#include "kernel/nic_inventory.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/config.pb.h"

namespace devmem {

// Largest gRPC request devmemd accepts: an OpenSockets call of 1024 items
// fits (every single request is a few hundred bytes).
inline constexpr int kMaxGrpcRequestBytes = 256 * 1024;
// gRPC request threads kept waiting between bursts of calls.
inline constexpr int kGrpcIdleThreads = 8;

// The assembled daemon: runtime directory, the two Unix sockets, the session
// server and the gRPC service. Tests start it in-process; main() adds flags and
// signals. Shutdown() (or the destructor) closes every session and removes the
// sockets it created.
//
// The daemon's one lock order, outermost first (a thread holding one may take
// only those below it):
//   HealthMonitor::check_mu_   health probes and listeners run under it
//   Daemon::admin_bus_mu_      a health listener forwards to the D-Bus thread
//   NicManager::mu_            every NIC-side call: gRPC, probes, metrics
//   SessionManager::mu_        NicManager's session hooks (owner, anchors)
//   LeaseJournal::mu_, then Journal::mu_
//   EventLog::mu_              published to under any of the above
// Leaves, which call out to nothing of ours while held: HealthMonitor::mu_,
// SessionServer::mu_, GrpcPeerRegistry::mu_, DaemonMetrics::kernel_mu_ (the
// netlink sockets' own mutexes sit below it). SessionManager runs its close
// observer (which takes NicManager::mu_) only after dropping its lock.
class Daemon {
 public:
  struct Options {
    devmem::v1::DaemonConfig config;  // finalized (FinalizeConfig)
    std::string config_source;        // for messages, e.g. the config path
    std::unique_ptr<NicInventory> inventory;
    // The NIC backend (KernelNicControl, or SimulatedNic for demos/tests).
    // Required.
    std::shared_ptr<NicControl> nic_control;
    devmem::v1::GetStatusResponse static_status;
    // fdatasync the journal after every record (tests may turn it off).
    bool journal_sync = true;
    // Called instead of ::fdatasync on the journal when set (tests make a
    // flush fail; LeaseJournal::Options::fdatasync).
    std::function<int(int fd)> journal_fdatasync;
    // Anchors handed back by systemd's fd store (TakeSystemdFds), to
    // re-adopt at start.
    absl::flat_hash_map<uint64_t, UniqueFd> stored_anchors;
    // Socket activation: listening sockets systemd made (FileDescriptorName=
    // devmemd-grpc / devmemd-session). Invalid: devmemd makes its own.
    UniqueFd activated_grpc;
    UniqueFd activated_session;
    // The D-Bus admin interface (AdminBus): "" none, "system" the system
    // bus (unreachable: a warning, dbus_warning()), or an address such as
    // "unix:path=/run/x/bus" (unreachable: Start fails).
    std::string dbus_address;
    // Events kept for Watch (the newest this many).
    size_t event_capacity = 4096;
    // Where GPUs and NICs sit on PCIe (a fake tree in tests); null: /sys.
    const PciTopology* topology = nullptr;
  };

  // Creates the runtime directory and sockets and starts serving. Fails with
  // FAILED_PRECONDITION if another devmemd answers on the sockets already.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(Options options);
  ~Daemon();

  // Stops serving. With `release_leases` (the default) every session is
  // closed, its leases released and the NICs restored. Without, leases and
  // NIC profiles stay as they are, recorded in the journal, for the next
  // devmemd to re-adopt (live restart, upgrade): sessions detach.
  void Shutdown(bool release_leases = true);

  std::string grpc_socket_path() const;
  std::string session_socket_path() const;
  SessionManager& sessions() { return *sessions_; }
  NicManager& nics() { return *nics_; }
  // One line per NIC profile from start-up (applied, not capable, ...).
  const std::vector<std::string>& profile_report() const {
    return profile_report_;
  }
  // One line per NIC restored at shutdown.
  const std::vector<std::string>& restore_report() const {
    return restore_report_;
  }
  // What start-up recovered from the journal, one line each.
  const std::vector<std::string>& recovery_report() const {
    return recovery_report_;
  }
  SessionServer& session_server() { return *session_server_; }
  // "http://127.0.0.1:9464" while metrics_listen serves, else "".
  std::string metrics_url() const { return http_ ? http_->url() : ""; }
  HealthMonitor& health() { return health_; }
  EventLog& events() { return events_; }
  // Why the D-Bus interface did not come up on the system bus ("" if it
  // did, or none was asked for).
  const std::string& dbus_warning() const { return dbus_warning_; }

 private:
  explicit Daemon(Options options);
  // Start-up, in this order (Init calls the rest).
  absl::Status Init();
  void MakeSessions();
  absl::Status OpenJournal();
  void MakeNicManager();
  absl::Status OpenSockets(UniqueFd* grpc, UniqueFd* session);
  void PrepareNicsAndRecover();
  void MakeSessionServer(UniqueFd session_fd);
  absl::Status StartGrpc(UniqueFd grpc_fd);
  absl::Status StartAdminBus();
  // Health probes, the metrics and their HTTP endpoint (metrics_listen).
  absl::Status StartMetrics();
  std::vector<HealthIssue> ProbeHealth();

  Options options_;
  std::unique_ptr<AccessPolicy> policy_;
  // flock of <state_dir>/lock, held for the daemon's life.
  UniqueFd state_lock_;
  // Declared before the managers that use them, so they outlive them.
  std::unique_ptr<LeaseJournal> journal_;
  std::unique_ptr<AnchorStore> anchor_store_;
  // The secret reservation tokens derive from (<state_dir>/reservation.key).
  std::string host_key_;
  // Every change (reservations, bindings, cordon, profiles, health), for
  // Watch and Drain. Declared before its publishers.
  EventLog events_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<NicManager> nics_;
  // Expires reservations; declared after nics_ so it stops first.
  std::unique_ptr<PeriodicTask> expiry_;
  std::vector<std::string> profile_report_;
  std::vector<std::string> restore_report_;
  std::vector<std::string> recovery_report_;
  GrpcPeerRegistry peers_;
  std::unique_ptr<DevmemService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcUnixListener> grpc_listener_;
  std::unique_ptr<SessionServer> session_server_;
  bool created_grpc_ = false;
  bool created_session_ = false;
  bool shut_down_ = false;
  // netdev netlink for the kernel's figures; null without the family.
  std::unique_ptr<KernelStatsSource> kernel_stats_;
  std::unique_ptr<DaemonMetrics> metrics_;
  std::unique_ptr<HttpServer> http_;
  HealthMonitor health_;
  std::string dbus_warning_;
  // Set once Init is done; the health listener forwards to it.
  absl::Mutex admin_bus_mu_;
  std::unique_ptr<AdminBus> admin_bus_ ABSL_GUARDED_BY(admin_bus_mu_);
};

}  // namespace devmem
