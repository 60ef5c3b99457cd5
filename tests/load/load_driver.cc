// load_driver: the client side of the devmemd load test and load bench. A
// separate process (exec'd by the test or bench, never forked from a process
// that already used gRPC) so the daemon's figures are not mixed with the
// client's, and so the test process needs no 10k-fd table of its own.
//
//   load_driver --runtime_dir=DIR [--sessions=1000 --sockets=8 --connects=2]
//       Opens --sessions concurrent devmemd sessions from --threads threads and
//       takes --sockets sockets in each: --connects of them Connect to a plain
//       listener of this process on 127.0.0.1, the rest Listen on 127.0.0.1
//       port 0; all on NIC lo. Every fd received is checked (a TCP socket of
//       the right state, port and device, close-on-exec). Prints one line
//         OPENED sessions=N sockets=N listen=N connect=N bad=N wall_us=N
//       (after "FAIL <n>x <what>" lines, one per kind of failure) and waits
//       for "close" on stdin; then closes every socket and session and prints
//         CLOSED wall_us=N
//       and exits at EOF (or "exit") on stdin.
//       With --steer each session first binds a memfd (BindRx, NIC lo, 1
//       queue) and every socket is steered to that binding (an ntuple rule
//       each; the daemon needs a simulated devmem NIC on lo). With --batch
//       each session takes all of its sockets with Session::OpenSocketsEach
//       (its tickets redeemed with RedeemMany, each socket checked as it
//       arrives) instead of one Listen or Connect
//       call per socket. The OPENED line also has journal_syncs=N (the
//       daemon's fdatasyncs while the sockets were opened, from GetStatus;
//       -1 if unknown), syncs_before/syncs_after (the counter itself), and
//       start_us/end_us (Unix time of the first Session::Open and of the
//       last socket checked, to line up several drivers).
//   load_driver --direct [--sessions ...]
//       The baseline: the same number and mix of sockets opened and checked by
//       this process itself (socket, SO_BINDTODEVICE lo, bind, listen /
//       connect), no daemon. Prints "DIRECT sockets=N ... wall_us=N", then
//       behaves as above.
//   --wait_go (either mode): get ready (fd limit, listener, the daemon's
//       sync counter), print "READY", and start only on "go" from stdin, so
//       that a bench can start several drivers at the same moment.
//
// Raises its own RLIMIT_NOFILE soft limit as far as the hard limit allows;
// prints "SKIP <why>" and exits 3 if that is not enough for the load. Exit
// status 0 when every step worked (bad=0), 1 otherwise, 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"
#include "tests/load/daemon_status.h"

ABSL_FLAG(std::string, runtime_dir, "", "devmemd's runtime directory.");
ABSL_FLAG(int, sessions, 1000, "Concurrent sessions.");
ABSL_FLAG(int, sockets, 8, "Sockets per session.");
ABSL_FLAG(int, connects, 2,
          "Of --sockets, how many are Connect (to a local listener); the rest "
          "are Listen.");
ABSL_FLAG(int, threads, 8, "Client threads opening sessions in parallel.");
ABSL_FLAG(bool, direct, false,
          "Baseline: open the same sockets without devmemd.");
ABSL_FLAG(std::string, nic, "lo", "NIC the sockets are bound to.");
ABSL_FLAG(bool, steer, false,
          "Each session binds a memfd to NIC lo (BindRx, 1 queue) and every "
          "socket is steered to that binding.");
ABSL_FLAG(bool, batch, false,
          "Take each session's sockets with one Session::OpenSockets instead "
          "of one Listen/Connect call per socket.");
ABSL_FLAG(bool, wait_go, false,
          "Print READY once set up and wait for \"go\" on stdin.");
ABSL_FLAG(bool, connection_per_session, false,
          "Give every session its own gRPC connection (a channel with a local "
          "subchannel pool), as sessions of separate workload processes "
          "have. By default the channels of one process share one "
          "connection, as gRPC does.");

namespace devmem {
namespace {

constexpr char kIp[] = "127.0.0.1";

// A failure report shared by all threads: the count, and each distinct kind
// of failure (digits ignored: fds and ports differ) with its first text.
class Failures {
 public:
  void Add(const std::string& what) ABSL_LOCKS_EXCLUDED(mu_) {
    std::string kind;
    for (char ch : what) {
      if (ch < '0' || ch > '9') {
        kind += ch;
      } else if (kind.empty() || kind.back() != '#') {
        kind += '#';
      }
    }
    absl::MutexLock lock(&mu_);
    ++count_;
    auto [it, fresh] = kinds_.try_emplace(kind, Kind{0, what});
    ++it->second.count;
  }
  int count() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return count_;
  }
  // "FAIL <n>x <first text>", for up to 10 kinds.
  void Print() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    int shown = 0;
    for (const auto& [kind, k] : kinds_) {
      if (++shown > 10) break;
      std::printf("FAIL %dx %s\n", k.count, k.first.c_str());
    }
  }

 private:
  struct Kind {
    int count;
    std::string first;
  };
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Kind> kinds_ ABSL_GUARDED_BY(mu_);
};

int IntOpt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// Empty if `fd` is a close-on-exec IPv4 TCP socket bound to `nic` on kIp that
// is listening on `port` (listen) or connected to kIp:`port` (connect);
// otherwise what is wrong.
std::string CheckSocket(int fd, bool listening, uint16_t port,
                        const std::string& nic) {
  if (IntOpt(fd, SOL_SOCKET, SO_DOMAIN) != AF_INET ||
      IntOpt(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
      IntOpt(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) {
    return absl::StrCat("fd ", fd, " is not an IPv4 TCP socket");
  }
  if ((::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) {
    return absl::StrCat("fd ", fd, " arrived without FD_CLOEXEC");
  }
  char dev[IFNAMSIZ + 1] = {};
  socklen_t len = IFNAMSIZ;
  if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) != 0 ||
      nic != dev) {
    return absl::StrCat("fd ", fd, " is bound to device \"", dev, "\", not ",
                        nic);
  }
  sockaddr_in local{};
  len = sizeof(local);
  char ip[INET_ADDRSTRLEN] = {};
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0 ||
      ::inet_ntop(AF_INET, &local.sin_addr, ip, sizeof(ip)) == nullptr ||
      std::string(ip) != kIp || local.sin_port == 0) {
    return absl::StrCat("fd ", fd, " has local address ", ip, ":",
                        ntohs(local.sin_port));
  }
  tcp_info info{};
  len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return absl::StrCat("fd ", fd, ": TCP_INFO: ", std::strerror(errno));
  }
  if (listening) {
    if (IntOpt(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1 ||
        info.tcpi_state != TCP_LISTEN) {
      return absl::StrCat("fd ", fd, " is not listening (tcp state ",
                          info.tcpi_state, ")");
    }
    if (ntohs(local.sin_port) != port) {
      return absl::StrCat("fd ", fd, " listens on port ", ntohs(local.sin_port),
                          ", the daemon said ", port);
    }
    return "";
  }
  sockaddr_in peer{};
  len = sizeof(peer);
  if (info.tcpi_state != TCP_ESTABLISHED ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    return absl::StrCat("fd ", fd, " is not connected (tcp state ",
                        info.tcpi_state, ")");
  }
  if (ntohs(peer.sin_port) != port) {
    return absl::StrCat("fd ", fd, " is connected to port ",
                        ntohs(peer.sin_port), ", expected ", port);
  }
  return "";
}

// Closes `fds` with an RST instead of a FIN (SO_LINGER 0): no TIME_WAIT is
// left behind, so the local port range does not fill up over a bench's
// rounds (thousands of TIME_WAIT sockets make every later bind to port 0
// search longer, directly or in devmemd alike).
void CloseWithReset(std::vector<UniqueFd>& fds) {
  const linger reset{1, 0};
  for (UniqueFd& fd : fds) {
    ::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_LINGER, &reset,
                 sizeof(reset));
  }
  fds.clear();
}

// A plain listener on kIp:0 for the Connect half of the load, and a thread
// that accepts (and keeps) every connection so the accept queue never fills.
class Acceptor {
 public:
  Acceptor() {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, kIp, &a.sin_addr);
    if (::bind(fd_.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
            0 ||
        ::listen(fd_.get_unowned(), 4096) != 0) {
      std::fprintf(stderr, "load_driver: listener: %s\n", std::strerror(errno));
      fd_.Reset();
      return;
    }
    port_ = LocalPort(fd_.get_unowned());
    stop_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    thread_ = std::thread([this] { Loop(); });
  }
  ~Acceptor() {
    if (thread_.joinable()) {
      uint64_t one = 1;
      (void)!::write(stop_.get_unowned(), &one, sizeof(one));
      thread_.join();
    }
  }
  uint16_t port() const { return port_; }
  // Closes the accepted ends.
  void Drop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    CloseWithReset(accepted_);
  }

 private:
  void Loop() {
    for (;;) {
      pollfd p[2] = {{fd_.get_unowned(), POLLIN, 0},
                     {stop_.get_unowned(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[1].revents != 0) return;
      UniqueFd c(::accept4(fd_.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      absl::MutexLock lock(&mu_);
      accepted_.push_back(std::move(c));
    }
  }

  UniqueFd fd_;
  UniqueFd stop_;
  uint16_t port_ = 0;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<UniqueFd> accepted_ ABSL_GUARDED_BY(mu_);
};

struct Config {
  std::string runtime_dir;
  std::string nic;
  int sessions = 0;
  int sockets = 0;
  int connects = 0;
  int threads = 0;
  bool connection_per_session = false;
  bool steer = false;
  bool batch = false;
  bool wait_go = false;
};

// What one session (or, in direct mode, one group of sockets) holds.
struct Slot {
  std::unique_ptr<Session> session;
  std::vector<UniqueFd> fds;
};

// Runs body(i) for i in [0, n) on `threads` threads (strided).
template <typename F>
void ParallelFor(int n, int threads, F body) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = t; i < n; i += threads) body(i);
    });
  }
  for (auto& th : pool) th.join();
}

// Session::Open, but on a gRPC channel of its own: a local subchannel pool
// keeps gRPC from sharing one connection between the channels of this
// process, so the daemon sees one connection per session.
absl::StatusOr<std::unique_ptr<Session>> OpenWithOwnConnection(
    const SessionOptions& so) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = absl::StrCat(so.runtime_dir, "/session.sock");
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                sizeof(addr)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("connect ", path, ": ", std::strerror(errno)));
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(
      absl::StrCat("unix:", so.runtime_dir, "/grpc.sock"),
      grpc::InsecureChannelCredentials(), args);
  return Session::FromConnectedSocket(std::move(fd), std::move(channel), so);
}

// Sockets that arrived and checked out, by kind.
struct Tally {
  std::atomic<int> listens{0};
  std::atomic<int> connects{0};
};

// Socket k of a session: the first c.connects Connect to the acceptor, the
// rest Listen on kIp; steered to `binding` unless it is 0.
SocketSpec SpecFor(const Config& c, int k, uint16_t acceptor_port,
                   uint64_t binding) {
  SocketSpec spec;
  if (k < c.connects) {
    ConnectOptions o;
    o.nic = c.nic;
    o.remote = HostPort{kIp, acceptor_port};
    o.binding = binding;
    spec.connect = o;
  } else {
    ListenOptions o;
    o.nic = c.nic;
    o.ip = kIp;
    o.binding = binding;
    spec.listen = o;
  }
  return spec;
}

// Checks a socket the daemon made for `spec` and keeps it in `slot`, or
// records why not.
void Keep(const Config& c, const SocketSpec& spec, uint16_t acceptor_port,
          absl::StatusOr<SocketHandle> h, Slot& slot, Failures& failures,
          Tally& tally) {
  const bool connect = spec.connect.has_value();
  if (!h.ok()) {
    failures.Add(absl::StrCat(connect ? "Connect: " : "Listen: ",
                              h.status().ToString()));
    return;
  }
  const uint16_t expect =
      connect ? acceptor_port : static_cast<uint16_t>(h->info.local().port());
  std::string bad =
      CheckSocket(h->fd.get_unowned(), /*listening=*/!connect, expect, c.nic);
  if (bad.empty() && c.steer && !h->info.has_rule()) {
    bad = absl::StrCat("fd ", h->fd.get_unowned(),
                       " came without its steering rule");
  }
  if (!bad.empty()) {
    failures.Add(bad);
    return;
  }
  (connect ? tally.connects : tally.listens)++;
  slot.fds.push_back(std::move(h->fd));
}

// A memfd (standing in for GPU memory) bound to RX queues of NIC c.nic: the
// binding's handle.
absl::StatusOr<uint64_t> BindMemfd(const Config& c, Session& session) {
  UniqueFd mem(::memfd_create("load-driver-gpu-mem", MFD_CLOEXEC));
  if (!mem) {
    return absl::InternalError(
        absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  BindOptions bo;
  bo.nic = c.nic;
  bo.queue_count = 1;
  auto b = session.BindRx(mem.get_unowned(), bo);
  if (!b.ok()) return b.status();
  return b->handle();
}

void FillSlotWithDaemon(const Config& c, uint16_t acceptor_port, Slot& slot,
                        Failures& failures, Tally& tally) {
  SessionOptions so;
  so.runtime_dir = c.runtime_dir;
  auto session =
      c.connection_per_session ? OpenWithOwnConnection(so) : Session::Open(so);
  if (!session.ok()) {
    failures.Add(absl::StrCat("Session::Open: ", session.status().ToString()));
    return;
  }
  slot.session = *std::move(session);
  uint64_t binding = 0;
  if (c.steer) {
    absl::StatusOr<uint64_t> b = BindMemfd(c, *slot.session);
    if (!b.ok()) {
      failures.Add(absl::StrCat("BindRx: ", b.status().ToString()));
      return;
    }
    binding = *b;
  }
  std::vector<SocketSpec> specs;
  specs.reserve(static_cast<size_t>(c.sockets));
  for (int k = 0; k < c.sockets; ++k) {
    specs.push_back(SpecFor(c, k, acceptor_port, binding));
  }
  if (!c.batch) {
    for (const SocketSpec& spec : specs) {
      Keep(c, spec, acceptor_port,
           spec.connect ? slot.session->Connect(*spec.connect)
                        : slot.session->Listen(*spec.listen),
           slot, failures, tally);
    }
    return;
  }
  // Each socket is checked as it arrives, while devmemd makes the later
  // calls' sockets (direct checks each one right after making it too).
  absl::Status opened = slot.session->OpenSocketsEach(
      specs, [&](size_t k, absl::StatusOr<SocketHandle> h) {
        Keep(c, specs[k], acceptor_port, std::move(h), slot, failures, tally);
      });
  if (!opened.ok()) {
    failures.Add(absl::StrCat("OpenSockets: ", opened.ToString()));
  }
}

// The same socket as devmemd's socket broker makes, made here.
absl::StatusOr<UniqueFd> DirectSocket(const std::string& nic, bool connect,
                                      uint16_t acceptor_port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) return absl::InternalError(std::strerror(errno));
  if (::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE, nic.c_str(),
                   static_cast<socklen_t>(nic.size())) != 0) {
    return absl::InternalError(
        absl::StrCat("SO_BINDTODEVICE: ", std::strerror(errno)));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, kIp, &a.sin_addr);
  if (connect) {
    a.sin_port = htons(acceptor_port);
    if (::connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a),
                  sizeof(a)) != 0) {
      return absl::InternalError(
          absl::StrCat("connect: ", std::strerror(errno)));
    }
    return fd;
  }
  int one = 1;
  ::setsockopt(fd.get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
          0 ||
      ::listen(fd.get_unowned(), 128) != 0) {
    return absl::InternalError(
        absl::StrCat("bind/listen: ", std::strerror(errno)));
  }
  return fd;
}

void FillSlotDirect(const Config& c, uint16_t acceptor_port, Slot& slot,
                    Failures& failures, Tally& tally) {
  for (int k = 0; k < c.sockets; ++k) {
    const bool connect = k < c.connects;
    auto fd = DirectSocket(c.nic, connect, acceptor_port);
    if (!fd.ok()) {
      failures.Add(fd.status().ToString());
      continue;
    }
    const uint16_t expect =
        connect ? acceptor_port : LocalPort(fd->get_unowned());
    std::string bad =
        CheckSocket(fd->get_unowned(), /*listening=*/!connect, expect, c.nic);
    if (!bad.empty()) {
      failures.Add(bad);
      continue;
    }
    (connect ? tally.connects : tally.listens)++;
    slot.fds.push_back(*std::move(fd));
  }
}

// Raises the soft RLIMIT_NOFILE to `want` if the hard limit allows.
bool RaiseFdLimit(rlim_t want, std::string* why) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur >= want) return true;
  if (r.rlim_max < want) {
    *why = absl::StrCat("RLIMIT_NOFILE hard limit ", r.rlim_max, " < ", want,
                        " fds this load needs (run as root, or raise it)");
    return false;
  }
  r.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &r) != 0) {
    *why = absl::StrCat("setrlimit(RLIMIT_NOFILE, ", want,
                        "): ", std::strerror(errno));
    return false;
  }
  return true;
}

// fdatasyncs devmemd's journal made since it started (GetStatus, on a
// channel of its own, no session); -1 if it cannot say.
int64_t JournalSyncs(const std::string& runtime_dir) {
  absl::StatusOr<devmem::v1::GetStatusResponse> status =
      DaemonStatus(runtime_dir);
  return status.ok() ? static_cast<int64_t>(status->journal_syncs()) : -1;
}

// Reads stdin up to a line equal to one of `words` (or EOF); returns it.
std::string AwaitLine(std::initializer_list<const char*> words) {
  std::string line;
  while (std::getline(std::cin, line)) {
    for (const char* w : words) {
      if (line == w) return line;
    }
  }
  return "";
}

// The OPENED (or DIRECT) line; see the top of this file.
void PrintOpened(const Config& c, bool direct, const std::vector<Slot>& slots,
                 const Failures& failures, const Tally& tally, absl::Time start,
                 absl::Time end, int64_t syncs_before, int64_t syncs_after) {
  int opened = 0;
  for (const Slot& s : slots) opened += s.session != nullptr ? 1 : 0;
  const int64_t syncs =
      syncs_before >= 0 && syncs_after >= 0 ? syncs_after - syncs_before : -1;
  failures.Print();
  std::printf(
      "%s sessions=%d sockets=%d listen=%d connect=%d bad=%d wall_us=%lld "
      "journal_syncs=%lld syncs_before=%lld syncs_after=%lld start_us=%lld "
      "end_us=%lld\n",
      direct ? "DIRECT" : "OPENED", direct ? 0 : opened,
      tally.listens.load() + tally.connects.load(), tally.listens.load(),
      tally.connects.load(), failures.count(),
      static_cast<long long>(absl::ToInt64Microseconds(end - start)),
      static_cast<long long>(syncs), static_cast<long long>(syncs_before),
      static_cast<long long>(syncs_after),
      static_cast<long long>(absl::ToUnixMicros(start)),
      static_cast<long long>(absl::ToUnixMicros(end)));
  std::fflush(stdout);
}

int Run(const Config& c, bool direct) {
  // Session socket + sockets + the accepted ends of connects, plus slack
  // for gRPC and the process itself.
  const rlim_t need =
      static_cast<rlim_t>(c.sessions) * (1 + c.sockets + c.connects) + 256;
  std::string why;
  if (!RaiseFdLimit(need, &why)) {
    std::printf("SKIP %s\n", why.c_str());
    std::fflush(stdout);
    return 3;
  }
  Acceptor acceptor;
  if (acceptor.port() == 0) return 1;
  const int64_t syncs_before = direct ? -1 : JournalSyncs(c.runtime_dir);
  if (c.wait_go) {
    std::printf("READY\n");
    std::fflush(stdout);
    if (AwaitLine({"go"}).empty()) return 1;
  }

  Failures failures;
  Tally tally;
  std::vector<Slot> slots(c.sessions);
  const absl::Time start = absl::Now();
  ParallelFor(c.sessions, c.threads, [&](int i) {
    if (direct) {
      FillSlotDirect(c, acceptor.port(), slots[i], failures, tally);
    } else {
      FillSlotWithDaemon(c, acceptor.port(), slots[i], failures, tally);
    }
  });
  const absl::Time end = absl::Now();
  PrintOpened(c, direct, slots, failures, tally, start, end, syncs_before,
              direct ? -1 : JournalSyncs(c.runtime_dir));

  std::string line = AwaitLine({"close", "exit"});
  const absl::Time close_start = absl::Now();
  // Each slot's sockets first, then its session (the lease anchor).
  for (Slot& s : slots) {
    CloseWithReset(s.fds);
    s.session.reset();
  }
  acceptor.Drop();
  std::printf("CLOSED wall_us=%lld\n",
              static_cast<long long>(
                  absl::ToInt64Microseconds(absl::Now() - close_start)));
  std::fflush(stdout);
  if (line == "close") AwaitLine({"exit"});
  return failures.count() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace devmem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  devmem::Config c;
  c.runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  c.nic = absl::GetFlag(FLAGS_nic);
  c.sessions = absl::GetFlag(FLAGS_sessions);
  c.sockets = absl::GetFlag(FLAGS_sockets);
  c.connects = absl::GetFlag(FLAGS_connects);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.connection_per_session = absl::GetFlag(FLAGS_connection_per_session);
  c.steer = absl::GetFlag(FLAGS_steer);
  c.batch = absl::GetFlag(FLAGS_batch);
  c.wait_go = absl::GetFlag(FLAGS_wait_go);
  const bool direct = absl::GetFlag(FLAGS_direct);
  if ((!direct && c.runtime_dir.empty()) || c.sessions < 1 || c.sockets < 0 ||
      c.connects < 0 || c.connects > c.sockets || c.threads < 1 ||
      (direct && (c.steer || c.batch))) {
    std::fprintf(stderr,
                 "usage: load_driver --runtime_dir=DIR [--sessions=N "
                 "--sockets=N --connects=N --threads=N --steer --batch "
                 "--wait_go] | --direct [--sessions ... --wait_go]\n"
                 "(--steer and --batch need the daemon; see --help)\n");
    return 2;
  }
  return devmem::Run(c, direct);
}
