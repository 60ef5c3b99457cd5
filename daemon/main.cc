// devmemd: the privileged devmem TCP daemon. Process glue only: flags, config,
// signals. Everything else lives in libraries that tests link.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "daemon/backend.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/kernel_facts.h"
#include "daemon/ops/service_notifier.h"
#include "daemon/state/anchor_store.h"

ABSL_FLAG(std::string, config, "",
          "Path of the devmem.v1.DaemonConfig textproto. Empty: built-in "
          "defaults plus the flags below.");
ABSL_FLAG(std::string, runtime_dir, "",
          "Directory for grpc.sock and session.sock (overrides the config; "
          "default /run/devmemd).");
ABSL_FLAG(std::string, socket_group, "",
          "Group that owns the sockets, mode 0660 (overrides the config).");
ABSL_FLAG(std::vector<std::string>, allow_uids, {},
          "Comma-separated uids allowed to connect, added to the config's "
          "allow_uids.");
ABSL_FLAG(std::vector<std::string>, allow_gids, {},
          "Comma-separated gids allowed to connect, added to the config's "
          "allow_gids.");
ABSL_FLAG(uint32_t, ticket_ttl_ms, 0,
          "Lifetime of an unredeemed fd ticket in ms (overrides the config).");
ABSL_FLAG(std::string, nic_backend, "",
          "\"kernel\" (default: real NICs) or \"simulated\" (a simulated "
          "devmem NIC per nic_profiles entry, for demos without devmem "
          "hardware). Overrides the config.");
ABSL_FLAG(std::string, simulated_state_dir, "",
          "With the simulated backend: where the simulated NICs keep their "
          "\"hardware\" state, which outlives devmemd as a real NIC's does "
          "(default <runtime_dir>/simnic), or \"none\" to keep it in memory "
          "only (for benchmarks with thousands of rules: the state file is "
          "rewritten on every change).");
ABSL_FLAG(std::string, state_dir, "",
          "Directory for records of original NIC state (overrides the "
          "config; default /var/lib/devmemd).");
ABSL_FLAG(std::string, metrics_listen, "",
          "Serve Prometheus /metrics and /healthz, /readyz on this loopback "
          "address, e.g. 127.0.0.1:9464 (port 0: any free port), or \"off\". "
          "Overrides the config's metrics_listen; by default it is off.");
ABSL_FLAG(std::vector<std::string>, nic, {},
          "Comma-separated NICs to prepare for devmem with a default profile "
          "(pool of 1 queue, RSS excluding it), added to the config's "
          "nic_profiles.");

ABSL_FLAG(uint32_t, restart_grace_ms, 0,
          "After a restart, how long sessions from the journal may take to "
          "resume before their leases are removed (default 30000).");
ABSL_FLAG(std::string, dbus, "system",
          "Where the admin interface org.devmemd.Devmemd1 goes: \"system\" "
          "(the system bus; if it cannot be reached, a warning and no "
          "interface), a D-Bus address such as unix:path=/run/x/bus (if it "
          "cannot be reached, devmemd stops), or \"\" for none.");
ABSL_FLAG(bool, release_on_exit, false,
          "On SIGTERM/SIGINT, release every lease and restore the NICs even "
          "while workloads hold bindings. By default devmemd then leaves "
          "them in place, recorded in its journal, so that the next devmemd "
          "re-adopts them and running jobs are not broken (live restart).");

namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "devmemd: %s\n", message.c_str());
  return code;
}

// Appends numeric ids from a flag; false (with *bad set) on a non-number.
bool AppendIds(const std::vector<std::string>& in,
               google::protobuf::RepeatedField<uint32_t>* out,
               std::string* bad) {
  for (const std::string& s : in) {
    uint32_t v;
    if (!absl::SimpleAtoi(s, &v)) {
      *bad = s;
      return false;
    }
    out->Add(v);
  }
  return true;
}

// --help text, and --help listing the flags of this file (absl's default
// matches only files named after the binary).
void SetUsage() {
  absl::SetProgramUsageMessage(
      "prepares NICs for devmem TCP (header split, RSS, ntuple) and hands "
      "dma-buf bindings and steered TCP sockets to unprivileged workloads."
      "\n\n"
      "Usage: devmemd [--config=/etc/devmemd/devmemd.textproto] "
      "[--runtime_dir=/run/devmemd] [--allow_uids=1000,..]\n\n"
      "Serves gRPC (devmem.v1.Devmem) on <runtime_dir>/grpc.sock and sessions "
      "on "
      "<runtime_dir>/session.sock. See docs/PROTOCOL.md. Stops cleanly on "
      "SIGTERM or SIGINT.");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "daemon/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
}

absl::Status RefusingToStart(const absl::Status& s) {
  return absl::Status(s.code(),
                      absl::StrCat("refusing to start: ", s.message()));
}

// The config file (if any) with the flags applied over it, finalized. Errors
// are devmemd's whole message.
absl::StatusOr<devmem::v1::DaemonConfig> ConfigFromFlags(std::string* source) {
  devmem::v1::DaemonConfig config;
  *source = "built-in defaults";
  if (!absl::GetFlag(FLAGS_config).empty()) {
    *source = absl::GetFlag(FLAGS_config);
    auto loaded = devmem::LoadConfigFile(*source);
    if (!loaded.ok()) return RefusingToStart(loaded.status());
    config = *loaded;
  }
  if (!absl::GetFlag(FLAGS_runtime_dir).empty()) {
    config.set_runtime_dir(absl::GetFlag(FLAGS_runtime_dir));
  }
  if (!absl::GetFlag(FLAGS_socket_group).empty()) {
    config.set_socket_group(absl::GetFlag(FLAGS_socket_group));
  }
  if (absl::GetFlag(FLAGS_ticket_ttl_ms) != 0) {
    config.set_ticket_ttl_ms(absl::GetFlag(FLAGS_ticket_ttl_ms));
  }
  if (!absl::GetFlag(FLAGS_nic_backend).empty()) {
    config.set_nic_backend(absl::GetFlag(FLAGS_nic_backend));
  }
  if (!absl::GetFlag(FLAGS_state_dir).empty()) {
    config.set_state_dir(absl::GetFlag(FLAGS_state_dir));
  }
  if (absl::GetFlag(FLAGS_metrics_listen) == "off") {
    config.clear_metrics_listen();
  } else if (!absl::GetFlag(FLAGS_metrics_listen).empty()) {
    config.set_metrics_listen(absl::GetFlag(FLAGS_metrics_listen));
  }
  if (absl::GetFlag(FLAGS_restart_grace_ms) != 0) {
    config.set_restart_grace_ms(absl::GetFlag(FLAGS_restart_grace_ms));
  }
  for (const std::string& nic : absl::GetFlag(FLAGS_nic)) {
    config.add_nic_profiles()->set_nic(nic);
  }
  std::string bad;
  if (!AppendIds(absl::GetFlag(FLAGS_allow_uids), config.mutable_allow_uids(),
                 &bad) ||
      !AppendIds(absl::GetFlag(FLAGS_allow_gids), config.mutable_allow_gids(),
                 &bad)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--allow_uids/--allow_gids: \"", bad, "\" is not a number"));
  }
  absl::Status s = devmem::FinalizeConfig(&config, *source);
  if (!s.ok()) return RefusingToStart(s);
  return config;
}

// One fd per session and per gRPC connection: use all the fds we may. The
// stop signals are blocked in every thread; the main thread waits for them.
sigset_t PrepareProcess() {
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
      nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &nofile);
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop;
}

// The NIC backend, the kernel's facts and systemd's fds, then the daemon.
absl::StatusOr<std::unique_ptr<devmem::Daemon>> StartDaemon(
    const devmem::v1::DaemonConfig& config, const std::string& source,
    std::vector<std::string>* fd_report, std::string* backend_name) {
  devmem::Daemon::Options options;
  options.config = config;
  options.config_source = source;
  // The simulated NICs' "hardware" state lives on the runtime tmpfs: it
  // outlives devmemd (like a real NIC's settings) but not a reboot.
  devmem::BackendOptions backend_options;
  const std::string sim_dir = absl::GetFlag(FLAGS_simulated_state_dir);
  backend_options.simulated_state_dir =
      sim_dir.empty()     ? absl::StrCat(config.runtime_dir(), "/simnic")
      : sim_dir == "none" ? ""
                          : sim_dir;
  auto backend = devmem::MakeBackend(config, backend_options);
  if (!backend.ok()) return backend.status();
  std::fprintf(stderr, "devmemd: NIC backend: %s\n",
               backend->description.c_str());
  options.inventory = std::move(backend->inventory);
  options.nic_control = std::move(backend->control);
  options.static_status = devmem::ProbeKernelFacts();
  devmem::SystemdFds passed = devmem::TakeSystemdFds(fd_report);
  options.stored_anchors = std::move(passed.anchors);
  options.activated_grpc = std::move(passed.grpc);
  options.activated_session = std::move(passed.session);
  options.dbus_address = absl::GetFlag(FLAGS_dbus);
  *backend_name = options.inventory->BackendName();
  return devmem::Daemon::Start(std::move(options));
}

// What devmemd did at start-up, on stderr, then READY=1 to systemd.
void ReportReady(devmem::Daemon& daemon, const devmem::v1::DaemonConfig& config,
                 const std::vector<std::string>& fd_report,
                 const std::string& backend_name,
                 devmem::ServiceNotifier& notifier) {
  const std::string& options_dbus = absl::GetFlag(FLAGS_dbus);
  for (const std::string& line : daemon.profile_report()) {
    std::fprintf(stderr, "devmemd: nic %s\n", line.c_str());
  }
  for (const std::string& line : fd_report) {
    std::fprintf(stderr, "devmemd: %s\n", line.c_str());
  }
  for (const std::string& line : daemon.recovery_report()) {
    std::fprintf(stderr, "devmemd: %s\n", line.c_str());
  }
  if (!daemon.metrics_url().empty()) {
    std::fprintf(stderr, "devmemd: metrics: %s/metrics, health: %s/healthz\n",
                 daemon.metrics_url().c_str(), daemon.metrics_url().c_str());
  }
  if (!daemon.dbus_warning().empty()) {
    std::fprintf(stderr, "devmemd: warning: %s\n",
                 daemon.dbus_warning().c_str());
  } else if (!options_dbus.empty()) {
    std::fprintf(stderr, "devmemd: D-Bus: %s on %s\n", devmem::kBusName,
                 options_dbus.c_str());
  }
  std::fprintf(
      stderr,
      "devmemd %s: ready: grpc=%s session=%s backend=%s allow_uids=[%s] "
      "allow_gids=[%s]\n",
      devmem::kDevmemdVersion, daemon.grpc_socket_path().c_str(),
      daemon.session_socket_path().c_str(), backend_name.c_str(),
      absl::StrJoin(config.allow_uids(), ",").c_str(),
      absl::StrJoin(config.allow_gids(), ",").c_str());
  std::fflush(stderr);
  // Ready only now: the profiles are applied, the journal is reconciled and
  // both sockets serve.
  size_t applied = 0;
  for (const std::string& line : daemon.profile_report()) {
    if (absl::StrContains(line, "profile applied")) ++applied;
  }
  notifier.Ready(absl::StrCat(
      "serving on ", daemon.session_socket_path(), "; ", applied, " of ",
      config.nic_profiles_size(), " NIC profile(s) applied (", backend_name,
      " backend); ", daemon.sessions().detached_count(),
      " session(s) from before the restart may resume"));
}

// Waits for SIGTERM or SIGINT, then stops: releasing everything, or leaving
// held bindings for the next devmemd.
int WaitAndStop(devmem::Daemon& daemon, const devmem::v1::DaemonConfig& config,
                sigset_t stop, devmem::ServiceNotifier& notifier) {
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "devmemd: %s received, shutting down\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
  const size_t held = daemon.nics().binding_count();
  const bool release = absl::GetFlag(FLAGS_release_on_exit) || held == 0;
  if (!release) {
    std::fprintf(stderr,
                 "devmemd: leaving %zu binding(s) and their rules in place for "
                 "the next devmemd (journal in %s; --release_on_exit to "
                 "release instead)\n",
                 held, config.state_dir().c_str());
  }
  notifier.Stopping(
      release ? "releasing leases and restoring the NICs"
              : absl::StrCat("leaving ", held,
                             " binding(s) for the next devmemd to re-adopt"));
  daemon.Shutdown(release);
  for (const std::string& line : daemon.restore_report()) {
    std::fprintf(stderr, "devmemd: nic %s\n", line.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles, a
  // debugging aid that costs a release build a few percent of its CPU under
  // load (it stays on in tests and fastbuild).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  SetUsage();
  absl::ParseCommandLine(argc, argv);
  std::string source;
  absl::StatusOr<devmem::v1::DaemonConfig> config = ConfigFromFlags(&source);
  if (!config.ok()) {
    return Fail(std::string(config.status().message()), 2);
  }
  if (config->allow_uids().empty() && config->allow_gids().empty() &&
      config->allow_units().empty() && config->allow_slices().empty()) {
    std::fprintf(stderr,
                 "devmemd: warning: allow_uids, allow_gids, allow_units and "
                 "allow_slices are empty, every peer will be refused\n");
  }
  const sigset_t stop = PrepareProcess();
  std::vector<std::string> fd_report;
  std::string backend_name;
  auto daemon = StartDaemon(*config, source, &fd_report, &backend_name);
  if (!daemon.ok()) {
    return Fail(absl::StrCat("cannot start: ", daemon.status().message()), 1);
  }
  devmem::ServiceNotifier notifier;
  ReportReady(**daemon, *config, fd_report, backend_name, notifier);
  return WaitAndStop(**daemon, *config, stop, notifier);
}
