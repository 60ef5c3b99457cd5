#include "agent/tls_listener.h"

#include <arpa/inet.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem::agent {
namespace {

std::string PeerAddress(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return absl::StrCat(host, ":", ntohs(in->sin_port));
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
  return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
}

}  // namespace

void PeerIdentities::Set(int fd, std::string identity) {
  absl::MutexLock lock(&mu_);
  // A reused fd number overwrites the entry of its closed connection.
  by_peer_[absl::StrCat("fd:", fd)] = std::move(identity);
}

std::optional<std::string> PeerIdentities::Lookup(
    const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  return it->second;
}

TlsListener::TlsListener(UniqueFd listen_fd, const TlsContextStore* contexts,
                         grpc::Server* server, PeerIdentities* peers,
                         Options options)
    : listen_fd_(std::move(listen_fd)),
      contexts_(contexts),
      server_(server),
      peers_(peers),
      options_(std::move(options)) {}

TlsListener::~TlsListener() { Stop(); }

absl::Status TlsListener::Start() {
  stop_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoStatus(errno, "eventfd");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void TlsListener::Stop() {
  if (!accept_thread_.joinable()) return;
  uint64_t one = 1;  // never read back: stays readable for every poller
  (void)!::write(stop_fd_.get_unowned(), &one, sizeof(one));
  accept_thread_.join();
  std::list<Connection> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(connections_);
  }
  for (Connection& c : all) c.thread.join();
}

size_t TlsListener::open_connections() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const Connection& c : connections_) n += c.done ? 0 : 1;
  return n;
}

void TlsListener::ReapDone() {
  std::list<Connection> done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (it->done) done.splice(done.end(), connections_, it);
      it = next;
    }
  }
  for (Connection& c : done) c.thread.join();
}

void TlsListener::AcceptLoop() {
  for (;;) {
    struct pollfd pfds[2] = {{listen_fd_.get_unowned(), POLLIN, 0},
                             {stop_fd_.get_unowned(), POLLIN, 0}};
    // Wake now and then to join finished connection threads.
    int n = ::poll(pfds, 2, 1000);
    if (n < 0 && errno != EINTR) return;
    if (pfds[1].revents != 0) return;
    ReapDone();
    if ((pfds[0].revents & POLLIN) == 0) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    UniqueFd tcp(::accept4(listen_fd_.get_unowned(),
                           reinterpret_cast<sockaddr*>(&ss), &len,
                           SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!tcp) {
      // Out of fds: back off instead of spinning on the pending connection.
      if (errno == EMFILE || errno == ENFILE) ::usleep(100000);
      continue;
    }
    std::string peer = PeerAddress(ss);
    if (open_connections() >= options_.max_connections) {
      if (options_.on_refused) {
        options_.on_refused(
            "over_limit",
            absl::StrCat(options_.max_connections,
                         " connections are open (max_connections)"),
            peer);
      }
      continue;  // closes it
    }
    int one = 1;
    ::setsockopt(tcp.get_unowned(), IPPROTO_TCP, TCP_NODELAY, &one,
                 sizeof(one));
    absl::MutexLock lock(&mu_);
    connections_.emplace_back();
    Connection* c = &connections_.back();
    c->thread = std::thread(
        [this, c, tcp = std::move(tcp), peer = std::move(peer)]() mutable {
          Serve(std::move(tcp), peer);
          absl::MutexLock done_lock(&mu_);
          c->done = true;
        });
  }
}

void TlsListener::Serve(UniqueFd tcp, const std::string& peer) {
  TlsConnection conn(std::move(tcp), contexts_->Current());
  auto failure = conn.Handshake(absl::Now() + options_.handshake_timeout,
                                stop_fd_.get_unowned());
  if (failure.has_value()) {
    if (options_.on_refused) {
      options_.on_refused(HandshakeFailureName(failure->cause), failure->detail,
                          peer);
    }
    return;
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                   pair) != 0) {
    return;
  }
  UniqueFd mine(pair[0]);
  // Recorded before gRPC sees the fd, so its first call finds it.
  peers_->Set(pair[1], conn.PeerIdentity());
  grpc::AddInsecureChannelFromFd(server_, pair[1]);
  conn.Pump(mine, stop_fd_.get_unowned());
}

}  // namespace devmem::agent
