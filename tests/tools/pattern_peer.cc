// pattern_peer: a plain-socket peer for tests, benchmarks and the demo. It
// never talks to devmemd, so it is the independent end of every stream.
//
//   pattern_peer send --to=IP:PORT --bytes=N     connect and send N pattern
//   bytes pattern_peer recv --listen=IP:PORT [--nic=IF] accept one connection,
//   check
//                                                 every byte, print bytes and
//                                                 rate
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "client/host_port.h"
#include "client/pattern.h"
#include "kernel/unique_fd.h"

ABSL_FLAG(std::string, to, "",
          "send: numeric IP:PORT ([v6]:port) to connect to");
ABSL_FLAG(std::string, listen, "", "recv: numeric IP:PORT to listen on");
ABSL_FLAG(std::string, nic, "",
          "bind the socket to this interface (SO_BINDTODEVICE)");
ABSL_FLAG(uint64_t, bytes, 64ull << 20, "send: number of pattern bytes");
ABSL_FLAG(int, connect_retry_ms, 5000,
          "send: keep retrying a refused connect for this long (the receiver "
          "may still be starting)");

namespace {

bool ToSockaddr(const devmem::HostPort& hp, sockaddr_storage* ss,
                socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, hp.ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(hp.port);
    *len = sizeof(*v4);
    return true;
  }
  if (inet_pton(AF_INET6, hp.ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(hp.port);
    *len = sizeof(*v6);
    return true;
  }
  return false;
}

int Die(const char* what) {
  std::fprintf(stderr, "pattern_peer: %s: %s\n", what, std::strerror(errno));
  return 1;
}

void BindToNic(int fd) {
  const std::string nic = absl::GetFlag(FLAGS_nic);
  if (!nic.empty()) {
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, nic.c_str(), nic.size());
  }
}

int Send() {
  auto hp = devmem::ParseHostPort(absl::GetFlag(FLAGS_to));
  sockaddr_storage ss;
  socklen_t len;
  if (!hp.ok() || !ToSockaddr(*hp, &ss, &len)) {
    std::fprintf(stderr, "pattern_peer: --to must be numeric IP:PORT\n");
    return 2;
  }
  devmem::UniqueFd fd;
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_connect_retry_ms));
  for (;;) {
    fd.Reset(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    BindToNic(fd.get_unowned());
    if (connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), len) == 0)
      break;
    if (errno != ECONNREFUSED || absl::Now() > deadline) return Die("connect");
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::vector<char> period(devmem::kPatternPeriod);
  devmem::FillPattern(0, absl::MakeSpan(period));
  const uint64_t total = absl::GetFlag(FLAGS_bytes);
  uint64_t sent = 0;
  const absl::Time start = absl::Now();
  while (sent < total) {
    const size_t off = sent % devmem::kPatternPeriod;
    const size_t n = std::min<uint64_t>(total - sent, period.size() - off);
    ssize_t w = send(fd.get_unowned(), period.data() + off, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Die("send");
    }
    sent += static_cast<uint64_t>(w);
  }
  shutdown(fd.get_unowned(), SHUT_WR);
  char c;
  while (recv(fd.get_unowned(), &c, 1, 0) > 0) {
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("sent %llu bytes in %.3f s (%.2f Gbit/s)\n",
              static_cast<unsigned long long>(sent), secs,
              sent * 8 / secs / 1e9);
  return 0;
}

int Recv() {
  auto hp = devmem::ParseHostPort(absl::GetFlag(FLAGS_listen));
  sockaddr_storage ss;
  socklen_t len;
  if (!hp.ok() || !ToSockaddr(*hp, &ss, &len)) {
    std::fprintf(stderr, "pattern_peer: --listen must be numeric IP:PORT\n");
    return 2;
  }
  devmem::UniqueFd lfd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(lfd.get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  BindToNic(lfd.get_unowned());
  if (bind(lfd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return Die("bind");
  }
  if (listen(lfd.get_unowned(), 1) != 0) return Die("listen");
  std::fprintf(stderr, "pattern_peer: listening\n");
  devmem::UniqueFd fd(
      accept4(lfd.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) return Die("accept");
  std::vector<char> buf(1 << 20);
  uint64_t got = 0;
  const absl::Time start = absl::Now();
  for (;;) {
    ssize_t r = recv(fd.get_unowned(), buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Die("recv");
    if (r == 0) break;
    int64_t bad = devmem::FirstPatternMismatch(
        got, absl::MakeConstSpan(buf.data(), static_cast<size_t>(r)));
    if (bad >= 0) {
      std::fprintf(stderr, "pattern_peer: mismatch at offset %llu\n",
                   static_cast<unsigned long long>(got + bad));
      return 1;
    }
    got += static_cast<uint64_t>(r);
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("received %llu bytes, pattern ok, %.3f s (%.2f Gbit/s)\n",
              static_cast<unsigned long long>(got), secs, got * 8 / secs / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "pattern_peer send --to=IP:PORT --bytes=N | pattern_peer recv "
      "--listen=IP:PORT");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: pattern_peer send|recv [flags]; see --help\n");
    return 2;
  }
  const std::string mode = args[1];
  if (mode == "send") return Send();
  if (mode == "recv") return Recv();
  std::fprintf(stderr, "pattern_peer: unknown mode \"%s\"\n", mode.c_str());
  return 2;
}
