#include "client/testing/fake_devmemd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/nic_control.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem::testing {
namespace {

using devmem::v1::SessionFrame;

// Setup failures are test-environment bugs; crash loudly rather than hang.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "FakeDevmemd: %s: %s\n", what.c_str(),
               std::strerror(errno));
  std::abort();
}

std::string MakeRuntimeDir() {
  std::string base = "/tmp";
  const char* tmp = getenv("TEST_TMPDIR");
  // sun_path holds 107 bytes; leave room for "/dmXXXXXX/session.sock".
  if (tmp != nullptr && std::strlen(tmp) < 70) base = tmp;
  std::string templ = base + "/dmXXXXXX";
  if (mkdtemp(templ.data()) == nullptr) Die("mkdtemp " + templ);
  return templ;
}

void SendFrame(int fd, const SessionFrame& frame, absl::Span<const int> fds) {
  absl::StatusOr<std::string> bytes = EncodeFrame(frame);
  if (!bytes.ok()) return;
  // The client may be gone; that ends the session, nothing else to do.
  (void)SendWithFds(fd, *bytes, fds);
}

// Parses a numeric IPv4/IPv6 address; an empty ip is the wildcard of
// `family` (IPv6 when unspecified), as devmemd documents it.
bool ToSockaddr(const devmem::v1::SocketAddress& addr,
                devmem::v1::AddressFamily family, sockaddr_storage* out,
                socklen_t* len) {
  std::memset(out, 0, sizeof(*out));
  auto* in4 = reinterpret_cast<sockaddr_in*>(out);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  const uint16_t port = htons(static_cast<uint16_t>(addr.port()));
  if (addr.ip().empty()) {
    if (family == devmem::v1::ADDRESS_FAMILY_INET) {
      in4->sin_family = AF_INET;
      in4->sin_port = port;
      *len = sizeof(*in4);
    } else {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = port;
      *len = sizeof(*in6);
    }
    return true;
  }
  if (inet_pton(AF_INET, addr.ip().c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = port;
    *len = sizeof(*in4);
    return family != devmem::v1::ADDRESS_FAMILY_INET6;
  }
  if (inet_pton(AF_INET6, addr.ip().c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port;
    *len = sizeof(*in6);
    return family != devmem::v1::ADDRESS_FAMILY_INET;
  }
  return false;
}

void FromSockaddr(const sockaddr_storage& ss, devmem::v1::SocketAddress* out) {
  char host[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
    out->set_port(ntohs(in4->sin_port));
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    out->set_port(ntohs(in6->sin6_port));
  }
  out->set_ip(host);
}

grpc::Status ErrnoGrpc(grpc::StatusCode code, const char* what) {
  return grpc::Status(code, absl::StrCat(what, ": ", std::strerror(errno)));
}

devmem::v1::AddressFamily FamilyOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? devmem::v1::ADDRESS_FAMILY_INET
                                 : devmem::v1::ADDRESS_FAMILY_INET6;
}

void DefaultSpread(int entries, uint32_t queues,
                   devmem::v1::NicSettings* settings) {
  for (int i = 0; i < entries; ++i) {
    settings->add_rss_indir(static_cast<uint32_t>(i) % queues);
  }
}

devmem::v1::Capability* AddMissing(devmem::v1::NicState* state,
                                   const std::string& name,
                                   const std::string& reason) {
  devmem::v1::Capability* cap = state->add_missing();
  cap->set_name(name);
  cap->set_support(devmem::v1::SUPPORT_UNSUPPORTED);
  cap->set_errno_value(EOPNOTSUPP);
  cap->set_reason(reason);
  return cap;
}

// The profiles the fake reports: lo applied (8 combined channels, pool 4-7,
// RSS over 0-3), dvveth0 lacking what devmem needs.
std::map<std::string, devmem::v1::NicState> InitialNicStates(
    const std::string& dir) {
  std::map<std::string, devmem::v1::NicState> states;
  devmem::v1::NicState& lo = states["lo"];
  lo.set_nic("lo");
  lo.set_ifindex(1);
  lo.set_backend("simulated");
  lo.set_state(devmem::v1::PROFILE_STATE_APPLIED);
  lo.set_reason("profile applied; queues 4-7 form the devmem pool");
  devmem::v1::NicSettings* original = lo.mutable_original();
  original->mutable_channels()->set_combined_count(8);
  original->set_tcp_data_split(devmem::v1::TCP_DATA_SPLIT_UNKNOWN);
  original->set_hds_thresh(256);
  original->set_ntuple(false);
  DefaultSpread(128, 8, original);
  devmem::v1::NicSettings* desired = lo.mutable_desired();
  desired->mutable_channels()->set_combined_count(8);
  desired->set_tcp_data_split(devmem::v1::TCP_DATA_SPLIT_ENABLED);
  desired->set_hds_thresh(0);
  desired->set_ntuple(true);
  DefaultSpread(128, 4, desired);
  *lo.mutable_actual() = *desired;
  lo.set_rss_mode(devmem::v1::RSS_MODE_EXCLUDE_POOL);
  for (uint32_t q = 4; q < 8; ++q) {
    lo.add_pool_queues(q);
    lo.add_free_queues(q);
  }
  lo.set_rule_quota(64);
  lo.set_record_path(dir + "/state/lo.nicstate");

  devmem::v1::NicState& veth = states["dvveth0"];
  veth.set_nic("dvveth0");
  veth.set_ifindex(9);
  veth.set_backend("simulated");
  veth.set_state(devmem::v1::PROFILE_STATE_NOT_CAPABLE);
  veth.set_reason("dvveth0 lacks rings, ntuple, rss; nothing was changed");
  AddMissing(&veth, "rings",
             "ethtool rings-get dvveth0: Operation not supported (errno 95)");
  AddMissing(&veth, "ntuple", "rx-ntuple-filter is off [fixed]");
  AddMissing(&veth, "rss",
             "ethtool rss-get dvveth0: Operation not supported (errno 95)");
  veth.mutable_original()->mutable_channels()->set_rx_count(1);
  veth.mutable_original()->mutable_channels()->set_tx_count(1);
  *veth.mutable_actual() = veth.original();
  return states;
}

std::string ProfileNames(
    const std::map<std::string, devmem::v1::NicState>& states) {
  std::vector<std::string> names;
  for (const auto& [name, state] : states) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

class FakeDevmemd::Service final : public devmem::v1::Devmem::Service {
 public:
  explicit Service(FakeDevmemd* daemon) : daemon_(daemon) {}

  grpc::Status GetStatus(grpc::ServerContext*,
                         const devmem::v1::GetStatusRequest*,
                         devmem::v1::GetStatusResponse* response) override {
    absl::MutexLock lock(&daemon_->mu_);
    response->set_version("fake-1");
    response->set_kernel_release("6.18.0-fake");
    response->set_uptime_seconds(1.5);
    response->set_sessions(static_cast<uint32_t>(daemon_->session_fds_.size()));
    response->set_pending_tickets(
        static_cast<uint32_t>(daemon_->tickets_.size()));
    response->set_backend(daemon_->backend_);
    response->set_netdev_family(true);
    response->add_netdev_ops("dev-get");
    response->add_netdev_ops("bind-rx");
    response->set_ethtool_family(true);
    response->set_peer_uid(getuid());
    response->set_peer_gid(getgid());
    return grpc::Status::OK;
  }

  grpc::Status GetInventory(
      grpc::ServerContext*, const devmem::v1::GetInventoryRequest* request,
      devmem::v1::GetInventoryResponse* response) override {
    for (const std::string& name : request->nic_names()) {
      if (name != "lo") return UnknownNic(name);
    }
    response->set_backend("simulated");
    devmem::v1::Nic* nic = response->add_nics();
    nic->set_name("lo");
    nic->set_ifindex(1);
    nic->set_mtu(65536);
    nic->set_admin_up(true);
    nic->set_oper_state("unknown");
    nic->set_numa_node(-1);
    nic->mutable_features()->set_ntuple_hw(false);
    nic->mutable_features()->set_feature_count(60);
    devmem::v1::Capability* features = nic->add_capabilities();
    features->set_name("features");
    features->set_support(devmem::v1::SUPPORT_SUPPORTED);
    devmem::v1::Capability* channels = nic->add_capabilities();
    channels->set_name("channels");
    channels->set_support(devmem::v1::SUPPORT_UNSUPPORTED);
    channels->set_errno_value(EOPNOTSUPP);
    channels->set_reason("Operation not supported");
    nic->set_devmem_capable(false);
    nic->add_devmem_missing("channels: Operation not supported");
    return grpc::Status::OK;
  }

  grpc::Status Listen(grpc::ServerContext*,
                      const devmem::v1::ListenRequest* request,
                      devmem::v1::SocketResponse* response) override {
    {
      absl::MutexLock lock(&daemon_->mu_);
      daemon_->listens_.push_back(*request);
    }
    if (request->session_token() != kToken) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or unknown session_token");
    }
    devmem::v1::Binding binding;
    if (request->binding() != 0) {
      grpc::Status found = FindBinding(request->binding(), &binding);
      if (!found.ok()) return found;
    }
    const std::string nic = request->nic().empty() && request->binding() != 0
                                ? binding.nic()
                                : request->nic();
    if (nic != "lo") return UnknownNic(nic);
    sockaddr_storage ss;
    socklen_t len;
    if (!ToSockaddr(request->local(), request->family(), &ss, &len) ||
        request->local().port() > 65535) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "bad local address '" + request->local().ip() + "'");
    }
    UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoGrpc(grpc::StatusCode::INTERNAL, "socket");
    const int one = 1;
    setsockopt(fd.get_unowned(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      return ErrnoGrpc(errno == EADDRINUSE ? grpc::StatusCode::ALREADY_EXISTS
                                           : grpc::StatusCode::INVALID_ARGUMENT,
                       "bind");
    }
    const int backlog =
        request->backlog() == 0 ? 128 : static_cast<int>(request->backlog());
    if (listen(fd.get_unowned(), backlog) != 0) {
      return ErrnoGrpc(grpc::StatusCode::INTERNAL, "listen");
    }
    len = sizeof(ss);
    getsockname(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), &len);
    FromSockaddr(ss, response->mutable_local());
    if (request->binding() != 0) {
      // A listener's flows: dst ip (the bound address, "" = any) + port.
      devmem::v1::FlowRule* rule = response->mutable_rule();
      rule->set_family(FamilyOf(ss));
      rule->set_dst_ip(request->local().ip());
      rule->set_dst_port(response->local().port());
      AddRule(binding, rule);
    }
    response->set_nic("lo");
    response->set_ifindex(1);
    response->set_ticket_ttl_ms(10000);
    response->set_ticket(daemon_->PutTicket(std::move(fd)));
    return grpc::Status::OK;
  }

  grpc::Status Connect(grpc::ServerContext*,
                       const devmem::v1::ConnectRequest* request,
                       devmem::v1::SocketResponse* response) override {
    {
      absl::MutexLock lock(&daemon_->mu_);
      daemon_->connects_.push_back(*request);
    }
    if (request->session_token() != kToken) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or unknown session_token");
    }
    devmem::v1::Binding binding;
    if (request->binding() != 0) {
      grpc::Status found = FindBinding(request->binding(), &binding);
      if (!found.ok()) return found;
    }
    const std::string nic = request->nic().empty() && request->binding() != 0
                                ? binding.nic()
                                : request->nic();
    if (nic != "lo") return UnknownNic(nic);
    sockaddr_storage ss;
    socklen_t len;
    if (request->remote().ip().empty() || request->remote().port() == 0 ||
        !ToSockaddr(request->remote(), devmem::v1::ADDRESS_FAMILY_UNSPECIFIED,
                    &ss, &len)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "bad remote address");
    }
    UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoGrpc(grpc::StatusCode::INTERNAL, "socket");
    // As devmemd does; only root may (CAP_NET_RAW), so best effort here.
    (void)setsockopt(fd.get_unowned(), SOL_SOCKET, SO_BINDTODEVICE,
                     request->nic().c_str(),
                     static_cast<socklen_t>(request->nic().size() + 1));
    if (connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      return ErrnoGrpc(grpc::StatusCode::UNAVAILABLE, "connect");
    }
    len = sizeof(ss);
    getsockname(fd.get_unowned(), reinterpret_cast<sockaddr*>(&ss), &len);
    FromSockaddr(ss, response->mutable_local());
    *response->mutable_remote() = request->remote();
    if (request->binding() != 0) {
      // The connection's incoming flow, as the receiver sees it.
      devmem::v1::FlowRule* rule = response->mutable_rule();
      rule->set_family(FamilyOf(ss));
      rule->set_src_ip(request->remote().ip());
      rule->set_src_port(request->remote().port());
      rule->set_dst_ip(response->local().ip());
      rule->set_dst_port(response->local().port());
      rule->set_five_tuple(true);
      AddRule(binding, rule);
    }
    response->set_nic("lo");
    response->set_ifindex(1);
    response->set_ticket_ttl_ms(10000);
    response->set_ticket(daemon_->PutTicket(std::move(fd)));
    return grpc::Status::OK;
  }

  // The deposited memory a Bind names, checking the session token.
  grpc::Status TakeMemory(const std::string& token, const std::string& ticket,
                          UniqueFd* memory) {
    if (token != kToken) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or unknown session_token");
    }
    *memory = daemon_->TakeTicket(ticket);
    if (!memory->valid()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown dmabuf_ticket; Deposit the fd first");
    }
    return grpc::Status::OK;
  }

  grpc::Status BindRx(grpc::ServerContext*,
                      const devmem::v1::BindRxRequest* request,
                      devmem::v1::BindResponse* response) override {
    {
      absl::MutexLock lock(&daemon_->mu_);
      daemon_->binds_.push_back(*request);
    }
    UniqueFd memory;
    grpc::Status taken =
        TakeMemory(request->session_token(), request->dmabuf_ticket(), &memory);
    if (!taken.ok()) return taken;
    absl::MutexLock lock(&daemon_->mu_);
    const DmabufKind kind = ClassifyFd(memory.get_unowned());
    if (daemon_->backend_ == "kernel" && kind != DmabufKind::kDmabuf) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("fd ", memory.get_unowned(), " is a ",
                       DmabufKindName(kind),
                       ", not a dma-buf: export device memory as a dma-buf "
                       "(e.g. cuMemGetHandleForAddressRange)"));
    }
    if (kind == DmabufKind::kOther) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("fd ", memory.get_unowned(),
                       " is not a dma-buf; the simulated NIC binds only a "
                       "dma-buf or a memfd"));
    }
    if (request->nic().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "nic or gpu_pci_address is required");
    }
    auto it = daemon_->nic_states_.find(request->nic());
    if (it == daemon_->nic_states_.end()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("no NIC profile for \"", request->nic(),
                       "\"; profiles: ", ProfileNames(daemon_->nic_states_)));
    }
    devmem::v1::NicState& nic = it->second;
    if (nic.state() != devmem::v1::PROFILE_STATE_APPLIED) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat(nic.nic(), ": ", nic.reason()));
    }
    const uint32_t want =
        request->queue_count() == 0 ? 1 : request->queue_count();
    if (static_cast<uint32_t>(nic.free_queues_size()) < want) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat(nic.nic(), ": the devmem pool has ",
                       nic.free_queues_size(), " free of ",
                       nic.pool_queues_size(), " queues; asked for ", want));
    }
    devmem::v1::Binding& b = daemon_->bindings_[daemon_->next_binding_];
    b.set_handle(daemon_->next_binding_++);
    b.set_nic(nic.nic());
    b.set_ifindex(nic.ifindex());
    b.set_kernel_id(daemon_->next_kernel_id_++);
    std::vector<uint32_t> free(nic.free_queues().begin(),
                               nic.free_queues().end());
    for (uint32_t i = 0; i < want; ++i) b.add_queues(free[i]);
    nic.clear_free_queues();
    for (size_t i = want; i < free.size(); ++i) nic.add_free_queues(free[i]);
    nic.set_bindings(nic.bindings() + 1);
    *response->mutable_binding() = b;
    response->set_backend(daemon_->backend_);
    return grpc::Status::OK;
  }

  // A TX binding: the memory and a NIC with a profile; no queues.
  grpc::Status BindTx(grpc::ServerContext*,
                      const devmem::v1::BindTxRequest* request,
                      devmem::v1::BindResponse* response) override {
    UniqueFd memory;
    grpc::Status taken =
        TakeMemory(request->session_token(), request->dmabuf_ticket(), &memory);
    if (!taken.ok()) return taken;
    absl::MutexLock lock(&daemon_->mu_);
    auto it = daemon_->nic_states_.find(request->nic());
    if (it == daemon_->nic_states_.end()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("no NIC profile for \"", request->nic(), "\""));
    }
    devmem::v1::Binding& b = daemon_->bindings_[daemon_->next_binding_];
    b.set_handle(daemon_->next_binding_++);
    b.set_nic(it->second.nic());
    b.set_ifindex(it->second.ifindex());
    b.set_kernel_id(daemon_->next_kernel_id_++);
    b.set_tx(true);
    *response->mutable_binding() = b;
    response->set_backend(daemon_->backend_);
    return grpc::Status::OK;
  }

  grpc::Status GetNicState(grpc::ServerContext*,
                           const devmem::v1::GetNicStateRequest* request,
                           devmem::v1::GetNicStateResponse* response) override {
    absl::MutexLock lock(&daemon_->mu_);
    const auto& states = daemon_->nic_states_;
    if (request->nics().empty()) {
      for (const auto& [name, state] : states) *response->add_nics() = state;
      return grpc::Status::OK;
    }
    for (const std::string& name : request->nics()) {
      auto it = states.find(name);
      if (it == states.end()) {
        return grpc::Status(
            grpc::StatusCode::NOT_FOUND,
            absl::StrCat("no NIC profile for \"", name,
                         "\"; profiles: ", ProfileNames(states)));
      }
      *response->add_nics() = it->second;
    }
    return grpc::Status::OK;
  }

  grpc::Status RestoreNic(grpc::ServerContext*,
                          const devmem::v1::RestoreNicRequest* request,
                          devmem::v1::RestoreNicResponse* response) override {
    absl::MutexLock lock(&daemon_->mu_);
    if (!daemon_->refuse_restore_.empty()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          daemon_->refuse_restore_);
    }
    auto& states = daemon_->nic_states_;
    auto it = states.find(request->nic());
    if (it == states.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("no NIC profile for \"", request->nic(),
                                       "\"; profiles: ", ProfileNames(states)));
    }
    devmem::v1::NicState& nic = it->second;
    if (nic.state() == devmem::v1::PROFILE_STATE_APPLIED) {
      uint32_t released = 0, rules = 0;
      for (auto b = daemon_->bindings_.begin();
           b != daemon_->bindings_.end();) {
        if (b->second.nic() != nic.nic()) {
          ++b;
          continue;
        }
        ++released;
        rules += b->second.rules();
        b = daemon_->bindings_.erase(b);
      }
      response->set_bindings_released(released);
      response->set_rules_removed(rules);
      nic.set_state(devmem::v1::PROFILE_STATE_RESTORED);
      nic.set_reason("restored by RestoreNic; the original settings are back");
      *nic.mutable_actual() = nic.original();
      *nic.mutable_free_queues() = nic.pool_queues();
      nic.set_bindings(0);
      nic.set_rules(0);
    }
    *response->mutable_state() = nic;
    return grpc::Status::OK;
  }

 private:
  static grpc::Status UnknownNic(const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no NIC named '" + name + "'; NICs: lo");
  }

  grpc::Status FindBinding(uint64_t handle, devmem::v1::Binding* out) {
    absl::MutexLock lock(&daemon_->mu_);
    auto it = daemon_->bindings_.find(handle);
    if (it == daemon_->bindings_.end()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("no binding ", handle,
                       " in this session; BindRx returns the handle to use"));
    }
    *out = it->second;
    return grpc::Status::OK;
  }

  // Fills in the target and slot of `rule` for `binding` and counts it.
  void AddRule(const devmem::v1::Binding& binding, devmem::v1::FlowRule* rule) {
    absl::MutexLock lock(&daemon_->mu_);
    rule->set_queue(binding.queues_size() > 0 ? binding.queues(0) : 0);
    if (binding.has_rss_context()) rule->set_rss_context(binding.rss_context());
    rule->set_location(daemon_->next_rule_location_--);
    rule->set_nic(binding.nic());
    rule->set_binding(binding.handle());
    auto b = daemon_->bindings_.find(binding.handle());
    if (b != daemon_->bindings_.end())
      b->second.set_rules(b->second.rules() + 1);
    auto nic = daemon_->nic_states_.find(binding.nic());
    if (nic != daemon_->nic_states_.end()) {
      nic->second.set_rules(nic->second.rules() + 1);
    }
  }

  FakeDevmemd* daemon_;
};

FakeDevmemd::FakeDevmemd()
    : dir_(MakeRuntimeDir()), service_(std::make_unique<Service>(this)) {
  {
    absl::MutexLock lock(&mu_);
    nic_states_ = InitialNicStates(dir_);
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) Die("pipe2");
  stop_read_.Reset(p[0]);
  stop_write_.Reset(p[1]);

  const std::string session_path = dir_ + "/session.sock";
  listener_.Reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, session_path.c_str(), sizeof(addr.sun_path) - 1);
  if (bind(listener_.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
           sizeof(addr)) != 0) {
    Die("bind " + session_path);
  }
  if (listen(listener_.get_unowned(), 64) != 0) Die("listen");

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + dir_ + "/grpc.sock",
                           grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) Die("gRPC server on " + dir_ + "/grpc.sock");
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeDevmemd::~FakeDevmemd() {
  (void)write(stop_write_.get_unowned(), "x", 1);
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    // Wakes every session thread blocked in recvmsg with EOF.
    for (UniqueFd& fd : session_fds_) shutdown(fd.get_unowned(), SHUT_RDWR);
    threads = std::move(session_threads_);
  }
  for (std::thread& t : threads) t.join();
  server_->Shutdown();
  unlink((dir_ + "/session.sock").c_str());
  unlink((dir_ + "/grpc.sock").c_str());
  rmdir(dir_.c_str());
}

void FakeDevmemd::RefuseSessions(int code, const std::string& message) {
  absl::MutexLock lock(&mu_);
  refuse_code_ = code;
  refuse_message_ = message;
}

void FakeDevmemd::SetBackend(const std::string& backend) {
  absl::MutexLock lock(&mu_);
  backend_ = backend;
  for (auto& [name, state] : nic_states_) state.set_backend(backend);
}

void FakeDevmemd::RefuseRestore(const std::string& message) {
  absl::MutexLock lock(&mu_);
  refuse_restore_ = message;
}

std::vector<devmem::v1::BindRxRequest> FakeDevmemd::bind_requests() {
  absl::MutexLock lock(&mu_);
  return binds_;
}

std::vector<devmem::v1::ConnectRequest> FakeDevmemd::connect_requests() {
  absl::MutexLock lock(&mu_);
  return connects_;
}

std::vector<devmem::v1::ListenRequest> FakeDevmemd::listen_requests() {
  absl::MutexLock lock(&mu_);
  return listens_;
}

std::string FakeDevmemd::PutTicket(UniqueFd fd) {
  absl::MutexLock lock(&mu_);
  char ticket[33];
  std::snprintf(ticket, sizeof(ticket), "%032llx",
                static_cast<unsigned long long>(++next_ticket_));
  tickets_[ticket] = std::move(fd);
  return ticket;
}

UniqueFd FakeDevmemd::TakeTicket(const std::string& ticket) {
  absl::MutexLock lock(&mu_);
  auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return UniqueFd();
  UniqueFd fd = std::move(it->second);
  tickets_.erase(it);
  return fd;
}

void FakeDevmemd::AcceptLoop() {
  for (;;) {
    struct pollfd pfds[2] = {{listener_.get_unowned(), POLLIN, 0},
                             {stop_read_.get_unowned(), POLLIN, 0}};
    if (poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[1].revents != 0) return;
    UniqueFd conn(
        accept4(listener_.get_unowned(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    absl::MutexLock lock(&mu_);
    const int raw = conn.get_unowned();
    session_fds_.push_back(std::move(conn));
    session_threads_.emplace_back([this, raw] { ServeSession(raw); });
  }
}

void FakeDevmemd::ServeSession(int fd) {
  SessionFrame hello;
  {
    absl::MutexLock lock(&mu_);
    hello.mutable_hello()->set_code(refuse_code_);
    hello.mutable_hello()->set_message(refuse_message_);
    if (refuse_code_ == 0) {
      hello.mutable_hello()->set_session_id(next_session_++);
      hello.mutable_hello()->set_session_token(kToken);
      hello.mutable_hello()->set_ticket_ttl_ms(10000);
      hello.mutable_hello()->set_max_fds_per_frame(1);
      hello.mutable_hello()->set_max_frame_bytes(kMaxFrameBytes);
      hello.mutable_hello()->set_protocol_version(kProtocolVersion);
      hello.mutable_hello()->set_peer_uid(getuid());
      hello.mutable_hello()->set_peer_gid(getgid());
    }
  }
  SendFrame(fd, hello, {});
  if (hello.hello().code() != 0) {
    shutdown(fd, SHUT_RDWR);
    return;
  }
  for (;;) {
    absl::StatusOr<ReceivedMessage> msg = RecvWithFds(fd, kMaxFrameBytes, 1);
    if (!msg.ok() || msg->eof) break;
    absl::StatusOr<SessionFrame> request = DecodeFrame(msg->data);
    if (!request.ok()) break;  // protocol violation: close, as devmemd does
    SessionFrame reply;
    if (request->has_redeem()) {
      const std::string& ticket = request->redeem().ticket();
      UniqueFd granted = TakeTicket(ticket);
      if (granted.valid()) {
        reply.mutable_fd_grant()->set_ticket(ticket);
        SendFrame(fd, reply, {granted.get_unowned()});
        continue;
      }
      reply.mutable_error()->set_code(5);
      reply.mutable_error()->set_message("unknown ticket");
      reply.mutable_error()->set_ticket(ticket);
    } else if (request->has_ping()) {
      reply.mutable_pong()->set_nonce(request->ping().nonce());
    } else if (request->has_deposit() && msg->fds.size() == 1) {
      reply.mutable_deposited()->set_label(request->deposit().label());
      reply.mutable_deposited()->set_ticket(PutTicket(std::move(msg->fds[0])));
      reply.mutable_deposited()->set_ticket_ttl_ms(10000);
    } else if (request->has_deposit()) {
      reply.mutable_error()->set_code(3);
      reply.mutable_error()->set_message("Deposit without an fd");
    } else {
      break;
    }
    SendFrame(fd, reply, {});
  }
  shutdown(fd, SHUT_RDWR);
}

}  // namespace devmem::testing
