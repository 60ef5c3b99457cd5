#pragma once
// Whether this host takes new work. Cordoned, it refuses new reservations
// and new unreserved bindings with FAILED_PRECONDITION carrying the reason;
// bindings with a reservation token (the job was admitted before) and
// everything that exists go on. Data only; NicManager journals changes and
// its lock guards it.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

class CordonGate {
 public:
  const devmem::v1::CordonState& state() const { return state_; }
  bool cordoned() const { return state_.cordoned(); }
  void Set(devmem::v1::CordonState state) { state_ = std::move(state); }

  // OK unless cordoned; then why `what` (e.g. "new reservations") is refused.
  absl::Status Check(absl::string_view what) const {
    if (!state_.cordoned()) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("this host is cordoned (", state_.reason(), "; by ",
                     state_.by(), "): ", what,
                     " are refused until an operator uncordons it "
                     "(`devmemctl uncordon`); work already admitted goes on"));
  }

 private:
  devmem::v1::CordonState state_;
};

}  // namespace devmem
