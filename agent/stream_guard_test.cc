// StreamGuard against a real gRPC server and client in process: a client
// that never reads has its stream cancelled after the stall timeout, the
// upstream call with it, and max_streams is enforced.
#include "agent/stream_guard.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem::agent {
namespace {

// Watch answers with 64 KiB messages for as long as Write succeeds, under
// the guard (with a ClientContext standing in for the upstream call).
class FloodService final : public devmem::v1::Devmem::Service {
 public:
  explicit FloodService(StreamGuard* guard) : guard_(guard) {}
  grpc::Status Watch(
      grpc::ServerContext* ctx, const devmem::v1::WatchRequest* /*req*/,
      grpc::ServerWriter<devmem::v1::WatchResponse>* writer) override {
    grpc::ClientContext upstream;
    auto admitted = guard_->Admit(ctx, &upstream);
    if (!admitted.ok()) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          std::string{admitted.status().message()});
    }
    devmem::v1::WatchResponse msg;
    msg.mutable_cordon()->set_reason(std::string(65536, 'x'));
    for (;;) {
      (*admitted)->WriteStarted();
      const bool ok = writer->Write(msg);
      (*admitted)->WriteDone();
      if (!ok) break;
    }
    ended_.Notify();
    return grpc::Status::CANCELLED;
  }
  absl::Notification ended_;

 private:
  StreamGuard* guard_;
};

TEST(StreamGuardTest, AClientThatNeverReadsIsCancelled) {
  StreamGuard guard(/*max_streams=*/1, /*stall_timeout=*/absl::Seconds(1));
  FloodService service(&guard);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = devmem::v1::Devmem::NewStub(channel);
  grpc::ClientContext never_reads;
  auto stream = stub->Watch(&never_reads, {});
  // Its flow-control window fills; the server's Write blocks.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(guard.open(), 1U);
  grpc::ClientContext second;
  auto refused = stub->Watch(&second, {});
  devmem::v1::WatchResponse msg;
  EXPECT_FALSE(refused->Read(&msg));
  EXPECT_EQ(refused->Finish().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "max_streams";
  // The guard's thread checks every second; the stall timeout is 1 s.
  EXPECT_TRUE(service.ended_.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "the blocked Write was cancelled";
  EXPECT_EQ(guard.stalled_total(), 1U);
  never_reads.TryCancel();
  stream->Finish();
  server->Shutdown();
  EXPECT_EQ(guard.open(), 0U);
}

}  // namespace
}  // namespace devmem::agent
