#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/ops/health.h"
#include "daemon/session/peer_cred.h"
#include "daemon/session/session_manager.h"

namespace devmem {

inline constexpr char kBusName[] = "org.devmemd.Devmemd1";
inline constexpr char kBusPath[] = "/org/devmemd/Devmemd1";
// NIC objects: kBusNicPrefix + "/" + sd_bus_path_encode(name).
inline constexpr char kBusNicPrefix[] = "/org/devmemd/Devmemd1/nic";
inline constexpr char kBusManagerInterface[] = "org.devmemd.Devmemd1.Manager";
inline constexpr char kBusNicInterface[] = "org.devmemd.Devmemd1.Nic";
inline constexpr char kBusNoSuchNicError[] = "org.devmemd.Devmemd1.NoSuchNic";

// devmemd's admin interface on D-Bus (docs/DBUS.md), in the manner of
// systemd-networkd's org.freedesktop.network1: the daemon's state, counts
// and health as properties (PropertiesChanged when they change), one object
// per profile NIC, and ListNics / ListLeases / RestoreNic. Every call is
// checked against the same AccessPolicy as the sockets; ListLeases and
// RestoreNic are for admins (uid 0 or admin_uids), like the gRPC RestoreNic.
//
// Threading: every sd-bus object lives on the bus thread that Start() makes
// (sd-bus is not thread-safe). Other threads only hand it health reports
// (OnHealth) and the stop request, through a mutex and an eventfd. Handlers
// run on that thread and call NicManager, SessionManager and HealthMonitor,
// which are thread-safe and must outlive this object.
class AdminBus {
 public:
  struct Options {
    // "system": the system bus (sd_bus_open_system, which honours
    // $DBUS_SYSTEM_BUS_ADDRESS). Otherwise a D-Bus address, e.g.
    // "unix:path=/run/devmemd-test/bus".
    std::string address = "system";
    std::string version;
    std::string backend;
    std::string config_source;         // for messages, e.g. the config path
    std::vector<uint32_t> admin_uids;  // besides 0
    const AccessPolicy* policy = nullptr;
    SessionManager* sessions = nullptr;
    NicManager* nics = nullptr;
    // Checked every `refresh` (probes run then); reports also arrive through
    // OnHealth.
    HealthMonitor* health = nullptr;
    // How often properties are re-read and compared with what was last
    // announced.
    absl::Duration refresh = absl::Seconds(1);
    // Where the bus thread reports losing the bus (once). Default: stderr.
    std::function<void(const std::string&)> log;
  };

  // Connects, registers the objects, takes the name kBusName and serves on
  // its own thread. Errors name the address and what to do: UNAVAILABLE (no
  // bus there), PERMISSION_DENIED (the bus policy does not let this uid own
  // the name), ALREADY_EXISTS (another process owns it).
  static absl::StatusOr<std::unique_ptr<AdminBus>> Start(Options options);
  ~AdminBus();
  AdminBus(const AdminBus&) = delete;
  AdminBus& operator=(const AdminBus&) = delete;

  // A new health report to announce. Thread-safe; a HealthMonitor listener.
  void OnHealth(const HealthReport& report);
  // Leaves the bus (the name goes with the connection) and joins the
  // thread. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit AdminBus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "applied", "not-capable", ... for a ProfileState.
std::string ProfileStateBusName(devmem::v1::ProfileState state);

}  // namespace devmem
