#include "daemon/state/host_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/base/random_token.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

constexpr size_t kKeyHexDigits = 64;

bool IsKey(absl::string_view s) {
  if (s.size() != kKeyHexDigits) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return false;
  }
  return true;
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("write ", path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> LoadOrCreateHostKey(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd) {
    char buf[kKeyHexDigits + 2];
    ssize_t n;
    do {
      n = ::read(fd.get_unowned(), buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    absl::string_view key =
        absl::StripTrailingAsciiWhitespace(absl::string_view(buf, n));
    if (!IsKey(key)) {
      return absl::DataLossError(absl::StrCat(
          path,
          " is not a reservation key (64 lowercase hex digits); remove "
          "it to make a new one (tokens of live reservations then stop "
          "working)"));
    }
    return std::string{key};
  }
  if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("open ", path));
  const std::string key = RandomHex128() + RandomHex128();
  const std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd out(::open(tmp.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                      0600));
  if (!out) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  absl::Status s = WriteAll(out.get_unowned(), key + "\n", tmp);
  if (s.ok() && ::fsync(out.get_unowned()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  }
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return key;
}

}  // namespace devmem
