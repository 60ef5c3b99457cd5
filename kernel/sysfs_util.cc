#include "kernel/sysfs_util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernel/unique_fd.h"

namespace devmem {

std::string Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path
                                                      : path.substr(slash + 1));
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

bool ReadSmallFile(const std::string& path, std::string* out) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[64];
  const ssize_t n = read(fd.get_unowned(), buf, sizeof(buf) - 1);
  if (n < 0) return false;
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

int ReadNumaNode(const std::string& device_dir) {
  std::string text;
  int node = -1;
  if (!ReadSmallFile(absl::StrCat(device_dir, "/numa_node"), &text) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &node)) {
    return -1;
  }
  return node < 0 ? -1 : node;
}

bool IsPciAddress(absl::string_view s) {
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') {
    return false;
  }
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11}) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace devmem
