#include "client/ctl/slurm_cores.h"

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace devmem {
namespace ctl {
namespace {

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "0-3,8" → {0,1,2,3,8}; empty on anything unreadable.
std::vector<int> CpuList(const std::string& text) {
  std::vector<int> cpus;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> ends =
        absl::StrSplit(part, absl::MaxSplits('-', 1));
    int lo = 0;
    int hi = 0;
    if (!absl::SimpleAtoi(ends.first, &lo)) return {};
    if (ends.second.empty()) hi = lo;
    if (!ends.second.empty() && !absl::SimpleAtoi(ends.second, &hi)) return {};
    for (int c = lo; c <= hi && hi - lo < 65536; ++c) cpus.push_back(c);
  }
  return cpus;
}

}  // namespace

std::string SlurmCoresOfNode(const std::string& sysfs, int numa) {
  const std::string cpu_dir = sysfs + "/devices/system/cpu";
  std::map<std::pair<int, int>, int> index;  // (package, core) → slurm index
  std::map<int, std::pair<int, int>> core_of;  // cpu → (package, core)
  for (int cpu : CpuList(ReadLine(cpu_dir + "/online"))) {
    const std::string topo = absl::StrCat(cpu_dir, "/cpu", cpu, "/topology/");
    int package = 0;
    int core = 0;
    if (!absl::SimpleAtoi(ReadLine(topo + "physical_package_id"), &package) ||
        !absl::SimpleAtoi(ReadLine(topo + "core_id"), &core)) {
      return "";
    }
    core_of[cpu] = {package, core};
    index[{package, core}] = 0;
  }
  int next = 0;
  for (auto& [key, i] : index) i = next++;
  std::set<int> cores;
  for (int cpu : CpuList(ReadLine(absl::StrCat(
           sysfs, "/devices/system/node/node", numa, "/cpulist")))) {
    if (core_of.count(cpu) != 0) cores.insert(index[core_of[cpu]]);
  }
  std::vector<std::string> ranges;
  for (auto it = cores.begin(); it != cores.end();) {
    const int lo = *it;
    int hi = lo;
    while (++it != cores.end() && *it == hi + 1) hi = *it;
    ranges.push_back(lo == hi ? absl::StrCat(lo) : absl::StrCat(lo, "-", hi));
  }
  return absl::StrJoin(ranges, ",");
}

}  // namespace ctl
}  // namespace devmem
