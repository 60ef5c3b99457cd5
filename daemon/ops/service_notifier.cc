#include "daemon/ops/service_notifier.h"

#include <systemd/sd-daemon.h>

#include "absl/strings/str_cat.h"

namespace devmem {

ServiceNotifier::ServiceNotifier() {
  uint64_t usec = 0;
  // > 0: systemd wants pings (WATCHDOG_USEC set, WATCHDOG_PID ours or unset).
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = absl::Microseconds(static_cast<int64_t>(usec / 2));
    watchdog_ = std::thread([this] {
      do {
        sd_notify(0, "WATCHDOG=1");
      } while (!stop_.WaitForNotificationWithTimeout(interval_));
    });
  }
}

ServiceNotifier::~ServiceNotifier() {
  stop_.Notify();
  if (watchdog_.joinable()) watchdog_.join();
}

void ServiceNotifier::Ready(const std::string& status) {
  sd_notify(0, absl::StrCat("READY=1\nSTATUS=", status).c_str());
}

void ServiceNotifier::Status(const std::string& status) {
  sd_notify(0, absl::StrCat("STATUS=", status).c_str());
}

void ServiceNotifier::Stopping(const std::string& status) {
  sd_notify(0, absl::StrCat("STOPPING=1\nSTATUS=", status).c_str());
}

}  // namespace devmem
