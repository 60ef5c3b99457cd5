// foreign_uid_client RUNTIME_DIR TOKEN BINDING TICKET: run as root by
// isolation_test, drops to the user "nobody" (setgroups, setgid, setuid:
// before any socket exists, so SO_PEERCRED sees nobody) and then uses another
// user's session token, binding handle and ticket. Prints one line per call,
// "<name> <grpc code> <message>", for the test to check:
//
//   status        GetStatus, no session needed (shows nobody is allowed at all;
//                 the message is the peer uid the daemon saw)
//   listen        Listen with the foreign token
//   connect       Connect with the foreign token and binding
//   release       ReleaseBinding of the foreign binding with the foreign token
//   steer         Steer with the foreign token (ticket of its own session)
//   unknown_token Listen with a token nobody was given
//   redeem        Redeem of the foreign ticket on nobody's own session
//
// Exit status: 0 when every call was made, 1 if a step could not run, 3 if it
// could not become nobody.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/libdevmem.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace {

void Print(const char* name, const grpc::Status& s) {
  std::printf("%s %d %s\n", name, static_cast<int>(s.error_code()),
              s.error_message().c_str());
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

}  // namespace

// Longer than 80 lines on purpose: one foreign call after another on the
// same channel, each printing its line, in the order the header lists them.
int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr,
                 "usage: foreign_uid_client RUNTIME_DIR TOKEN BINDING "
                 "TICKET\n");
    return 1;
  }
  const std::string dir = argv[1];
  const std::string token = argv[2];
  uint64_t binding = 0;
  if (!absl::SimpleAtoi(argv[3], &binding)) return 1;
  const std::string ticket = argv[4];

  const passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr || ::setgroups(0, nullptr) != 0 ||
      ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0 ||
      ::getuid() != pw->pw_uid || ::geteuid() != pw->pw_uid) {
    std::fprintf(stderr, "foreign_uid_client: cannot become nobody\n");
    return 3;
  }

  auto channel = grpc::CreateChannel(absl::StrCat("unix:", dir, "/grpc.sock"),
                                     grpc::InsecureChannelCredentials());
  auto stub = devmem::v1::Devmem::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::GetStatusResponse resp;
    grpc::Status s =
        stub->GetStatus(&ctx, devmem::v1::GetStatusRequest(), &resp);
    std::printf("status %d %u\n", static_cast<int>(s.error_code()),
                resp.peer_uid());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::ListenRequest req;
    req.set_session_token(token);
    req.set_nic("lo");
    req.mutable_local()->set_ip("127.0.0.1");
    devmem::v1::SocketResponse resp;
    Print("listen", stub->Listen(&ctx, req, &resp));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::ConnectRequest req;
    req.set_session_token(token);
    req.set_binding(binding);
    req.mutable_remote()->set_ip("127.0.0.1");
    req.mutable_remote()->set_port(9);
    devmem::v1::SocketResponse resp;
    Print("connect", stub->Connect(&ctx, req, &resp));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::ReleaseBindingRequest req;
    req.set_session_token(token);
    req.set_binding(binding);
    devmem::v1::ReleaseBindingResponse resp;
    Print("release", stub->ReleaseBinding(&ctx, req, &resp));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::ListenRequest req;
    req.set_session_token("00000000000000000000000000000000");
    req.set_nic("lo");
    req.mutable_local()->set_ip("127.0.0.1");
    devmem::v1::SocketResponse resp;
    Print("unknown_token", stub->Listen(&ctx, req, &resp));
  }

  // nobody's own session: its tickets are its own, the foreign one is not.
  auto own = devmem::Session::Open(dir);
  if (!own.ok()) {
    std::fprintf(stderr, "foreign_uid_client: Session::Open: %s\n",
                 own.status().ToString().c_str());
    return 1;
  }
  {
    // Steer with the foreign token and the foreign session's own ticket: the
    // token check must refuse it before the ticket is touched (the test
    // redeems that ticket as its owner afterwards).
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    devmem::v1::SteerRequest req;
    req.set_session_token(token);
    req.set_socket_ticket(ticket);
    req.set_binding(binding);
    devmem::v1::SteerResponse resp;
    Print("steer", stub->Steer(&ctx, req, &resp));
  }
  auto redeemed = (*own)->Redeem(ticket);
  std::printf("redeem %d %s\n", static_cast<int>(redeemed.status().code()),
              std::string(redeemed.status().message()).c_str());
  std::fflush(stdout);
  return 0;
}
