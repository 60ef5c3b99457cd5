#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace devmem {

// Tells systemd how devmemd is doing (sd_notify(3)): READY=1 once the NIC
// profiles are applied and the sockets serve, STATUS= lines for
// `systemctl status`, STOPPING=1 at shutdown, and WATCHDOG=1 every half of
// $WATCHDOG_USEC from a thread of its own. Without $NOTIFY_SOCKET (not run by
// systemd) every call does nothing.
class ServiceNotifier {
 public:
  ServiceNotifier();
  // Stops the watchdog thread.
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  void Ready(const std::string& status);
  void Status(const std::string& status);
  void Stopping(const std::string& status);
  // The ping interval, or zero if systemd asked for no watchdog.
  absl::Duration watchdog_interval() const { return interval_; }

 private:
  absl::Duration interval_ = absl::ZeroDuration();
  absl::Notification stop_;
  std::thread watchdog_;
};

}  // namespace devmem
