#include "client/grpc_status.h"

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(GrpcStatusTest, EveryCodeMapsOneToOne) {
  for (int code = 1; code <= 16; ++code) {
    grpc::Status in(static_cast<grpc::StatusCode>(code), "msg");
    absl::Status out = StatusFromGrpc(in);
    EXPECT_EQ(static_cast<int>(out.code()), code);
    EXPECT_EQ(out.message(), "msg");
  }
  EXPECT_TRUE(StatusFromGrpc(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, UnknownNumbersBecomeUnknown) {
  absl::Status out = StatusFromCode(99, "odd");
  EXPECT_EQ(out.code(), absl::StatusCode::kUnknown);
  EXPECT_NE(out.message().find("99"), absl::string_view::npos);
}

}  // namespace
}  // namespace devmem
