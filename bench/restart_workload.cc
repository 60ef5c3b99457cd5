// A workload for bench/restart_bench: one session with one RX binding and
// --listeners steered listening sockets; every accepted connection's bytes
// are checked against the pattern. The session reconnects on its own when
// devmemd restarts and says so ("RESUMED <unix ns> resumed=<0|1>"). A line
// on stdin ends it: "TOTAL bytes=<n> bad=<n> conns=<n>".
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "kernel/udmabuf.h"

ABSL_FLAG(std::string, runtime_dir, "/run/devmemd", "devmemd's runtime dir");
ABSL_FLAG(std::string, nic, "lo", "NIC");
ABSL_FLAG(int, listeners, 64, "steered listening sockets");

namespace {
void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  devmem::SessionOptions so;
  so.runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  so.auto_reconnect = true;
  so.reconnect_timeout = absl::Seconds(60);
  so.on_reconnect = [](const absl::Status& s, bool resumed) {
    Say(absl::StrCat("RESUMED ", absl::ToUnixNanos(absl::Now()),
                     " resumed=", resumed ? 1 : 0, " ", s.ToString()));
  };
  auto session = devmem::Session::Open(so);
  if (!session.ok()) {
    Say(absl::StrCat("FAIL open ", session.status().ToString()));
    return 1;
  }
  auto mem = devmem::CreateSealedMemfd(1 << 20, "restart_bench");
  if (!mem.ok()) return 1;
  devmem::BindOptions bo;
  bo.nic = absl::GetFlag(FLAGS_nic);
  auto binding = (*session)->BindRx(mem->get_unowned(), bo);
  if (!binding.ok()) {
    Say(absl::StrCat("FAIL bind ", binding.status().ToString()));
    return 1;
  }
  std::vector<devmem::UniqueFd> listeners;
  std::string ports;
  for (int i = 0; i < absl::GetFlag(FLAGS_listeners); ++i) {
    devmem::ListenOptions lo;
    lo.ip = "127.0.0.1";
    lo.binding = binding->handle();
    auto l = (*session)->Listen(lo);
    if (!l.ok()) {
      Say(absl::StrCat("FAIL listen ", l.status().ToString()));
      return 1;
    }
    absl::StrAppend(&ports, ports.empty() ? "" : ",", l->info.local().port());
    listeners.push_back(std::move(l->fd));
  }
  Say(absl::StrCat("PORTS ", ports));

  // Accept one connection per listener, then receive from all of them.
  std::vector<devmem::UniqueFd> conns;
  for (auto& l : listeners) {
    int c = ::accept4(l.get_unowned(), nullptr, nullptr, SOCK_NONBLOCK);
    if (c < 0) return 1;
    conns.emplace_back(c);
  }
  Say("ACCEPTED");
  std::vector<uint64_t> offset(conns.size(), 0);
  uint64_t bad = 0;
  size_t open = conns.size();
  std::vector<char> buf(256 * 1024);
  while (open > 0) {
    std::vector<pollfd> pfds;
    for (auto& c : conns) {
      pfds.push_back({c.valid() ? c.get_unowned() : -1, POLLIN, 0});
    }
    if (::poll(pfds.data(), pfds.size(), -1) < 0) continue;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::recv(conns[i].get_unowned(), buf.data(), buf.size(), 0);
      if (n > 0) {
        if (devmem::FirstPatternMismatch(
                offset[i], absl::MakeConstSpan(buf.data(), n)) >= 0) {
          ++bad;
        }
        offset[i] += static_cast<uint64_t>(n);
      } else if (n == 0) {
        conns[i].Reset();
        --open;
      }
    }
  }
  uint64_t total = 0;
  for (uint64_t o : offset) total += o;
  std::string line;
  std::getline(std::cin, line);
  Say(absl::StrCat("TOTAL bytes=", total, " bad=", bad, " conns=", conns.size(),
                   " resumes=", (*session)->resumes()));
  return 0;
}
