// cgroup_peer RUNTIME_DIR: a workload for unit_policy_test. Started as root,
// it prints "ready" and waits for a line on stdin (meanwhile the test moves
// it into a cgroup). It then drops to the user "nobody" (setgroups, setgid,
// setuid: before any socket exists, so SO_PEERCRED sees nobody), and prints:
//
//   self unit=<unit> slice=<slice>   what sd-login says about this process
//   session <code> <message>         opening a session (0 = allowed)
//   grpc <code> <message>            GetStatus over gRPC (0 = allowed)
//
// Exit status: 0 when both calls were made, 3 if it could not become nobody.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/libdevmem.h"
#include "daemon/session/unit_identity.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: cgroup_peer RUNTIME_DIR\n");
    return 1;
  }
  const std::string dir = argv[1];
  std::printf("ready\n");
  std::fflush(stdout);
  std::string go;
  std::getline(std::cin, go);

  const passwd* pw = ::getpwnam("nobody");
  if (pw == nullptr || ::setgroups(0, nullptr) != 0 ||
      ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0 ||
      ::getuid() != pw->pw_uid || ::geteuid() != pw->pw_uid) {
    std::fprintf(stderr, "cgroup_peer: cannot become nobody\n");
    return 3;
  }
  const devmem::UnitIdentity self = devmem::LookupUnitIdentity(getpid(), -1);
  std::printf("self unit=%s slice=%s\n", self.unit.c_str(), self.slice.c_str());

  devmem::SessionOptions so;
  so.runtime_dir = dir;
  auto session = devmem::Session::Open(so);
  const std::string message(session.status().message());
  std::printf("session %d %s\n", static_cast<int>(session.status().code()),
              message.c_str());

  auto channel = grpc::CreateChannel(absl::StrCat("unix:", dir, "/grpc.sock"),
                                     grpc::InsecureChannelCredentials());
  auto stub = devmem::v1::Devmem::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  devmem::v1::GetStatusResponse resp;
  grpc::Status s = stub->GetStatus(&ctx, devmem::v1::GetStatusRequest(), &resp);
  std::printf("grpc %d %s\n", static_cast<int>(s.error_code()),
              s.error_message().c_str());
  std::fflush(stdout);
  return 0;
}
