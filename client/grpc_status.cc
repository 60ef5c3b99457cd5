#include "client/grpc_status.h"

#include <string>

namespace devmem {

absl::Status StatusFromCode(int code, absl::string_view message) {
  // absl::StatusCode values 0..16 are google.rpc.Code; anything else is a
  // peer bug, reported as UNKNOWN with the raw number kept in the message.
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(std::string(message) + " (unrecognized code " +
                              std::to_string(code) + ")");
  }
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

absl::Status StatusFromGrpc(const grpc::Status& status) {
  return StatusFromCode(static_cast<int>(status.error_code()),
                        status.error_message());
}

}  // namespace devmem
