// devmemd's metrics and health endpoints with the real tools:
//  - promtool (Debian's prometheus package) lints a live scrape
//    (`promtool check metrics`);
//  - a real Prometheus server, started here on loopback, scrapes devmemd every
//    second, and a PromQL query through its HTTP API returns the session count
//    after a client opens sessions (and 0 once they close);
//  - /healthz and /readyz report ready (200) on a working daemon, and failed
//    (503, with the reason) when no NIC profile can be applied.
// The daemon is the real binary with the simulated devmem NIC over lo. Only
// 127.0.0.1 is used. Skips with the reason if prometheus/promtool are missing.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/libdevmem.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::HttpRequest;
using ::devmem::testing::Proc;
using ::devmem::testing::UrlEncode;
using ::testing::HasSubstr;

constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr char kPrometheus[] = "/usr/bin/prometheus";

// A free TCP port on 127.0.0.1 (bound, read and released).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

void Nap(int ms) {
  struct pollfd none = {-1, 0, 0};
  poll(&none, 1, ms);
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat("/tmp/dmprom", getpid(), "_", n_++);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts devmemd with metrics on 127.0.0.1:<any>; sets port_.
  Proc StartDaemon(const std::string& backend = "simulated") {
    std::ofstream(dir_ + "/c.textproto")
        << "nic_profiles { nic: \"lo\" }\nallow_uids: " << getuid()
        << "\nmetrics_listen: \"127.0.0.1:0\"\n";
    Proc d = Proc::Spawn({"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
                          "--runtime_dir=" + dir_ + "/r",
                          "--state_dir=" + dir_ + "/s",
                          "--nic_backend=" + backend, "--dbus="});
    std::optional<std::string> line =
        d.WaitLine("devmemd: metrics: http://127.0.0.1:", absl::Seconds(20));
    EXPECT_TRUE(line.has_value()) << d.output();
    if (line) {
      std::smatch m;
      const std::regex re("127\\.0\\.0\\.1:([0-9]+)/metrics");
      if (std::regex_search(*line, m, re)) port_ = std::stoi(m[1]);
    }
    EXPECT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
        << d.output();
    return d;
  }

  std::string Get(const std::string& path, int* status = nullptr) {
    auto a = HttpRequest("127.0.0.1", port_, path);
    EXPECT_TRUE(a.ok()) << a.status();
    if (!a.ok()) return "";
    if (status != nullptr) *status = a->status;
    return a->body;
  }

  static int n_;
  std::string dir_;
  int port_ = 0;
};
int PrometheusTest::n_ = 0;

TEST_F(PrometheusTest, HealthIsReadyAndJson) {
  Proc d = StartDaemon();
  ASSERT_GT(port_, 0);
  int status = 0;
  const std::string json = Get("/healthz", &status);
  EXPECT_EQ(status, 200) << json;
  EXPECT_THAT(json, HasSubstr("\"state\":\"ready\""));
  EXPECT_THAT(json, HasSubstr("\"reasons\":[]"));
  EXPECT_THAT(json, HasSubstr("\"started\":\"20"));
  EXPECT_THAT(json, HasSubstr("\"uptime_seconds\":"));
  EXPECT_EQ(Get("/readyz", &status), "ready\n");
  EXPECT_EQ(status, 200);
  Get("/nothing", &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

TEST_F(PrometheusTest, NoUsableProfileIsFailed) {
  // The kernel backend on lo: not devmem-capable, nothing is changed, and
  // with no other profile devmemd cannot serve devmem at all.
  Proc d = StartDaemon("kernel");
  ASSERT_GT(port_, 0);
  int status = 0;
  const std::string json = Get("/healthz", &status);
  EXPECT_EQ(status, 503) << json;
  EXPECT_THAT(json, HasSubstr("\"state\":\"failed\""));
  EXPECT_THAT(json, HasSubstr("\"component\":\"profiles\""));
  EXPECT_THAT(json, HasSubstr("\"component\":\"profile/lo\""));
  EXPECT_THAT(json, HasSubstr("lo is not devmem-capable"));
  const std::string ready = Get("/readyz", &status);
  EXPECT_EQ(status, 503);
  EXPECT_THAT(ready, HasSubstr("failed\nprofile/lo: lo is not devmem-capable"));
  const std::string metrics = Get("/metrics");
  EXPECT_THAT(metrics, HasSubstr("devmemd_health_state{state=\"failed\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("devmemd_nic_profile_state{nic=\"lo\","
                                 "state=\"not_capable\"} 1"));
  // GetStatus says the same.
  auto s = Session::Open(dir_ + "/r");
  ASSERT_TRUE(s.ok()) << s.status();
  auto st = (*s)->GetStatus();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->health(), "failed");
  EXPECT_THAT(st->health_reasons(),
              ::testing::Contains(HasSubstr("profiles: none of the 1")));
  s->reset();
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

TEST_F(PrometheusTest, PromtoolAcceptsALiveScrape) {
  if (access(kPromtool, X_OK) != 0) {
    GTEST_SKIP() << kPromtool
                 << " is missing (Debian package prometheus; scripts/setup.sh "
                    "installs it)";
  }
  Proc d = StartDaemon();
  ASSERT_GT(port_, 0);
  // Some traffic first, so the histograms and counters have series.
  auto s = Session::Open(dir_ + "/r");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->GetStatus().ok());
  const std::string body = Get("/metrics");
  EXPECT_THAT(body, HasSubstr("devmemd_request_duration_seconds_bucket{code="
                              "\"OK\",method=\"GetStatus\""));
  EXPECT_THAT(body, HasSubstr("devmemd_sessions{state=\"attached\"} 1"));
  Proc lint = Proc::Spawn({kPromtool, "check", "metrics"});
  ASSERT_TRUE(lint.running());
  ASSERT_TRUE(lint.Send(body));
  lint.CloseStdin();
  const int rc = lint.Wait();
  EXPECT_EQ(rc, 0) << "promtool check metrics:\n" << lint.output();
  EXPECT_EQ(lint.output(), "") << "promtool found problems";
  s->reset();
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

// The metric families docs/METRICS.md lists (first column of its tables).
std::set<std::string> DocumentedFamilies() {
  std::ifstream in("docs/METRICS.md");
  std::set<std::string> names;
  std::string line;
  const std::regex row("^\\| `(devmemd_[a-z_]+)` \\|");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) names.insert(m[1]);
  }
  return names;
}

// The families of a text-format scrape (its "# TYPE" lines).
std::set<std::string> ScrapedFamilies(const std::string& body) {
  std::set<std::string> names;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "# TYPE ")) {
      names.insert(line.substr(7, line.find(' ', 7) - 7));
    }
  }
  return names;
}

TEST_F(PrometheusTest, ScrapeAndDocsNameTheSameFamilies) {
  Proc d = StartDaemon();
  ASSERT_GT(port_, 0);
  auto s = Session::Open(dir_ + "/r");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->GetStatus().ok());
  const std::set<std::string> documented = DocumentedFamilies();
  ASSERT_GT(documented.size(), 30u) << "docs/METRICS.md not read";
  const std::set<std::string> scraped = ScrapedFamilies(Get("/metrics"));
  for (const std::string& name : scraped) {
    EXPECT_TRUE(documented.count(name)) << name << " is not in docs/METRICS.md";
  }
  // lo reports no qstats and has no bound queue here; everything else must
  // be there from the first scrape.
  const std::regex needs_driver("devmemd_(nic_rx_.*|queue_.*)");
  for (const std::string& name : documented) {
    if (std::regex_match(name, needs_driver)) continue;
    EXPECT_TRUE(scraped.count(name)) << name << " is documented but not served";
  }
  s->reset();
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

// The value of the first sample of an instant-query answer, or nullopt.
std::optional<double> FirstValue(const std::string& json) {
  std::smatch m;
  const std::regex re("\"value\":\\[[0-9.]+,\"([0-9.eE+-]+)\"\\]");
  if (!std::regex_search(json, m, re)) return std::nullopt;
  double v = 0;
  if (!absl::SimpleAtod(m[1].str(), &v)) return std::nullopt;
  return v;
}

TEST_F(PrometheusTest, PrometheusScrapesTheSessionCount) {
  if (access(kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << kPrometheus
                 << " is missing (Debian package prometheus; scripts/setup.sh "
                    "installs it)";
  }
  Proc d = StartDaemon();
  ASSERT_GT(port_, 0);
  const int prom_port = FreePort();
  ASSERT_GT(prom_port, 0);
  std::ofstream(dir_ + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: devmemd\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << port_ << "']\n";
  Proc prom = Proc::Spawn(
      {kPrometheus, "--config.file=" + dir_ + "/prometheus.yml",
       "--storage.tsdb.path=" + dir_ + "/tsdb",
       "--web.listen-address=127.0.0.1:" + std::to_string(prom_port),
       "--log.level=warn"});
  ASSERT_TRUE(prom.running());
  prom.DrainInBackground();

  // Asks Prometheus `promql` until `want` comes back (or 30 s pass).
  auto query_until = [&](const std::string& promql,
                         double want) -> std::optional<double> {
    std::optional<double> last;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto a = HttpRequest("127.0.0.1", prom_port,
                           "/api/v1/query?query=" + UrlEncode(promql));
      if (a.ok() && a->status == 200) {
        last = FirstValue(a->body);
        if (last && *last == want) return last;
      }
      Nap(200);
    }
    return last;
  };

  // Before any client: no attached session; `up` says the scrape works.
  EXPECT_EQ(query_until("up{job=\"devmemd\"}", 1), 1) << prom.output();
  EXPECT_EQ(query_until("devmemd_sessions{state=\"attached\"}", 0), 0);

  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < 3; ++i) {
    auto s = Session::Open(dir_ + "/r");
    ASSERT_TRUE(s.ok()) << s.status();
    sessions.push_back(*std::move(s));
  }
  EXPECT_EQ(query_until("devmemd_sessions{state=\"attached\"}", 3), 3);
  EXPECT_EQ(query_until("sum(devmemd_sessions_opened_total)", 3), 3);
  EXPECT_EQ(query_until("devmemd_health_state{state=\"ready\"}", 1), 1);
  EXPECT_EQ(query_until("devmemd_queues{nic=\"lo\",state=\"free\"}", 1), 1);
  sessions.clear();
  EXPECT_EQ(query_until("devmemd_sessions{state=\"attached\"}", 0), 0);

  EXPECT_EQ(prom.Terminate(), 0);
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

}  // namespace
}  // namespace devmem
