#include "client/fleet/cli.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/fleet/host_list.h"

ABSL_FLAG(bool, json, false, "print the result as JSON (for scripts)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "deadline of each host's call");
ABSL_FLAG(int32_t, parallel, 64, "hosts asked at once, at most");
ABSL_FLAG(std::string, job, "", "the job id");
ABSL_FLAG(std::string, hosts_file, "",
          "a file of HOST:PORT lines (\"#\" comments), besides the arguments");
ABSL_FLAG(std::string, ca, "", "the fleet CA bundle, PEM ($DEVMEM_FLEET_CA)");
ABSL_FLAG(std::string, cert, "",
          "this launcher's client certificate, PEM ($DEVMEM_FLEET_CERT)");
ABSL_FLAG(std::string, key, "", "its private key, PEM ($DEVMEM_FLEET_KEY)");
ABSL_FLAG(std::string, server_name, "",
          "the name the agents' certificates carry, when hosts are dialled by "
          "another name or address ($DEVMEM_FLEET_SERVER_NAME)");

namespace devmem::fleetctl {

absl::StatusOr<std::unique_ptr<Connections>> OpenHosts(
    const std::vector<std::string>& args) {
  auto hosts = ReadHostList(args, absl::GetFlag(FLAGS_hosts_file), &std::cin);
  if (!hosts.ok()) return hosts.status();
  auto tls = ResolveTlsFiles(
      {absl::GetFlag(FLAGS_ca), absl::GetFlag(FLAGS_cert),
       absl::GetFlag(FLAGS_key), absl::GetFlag(FLAGS_server_name)});
  if (!tls.ok()) return tls.status();
  return Connections::Open(*hosts, *tls);
}

Progress::Progress(std::string what)
    : what_(std::move(what)), enabled_(::isatty(STDERR_FILENO) == 1) {}

void Progress::Update(size_t done, size_t total) {
  if (!enabled_) return;
  std::fprintf(stderr, "\r%s: %zu/%zu hosts", what_.c_str(), done, total);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

int PrintReport(const fleetcli::Report& report,
                const std::vector<std::string>& table) {
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", ToJson(report, /*indented=*/true).c_str());
  } else {
    for (const std::string& line : table) std::printf("%s\n", line.c_str());
    for (const auto& h : report.hosts()) {
      if (!h.ok()) {
        std::fprintf(stderr, "%s: %s\n", h.host().c_str(), h.error().c_str());
      }
    }
  }
  return report.ok() ? kExitOk : kExitFailure;
}

std::string ToJson(const google::protobuf::Message& message, bool indented) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = indented;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, opts);
  return out;
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "devmem-fleet: %s\n", message.c_str());
  return kExitUsage;
}

size_t InFlight() {
  return static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_parallel)));
}

}  // namespace devmem::fleetctl
