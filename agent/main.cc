// devmem-agent: serves fleet.v1 over mutual TLS 1.3 and relays each call to
// the local devmemd as an admin peer. Unprivileged: it holds no capability
// and reaches devmemd only through devmemd's gRPC Unix socket.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/agent_config.h"
#include "daemon/kernel_facts.h"
#include "daemon/ops/service_notifier.h"

ABSL_FLAG(std::string, config, devmem::agent::kDefaultAgentConfig,
          "the agent's config, a textproto of fleet.v1.AgentConfig "
          "(deploy/devmem-agent.textproto is an example)");
ABSL_FLAG(bool, check_config, false,
          "load the config and the TLS files, print what is wrong (exit 2) "
          "or \"ok\" (exit 0), and serve nothing");

namespace {

void SetUsage() {
  absl::SetProgramUsageMessage(
      "serves fleet.v1 (reservations, cordon, drain, inventory, events) to "
      "launchers and operators on other machines over mutual TLS 1.3, and "
      "relays each call to the local devmemd.\n\n"
      "Usage: devmem-agent [--config=/etc/devmemd/devmem-agent.textproto]\n\n"
      "SIGHUP reloads the TLS files and the roles without dropping open "
      "streams; SIGTERM or SIGINT stops it. See docs/FLEET.md.");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "agent/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] {
    return absl::StrCat("devmem-agent ", devmem::kDevmemdVersion, "\n");
  };
  absl::SetFlagsUsageConfig(usage);
}

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "devmem-agent: %s\n", message.c_str());
  return code;
}

void Log(const std::string& line) {
  std::fprintf(stderr, "devmem-agent: %s\n", line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Two malloc arenas, not one per gRPC thread: the agent is small and
  // mostly idle, and each arena keeps freed memory of its own.
  mallopt(M_ARENA_MAX, 2);
  SetUsage();
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_config);
  auto config = devmem::agent::LoadAgentConfig(path);
  if (!config.ok()) {
    return Fail(absl::StrCat("refusing to start: ", config.status().message()),
                2);
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    auto tls = devmem::agent::LoadServerContext({config->tls().ca_file(),
                                                 config->tls().cert_file(),
                                                 config->tls().key_file()});
    if (!tls.ok()) return Fail(std::string{tls.status().message()}, 2);
    std::printf("ok\n");
    return 0;
  }
  if (config->observers().empty() && config->launchers().empty() &&
      config->operators().empty()) {
    Log("warning: observers, launchers and operators are empty; every "
        "client will be refused");
  }
  // Signals are taken by sigwait below, never by a random thread.
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
  signal(SIGPIPE, SIG_IGN);

  devmem::agent::Agent::Options options;
  options.config = *config;
  options.config_path = path;
  options.version = devmem::kDevmemdVersion;
  options.log = Log;
  auto agent = devmem::agent::Agent::Start(std::move(options));
  if (!agent.ok()) {
    return Fail(absl::StrCat("cannot start: ", agent.status().message()), 1);
  }
  const std::string serving =
      absl::StrCat("serving fleet.v1 on ", (*agent)->address(), " (mTLS 1.3)",
                   (*agent)->metrics_url().empty()
                       ? ""
                       : absl::StrCat(", metrics on ", (*agent)->metrics_url()),
                   "; devmemd at ", config->devmemd_socket());
  Log(serving);
  devmem::ServiceNotifier notifier;
  notifier.Ready(serving);
  for (;;) {
    int sig = 0;
    sigwait(&wanted, &sig);
    if (sig != SIGHUP) break;
    absl::Status reloaded = (*agent)->Reload();
    Log(reloaded.ok() ? "SIGHUP: reloaded the TLS files and roles"
                      : absl::StrCat("SIGHUP: reload failed, serving on with "
                                     "the old files: ",
                                     reloaded.message()));
  }
  notifier.Stopping("stopping");
  (*agent)->Stop();
  Log("stopped");
  return 0;
}
