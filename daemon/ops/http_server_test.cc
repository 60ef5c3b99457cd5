#include "daemon/ops/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "absl/strings/match.h"
#include "tests/testing/http_client.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using testing::HttpRequest;

TEST(ParseLoopbackListenTest, AcceptsLoopbackLiterals) {
  auto a = ParseLoopbackListen("127.0.0.1:9464", "metrics_listen");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  EXPECT_FALSE(a->ipv6);
  a = ParseLoopbackListen("127.3.4.5:0", "metrics_listen");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 0);
  a = ParseLoopbackListen("[::1]:9464", "metrics_listen");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_TRUE(a->ipv6);
}

TEST(ParseLoopbackListenTest, RefusesWithTheReasonAndAnExample) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"0.0.0.0:9464", "not a loopback address"},
      {"10.1.2.3:9464", "not a loopback address"},
      {"[::]:9464", "not a loopback address"},
      {"localhost:9464", "host names are not resolved"},
      {"127.0.0.1", "missing \":port\""},
      {"127.0.0.1:http", "port must be a number"},
      {"127.0.0.1:70000", "port must be a number"},
      {"[::1:9464", "missing ']'"},
      {"[::1]9464", "missing \":port\""},
  };
  for (const Case& c : cases) {
    auto a = ParseLoopbackListen(c.text, "metrics_listen");
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(a.status().message(), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(a.status().message(), HasSubstr("metrics_listen"));
    EXPECT_THAT(a.status().message(), HasSubstr("127.0.0.1:9464"));
  }
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::map<std::string, HttpServer::Handler> routes;
    routes["/hello"] = [this] {
      ++calls_;
      return HttpServer::Response{200, "text/plain", "hi\n"};
    };
    routes["/busy"] = [] {
      return HttpServer::Response{503, "application/json", "{\"a\":1}"};
    };
    auto addr = ParseLoopbackListen("127.0.0.1:0", "test");
    ASSERT_TRUE(addr.ok());
    auto server = HttpServer::Start(*addr, std::move(routes));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  std::atomic<int> calls_{0};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnswersRoutesWithTheirStatusAndType) {
  auto a = HttpRequest("127.0.0.1", server_->port(), "/hello");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "hi\n");
  EXPECT_THAT(a->headers, HasSubstr("content-type: text/plain"));
  EXPECT_THAT(a->headers, HasSubstr("content-length: 3"));
  a = HttpRequest("127.0.0.1", server_->port(), "/busy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 503);
  EXPECT_EQ(a->body, "{\"a\":1}");
  EXPECT_THAT(a->headers, HasSubstr("content-type: application/json"));
  EXPECT_EQ(server_->url(), absl::StrCat("http://127.0.0.1:", server_->port()));
}

TEST_F(HttpServerTest, UnknownPathsMethodsAndHead) {
  auto a = HttpRequest("127.0.0.1", server_->port(), "/nothing");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 404);
  a = HttpRequest("127.0.0.1", server_->port(), "/hello/more");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 404);
  a = HttpRequest("127.0.0.1", server_->port(), "/hello", "POST");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 405);
  EXPECT_THAT(a->headers, HasSubstr("allow: get, head"));
  EXPECT_EQ(calls_.load(), 0) << "no handler ran for those";
  a = HttpRequest("127.0.0.1", server_->port(), "/hello", "HEAD");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "");
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(HttpServerTest, APortInUseIsAClearError) {
  auto addr = ParseLoopbackListen(absl::StrCat("127.0.0.1:", server_->port()),
                                  "metrics_listen");
  ASSERT_TRUE(addr.ok());
  auto second = HttpServer::Start(*addr, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("cannot serve metrics on 127.0.0.1:",
                                     server_->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("metrics_listen"));
  // The first one still serves.
  auto a = HttpRequest("127.0.0.1", server_->port(), "/hello");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status, 200);
}

TEST(HttpServerIpv6Test, ServesOnIpv6Loopback) {
  auto addr = ParseLoopbackListen("[::1]:0", "test");
  ASSERT_TRUE(addr.ok());
  std::map<std::string, HttpServer::Handler> routes;
  routes["/x"] = [] { return HttpServer::Response{200, "text/plain", "6"}; };
  auto server = HttpServer::Start(*addr, std::move(routes));
  if (!server.ok() &&
      absl::StrContains(server.status().message(), "civetweb) has no IPv6")) {
    // Debian 12's civetweb is built without USE_IPV6: the refusal must say
    // so and what to write instead.
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(server.status().message(), HasSubstr("127.0.0.1:0"));
    GTEST_SKIP() << server.status();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  auto a = HttpRequest("::1", (*server)->port(), "/x");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->body, "6");
  EXPECT_EQ((*server)->url(), absl::StrCat("http://[::1]:", (*server)->port()));
}

}  // namespace
}  // namespace devmem
