// ticket_holder RUNTIME_DIR N: opens a devmemd session, takes N socket tickets
// without redeeming them, prints "ready" and waits to be killed. A separate
// binary (not a fork) because gRPC does not survive fork() in a process that
// already used it.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "client/libdevmem.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: ticket_holder RUNTIME_DIR N\n");
    return 2;
  }
  auto s = devmem::Session::Open(argv[1]);
  if (!s.ok()) {
    std::fprintf(stderr, "ticket_holder: %s\n", s.status().ToString().c_str());
    return 1;
  }
  const int n = std::atoi(argv[2]);
  for (int i = 0; i < n; ++i) {
    devmem::v1::ListenRequest req;
    req.set_session_token((*s)->session_token());
    req.set_nic("lo");
    req.mutable_local()->set_ip("127.0.0.1");
    devmem::v1::SocketResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = (*s)->stub()->Listen(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "ticket_holder: Listen: %s\n",
                   st.error_message().c_str());
      return 1;
    }
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
