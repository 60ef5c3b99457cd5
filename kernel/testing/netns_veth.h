#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel/unique_fd.h"

namespace devmem::testing {

// Test and benchmark helpers: run `ip`/`ethtool` as independent witnesses and
// set up a private network namespace with a veth pair. Never for production
// code (the daemon must not spawn tools).

struct CommandResult {
  int exit_code = -1;  // -1 if the command died from a signal
  std::string output;  // stdout and stderr, interleaved
};

// `name` as given if it has a '/', else the first executable match in $PATH
// and then the sbin directories (ethtool lives in /usr/sbin, which a test's
// PATH often lacks). NOT_FOUND if there is none.
absl::StatusOr<std::string> ResolveTool(const std::string& name);

// Spawns argv with stdout+stderr captured, then waits for it. A bare program
// name is looked up in $PATH, then /usr/local/sbin, /usr/sbin and /sbin.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv);

// Spawns argv (looked up as above) with all output to /dev/null and waits;
// returns the exit code.
absl::StatusOr<int> RunQuiet(const std::vector<std::string>& argv);

// Moves the calling thread into a fresh network namespace (unshare
// CLONE_NEWNET) and back to the original one (setns) when destroyed; the new
// namespace and every link in it vanish with it. Commands spawned by this
// thread in between run inside it. Needs CAP_SYS_ADMIN: PERMISSION_DENIED
// (errno EPERM) otherwise.
class ScopedNetns {
 public:
  static absl::StatusOr<std::unique_ptr<ScopedNetns>> Enter();
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

 private:
  explicit ScopedNetns(UniqueFd original) : original_(std::move(original)) {}
  UniqueFd original_;
};

// A veth pair created with `ip link add A type veth peer name B` in the
// current namespace, both ends set up; deleted (`ip link del A`) when
// destroyed.
class ScopedVethPair {
 public:
  static absl::StatusOr<std::unique_ptr<ScopedVethPair>> Create(
      const std::string& a, const std::string& b);
  ~ScopedVethPair();
  ScopedVethPair(const ScopedVethPair&) = delete;
  ScopedVethPair& operator=(const ScopedVethPair&) = delete;

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }

 private:
  ScopedVethPair(std::string a, std::string b)
      : a_(std::move(a)), b_(std::move(b)) {}
  std::string a_, b_;
};

}  // namespace devmem::testing
