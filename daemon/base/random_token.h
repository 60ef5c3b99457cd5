#pragma once
// Unguessable tokens: tickets, session tokens and reservation tokens are 128
// random bits from getrandom(2), drawn 32 tokens at a time per thread (a
// forked child draws afresh). Aborts if the kernel has no entropy source
// (no unguessable token is the only unsafe answer). Thread-safe.

#include <string>

#include "absl/strings/string_view.h"

namespace devmem {

// 128 random bits from getrandom(2) as 32 lowercase hex digits.
std::string RandomHex128();
// True if `ticket` has that form (every ticket and token devmemd issues).
bool IsTicketFormat(absl::string_view ticket);

}  // namespace devmem
