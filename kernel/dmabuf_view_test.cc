#include "kernel/dmabuf_view.h"

#include <unistd.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

TEST(DmabufView, ReadsAMemfdWithoutSync) {
  absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(8192, "view-test");
  ASSERT_TRUE(memfd.ok()) << memfd.status();
  ASSERT_EQ(pwrite(memfd->get_unowned(), "fragment", 8, 4096), 8);
  absl::StatusOr<DmabufView> view = DmabufView::Map(memfd->get_unowned());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_FALSE(view->is_dmabuf());
  EXPECT_EQ(view->size(), 8192u);
  ASSERT_TRUE(view->BeginRead().ok());
  absl::StatusOr<absl::Span<const char>> bytes = view->Bytes(4096, 8);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(std::string(bytes->data(), bytes->size()), "fragment");
  ASSERT_TRUE(view->EndRead().ok());
  EXPECT_EQ(view->Bytes(8190, 4).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_THAT(view->Bytes(UINT64_MAX, 2).status().message(),
              HasSubstr("outside the 8192-byte buffer"));
}

TEST(DmabufView, ARealDmabufIsSynced) {
  absl::StatusOr<UniqueFd> buf = CreateUdmabuf(4096);
  if (!buf.ok()) GTEST_SKIP() << "no dma-buf exporter here: " << buf.status();
  absl::StatusOr<DmabufView> view = DmabufView::Map(buf->get_unowned());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_TRUE(view->is_dmabuf());
  EXPECT_TRUE(view->BeginRead().ok());
  EXPECT_TRUE(view->EndRead().ok());
}

TEST(DmabufView, WhatCannotBeMappedIsNamed) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd r(fds[0]);
  UniqueFd w(fds[1]);
  EXPECT_FALSE(DmabufView::Map(r.get_unowned()).ok());
}

}  // namespace
}  // namespace devmem
