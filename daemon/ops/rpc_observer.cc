#include "daemon/ops/rpc_observer.h"

#include <utility>

#include "absl/time/clock.h"

namespace devmem {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcObserverInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcObserverInterceptor(const RpcObserver* observer, std::string method)
      : observer_(observer), method_(std::move(method)), start_(absl::Now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      (*observer_)(RpcShortName(method_),
                   static_cast<absl::StatusCode>(status.error_code()),
                   absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  const RpcObserver* observer_;
  const std::string method_;
  const absl::Time start_;
};

class RpcObserverFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcObserverFactory(RpcObserver observer)
      : observer_(std::move(observer)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcObserverInterceptor(&observer_, info->method());
  }

 private:
  const RpcObserver observer_;
};

}  // namespace

absl::string_view RpcShortName(absl::string_view full_method) {
  const size_t slash = full_method.rfind('/');
  if (slash == absl::string_view::npos || slash + 1 == full_method.size()) {
    return full_method;
  }
  return full_method.substr(slash + 1);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcObserverFactory(RpcObserver observer) {
  return std::make_unique<RpcObserverFactory>(std::move(observer));
}

}  // namespace devmem
