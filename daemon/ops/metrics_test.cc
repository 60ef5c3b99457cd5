#include "daemon/ops/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FakeKernelStats : public KernelStatsSource {
 public:
  absl::StatusOr<std::vector<QstatsInfo>> Qstats(uint32_t ifindex,
                                                 bool per_queue) override {
    ++qstats_calls;
    if (qstats_error.has_value()) return ErrnoStatus(*qstats_error, "qstats");
    std::vector<QstatsInfo> out;
    if (!per_queue) {
      QstatsInfo t;
      t.ifindex = ifindex;
      t.rx_bytes = 1000000;
      t.rx_packets = 1000;
      t.rx_hw_drops = 7;
      // rx_alloc_fail not reported by this "driver"
      out.push_back(t);
      return out;
    }
    for (uint32_t q = 0; q < 4; ++q) {
      QstatsInfo s;
      s.ifindex = ifindex;
      s.queue_type = QueueInfo::Type::kRx;
      s.queue_id = q;
      s.rx_bytes = 100 * (q + 1);
      s.rx_packets = q + 1;
      s.rx_alloc_fail = q;
      out.push_back(s);
    }
    QstatsInfo tx;
    tx.ifindex = ifindex;
    tx.queue_type = QueueInfo::Type::kTx;
    tx.queue_id = 2;
    tx.tx_bytes = 5;
    out.push_back(tx);
    return out;
  }
  absl::StatusOr<std::vector<PagePoolInfo>> PagePools(
      uint32_t ifindex) override {
    std::vector<PagePoolInfo> out;
    for (uint32_t q = 0; q < 4; ++q) {
      PagePoolInfo p;
      p.id = q + 1;
      p.ifindex = ifindex;
      p.napi_id = 100 + q;
      p.inflight = 10 * (q + 1);
      p.inflight_mem = 4096 * 10 * (q + 1);
      if (q >= 2) p.dmabuf = 5;
      out.push_back(p);
    }
    return out;
  }
  std::optional<int> qstats_error;
  int qstats_calls = 0;
};

class DaemonMetricsTest : public ::testing::Test {
 protected:
  DaemonMetrics::Sources BaseSources() {
    DaemonMetrics::Sources s;
    s.version = "1.2.3";
    s.backend = "simulated";
    s.started = absl::FromUnixSeconds(1700000000);
    s.nics = [this] { return nics_; };
    s.sessions = [] { return DaemonMetrics::SessionFigures{3, 1, 2, 11}; };
    s.journal = [] { return DaemonMetrics::JournalFigures{false, 4, 8192}; };
    s.host = [] { return NicManager::HostFigures{2, 1, true}; };
    s.health = [] {
      HealthReport r;
      r.state = HealthState::kDegraded;
      return r;
    };
    s.queues = [](uint32_t) -> absl::StatusOr<std::vector<QueueInfo>> {
      std::vector<QueueInfo> qs;
      for (uint32_t q = 0; q < 4; ++q) {
        QueueInfo info;
        info.id = q;
        info.napi_id = 100 + q;
        if (q >= 2) info.dmabuf = 5;
        qs.push_back(info);
      }
      return qs;
    };
    s.kernel = &kernel_;
    s.kernel_refresh = absl::ZeroDuration();
    return s;
  }

  void SetUp() override {
    NicManager::NicMetrics n;
    n.nic = "dm-a";
    n.ifindex = 9;
    n.state = devmem::v1::PROFILE_STATE_APPLIED;
    n.degraded = true;
    n.queues_free = 1;
    n.queues_used = 2;
    n.queues_reserved = 1;
    n.bindings_rx = 1;
    n.bindings_tx = 1;
    n.rules = 3;
    n.leases = 1;
    n.bound_rx_queues = {2, 3};
    n.rules_installed = 5;
    n.rules_removed = {{"released", 2}};
    n.rules_failed = {{"kernel", 1}, {"quota", 4}};
    nics_.push_back(n);
  }

  FakeKernelStats kernel_;
  std::vector<NicManager::NicMetrics> nics_;
};

TEST_F(DaemonMetricsTest, DaemonFamilies) {
  DaemonMetrics m(BaseSources());
  const std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE devmemd_build_info gauge"));
  EXPECT_THAT(text, HasSubstr("devmemd_build_info{version=\"1.2.3\",backend="
                              "\"simulated\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_start_time_seconds 1700000000"));
  EXPECT_THAT(text, HasSubstr("devmemd_health_state{state=\"degraded\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_health_state{state=\"ready\"} 0"));
  EXPECT_THAT(text, HasSubstr("devmemd_sessions{state=\"attached\"} 3"));
  EXPECT_THAT(text, HasSubstr("devmemd_sessions{state=\"detached\"} 1"));
  EXPECT_THAT(text, HasSubstr("# TYPE devmemd_sessions_opened_total counter"));
  EXPECT_THAT(text, HasSubstr("devmemd_sessions_opened_total 11"));
  EXPECT_THAT(text, HasSubstr("devmemd_tickets_pending 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_journal_healthy 0"));
  EXPECT_THAT(text, HasSubstr("devmemd_journal_errors_total 4"));
  EXPECT_THAT(text, HasSubstr("devmemd_journal_size_bytes 8192"));
}

TEST_F(DaemonMetricsTest, PerNicFamiliesWithEveryCause) {
  DaemonMetrics m(BaseSources());
  const std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("devmemd_nic_profile_state{nic=\"dm-a\","
                              "state=\"applied\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_profile_state{nic=\"dm-a\","
                              "state=\"failed\"} 0"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_degraded{nic=\"dm-a\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_queues{nic=\"dm-a\",state=\"free\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_queues{nic=\"dm-a\",state=\"used\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("devmemd_queues{nic=\"dm-a\",state=\"reserved\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_reservations{state=\"active\"} 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_reservations{state=\"expired\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_cordoned 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_leases{nic=\"dm-a\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("devmemd_bindings{nic=\"dm-a\",direction=\"tx\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_rules{nic=\"dm-a\"} 3"));
  EXPECT_THAT(text, HasSubstr("devmemd_rules_installed_total{nic=\"dm-a\"} 5"));
  EXPECT_THAT(text, HasSubstr("devmemd_rules_removed_total{nic=\"dm-a\","
                              "cause=\"released\"} 2"));
  // Causes never seen are there as 0, so alerts on rate() work from the
  // start.
  EXPECT_THAT(text, HasSubstr("devmemd_rules_removed_total{nic=\"dm-a\","
                              "cause=\"recovery\"} 0"));
  EXPECT_THAT(text, HasSubstr("devmemd_rules_failed_total{nic=\"dm-a\","
                              "cause=\"quota\"} 4"));
  EXPECT_THAT(text, HasSubstr("devmemd_rules_failed_total{nic=\"dm-a\","
                              "cause=\"journal\"} 0"));
}

TEST_F(DaemonMetricsTest, KernelFiguresForTheNicAndItsBoundQueuesOnly) {
  DaemonMetrics m(BaseSources());
  const std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("devmemd_kernel_stats_supported{nic=\"dm-a\","
                              "source=\"qstats\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_rx_bytes_total{nic=\"dm-a\"} "
                              "1000000"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_rx_hw_drops_total{nic=\"dm-a\"} 7"));
  // Not reported by the driver: no series rather than a made-up 0.
  EXPECT_THAT(text, Not(HasSubstr("devmemd_nic_rx_alloc_fail_total{")));
  // Bound queues 2 and 3 only; TX queue 2 is not an RX queue.
  EXPECT_THAT(text, HasSubstr("devmemd_queue_rx_bytes_total{nic=\"dm-a\","
                              "queue=\"2\"} 300"));
  EXPECT_THAT(text, HasSubstr("devmemd_queue_rx_bytes_total{nic=\"dm-a\","
                              "queue=\"3\"} 400"));
  EXPECT_THAT(text, Not(HasSubstr("queue=\"0\"")));
  EXPECT_THAT(text, Not(HasSubstr("queue=\"1\"")));
  EXPECT_THAT(text, HasSubstr("devmemd_queue_rx_alloc_fail_total{nic=\"dm-a\","
                              "queue=\"3\"} 3"));
  // Page pools: 2 host, 2 dmabuf; inflight summed per NIC and per queue by
  // the queue's NAPI.
  EXPECT_THAT(text, HasSubstr("devmemd_nic_page_pools{nic=\"dm-a\","
                              "memory=\"dmabuf\"} 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_page_pools{nic=\"dm-a\","
                              "memory=\"host\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("devmemd_nic_page_pool_inflight{nic=\"dm-a\"} 100"));
  EXPECT_THAT(text, HasSubstr("devmemd_nic_page_pool_inflight_bytes{nic="
                              "\"dm-a\"} 409600"));
  EXPECT_THAT(text, HasSubstr("devmemd_queue_page_pool_inflight{nic=\"dm-a\","
                              "queue=\"3\"} 40"));
  EXPECT_THAT(text, HasSubstr("devmemd_queue_page_pool_inflight_bytes{nic="
                              "\"dm-a\",queue=\"2\"} 122880"));
  EXPECT_THAT(text, HasSubstr("devmemd_queue_dmabuf_bound{nic=\"dm-a\","
                              "queue=\"2\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_kernel_stats_errors_total{source="
                              "\"qstats\"} 0"));
}

TEST_F(DaemonMetricsTest, DriverWithoutQstatsIsUnsupportedNotAnError) {
  kernel_.qstats_error = EOPNOTSUPP;
  DaemonMetrics m(BaseSources());
  std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("devmemd_kernel_stats_supported{nic=\"dm-a\","
                              "source=\"qstats\"} 0"));
  EXPECT_THAT(text, Not(HasSubstr("devmemd_nic_rx_bytes_total")));
  EXPECT_THAT(text, HasSubstr("devmemd_kernel_stats_errors_total{source="
                              "\"qstats\"} 0"));
  // Another error is counted, and the NIC's qstats are left out.
  kernel_.qstats_error = EIO;
  text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("devmemd_kernel_stats_errors_total{source="
                              "\"qstats\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("source=\"qstats\"} 0\n"
                                  "devmemd_kernel_stats_supported")));
}

TEST_F(DaemonMetricsTest, KernelIsReadAtMostOncePerRefreshPeriod) {
  DaemonMetrics::Sources s = BaseSources();
  s.kernel_refresh = absl::Hours(1);
  DaemonMetrics m(std::move(s));
  m.Serialize();
  const int calls = kernel_.qstats_calls;
  EXPECT_GT(calls, 0);
  const std::string text = m.Serialize();
  EXPECT_EQ(kernel_.qstats_calls, calls);
  EXPECT_THAT(text, HasSubstr("devmemd_nic_rx_bytes_total{nic=\"dm-a\"}"));
}

TEST_F(DaemonMetricsTest, RequestHistogramsAndFdCounters) {
  DaemonMetrics m(BaseSources());
  m.ObserveRequest("GetStatus", absl::StatusCode::kOk, absl::Microseconds(300));
  m.ObserveRequest("GetStatus", absl::StatusCode::kOk, absl::Milliseconds(3));
  m.ObserveRequest("session.Redeem", absl::StatusCode::kNotFound,
                   absl::Microseconds(40));
  m.CountFd("to_client", "socket");
  m.CountFd("to_client", "socket");
  m.CountFd("from_client", "dmabuf");
  const std::string text = m.Serialize();
  EXPECT_THAT(text,
              HasSubstr("# TYPE devmemd_request_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("devmemd_request_duration_seconds_count{code="
                              "\"OK\",method=\"GetStatus\"} 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_request_duration_seconds_bucket{code="
                              "\"OK\",method=\"GetStatus\",le=\"0.0005\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_request_duration_seconds_bucket{code="
                              "\"OK\",method=\"GetStatus\",le=\"0.005\"} 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_request_duration_seconds_count{code="
                              "\"NOT_FOUND\",method=\"session.Redeem\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_fd_handoffs_total{direction=\"to_"
                              "client\",kind=\"socket\"} 2"));
  EXPECT_THAT(text, HasSubstr("devmemd_fd_handoffs_total{direction=\"from_"
                              "client\",kind=\"dmabuf\"} 1"));
  EXPECT_THAT(text, HasSubstr("devmemd_fd_handoffs_total{direction=\"to_"
                              "client\",kind=\"anchor\"} 0"));
}

TEST_F(DaemonMetricsTest, EveryNameHasThePrefixAndCountersEndInTotal) {
  DaemonMetrics m(BaseSources());
  m.ObserveRequest("GetStatus", absl::StatusCode::kOk, absl::Milliseconds(1));
  for (const prometheus::MetricFamily& f : m.Collect()) {
    EXPECT_EQ(f.name.rfind("devmemd_", 0), 0u) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(absl::EndsWith(f.name, "_total")) << f.name;
    } else {
      EXPECT_FALSE(absl::EndsWith(f.name, "_total")) << f.name;
    }
    for (const prometheus::ClientMetric& c : f.metric) {
      for (const prometheus::ClientMetric::Label& l : c.label) {
        EXPECT_NE(l.name, "session") << f.name;
        EXPECT_NE(l.name, "uid") << f.name;
        EXPECT_NE(l.name, "port") << f.name;
      }
    }
  }
}

}  // namespace
}  // namespace devmem
