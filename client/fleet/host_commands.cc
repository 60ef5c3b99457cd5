// devmem-fleet hosts, cordon, uncordon, drain and watch: what operators do
// to a set of hosts.
#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/fleet/cli.h"

ABSL_FLAG(std::string, reason, "",
          "cordon, drain: why (required; shown to anyone refused meanwhile)");
ABSL_FLAG(int32_t, max_unavailable, 1,
          "drain, rollout: hosts drained or changed at once (in waves)");
ABSL_FLAG(absl::Duration, deadline, absl::Hours(1),
          "drain, rollout --drain: give up on a host's drain after this long "
          "and report what remains");
ABSL_FLAG(uint64_t, since, 0,
          "watch: events after this revision (0: a snapshot first)");
ABSL_FLAG(int32_t, count, 0, "watch: stop after this many events (0: never)");

namespace devmem::fleetctl {
namespace {

std::string NicsText(const fleet::v1::Host& h) {
  std::vector<std::string> parts;
  for (const auto& n : h.nics()) {
    if (n.pool_total() == 0) continue;
    parts.push_back(absl::StrCat(n.name(), " ", n.pool_free(), "/",
                                 n.pool_reserved(), "/", n.pool_total()));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

// Runs `call` on every host in parallel and reports per host.
template <typename Fn>
fleetcli::Report EachHost(Connections* conns, const std::string& command,
                          Fn call) {
  fleetcli::Report report;
  report.set_command(command);
  report.set_ok(true);
  for (size_t i = 0; i < conns->size(); ++i) {
    report.add_hosts()->set_host(conns->host(i));
  }
  absl::Mutex mu;
  Progress progress(command);
  ParallelFor(
      conns->size(), InFlight(),
      [&](size_t i) {
        fleetcli::HostResult r;
        r.set_host(conns->host(i));
        call(conns->stub(i), &r);
        absl::MutexLock lock(&mu);
        if (!r.ok()) report.set_ok(false);
        *report.mutable_hosts(static_cast<int>(i)) = r;
      },
      [&](size_t done) { progress.Update(done, conns->size()); });
  progress.Finish();
  return report;
}

void SetError(fleetcli::HostResult* r, const grpc::Status& s) {
  r->set_ok(s.ok());
  if (!s.ok()) r->set_error(Describe(s));
}

std::string CordonText(const devmem::v1::CordonState& c) {
  return c.cordoned()
             ? absl::StrCat("cordoned (", c.reason(), "; by ", c.by(), ")")
             : "schedulable";
}

// A line per host that answered: its cordon state.
std::vector<std::string> CordonTable(const fleetcli::Report& report) {
  std::vector<std::string> table;
  for (const auto& h : report.hosts()) {
    if (h.ok()) {
      table.push_back(absl::StrCat(h.host(), "\t", CordonText(h.cordon())));
    }
  }
  return table;
}

// Every host's Watch stream at once, printed as one host-tagged sequence
// (JSON lines with --json). Each stream resumes from its last revision after
// an error (a restarted devmemd, an agent going away), with backoff. After
// `limit` events (0: never) every stream stops.
class MergedWatch {
 public:
  MergedWatch(Connections* conns, int limit)
      : conns_(conns), limit_(limit), contexts_(conns->size()) {}

  // One thread per host; returns once every stream has stopped.
  void Run() {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < conns_->size(); ++i) {
      threads.emplace_back([this, i] { Follow(i); });
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  void Follow(size_t i) {
    uint64_t since = absl::GetFlag(FLAGS_since);
    absl::Duration backoff = absl::Milliseconds(200);
    while (!stop_) {
      fleet::v1::WatchRequest req;
      req.set_since_revision(since);
      grpc::ClientContext* ctx = NewContext(i);
      auto stream = conns_->stub(i)->Watch(ctx, req);
      devmem::v1::WatchResponse msg;
      while (!stop_ && stream->Read(&msg)) {
        backoff = absl::Milliseconds(200);
        since = std::max(since, msg.revision());
        Take(i, msg, &since);
      }
      if (stop_) {
        ctx->TryCancel();  // Finish would wait for the server
        stream->Finish();
        break;
      }
      fleetcli::WatchLine line;
      line.set_host(conns_->host(i));
      line.set_error(absl::StrCat(Describe(stream->Finish()),
                                  "; reconnecting from revision ", since));
      Print(line);
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
    StopAll();
  }

  // Prints a snapshot or each event; counts events against the limit.
  void Take(size_t i, const devmem::v1::WatchResponse& msg, uint64_t* since) {
    fleetcli::WatchLine line;
    line.set_host(conns_->host(i));
    if (msg.snapshot()) {
      *line.mutable_snapshot() = msg;
      Print(line);
      return;
    }
    for (const auto& e : msg.events()) {
      *line.mutable_event() = e;
      *since = std::max(*since, e.revision());
      Print(line);
      if (limit_ > 0 && ++seen_ >= limit_) stop_ = true;
    }
  }

  grpc::ClientContext* NewContext(size_t i) {
    absl::MutexLock lock(&ctx_mu_);
    contexts_[i] = std::make_unique<grpc::ClientContext>();
    return contexts_[i].get();
  }

  // Wakes every host's stream.
  void StopAll() {
    absl::MutexLock lock(&ctx_mu_);
    for (auto& c : contexts_) {
      if (c != nullptr) c->TryCancel();
    }
  }

  void Print(const fleetcli::WatchLine& line) {
    absl::MutexLock lock(&out_mu_);
    if (absl::GetFlag(FLAGS_json)) {
      std::printf("%s\n", ToJson(line, /*indented=*/false).c_str());
    } else if (!line.error().empty()) {
      std::printf("%s\terror\t%s\n", line.host().c_str(), line.error().c_str());
    } else if (line.has_snapshot()) {
      std::printf(
          "%s\t%lu\tsnapshot\t%d reservation(s), %s\n", line.host().c_str(),
          static_cast<unsigned long>(line.snapshot().revision()),  // NOLINT
          line.snapshot().reservations_size(),
          CordonText(line.snapshot().cordon()).c_str());
    } else {
      const auto& e = line.event();
      std::printf("%s\t%lu\t%s\t%s%s\n", line.host().c_str(),
                  static_cast<unsigned long>(e.revision()),  // NOLINT
                  e.type().c_str(), e.reservation().job_id().c_str(),
                  e.detail().c_str());
    }
    std::fflush(stdout);
  }

  Connections* conns_;
  const int limit_;
  std::atomic<int> seen_{0};
  std::atomic<bool> stop_{false};
  absl::Mutex out_mu_;
  absl::Mutex ctx_mu_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_
      ABSL_GUARDED_BY(ctx_mu_);
};

}  // namespace

int Hosts(const std::vector<std::string>& args) {
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  fleetcli::Report report = EachHost(
      conns->get(), "hosts",
      [&](fleet::v1::Fleet::Stub* stub, fleetcli::HostResult* r) {
        grpc::Status s = CallWithin(timeout, [&](grpc::ClientContext* c) {
          return stub->GetHost(c, {}, r->mutable_info());
        });
        SetError(r, s);
        if (s.ok() && !r->info().devmemd_reachable()) {
          r->set_ok(false);
          r->set_error(absl::StrCat("devmemd is unreachable: ",
                                    r->info().devmemd_error()));
        }
      });
  std::vector<std::string> table = {
      "HOST\tHEALTH\tCORDON\tPOOLS free/reserved/total\tGPUS\tDEVMEMD"};
  for (const auto& h : report.hosts()) {
    if (!h.has_info() || !h.info().devmemd_reachable()) {
      table.push_back(absl::StrCat(h.host(), "\tunreachable\t-\t-\t-\t-"));
      continue;
    }
    const fleet::v1::Host& i = h.info();
    table.push_back(absl::StrCat(
        h.host(), "\t", i.health(), "\t", CordonText(i.cordon()), "\t",
        NicsText(i), "\t", i.gpus_size(), "\t", i.devmemd_version()));
  }
  return PrintReport(report, table);
}

int Cordon(const std::vector<std::string>& args) {
  if (absl::GetFlag(FLAGS_reason).empty()) {
    return UsageError("--reason is required: say why, for whoever is refused");
  }
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  fleetcli::Report report =
      EachHost(conns->get(), "cordon",
               [](fleet::v1::Fleet::Stub* stub, fleetcli::HostResult* r) {
                 fleet::v1::CordonRequest req;
                 req.set_reason(absl::GetFlag(FLAGS_reason));
                 devmem::v1::CordonResponse resp;
                 SetError(r, CallWithin(absl::GetFlag(FLAGS_timeout),
                                        [&](grpc::ClientContext* c) {
                                          return stub->Cordon(c, req, &resp);
                                        }));
                 *r->mutable_cordon() = resp.state();
               });
  return PrintReport(report, CordonTable(report));
}

int Uncordon(const std::vector<std::string>& args) {
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  fleetcli::Report report =
      EachHost(conns->get(), "uncordon",
               [](fleet::v1::Fleet::Stub* stub, fleetcli::HostResult* r) {
                 devmem::v1::CordonResponse resp;
                 SetError(r, CallWithin(absl::GetFlag(FLAGS_timeout),
                                        [&](grpc::ClientContext* c) {
                                          return stub->Uncordon(c, {}, &resp);
                                        }));
                 *r->mutable_cordon() = resp.state();
               });
  return PrintReport(report, CordonTable(report));
}

int Drain(const std::vector<std::string>& args) {
  if (absl::GetFlag(FLAGS_reason).empty()) {
    return UsageError("--reason is required: say why, for whoever is refused");
  }
  if (absl::GetFlag(FLAGS_max_unavailable) < 1) {
    return UsageError("--max_unavailable must be at least 1");
  }
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  const auto deadline_s = static_cast<uint32_t>(std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::GetFlag(FLAGS_deadline))));
  fleetcli::Report report;
  report.set_command("drain");
  report.set_ok(true);
  std::vector<std::string> table;
  const size_t wave = static_cast<size_t>(absl::GetFlag(FLAGS_max_unavailable));
  absl::Mutex mu;
  for (size_t first = 0; first < (*conns)->size(); first += wave) {
    const size_t n = std::min(wave, (*conns)->size() - first);
    std::vector<fleetcli::HostResult> results(n);
    // Every host of the wave at once: at most max_unavailable drain together.
    ParallelFor(n, n, [&](size_t k) {
      const size_t i = first + k;
      fleetcli::HostResult& r = results[k];
      r.set_host((*conns)->host(i));
      fleet::v1::DrainRequest req;
      req.set_reason(absl::GetFlag(FLAGS_reason));
      req.set_deadline_s(deadline_s);
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() +
                                          absl::Seconds(deadline_s) +
                                          absl::GetFlag(FLAGS_timeout)));
      auto stream = (*conns)->stub(i)->Drain(&ctx, req);
      devmem::v1::DrainProgress p;
      while (stream->Read(&p)) {
        *r.mutable_drain() = p;
        if (!absl::GetFlag(FLAGS_json)) {
          absl::MutexLock lock(&mu);
          std::fprintf(stderr,
                       "drain %s: %u reservation(s), %u binding(s) left\n",
                       r.host().c_str(), p.reservations(), p.bindings());
        }
      }
      SetError(&r, stream->Finish());
      *r.mutable_cordon() = r.drain().cordon();
      if (r.ok() && !r.drain().done()) {
        r.set_ok(false);
        r.set_error(absl::StrCat("not drained by the deadline; remaining: ",
                                 absl::StrJoin(r.drain().remaining(), "; ")));
      }
    });
    for (fleetcli::HostResult& r : results) {
      if (!r.ok()) report.set_ok(false);
      if (r.ok()) table.push_back(absl::StrCat(r.host(), "\tdrained"));
      *report.add_hosts() = std::move(r);
    }
  }
  return PrintReport(report, table);
}

int Watch(const std::vector<std::string>& args) {
  auto conns = OpenHosts(args);
  if (!conns.ok()) return UsageError(std::string{conns.status().message()});
  MergedWatch(conns->get(), absl::GetFlag(FLAGS_count)).Run();
  return kExitOk;
}

}  // namespace devmem::fleetctl
