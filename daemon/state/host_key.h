#pragma once
// The host's secret for reservation tokens: 32 random bytes (64 hex digits)
// in <state_dir>/reservation.key, mode 0600, made on first use and kept
// across restarts, so that a token can be derived again from its
// reservation's id (a retried Reserve gets the same token) while the journal
// holds only the tokens' hashes. Each state directory has its own key, so a
// token names the devmemd that issued it (HostTag).

#include <string>

#include "absl/status/statusor.h"

namespace devmem {

// Reads the key at `path`, or writes a new one there (atomically: a temporary
// file renamed into place). Errors name the file and what to check.
absl::StatusOr<std::string> LoadOrCreateHostKey(const std::string& path);

}  // namespace devmem
