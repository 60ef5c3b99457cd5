#pragma once
// Where a bench finds the binaries it runs (devmemd, helpers).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace devmem {

// `flag_value` if set; else the first executable of: the runfiles copy of
// `workspace_path` (bazel run), $BUILD_WORKSPACE_DIRECTORY/bazel-bin/..., and
// bazel-bin/... (made absolute); else that last candidate.
inline std::string Executable(const std::string& flag_value,
                              bazel::tools::cpp::runfiles::Runfiles* runfiles,
                              const std::string& workspace_path) {
  if (!flag_value.empty()) return flag_value;
  std::vector<std::string> candidates;
  if (runfiles != nullptr) {
    candidates.push_back(runfiles->Rlocation("devmemd/" + workspace_path));
  }
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    candidates.push_back(absl::StrCat(ws, "/bazel-bin/", workspace_path));
  }
  candidates.push_back("bazel-bin/" + workspace_path);
  for (const std::string& c : candidates) {
    if (!c.empty() && ::access(c.c_str(), X_OK) == 0) {
      return std::filesystem::absolute(c).string();
    }
  }
  return candidates.back();
}

}  // namespace devmem
