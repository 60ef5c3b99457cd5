#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace devmem {

// gRPC and absl share the google.rpc.Code numbering, so the conversion keeps
// the code and the message exactly; nothing is collapsed into UNKNOWN except
// values outside google.rpc.Code.
absl::Status StatusFromGrpc(const grpc::Status& status);

// Same mapping for a google.rpc.Code number carried in a session frame
// (Hello.code, Error.code). 0 is OK.
absl::Status StatusFromCode(int code, absl::string_view message);

}  // namespace devmem
