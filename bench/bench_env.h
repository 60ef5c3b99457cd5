#pragma once
// What a bench that runs devmemd between two network namespaces needs around
// it: child processes (spawned with clean signal state, optionally pinned),
// a veth pair between two fresh namespaces, devmemd started in one of them,
// and one Cleanup that tears all of that down exactly once, on every return
// path and on SIGINT/SIGTERM/SIGHUP. Root only; used by handoff_bench.
//
// Threading: Cleanup is thread-safe. Everything else runs on the bench's main
// thread; EnterNetns must run before gRPC starts any thread.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace bench {

// The veth pair CreateVethPair builds: veth-a (10.77.1.1/24) in namespace A,
// veth-b (10.77.1.2/24) in namespace B.
inline constexpr char kNicA[] = "veth-a";
inline constexpr char kNicB[] = "veth-b";
inline constexpr char kIpA[] = "10.77.1.1";
inline constexpr char kIpB[] = "10.77.1.2";
inline constexpr int kPrefixLen = 24;

using Clock = std::chrono::steady_clock;

double MicrosSince(Clock::time_point start, Clock::time_point end);

// Starts argv[0] (searched in PATH) with default signal dispositions and an
// empty signal mask: the bench blocks the stop signals for its sigwait
// thread, and children must not inherit that. With `cpu` >= 0 the child
// starts pinned to that CPU.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args,
                            bool stdout_to_null, int cpu = -1);

// A pidfd for `pid` (invalid if pidfd_open fails).
UniqueFd PidFd(pid_t pid);

// Waits for `pid` to exit and reaps it. Returns its wait status, or
// DEADLINE_EXCEEDED (the child is left running) after `timeout`.
absl::StatusOr<int> WaitExit(pid_t pid, absl::Duration timeout);

// "exit 3", "killed by signal 9", ...
std::string DescribeWait(int wstatus);

// Runs a tool (here: `ip`) to completion; anything but exit 0 is an error.
absl::Status RunTool(const std::vector<std::string>& args);

// Everything the bench creates outside itself, torn down exactly once: by
// main() on every return path, or by the signal thread on SIGINT/SIGTERM/
// SIGHUP. Thread-safe; Run() is idempotent.
class Cleanup {
 public:
  void SetDaemon(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // Registers a running sender; if Run() already happened, kills it at once.
  void SetSender(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  void AddNetns(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void SetRuntimeDir(const std::string& dir) ABSL_LOCKS_EXCLUDED(mu_);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  pid_t daemon_ ABSL_GUARDED_BY(mu_) = -1;
  pid_t sender_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<std::string> netns_ ABSL_GUARDED_BY(mu_);
  std::string runtime_dir_ ABSL_GUARDED_BY(mu_);
};

// The process's one Cleanup.
Cleanup& TheCleanup();

// Blocks the stop signals in this (still single-threaded) process, so every
// later thread inherits the mask, and handles them on one thread that runs
// TheCleanup() and exits 128 + signal.
void StartSignalThread();

// The two namespaces of the veth pair.
struct Netns {
  std::string a;
  std::string b;
};

// Creates namespaces devmemd-bench-{a,b}-<pid> joined by the veth pair above,
// registered with TheCleanup().
absl::StatusOr<Netns> CreateVethPair();

// Moves the calling thread (the main thread, before gRPC starts any) into
// namespace `name`, so the bench's own sockets live beside devmemd's.
absl::Status EnterNetns(const std::string& name);

// Starts `devmemd` in namespace `netns` with `runtime_dir`, registered with
// TheCleanup(), and returns a session once it accepts one. Fails if devmemd
// exits during start-up or does not answer within 15 s.
absl::StatusOr<std::unique_ptr<Session>> StartDaemon(
    const std::string& devmemd, const std::string& netns,
    const std::string& runtime_dir);

}  // namespace bench
}  // namespace devmem
