// The smallest devmemd workload: ask the daemon for a listening TCP socket
// bound to a NIC, accept one connection, greet the peer, exit.
//
//   handoff_example [NIC] [IP] [RUNTIME_DIR]      (defaults: lo 127.0.0.1)
//   ...then from elsewhere: nc IP PORT
//
// The workload needs no privileges: devmemd creates and binds the socket
// (SO_BINDTODEVICE needs CAP_NET_RAW) and passes the fd over its session
// socket; from here on it is an ordinary socket.

#include <sys/socket.h>

#include <cstdio>

#include "client/libdevmem.h"

int main(int argc, char** argv) {
  devmem::ListenOptions options;
  options.nic = argc > 1 ? argv[1] : "lo";
  options.ip = argc > 2 ? argv[2] : "127.0.0.1";  // port 0: kernel picks

  // The session lives as long as this object; closing it would make the
  // daemon release anything still behind a ticket (not the fd we hold).
  auto session = devmem::Session::Open(argc > 3 ? argv[3] : "/run/devmemd");
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  // gRPC Listen + Redeem on the session socket, in one call.
  auto sock = (*session)->Listen(options);
  if (!sock.ok()) {
    std::fprintf(stderr, "%s\n", sock.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s port %u\n", sock->info.local().ip().c_str(),
              sock->info.local().port());
  std::fflush(stdout);

  devmem::UniqueFd conn(
      accept4(sock->fd.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) {
    std::perror("accept4");
    return 1;
  }
  const char kHello[] = "hello from a devmemd socket\n";
  send(conn.get_unowned(), kHello, sizeof(kHello) - 1, MSG_NOSIGNAL);
  return 0;
}
