#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Builds one family of values read at scrape time, sample by sample (the
// families devmemd and devmem-agent compute instead of counting).
class FamilyBuilder {
 public:
  FamilyBuilder(std::string name, std::string help,
                prometheus::MetricType type) {
    family_.name = std::move(name);
    family_.help = std::move(help);
    family_.type = type;
  }
  FamilyBuilder& Add(const MetricLabels& labels, double value) {
    prometheus::ClientMetric m;
    for (const auto& [k, v] : labels) m.label.push_back({k, v});
    if (family_.type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    family_.metric.push_back(std::move(m));
    return *this;
  }
  // Appends the family to `out` if it has a sample.
  void To(std::vector<prometheus::MetricFamily>* out) {
    if (!family_.metric.empty()) out->push_back(std::move(family_));
  }

 private:
  prometheus::MetricFamily family_;
};

// "applied", "not_capable", ...: the enum's name without its prefix.
inline std::string ProfileStateLabel(devmem::v1::ProfileState state) {
  std::string name(absl::StripPrefix(devmem::v1::ProfileState_Name(state),
                                     "PROFILE_STATE_"));
  absl::AsciiStrToLower(&name);
  return name;
}

}  // namespace devmem
