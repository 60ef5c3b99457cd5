#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace devmem {

// A devmemd child process for integration tests. Start() waits (with a
// deadline) until both sockets accept connections; the destructor sends SIGTERM
// and reaps.
class DaemonProcess {
 public:
  // `binary` is the devmemd path (runfiles-relative "daemon/devmemd" in tests).
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(
      const std::string& binary, const std::string& runtime_dir,
      const std::vector<std::string>& extra_args);
  ~DaemonProcess();

  pid_t pid() const { return pid_; }
  const std::string& runtime_dir() const { return runtime_dir_; }
  // Number of entries in /proc/<pid>/fd, or -1.
  int FdCount() const;
  // SIGTERM and wait; returns the exit status as waitpid reports it.
  int Terminate();

 private:
  DaemonProcess(pid_t pid, std::string runtime_dir)
      : pid_(pid), runtime_dir_(std::move(runtime_dir)) {}
  pid_t pid_;
  std::string runtime_dir_;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace devmem
