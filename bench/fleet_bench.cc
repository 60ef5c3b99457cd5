// fleet_bench's measuring client (bench/fleet_bench.py starts the fleet and
// runs this inside its namespace): fleet.v1 over mutual TLS 1.3 from C++,
// as a launcher would call it.
//  1. Latency: --iterations of Reserve+Release interleaved with a bare
//     GetHost on the same channel (after --warmup). Prints p50/p99 of each
//     and the ratio Reserve p50 / GetHost p50 (goal <= 3).
//     With --journal_dir, also write+fdatasync there: the disk's share.
//  2. Memory (--phase=memory): the agent's VmRSS idle, then with --fill
//     reservations held (made through the agent), after ListReservations
//     and a Watch snapshot of all of them; and VmHWM. Goal < 32 MiB.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/fleet/v1/fleet.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "the agent, IP:PORT");
ABSL_FLAG(std::string, pki, "", "directory of ca.pem, launcher.{pem,key}");
ABSL_FLAG(int, agent_pid, 0, "the agent's pid (for VmRSS)");
ABSL_FLAG(std::string, nics, "", "comma-separated NICs to fill");
ABSL_FLAG(int, iterations, 2000, "timed Reserve+Release / GetHost pairs");
ABSL_FLAG(int, warmup, 200, "untimed pairs first");
ABSL_FLAG(int, fill, 10000, "reservations to hold for the memory figure");
ABSL_FLAG(std::string, phase, "latency", "latency or memory");
ABSL_FLAG(std::string, journal_dir, "",
          "latency: also time write+fdatasync there (devmemd's journal disk)");

namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "VmRSS" -> KiB from /proc/<pid>/status.
int64_t StatusKib(int pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

bool Ok(const grpc::Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "fleet_bench: %s: %s: %s\n", what,
               std::to_string(s.error_code()).c_str(),
               s.error_message().c_str());
  return false;
}

fleet::v1::ReserveRequest Ask(const std::string& job, const std::string& nic) {
  fleet::v1::ReserveRequest req;
  req.set_job_id(job);
  req.set_ttl_s(3600);
  auto* item = req.add_items();
  item->set_nic(nic);
  item->set_queue_count(1);
  return req;
}

// p50 of 200 x (write 512 bytes, fdatasync) in `dir`: what one journal
// record costs on that disk.
double FdatasyncP50(const std::string& dir) {
  const std::string path = dir + "/fleet_bench.sync";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  std::vector<double> us;
  const std::string record(512, 'x');
  for (int i = 0; i < 200; ++i) {
    auto t0 = Clock::now();
    if (::write(fd, record.data(), record.size()) < 0) break;
    ::fdatasync(fd);
    us.push_back(Micros(t0, Clock::now()));
  }
  ::close(fd);
  ::unlink(path.c_str());
  return Percentile(us, 0.5);
}

int Memory(fleet::v1::Fleet::Stub* stub, const std::vector<std::string>& nics) {
  const int pid = absl::GetFlag(FLAGS_agent_pid);
  const int64_t idle = StatusKib(pid, "VmRSS");
  const int64_t idle_anon = StatusKib(pid, "RssAnon");
  const int64_t idle_file = StatusKib(pid, "RssFile");
  const int fill = absl::GetFlag(FLAGS_fill);
  auto t0 = Clock::now();
  for (int i = 0; i < fill; ++i) {
    grpc::ClientContext c;
    devmem::v1::ReserveResponse made;
    if (!Ok(stub->Reserve(&c,
                          Ask(absl::StrCat("bench-", i),
                              nics[static_cast<size_t>(i) % nics.size()]),
                          &made),
            "Reserve (fill)")) {
      return 1;
    }
  }
  const double fill_s = Micros(t0, Clock::now()) / 1e6;
  size_t listed = 0;
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    devmem::v1::ListReservationsResponse all;
    if (!Ok(stub->ListReservations(&c, {}, &all), "ListReservations")) return 1;
    listed = static_cast<size_t>(all.reservations_size());
  }
  {
    grpc::ClientContext c;
    auto watch = stub->Watch(&c, {});
    devmem::v1::WatchResponse snapshot;
    if (watch->Read(&snapshot)) {
      std::printf("  Watch snapshot: %d reservations\n",
                  snapshot.reservations_size());
    }
    c.TryCancel();
    watch->Finish();
  }
  // The agent gives a large answer's memory back within 2 s (HeapTrimmer).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const int64_t full = StatusKib(pid, "VmRSS");
  const int64_t peak = StatusKib(pid, "VmHWM");
  std::printf(
      "memory of devmem-agent (pid %d):\n"
      "  idle VmRSS %.1f MiB (anonymous %.1f, shared libraries %.1f)\n"
      "  with %d reservations (made in %.1f s, %.0f/s; ListReservations of "
      "%zu x3 and a Watch snapshot) VmRSS %.1f MiB (anonymous %.1f), VmHWM "
      "%.1f MiB (goal < 32 MiB)\n",
      pid, static_cast<double>(idle) / 1024,
      static_cast<double>(idle_anon) / 1024,
      static_cast<double>(idle_file) / 1024, fill, fill_s,
      static_cast<double>(fill) / fill_s, listed,
      static_cast<double>(full) / 1024,
      static_cast<double>(StatusKib(pid, "RssAnon")) / 1024,
      static_cast<double>(peak) / 1024);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fleet.v1 latency and agent memory; run by bench/fleet_bench.py");
  absl::ParseCommandLine(argc, argv);
  const std::string pki = absl::GetFlag(FLAGS_pki);
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(pki + "/ca.pem");
  tls.pem_private_key = ReadFile(pki + "/launcher.key");
  tls.pem_cert_chain = ReadFile(pki + "/launcher.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("devmem-agent");
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                           grpc::SslCredentials(tls), args);
  auto stub = fleet::v1::Fleet::NewStub(channel);
  const std::vector<std::string> nics =
      absl::StrSplit(absl::GetFlag(FLAGS_nics), ',');

  if (absl::GetFlag(FLAGS_phase) == "memory") {
    return Memory(stub.get(), nics);
  }
  // 1. Latency.
  std::vector<double> host_us, reserve_us, release_us;
  const int warmup = absl::GetFlag(FLAGS_warmup);
  const int n = absl::GetFlag(FLAGS_iterations);
  for (int i = 0; i < warmup + n; ++i) {
    grpc::ClientContext c1, c2, c3;
    fleet::v1::Host host;
    auto t0 = Clock::now();
    if (!Ok(stub->GetHost(&c1, {}, &host), "GetHost")) return 1;
    auto t1 = Clock::now();
    devmem::v1::ReserveResponse made;
    if (!Ok(stub->Reserve(&c2, Ask("bench-latency", nics[0]), &made),
            "Reserve")) {
      return 1;
    }
    auto t2 = Clock::now();
    fleet::v1::ReleaseRequest rel;
    rel.set_id(made.reservation().id());
    devmem::v1::ReleaseReservationResponse gone;
    if (!Ok(stub->Release(&c3, rel, &gone), "Release")) return 1;
    auto t3 = Clock::now();
    if (i < warmup) continue;
    host_us.push_back(Micros(t0, t1));
    reserve_us.push_back(Micros(t1, t2));
    release_us.push_back(Micros(t2, t3));
  }
  const double host50 = Percentile(host_us, 0.5);
  const double res50 = Percentile(reserve_us, 0.5);
  std::printf("latency over mTLS 1.3, agent -> devmemd (%d iterations):\n", n);
  std::printf("  GetHost  p50 %8.1f us  p99 %8.1f us  (baseline)\n", host50,
              Percentile(host_us, 0.99));
  std::printf("  Reserve  p50 %8.1f us  p99 %8.1f us\n", res50,
              Percentile(reserve_us, 0.99));
  std::printf("  Release  p50 %8.1f us  p99 %8.1f us\n",
              Percentile(release_us, 0.5), Percentile(release_us, 0.99));
  std::printf("  ratio Reserve p50 / GetHost p50 = %.2f (goal <= 3)\n",
              res50 / host50);

  const std::string dir = absl::GetFlag(FLAGS_journal_dir);
  if (!dir.empty()) {
    const double sync50 = FdatasyncP50(dir);
    std::printf(
        "  write+fdatasync p50 on the journal's disk %8.1f us (Reserve and "
        "Release each wait for one)\n",
        sync50);
  }
  return 0;
}
