// handoff_bench: what does taking a socket from devmemd cost a workload?
//
//  1. Throughput. Two network namespaces joined by a veth pair; devmemd runs
//     in namespace A. The bench receives --bytes from pattern_peer (in B) on
//     (a) a listening socket handed over by devmemd (Session::Listen) and
//     (b) one it opened itself with the same options. Rounds alternate
//     a,b,b,a,... so drift hits both alike; medians and their ratio are
//     printed. Once accepted, a handed socket is an ordinary kernel socket, so
//     the ratio should be ~1.0 (goal >= 0.98).
//  2. Hand-off latency: Session::Listen (gRPC Listen + Redeem on the session
//     socket, fd received) against a bare unary gRPC call (GetStatus) on the
//     same channel, interleaved, on `lo` in namespace A (goal p50 <= 3x).
//
// Figures only: nothing here asserts on timings. Needs root (namespaces,
// veth); without it the bench prints why and exits 0. Everything it creates
// (devmemd, sender, namespaces, runtime dir) is removed on exit, on errors and
// on SIGINT/SIGTERM/SIGHUP.
//
//   bazel run //bench:handoff_bench -- --bytes=268435456 --rounds=5
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/libdevmem.h"
#include "client/pattern.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_env.h"
#include "bench/runfiles_path.h"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(std::string, devmemd, "",
          "Path of the devmemd binary. Empty: the runfiles copy (bazel run), "
          "else $BUILD_WORKSPACE_DIRECTORY/bazel-bin/daemon/devmemd, else "
          "bazel-bin/daemon/devmemd.");
ABSL_FLAG(std::string, pattern_peer, "",
          "Path of the pattern_peer binary; same defaults as --devmemd "
          "(tests/tools/pattern_peer).");
ABSL_FLAG(uint64_t, bytes, uint64_t{256} << 20,
          "Throughput: bytes received per round.");
ABSL_FLAG(
    int, rounds, 10,
    "Throughput: measured rounds per mode (after one warm-up round each).");
ABSL_FLAG(bool, verify, false,
          "Throughput: check every received byte against the pattern (costs "
          "receiver CPU, equally in both modes).");
ABSL_FLAG(bool, pin, true,
          "Throughput: pin the receiver (this thread) and the sender to two "
          "different CPUs. On small machines where they otherwise share or "
          "swap CPUs, round-to-round spread drops a lot.");
ABSL_FLAG(int, iterations, 2000, "Latency: measured iterations per call.");
ABSL_FLAG(int, warmup, 200, "Latency: warm-up iterations per call.");
ABSL_FLAG(bool, throughput, true, "Run the throughput benchmark.");
ABSL_FLAG(bool, latency, true, "Run the hand-off latency benchmark.");

namespace devmem {
namespace bench {
namespace {

// Same receive size as pattern_peer's receiver.
constexpr size_t kRecvChunk = size_t{1} << 20;
constexpr int kDirectBacklog = 128;  // devmemd's default_backlog
constexpr absl::Duration kStallTimeout = absl::Seconds(30);

// ---------------------------------------------------------------------------
// Throughput.

enum class Mode { kHanded, kDirect };

const char* ModeName(Mode mode) {
  return mode == Mode::kHanded ? "handed" : "direct";
}

// What a fair comparison needs to be equal on the accepted sockets.
struct SocketTraits {
  int rcvbuf = 0;
  int sndbuf = 0;
  int maxseg = 0;
  int nodelay = 0;
  int reuseaddr = 0;
  std::string device;
  std::string congestion;

  std::string ToString() const {
    return absl::StrFormat(
        "SO_BINDTODEVICE=%s SO_RCVBUF=%d SO_SNDBUF=%d SO_REUSEADDR=%d "
        "TCP_MAXSEG=%d TCP_NODELAY=%d TCP_CONGESTION=%s",
        device, rcvbuf, sndbuf, reuseaddr, maxseg, nodelay, congestion);
  }
  bool operator==(const SocketTraits& o) const {
    return rcvbuf == o.rcvbuf && sndbuf == o.sndbuf && maxseg == o.maxseg &&
           nodelay == o.nodelay && reuseaddr == o.reuseaddr &&
           device == o.device && congestion == o.congestion;
  }
};

SocketTraits TraitsOf(int fd) {
  SocketTraits t;
  auto get_int = [fd](int level, int name) {
    int v = -1;
    socklen_t len = sizeof(v);
    ::getsockopt(fd, level, name, &v, &len);
    return v;
  };
  t.rcvbuf = get_int(SOL_SOCKET, SO_RCVBUF);
  t.sndbuf = get_int(SOL_SOCKET, SO_SNDBUF);
  t.reuseaddr = get_int(SOL_SOCKET, SO_REUSEADDR);
  t.maxseg = get_int(IPPROTO_TCP, TCP_MAXSEG);
  t.nodelay = get_int(IPPROTO_TCP, TCP_NODELAY);
  char buf[IFNAMSIZ + 16] = {};
  socklen_t len = sizeof(buf);
  if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, buf, &len) == 0) {
    t.device.assign(buf, strnlen(buf, len));
  }
  char cc[32] = {};
  len = sizeof(cc);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) == 0) {
    t.congestion.assign(cc, strnlen(cc, len));
  }
  if (t.device.empty()) t.device = "(none)";
  return t;
}

// The listening socket devmemd would create (daemon/session/socket_broker.cc,
// CreateBoundListener), opened by the bench itself.
absl::StatusOr<UniqueFd> DirectListener() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) return ErrnoStatus(errno, "socket");
  if (::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, kNicA,
                   sizeof(kNicA) - 1) != 0) {
    return ErrnoStatus(errno, "SO_BINDTODEVICE");
  }
  int one = 1;
  ::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ::inet_pton(AF_INET, kIpA, &addr.sin_addr);
  if (::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
             sizeof(addr)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind ", kIpA));
  }
  if (::listen(fd.get_unowned(), kDirectBacklog) != 0) {
    return ErrnoStatus(errno, "listen");
  }
  return fd;
}

absl::StatusOr<UniqueFd> HandedListener(Session& session) {
  ListenOptions options;
  options.nic = kNicA;
  options.ip = kIpA;
  options.port = 0;
  absl::StatusOr<SocketHandle> handle = session.Listen(options);
  if (!handle.ok()) return handle.status();
  return std::move(handle->fd);
}

// Pins the calling thread (the receiver) to the first usable CPU and names a
// second one for the sender; restores the thread's mask when destroyed.
class ScopedPin {
 public:
  explicit ScopedPin(bool enable) {
    if (!enable) return;
    CPU_ZERO(&saved_);
    if (::sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
      if (CPU_ISSET(c, &saved_)) cpus.push_back(c);
    }
    if (cpus.size() < 2) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[0], &one);
    if (::sched_setaffinity(0, sizeof(one), &one) != 0) return;
    receiver_cpu_ = cpus[0];
    sender_cpu_ = cpus[1];
  }
  ~ScopedPin() {
    if (pinned()) ::sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

  bool pinned() const { return receiver_cpu_ >= 0; }
  int receiver_cpu() const { return receiver_cpu_; }
  int sender_cpu() const { return sender_cpu_; }

 private:
  cpu_set_t saved_;
  int receiver_cpu_ = -1;
  int sender_cpu_ = -1;
};

struct RoundResult {
  double gbps = 0;
  SocketTraits traits;
};

class ThroughputBench {
 public:
  ThroughputBench(Session& session, std::string pattern_peer,
                  std::string netns_b, uint64_t bytes, bool verify,
                  int sender_cpu)
      : session_(session),
        pattern_peer_(std::move(pattern_peer)),
        netns_b_(std::move(netns_b)),
        bytes_(bytes),
        verify_(verify),
        sender_cpu_(sender_cpu),
        buf_(kRecvChunk) {}

  absl::StatusOr<RoundResult> Round(Mode mode) {
    absl::StatusOr<UniqueFd> listener =
        mode == Mode::kHanded ? HandedListener(session_) : DirectListener();
    if (!listener.ok()) return listener.status();
    struct sockaddr_in local = {};
    socklen_t len = sizeof(local);
    if (::getsockname(listener->get_unowned(),
                      reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      return ErrnoStatus(errno, "getsockname");
    }
    const int port = ntohs(local.sin_port);
    // Options as set on the listener, before autotuning touches anything;
    // accepted sockets inherit them.
    const SocketTraits traits = TraitsOf(listener->get_unowned());

    absl::StatusOr<pid_t> sender =
        Spawn({"ip", "netns", "exec", netns_b_, pattern_peer_, "send",
               absl::StrCat("--to=", kIpA, ":", port),
               absl::StrCat("--bytes=", bytes_)},
              /*stdout_to_null=*/true, sender_cpu_);
    if (!sender.ok()) return sender.status();
    TheCleanup().SetSender(*sender);
    absl::StatusOr<RoundResult> result = Receive(*std::move(listener), *sender);
    absl::StatusOr<int> w = WaitExit(*sender, kStallTimeout);
    if (!w.ok()) {
      ::kill(*sender, SIGKILL);
      (void)WaitExit(*sender, kStallTimeout);
    }
    TheCleanup().SetSender(-1);
    if (!result.ok()) return result.status();
    result->traits = traits;
    if (!w.ok()) return w.status();
    if (!WIFEXITED(*w) || WEXITSTATUS(*w) != 0) {
      return absl::InternalError(
          absl::StrCat("pattern_peer send ended with ", DescribeWait(*w)));
    }
    return result;
  }

 private:
  absl::StatusOr<RoundResult> Receive(UniqueFd listener, pid_t sender) {
    UniqueFd sender_fd = PidFd(sender);
    struct pollfd pfds[2] = {{listener.get_unowned(), POLLIN, 0},
                             {sender_fd.get_unowned(), POLLIN, 0}};
    const int n =
        ::poll(pfds, sender_fd ? 2 : 1,
               static_cast<int>(absl::ToInt64Milliseconds(kStallTimeout)));
    if (n == 0) return absl::DeadlineExceededError("no connection from sender");
    if (n < 0) return ErrnoStatus(errno, "poll(listener)");
    if ((pfds[0].revents & POLLIN) == 0) {
      return absl::InternalError(
          "pattern_peer send exited before connecting (see its messages)");
    }
    UniqueFd conn(
        ::accept4(listener.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return ErrnoStatus(errno, "accept4");
    listener.Reset();
    // Only to turn a stalled sender into an error; both modes alike.
    struct timeval tv = {absl::ToInt64Seconds(kStallTimeout), 0};
    ::setsockopt(conn.get_unowned(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    RoundResult result;
    uint64_t got = 0;
    const Clock::time_point start = Clock::now();
    for (;;) {
      const ssize_t r = ::recv(conn.get_unowned(), buf_.data(), buf_.size(), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ErrnoStatus(errno, "recv");
      if (r == 0) break;
      if (verify_) {
        const int64_t bad = FirstPatternMismatch(
            got, absl::MakeConstSpan(buf_.data(), static_cast<size_t>(r)));
        if (bad >= 0) {
          return absl::DataLossError(
              absl::StrCat("pattern mismatch at stream offset ", got + bad));
        }
      }
      got += static_cast<uint64_t>(r);
    }
    const double secs =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (got != bytes_) {
      return absl::DataLossError(
          absl::StrCat("received ", got, " bytes, expected ", bytes_));
    }
    result.gbps = static_cast<double>(got) * 8 / secs / 1e9;
    return result;
  }

  Session& session_;
  const std::string pattern_peer_;
  const std::string netns_b_;
  const uint64_t bytes_;
  const bool verify_;
  const int sender_cpu_;  // -1: not pinned
  std::vector<char> buf_;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

struct ThroughputFigures {
  // handed[i] and direct[i] ran back to back (round i).
  std::vector<double> handed;
  std::vector<double> direct;
  SocketTraits handed_traits;
  SocketTraits direct_traits;
  std::string loadavg_before;
  std::string loadavg_after;

  // Median of the per-round ratios: robust against load that drifts over the
  // run (each pair shares the conditions of its moment).
  double MedianPairRatio() const {
    std::vector<double> r;
    for (size_t i = 0; i < handed.size() && i < direct.size(); ++i) {
      if (direct[i] > 0) r.push_back(handed[i] / direct[i]);
    }
    return Median(std::move(r));
  }
};

// The first three fields of /proc/loadavg: other work on the machine shows
// up as round-to-round spread, so the summary prints it.
std::string LoadAverage() {
  std::string out = "?";
  UniqueFd fd(::open("/proc/loadavg", O_RDONLY | O_CLOEXEC));
  char buf[128] = {};
  if (fd && ::read(fd.get_unowned(), buf, sizeof(buf) - 1) > 0) {
    std::vector<std::string> parts = absl::StrSplit(buf, ' ');
    if (parts.size() >= 3) {
      out = absl::StrJoin(parts.begin(), parts.begin() + 3, " ");
    }
  }
  return out;
}

absl::StatusOr<ThroughputFigures> RunThroughput(ThroughputBench& bench,
                                                int rounds) {
  ThroughputFigures f;
  f.loadavg_before = LoadAverage();
  // Warm-up: one unmeasured round each (ARP, page cache of the binaries,
  // devmemd's first Listen).
  for (Mode mode : {Mode::kHanded, Mode::kDirect}) {
    absl::StatusOr<RoundResult> r = bench.Round(mode);
    if (!r.ok()) return r.status();
    std::printf("  warm-up  %s %7.2f Gbit/s\n", ModeName(mode), r->gbps);
    (mode == Mode::kHanded ? f.handed_traits : f.direct_traits) = r->traits;
  }
  for (int i = 0; i < rounds; ++i) {
    // a,b then b,a: a slow drift (thermal, other load) hits both equally.
    const Mode first = i % 2 == 0 ? Mode::kHanded : Mode::kDirect;
    const Mode second = i % 2 == 0 ? Mode::kDirect : Mode::kHanded;
    for (Mode mode : {first, second}) {
      absl::StatusOr<RoundResult> r = bench.Round(mode);
      if (!r.ok()) return r.status();
      std::printf("  round %d  %s %7.2f Gbit/s\n", i + 1, ModeName(mode),
                  r->gbps);
      std::fflush(stdout);
      (mode == Mode::kHanded ? f.handed : f.direct).push_back(r->gbps);
    }
  }
  f.loadavg_after = LoadAverage();
  return f;
}

// ---------------------------------------------------------------------------
// Hand-off latency.

struct LatencyStats {
  double p50 = 0;
  double p99 = 0;
  double mean = 0;
};

LatencyStats Summarize(std::vector<double> us) {
  LatencyStats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto rank = [&us](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(us.size()));
    return us[std::min(i, us.size() - 1)];
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  double sum = 0;
  for (double v : us) sum += v;
  s.mean = sum / static_cast<double>(us.size());
  return s;
}

struct LatencyFigures {
  LatencyStats listen;      // Session::Listen: RPC + Redeem, fd in hand
  LatencyStats unary;       // Session::GetStatus
  LatencyStats listen_rpc;  // breakdown: the Listen RPC alone
  LatencyStats redeem;      // breakdown: Redeem on the session socket
  int iterations = 0;
  int warmup = 0;
};

class LatencyBench {
 public:
  explicit LatencyBench(Session& session) : session_(session) {
    options_.nic = "lo";
    options_.ip = "127.0.0.1";
    options_.port = 0;
  }

  absl::StatusOr<LatencyFigures> Run(int warmup, int iterations) {
    std::vector<double> listen, unary, listen_rpc, redeem;
    for (auto* v : {&listen, &unary, &listen_rpc, &redeem}) {
      v->reserve(static_cast<size_t>(iterations));
    }
    for (int i = 0; i < warmup + iterations; ++i) {
      const bool keep = i >= warmup;
      // Interleaved, so both calls see the same daemon and CPU state.
      const Clock::time_point t0 = Clock::now();
      absl::StatusOr<SocketHandle> handle = session_.Listen(options_);
      const Clock::time_point t1 = Clock::now();
      if (!handle.ok()) return handle.status();
      handle->fd.Reset();  // closed outside the timed region

      const Clock::time_point t2 = Clock::now();
      absl::StatusOr<devmem::v1::GetStatusResponse> status =
          session_.GetStatus();
      const Clock::time_point t3 = Clock::now();
      if (!status.ok()) return status.status();
      if (keep) {
        listen.push_back(MicrosSince(t0, t1));
        unary.push_back(MicrosSince(t2, t3));
      }

      absl::StatusOr<std::pair<double, double>> parts = SplitListen();
      if (!parts.ok()) return parts.status();
      if (keep) {
        listen_rpc.push_back(parts->first);
        redeem.push_back(parts->second);
      }
    }
    LatencyFigures f;
    f.listen = Summarize(std::move(listen));
    f.unary = Summarize(std::move(unary));
    f.listen_rpc = Summarize(std::move(listen_rpc));
    f.redeem = Summarize(std::move(redeem));
    f.iterations = iterations;
    f.warmup = warmup;
    return f;
  }

 private:
  // The two halves of Session::Listen, timed apart: the raw Listen RPC (with
  // the same deadline handling as Session) and the Redeem exchange.
  absl::StatusOr<std::pair<double, double>> SplitListen() {
    devmem::v1::ListenRequest request;
    request.set_session_token(session_.session_token());
    request.set_nic(options_.nic);
    request.mutable_local()->set_ip(options_.ip);
    request.mutable_local()->set_port(options_.port);
    devmem::v1::SocketResponse response;
    grpc::ClientContext context;
    const Clock::time_point t0 = Clock::now();
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status rpc = session_.stub()->Listen(&context, request, &response);
    const Clock::time_point t1 = Clock::now();
    if (!rpc.ok()) {
      return absl::InternalError(
          absl::StrCat("Listen RPC failed: ", rpc.error_message()));
    }
    absl::StatusOr<UniqueFd> fd = session_.Redeem(response.ticket());
    const Clock::time_point t2 = Clock::now();
    if (!fd.ok()) return fd.status();
    return std::make_pair(MicrosSince(t0, t1), MicrosSince(t1, t2));
  }

  Session& session_;
  ListenOptions options_;
};

// ---------------------------------------------------------------------------

void PrintLatencyLine(const char* name, const LatencyStats& s) {
  std::printf("  %-34s p50 %8.1f us   p99 %8.1f us   mean %8.1f us\n", name,
              s.p50, s.p99, s.mean);
}

// The figures of both benchmarks, with their ratios and the goals.
void PrintSummary(const std::optional<ThroughputFigures>& tput,
                  const std::optional<LatencyFigures>& lat, uint64_t bytes,
                  int rounds) {
  std::printf(
      "\n==================== handoff_bench summary ====================\n");
  if (tput.has_value()) {
    const double handed = Median(tput->handed);
    const double direct = Median(tput->direct);
    std::printf(
        "throughput over veth (%s -> %s), %llu MiB x %d rounds each, "
        "median:\n",
        kNicB, kNicA, static_cast<unsigned long long>(bytes >> 20), rounds);
    std::printf(
        "  handed (devmemd Listen)  %7.2f Gbit/s   rounds: %s\n", handed,
        absl::StrJoin(tput->handed, " ", [](std::string* out, double v) {
          absl::StrAppendFormat(out, "%.2f", v);
        }).c_str());
    std::printf(
        "  direct (own socket)      %7.2f Gbit/s   rounds: %s\n", direct,
        absl::StrJoin(tput->direct, " ", [](std::string* out, double v) {
          absl::StrAppendFormat(out, "%.2f", v);
        }).c_str());
    std::printf("  ratio handed/direct      %7.3f   (goal >= 0.98)\n",
                direct > 0 ? handed / direct : 0.0);
    std::printf(
        "  median of per-round ratios %5.3f   (same pairs; robust to "
        "drift)\n",
        tput->MedianPairRatio());
    std::printf("  load average before/after: %s / %s  (%d CPUs online)\n",
                tput->loadavg_before.c_str(), tput->loadavg_after.c_str(),
                static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
    std::printf(
        "  listening socket options %s:\n    handed: %s\n    direct: %s\n",
        tput->handed_traits == tput->direct_traits ? "identical" : "DIFFER",
        tput->handed_traits.ToString().c_str(),
        tput->direct_traits.ToString().c_str());
  }
  if (lat.has_value()) {
    std::printf("hand-off latency (lo, %d iterations after %d warm-up):\n",
                lat->iterations, lat->warmup);
    PrintLatencyLine("Session::Listen (RPC + Redeem + fd)", lat->listen);
    PrintLatencyLine("GetStatus (bare unary RPC)", lat->unary);
    PrintLatencyLine("  breakdown: Listen RPC alone", lat->listen_rpc);
    PrintLatencyLine("  breakdown: Redeem (session sock)", lat->redeem);
    std::printf("  ratio listen_p50/unary_p50  %.2fx   (goal <= 3x)\n",
                lat->unary.p50 > 0 ? lat->listen.p50 / lat->unary.p50 : 0.0);
  }
  std::printf(
      "================================================================\n");
}

absl::Status RunBench(int argc, char** argv) {
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv[0], &error));
  const std::string devmemd = Executable(absl::GetFlag(FLAGS_devmemd),
                                         runfiles.get(), "daemon/devmemd");
  const std::string pattern_peer =
      Executable(absl::GetFlag(FLAGS_pattern_peer), runfiles.get(),
                 "tests/tools/pattern_peer");
  (void)argc;
  for (const std::string& p : {devmemd, pattern_peer}) {
    if (::access(p.c_str(), X_OK) != 0) {
      return ErrnoStatus(errno, absl::StrCat(p,
                                             " (build it, or pass --devmemd "
                                             "/ --pattern_peer)"));
    }
  }
  const uint64_t bytes = absl::GetFlag(FLAGS_bytes);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int iterations = absl::GetFlag(FLAGS_iterations);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  if (bytes == 0 || rounds < 1 || iterations < 1 || warmup < 0) {
    return absl::InvalidArgumentError(
        "--bytes, --rounds and --iterations must be positive");
  }
  std::printf("handoff_bench: devmemd=%s\n               pattern_peer=%s\n",
              devmemd.c_str(), pattern_peer.c_str());

  absl::StatusOr<Netns> ns = CreateVethPair();
  if (!ns.ok()) return ns.status();
  std::printf("namespaces %s (%s %s/%d) <-> %s (%s %s/%d)\n", ns->a.c_str(),
              kNicA, kIpA, kPrefixLen, ns->b.c_str(), kNicB, kIpB, kPrefixLen);
  if (absl::Status s = EnterNetns(ns->a); !s.ok()) return s;

  const std::string runtime_dir =
      absl::StrCat("/tmp/devmemd-bench-", ::getpid());
  absl::StatusOr<std::unique_ptr<Session>> session =
      StartDaemon(devmemd, ns->a, runtime_dir);
  if (!session.ok()) return session.status();
  std::printf("devmemd up in %s, runtime dir %s, session %llu\n", ns->a.c_str(),
              runtime_dir.c_str(),
              static_cast<unsigned long long>((*session)->session_id()));
  std::fflush(stdout);

  std::optional<ThroughputFigures> tput;
  if (absl::GetFlag(FLAGS_throughput)) {
    std::printf("\n[1] throughput, %llu bytes per round, pattern check %s\n",
                static_cast<unsigned long long>(bytes),
                absl::GetFlag(FLAGS_verify) ? "on" : "off");
    ScopedPin pin(absl::GetFlag(FLAGS_pin));
    if (pin.pinned()) {
      std::printf("receiver pinned to CPU %d, sender to CPU %d\n",
                  pin.receiver_cpu(), pin.sender_cpu());
    } else {
      std::printf("not pinned (--pin=false or fewer than 2 usable CPUs)\n");
    }
    ThroughputBench bench(**session, pattern_peer, ns->b, bytes,
                          absl::GetFlag(FLAGS_verify), pin.sender_cpu());
    absl::StatusOr<ThroughputFigures> f = RunThroughput(bench, rounds);
    if (!f.ok()) return f.status();
    tput = *std::move(f);
  }

  std::optional<LatencyFigures> lat;
  if (absl::GetFlag(FLAGS_latency)) {
    std::printf(
        "\n[2] hand-off latency on lo (127.0.0.1, port 0), %d "
        "warm-up + %d measured iterations, interleaved\n",
        warmup, iterations);
    std::fflush(stdout);
    LatencyBench bench(**session);
    absl::StatusOr<LatencyFigures> f = bench.Run(warmup, iterations);
    if (!f.ok()) return f.status();
    lat = *std::move(f);
  }
  session->reset();

  PrintSummary(tput, lat, bytes, rounds);
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace
}  // namespace bench
}  // namespace devmem

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "handoff_bench: throughput over a devmemd-handed socket vs a direct one "
      "(veth pair between two namespaces) and hand-off latency vs a unary "
      "gRPC call. Needs root. See bench/README.md.");
  absl::ParseCommandLine(argc, argv);
  if (::geteuid() != 0) {
    std::printf(
        "handoff_bench: SKIPPED: needs root (creates network namespaces and a "
        "veth pair, and starts devmemd); euid is %d\n",
        static_cast<int>(::geteuid()));
    return 0;
  }
  devmem::bench::StartSignalThread();
  absl::Status status = devmem::bench::RunBench(argc, argv);
  devmem::bench::TheCleanup().Run();
  if (!status.ok()) {
    absl::FPrintF(stderr, "handoff_bench: FAILED: %s: %s\n",
                  absl::StatusCodeToString(status.code()), status.message());
    return 1;
  }
  return 0;
}
