#include "deploy/slurm/job_gres.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace devmem {
namespace slurm {
namespace {

constexpr absl::string_view kGresName = "devmemq";

// Splits at commas outside open...close: "a[1,2],b" → {"a[1,2]", "b"}.
std::vector<absl::string_view> SplitTopLevel(absl::string_view s, char open,
                                             char close) {
  std::vector<absl::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (s[i] == ',' && depth == 0)) {
      if (i > start) parts.push_back(s.substr(start, i - start));
      start = i + 1;
    } else if (s[i] == open) {
      ++depth;
    } else if (s[i] == close) {
      --depth;
    }
  }
  return parts;
}

// "1-3" or "07" inside brackets → names with the prefix and suffix, keeping
// the zero padding of the range's first number.
absl::Status ExpandRange(absl::string_view range, absl::string_view prefix,
                         absl::string_view suffix,
                         std::vector<std::string>* out) {
  std::pair<absl::string_view, absl::string_view> ends =
      absl::StrSplit(range, absl::MaxSplits('-', 1));
  if (ends.second.empty()) ends.second = ends.first;
  uint64_t lo = 0;
  uint64_t hi = 0;
  if (!absl::SimpleAtoi(ends.first, &lo) ||
      !absl::SimpleAtoi(ends.second, &hi) || lo > hi || hi - lo > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad range \"", range, "\" in a hostlist"));
  }
  for (uint64_t n = lo; n <= hi; ++n) {
    std::string digits = absl::StrCat(n);
    if (digits.size() < ends.first.size()) {
      digits.insert(0, ends.first.size() - digits.size(), '0');
    }
    out->push_back(absl::StrCat(prefix, digits, suffix));
  }
  return absl::OkStatus();
}

// The `key=value` fields of scontrol's text, in order, with their line.
std::vector<std::pair<absl::string_view, absl::string_view>> Fields(
    absl::string_view line) {
  std::vector<std::pair<absl::string_view, absl::string_view>> fields;
  for (absl::string_view word :
       absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    const size_t eq = word.find('=');
    if (eq == absl::string_view::npos) continue;
    fields.emplace_back(word.substr(0, eq), word.substr(eq + 1));
  }
  return fields;
}

// One GRES of a detail line: "devmemq(CNT:2)", "devmemq:eth1(CNT:2)" or
// "devmemq:eth1:2(IDX:0-1)". Adds its count if it is a devmemq.
absl::Status AddGres(absl::string_view gres, JobGres* job) {
  const size_t paren = gres.find('(');
  absl::string_view head = gres.substr(0, paren);
  absl::string_view detail =
      paren == absl::string_view::npos ? "" : gres.substr(paren + 1);
  absl::ConsumeSuffix(&detail, ")");
  std::vector<absl::string_view> parts = absl::StrSplit(head, ':');
  if (parts[0] != kGresName) return absl::OkStatus();
  uint32_t count = 0;
  std::string type = parts.size() > 1 ? std::string{parts[1]} : "";
  if (absl::ConsumePrefix(&detail, "CNT:")) {
    if (!absl::SimpleAtoi(detail, &count)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the count of GRES \"", gres, "\""));
    }
  } else if (parts.size() == 3 && absl::SimpleAtoi(parts[2], &count)) {
  } else if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &count)) {
    type.clear();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the count of GRES \"", gres, "\""));
  }
  if (count > 0) job->queues[type] += count;
  return absl::OkStatus();
}

// A detail line "Nodes=... GRES=..." naming `node`: its devmemq counts.
absl::StatusOr<bool> ReadDetailLine(absl::string_view line,
                                    absl::string_view node, JobGres* job) {
  std::vector<std::pair<absl::string_view, absl::string_view>> fields =
      Fields(line);
  if (fields.empty() || fields[0].first != "Nodes") return false;
  absl::StatusOr<std::vector<std::string>> nodes =
      ExpandHostlist(fields[0].second);
  if (!nodes.ok()) return nodes.status();
  bool mine = false;
  for (const std::string& n : *nodes) mine = mine || n == node;
  if (!mine) return false;
  for (const auto& [key, value] : fields) {
    if (key != "GRES") continue;
    for (absl::string_view gres : SplitTopLevel(value, '(', ')')) {
      absl::Status added = AddGres(gres, job);
      if (!added.ok()) return added;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandHostlist(
    absl::string_view list) {
  std::vector<std::string> names;
  for (absl::string_view item : SplitTopLevel(list, '[', ']')) {
    const size_t open = item.find('[');
    if (open == absl::string_view::npos && !absl::StrContains(item, ']')) {
      names.emplace_back(item);
      continue;
    }
    const size_t close =
        open == absl::string_view::npos ? open : item.find(']', open);
    if (close == absl::string_view::npos || item.find('[', open + 1) < close) {
      return absl::InvalidArgumentError(
          absl::StrCat("unbalanced brackets in hostlist \"", list, "\""));
    }
    absl::string_view prefix = item.substr(0, open);
    absl::string_view suffix = item.substr(close + 1);
    if (absl::StrContains(suffix, '[')) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hostlist \"", list, "\": more than one range per name"));
    }
    for (absl::string_view range :
         absl::StrSplit(item.substr(open + 1, close - open - 1), ',')) {
      absl::Status expanded = ExpandRange(range, prefix, suffix, &names);
      if (!expanded.ok()) return expanded;
    }
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read hostlist \"", list, "\""));
  }
  return names;
}

absl::StatusOr<std::optional<absl::Duration>> ParseTimeLimit(
    absl::string_view text) {
  if (text == "UNLIMITED" || text == "INFINITE") return std::nullopt;
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat("cannot read TimeLimit \"", text, "\""));
  int64_t days = 0;
  absl::string_view rest = text;
  const size_t dash = text.find('-');
  if (dash != absl::string_view::npos) {
    if (!absl::SimpleAtoi(text.substr(0, dash), &days)) return bad;
    rest = text.substr(dash + 1);
  }
  std::vector<int64_t> parts;
  for (absl::string_view p : absl::StrSplit(rest, ':')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(p, &v) || v < 0) return bad;
    parts.push_back(v);
  }
  if (parts.empty() || parts.size() > 3) return bad;
  // With days: D-HH[:MM[:SS]]; without: MM, MM:SS or HH:MM:SS.
  int64_t h = 0, m = 0, s = 0;  // NOLINT(readability-isolate-declaration)
  if (dash != absl::string_view::npos) {
    h = parts[0];
    m = parts.size() > 1 ? parts[1] : 0;
    s = parts.size() > 2 ? parts[2] : 0;
  } else if (parts.size() == 3) {
    h = parts[0], m = parts[1], s = parts[2];
  } else {
    m = parts[0];
    s = parts.size() > 1 ? parts[1] : 0;
  }
  return absl::Hours(24 * days + h) + absl::Minutes(m) + absl::Seconds(s);
}

absl::StatusOr<JobGres> ParseJobGres(absl::string_view scontrol_text,
                                     absl::string_view node) {
  JobGres job;
  bool is_job = false;
  for (absl::string_view line : absl::StrSplit(scontrol_text, '\n')) {
    for (const auto& [key, value] : Fields(line)) {
      if (key == "JobId") is_job = true;
      if (key != "TimeLimit") continue;
      absl::StatusOr<std::optional<absl::Duration>> limit =
          ParseTimeLimit(value);
      if (!limit.ok()) return limit.status();
      job.time_limit = *limit;
    }
    absl::StatusOr<bool> detail =
        ReadDetailLine(absl::StripAsciiWhitespace(line), node, &job);
    if (!detail.ok()) return detail.status();
  }
  if (!is_job) {
    return absl::NotFoundError(
        "scontrol printed no job (no JobId= in its output)");
  }
  return job;
}

}  // namespace slurm
}  // namespace devmem
