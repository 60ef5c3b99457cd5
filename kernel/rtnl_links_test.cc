#include "kernel/rtnl_links.h"

#include <net/if.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

uint32_t SysfsMtu(const std::string& ifname) {
  std::ifstream in(absl::StrCat("/sys/class/net/", ifname, "/mtu"));
  std::string text;
  std::getline(in, text);
  uint32_t mtu = 0;
  return absl::SimpleAtoi(text, &mtu) ? mtu : 0;
}

TEST(RtnlLinksTest, ListsLoopback) {
  absl::StatusOr<std::vector<LinkInfo>> links = ListLinks();
  ASSERT_TRUE(links.ok()) << links.status();
  const LinkInfo* lo = nullptr;
  for (const LinkInfo& l : *links) {
    if (l.name == "lo") lo = &l;
  }
  ASSERT_NE(lo, nullptr);
  EXPECT_EQ(lo->ifindex, if_nametoindex("lo"));
  EXPECT_EQ(lo->kind, "");
  EXPECT_EQ(lo->mac, "00:00:00:00:00:00");
  EXPECT_EQ(lo->mtu, SysfsMtu("lo"));
  EXPECT_TRUE(lo->admin_up);
  // Loopback has no carrier state machine: the kernel reports UNKNOWN.
  EXPECT_EQ(lo->oper_state, "unknown");
  for (size_t i = 1; i < links->size(); ++i) {
    EXPECT_LT((*links)[i - 1].ifindex, (*links)[i].ifindex);
  }
}

TEST(RtnlLinksTest, GetByName) {
  absl::StatusOr<LinkInfo> lo = GetLink("lo");
  ASSERT_TRUE(lo.ok()) << lo.status();
  EXPECT_EQ(lo->ifindex, if_nametoindex("lo"));
  EXPECT_EQ(lo->name, "lo");
}

TEST(RtnlLinksTest, UnknownNameIsNotFound) {
  absl::StatusOr<LinkInfo> none = GetLink("nosuchlink0");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("nosuchlink0"));
  EXPECT_EQ(GetLink("a-name-longer-than-ifnamsiz").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(GetLink("").status().code(), absl::StatusCode::kNotFound);
}

TEST(RtnlLinksTest, SeesVethKindInsideAPrivateNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a netns";
  absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
      testing::ScopedNetns::Enter();
  if (!ns.ok()) GTEST_SKIP() << "cannot create a netns: " << ns.status();
  absl::StatusOr<std::unique_ptr<testing::ScopedVethPair>> veth =
      testing::ScopedVethPair::Create("rtl0", "rtl1");
  ASSERT_TRUE(veth.ok()) << veth.status();

  absl::StatusOr<std::vector<LinkInfo>> links = ListLinks();
  ASSERT_TRUE(links.ok()) << links.status();
  // Only the namespace's own links: lo, rtl0, rtl1.
  ASSERT_EQ(links->size(), 3u);
  absl::StatusOr<LinkInfo> rtl0 = GetLink("rtl0");
  ASSERT_TRUE(rtl0.ok()) << rtl0.status();
  EXPECT_EQ(rtl0->kind, "veth");
  EXPECT_TRUE(rtl0->admin_up);
  EXPECT_EQ(rtl0->mtu, 1500u);
  EXPECT_EQ(rtl0->mac.size(), 17u);
  EXPECT_EQ(rtl0->ifindex, if_nametoindex("rtl0"));
}

}  // namespace
}  // namespace devmem
