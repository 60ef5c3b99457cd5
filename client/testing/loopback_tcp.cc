#include "client/testing/loopback_tcp.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

namespace devmem {

TcpPair LoopbackTcpPair() {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  TcpPair p;
  p.client.Reset(socket(AF_INET, SOCK_STREAM, 0));
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (bind(listener.get_unowned(), sa, sizeof(addr)) != 0 ||
      listen(listener.get_unowned(), 1) != 0 ||
      getsockname(listener.get_unowned(), sa, &len) != 0 ||
      connect(p.client.get_unowned(), sa, sizeof(addr)) != 0) {
    std::perror("loopback TCP");
    std::exit(1);
  }
  p.server.Reset(accept(listener.get_unowned(), nullptr, nullptr));
  return p;
}

}  // namespace devmem
