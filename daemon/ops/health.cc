#include "daemon/ops/health.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace devmem {
namespace {

// JSON string contents (RFC 8259 section 7): quote, backslash and control
// characters escaped; other bytes (UTF-8) as they are.
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

std::string JsonTime(absl::Time t) {
  return JsonString(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

}  // namespace

const char* HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kStarting:
      return "starting";
    case HealthState::kReady:
      return "ready";
    case HealthState::kDegraded:
      return "degraded";
    case HealthState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::string HealthReport::ToJson() const {
  std::string out = absl::StrCat(
      "{\"state\":", JsonString(HealthStateName(state)),
      ",\"since\":", JsonTime(state_since), ",\"started\":", JsonTime(started),
      ",\"checked\":", JsonTime(checked), ",\"uptime_seconds\":",
      absl::StrFormat("%.3f", absl::ToDoubleSeconds(checked - started)),
      ",\"reasons\":[");
  for (size_t i = 0; i < reasons.size(); ++i) {
    const HealthReason& r = reasons[i];
    absl::StrAppend(&out, i ? "," : "", "{\"component\":", JsonString(r.key),
                    ",\"message\":", JsonString(r.message), ",\"severity\":",
                    JsonString(r.fatal ? "failed" : "degraded"),
                    ",\"since\":", JsonTime(r.since), "}");
  }
  out += "]}";
  return out;
}

int HealthReport::HttpStatus() const {
  return state == HealthState::kReady || state == HealthState::kDegraded ? 200
                                                                         : 503;
}

bool HealthReport::AcceptsWork() const {
  if (state == HealthState::kReady) return true;
  if (state != HealthState::kDegraded) return false;
  for (const HealthReason& r : reasons) {
    if (r.fatal || r.key == "journal" || absl::StartsWith(r.key, "journal/")) {
      return false;
    }
  }
  return true;
}

HealthMonitor::HealthMonitor(const Clock* clock)
    : clock_(clock), started_(clock->Now()), state_since_(started_) {}

void HealthMonitor::AddProbe(Probe probe) {
  probes_.push_back(std::move(probe));
}

void HealthMonitor::AddListener(Listener listener) {
  listeners_.push_back(std::move(listener));
}

void HealthMonitor::SetServing() {
  absl::MutexLock lock(&mu_);
  if (phase_ == Phase::kStarting) phase_ = Phase::kServing;
}

void HealthMonitor::SetStopping() {
  absl::MutexLock lock(&mu_);
  phase_ = Phase::kStopping;
}

HealthReport HealthMonitor::Check() {
  absl::MutexLock check_lock(&check_mu_);
  std::vector<HealthIssue> issues;
  Phase phase;
  {
    absl::MutexLock lock(&mu_);
    phase = phase_;
  }
  if (phase == Phase::kStopping) {
    issues.push_back({"daemon", "stopping", true});
  } else if (phase == Phase::kServing) {
    for (const Probe& probe : probes_) {
      std::vector<HealthIssue> found = probe();
      for (HealthIssue& issue : found) issues.push_back(std::move(issue));
    }
  }
  std::sort(
      issues.begin(), issues.end(),
      [](const HealthIssue& a, const HealthIssue& b) { return a.key < b.key; });

  HealthReport report;
  std::string signature;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    HealthState state = HealthState::kReady;
    if (phase == Phase::kStarting) {
      state = HealthState::kStarting;
    } else {
      for (const HealthIssue& issue : issues) {
        if (issue.fatal) {
          state = HealthState::kFailed;
          break;
        }
        state = HealthState::kDegraded;
      }
    }
    if (state != state_) {
      state_ = state;
      state_since_ = now;
    }
    absl::flat_hash_map<std::string, absl::Time> since;
    for (const HealthIssue& issue : issues) {
      auto it = since_.find(issue.key);
      absl::Time t = it == since_.end() ? now : it->second;
      since.emplace(issue.key, t);
      report.reasons.push_back({issue.key, issue.message, issue.fatal, t});
      absl::StrAppend(&signature, issue.key, "\x1f", issue.message, "\x1f",
                      issue.fatal, "\x1e");
    }
    since_ = std::move(since);
    report.state = state_;
    report.state_since = state_since_;
    report.started = started_;
    report.checked = now;
    signature = absl::StrCat(HealthStateName(state_), "\x1d", signature);
  }
  if (signature != last_signature_) {
    last_signature_ = signature;
    for (const Listener& listener : listeners_) listener(report);
  }
  return report;
}

}  // namespace devmem
