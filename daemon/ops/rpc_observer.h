#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace devmem {

// Called once per answered gRPC call with the method's short name
// ("GetStatus" for "/devmem.v1.Devmem/GetStatus"), the status code sent and
// the time from the call's arrival to its status.
using RpcObserver = std::function<void(
    absl::string_view method, absl::StatusCode code, absl::Duration elapsed)>;

// A gRPC server interceptor factory that times every call for `observer`
// (ServerBuilder::experimental().SetInterceptorCreators).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcObserverFactory(RpcObserver observer);

// "/devmem.v1.Devmem/GetStatus" -> "GetStatus"; anything else as is.
absl::string_view RpcShortName(absl::string_view full_method);

}  // namespace devmem
