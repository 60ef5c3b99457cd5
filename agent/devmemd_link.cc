#include "agent/devmemd_link.h"

#include "absl/strings/str_cat.h"

namespace devmem::agent {

DevmemdLink::DevmemdLink(std::string socket_path, absl::Duration call_timeout)
    : socket_path_(std::move(socket_path)), call_timeout_(call_timeout) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  // devmemd is local: no proxies, ever.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  channel_ =
      grpc::CreateCustomChannel(absl::StrCat("unix:", socket_path_),
                                grpc::InsecureChannelCredentials(), args);
  stub_ = devmem::v1::Devmem::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> DevmemdLink::UnaryContext() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
  return ctx;
}

std::unique_ptr<grpc::ClientContext> DevmemdLink::StreamContext() {
  return std::make_unique<grpc::ClientContext>();
}

grpc::Status DevmemdLink::Relay(const grpc::Status& upstream) const {
  if (upstream.error_code() != grpc::StatusCode::UNAVAILABLE) return upstream;
  // devmemd's own UNAVAILABLE (its answer, on a live connection) as it is.
  if (channel_->GetState(false) == GRPC_CHANNEL_READY) return upstream;
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat("devmemd is unreachable at ", socket_path_, " (",
                   upstream.error_message(),
                   "); the agent reconnects by itself, retry shortly"));
}

}  // namespace devmem::agent
