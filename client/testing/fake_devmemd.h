#pragma once

#include <grpcpp/server.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem::testing {

// An in-process stand-in for devmemd, for client tests that must not depend
// on the daemon or on privileges: a runtime directory with a session.sock
// (SOCK_SEQPACKET, Hello + Redeem, any number of concurrent sessions) and a
// grpc.sock serving devmem.v1.Devmem. Listen/Connect create plain loopback
// TCP sockets (no SO_BINDTODEVICE) behind tickets; the only NIC is "lo".
//
// Bindings and NIC profiles: BindRx takes a deposited memfd or dma-buf and
// hands out queues of lo's pool (4-7), as devmemd's simulated backend does
// (SetBackend("kernel") makes it refuse anything but a dma-buf with
// INVALID_ARGUMENT, as the kernel backend does). Listen/Connect with a
// binding report a steering rule (3-tuple for a listener, 5-tuple for a
// connection) without steering anything. GetNicState knows two profiles:
// "lo" (applied) and "dvveth0" (not devmem-capable); RestoreNic restores lo.
//
// Simplifications, on purpose: tickets are not bound to a session and never
// expire, and tokens are not checked against uids. Thread-safe; all serving
// happens on internal threads, stopped by the destructor.
class FakeDevmemd {
 public:
  static constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

  // Creates the runtime directory (under $TEST_TMPDIR if short enough for
  // sun_path, else /tmp) and starts serving.
  FakeDevmemd();
  ~FakeDevmemd();

  const std::string& runtime_dir() const { return dir_; }

  // From now on, Hello carries `code` (e.g. 7) and `message` and the
  // session is closed, as devmemd does for a peer that is not allowed.
  void RefuseSessions(int code, const std::string& message);

  // "simulated" (default) or "kernel": what GetStatus reports and which
  // memory BindRx accepts.
  void SetBackend(const std::string& backend);

  // From now on RestoreNic answers PERMISSION_DENIED, as devmemd does for a
  // caller that is neither uid 0 nor in admin_uids.
  void RefuseRestore(const std::string& message);

  // Connect requests seen so far (for checking what the client sent).
  std::vector<devmem::v1::ConnectRequest> connect_requests();
  std::vector<devmem::v1::ListenRequest> listen_requests();
  std::vector<devmem::v1::BindRxRequest> bind_requests();

 private:
  class Service;

  void AcceptLoop();
  void ServeSession(int fd);
  std::string PutTicket(UniqueFd fd);
  UniqueFd TakeTicket(const std::string& ticket);

  std::string dir_;
  UniqueFd listener_;
  UniqueFd stop_read_;  // readable once the destructor runs
  UniqueFd stop_write_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread acceptor_;

  absl::Mutex mu_;
  std::vector<std::thread> session_threads_ ABSL_GUARDED_BY(mu_);
  std::vector<UniqueFd> session_fds_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, UniqueFd> tickets_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  int refuse_code_ ABSL_GUARDED_BY(mu_) = 0;
  std::string refuse_message_ ABSL_GUARDED_BY(mu_);
  std::vector<devmem::v1::ConnectRequest> connects_ ABSL_GUARDED_BY(mu_);
  std::vector<devmem::v1::ListenRequest> listens_ ABSL_GUARDED_BY(mu_);
  std::vector<devmem::v1::BindRxRequest> binds_ ABSL_GUARDED_BY(mu_);
  std::string backend_ ABSL_GUARDED_BY(mu_) = "simulated";
  std::string refuse_restore_ ABSL_GUARDED_BY(mu_);
  // Bindings by handle, and the NIC profiles by name.
  std::map<uint64_t, devmem::v1::Binding> bindings_ ABSL_GUARDED_BY(mu_);
  uint64_t next_binding_ ABSL_GUARDED_BY(mu_) = 1;
  uint32_t next_kernel_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint32_t next_rule_location_ ABSL_GUARDED_BY(mu_) = 1023;
  std::map<std::string, devmem::v1::NicState> nic_states_ ABSL_GUARDED_BY(mu_);

  friend class Service;
};

}  // namespace devmem::testing
