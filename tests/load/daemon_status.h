#pragma once
// GetStatus of the devmemd at `runtime_dir`, over a channel of its own (no
// session needed): what the load tests read devmemd's counts from.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem {

inline absl::StatusOr<devmem::v1::GetStatusResponse> DaemonStatus(
    const std::string& runtime_dir) {
  auto stub = devmem::v1::Devmem::NewStub(
      grpc::CreateChannel(absl::StrCat("unix:", runtime_dir, "/grpc.sock"),
                          grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  devmem::v1::GetStatusResponse resp;
  grpc::Status s = stub->GetStatus(&ctx, devmem::v1::GetStatusRequest(), &resp);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        s.error_message());
  }
  return resp;
}

}  // namespace devmem
