#include "client/fleet/host_list.h"

#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace devmem::fleetctl {
namespace {

absl::Status CheckAddress(const std::string& a, const std::string& where) {
  const size_t colon = a.rfind(':');
  uint32_t port = 0;
  const bool bracketed = !a.empty() && a.front() == '[';
  const bool ok =
      colon != std::string::npos && colon > 0 &&
      absl::SimpleAtoi(a.substr(colon + 1), &port) && port >= 1 &&
      port <= 65535 &&
      (bracketed ? a[colon - 1] == ']' && colon > 2
                 : a.find(':') == colon &&
                       a.find_first_of(" \t/") == std::string::npos);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": \"", a,
                   "\" is not HOST:PORT (e.g. gpu-17:7443, 10.0.0.5:7443 or "
                   "[fd00::5]:7443)"));
}

}  // namespace

std::string HostName(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

absl::StatusOr<std::vector<std::string>> ReadHostList(
    const std::vector<std::string>& args, const std::string& file,
    std::istream* in) {
  std::vector<std::string> out;
  absl::flat_hash_set<std::string> seen;
  auto add = [&](std::string a, const std::string& where) -> absl::Status {
    absl::Status s = CheckAddress(a, where);
    if (!s.ok()) return s;
    if (!seen.insert(a).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", a, " is listed twice"));
    }
    out.push_back(std::move(a));
    return absl::OkStatus();
  };
  auto read_lines = [&](std::istream& stream,
                        const std::string& name) -> absl::Status {
    std::string line;
    for (int n = 1; std::getline(stream, line); ++n) {
      absl::string_view v = line;
      const size_t hash = v.find('#');
      if (hash != absl::string_view::npos) v = v.substr(0, hash);
      v = absl::StripAsciiWhitespace(v);
      if (v.empty()) continue;
      absl::Status s = add(std::string{v}, absl::StrCat(name, ":", n));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  };
  if (!file.empty()) {
    std::ifstream f(file);
    if (!f) {
      return absl::InvalidArgumentError(
          absl::StrCat("--hosts_file=", file, ": cannot read it"));
    }
    absl::Status s = read_lines(f, file);
    if (!s.ok()) return s;
  }
  for (const std::string& a : args) {
    absl::Status s = a == "-" ? read_lines(*in, "stdin") : add(a, "argument");
    if (!s.ok()) return s;
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "no hosts: name them as arguments (HOST:PORT), with --hosts_file, or "
        "with - to read them from stdin");
  }
  return out;
}

}  // namespace devmem::fleetctl
