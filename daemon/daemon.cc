#include "daemon/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/ops/listen_address.h"
#include "daemon/ops/periodic_task.h"
#include "daemon/ops/rpc_observer.h"
#include "daemon/state/host_key.h"
#include "kernel/errno_status.h"
#include "kernel/netdev_genl.h"

namespace devmem {
namespace {

absl::Status MakeDirs(const std::string& path) {
  std::string partial;
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      partial = path.substr(0, i);
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, absl::StrCat("mkdir ", partial));
      }
    }
  }
  return absl::OkStatus();
}

// Binds a Unix socket at `path` with mode 0660 and group `gid` (-1: keep).
// A stale socket file is removed; a live one (someone accepts) is an error.
absl::StatusOr<UniqueFd> BindUnix(const std::string& path, int type,
                                  gid_t gid) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", path, " is longer than ", sizeof(addr.sun_path) - 1,
        " bytes; choose a shorter --runtime_dir"));
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  {
    UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (probe &&
        ::connect(probe.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                  sizeof(addr)) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("another daemon is already serving ", path,
                       "; stop it or use a different --runtime_dir"));
    }
  }
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX)");
  // Create it private, then open it up to exactly 0660 after chown.
  const mode_t old = ::umask(0177);
  int rc = ::bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                  sizeof(addr));
  const int bind_errno = errno;
  ::umask(old);
  if (rc != 0) return ErrnoStatus(bind_errno, absl::StrCat("bind ", path));
  if (gid != static_cast<gid_t>(-1) &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown ", path));
  }
  if (::chmod(path.c_str(), 0660) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  }
  if (::listen(fd.get_unowned(), SOMAXCONN) != 0) {
    return ErrnoStatus(errno, absl::StrCat("listen ", path));
  }
  return fd;
}

absl::StatusOr<gid_t> GroupId(const std::string& name) {
  if (name.empty()) return static_cast<gid_t>(-1);
  struct group gr;
  struct group* result = nullptr;
  std::vector<char> buf(16384);
  ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
  if (result == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket_group \"", name, "\" does not exist"));
  }
  return result->gr_gid;
}

// Takes <state_dir>/lock for this process: two devmemds sharing a journal
// would each believe they own the other's leases.
absl::StatusOr<UniqueFd> LockStateDir(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/lock");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (::flock(fd.get_unowned(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      char pid[32] = {};
      (void)!::pread(fd.get_unowned(), pid, sizeof(pid) - 1, 0);
      return absl::FailedPreconditionError(
          absl::StrCat("another devmemd (pid ", absl::StripAsciiWhitespace(pid),
                       ") uses the state directory ", dir,
                       "; stop it, or give each devmemd its own --state_dir"));
    }
    return ErrnoStatus(errno, absl::StrCat("flock ", path));
  }
  const std::string me = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd.get_unowned(), 0) == 0) {
    (void)!::pwrite(fd.get_unowned(), me.data(), me.size(), 0);
  }
  return fd;
}

// A listening socket systemd passed (socket activation): it must be a
// listening AF_UNIX socket of `type`; it is made non-blocking like our own.
absl::StatusOr<UniqueFd> CheckActivated(UniqueFd fd, int type,
                                        const std::string& what) {
  int domain = 0, got_type = 0, listening = 0;
  socklen_t len = sizeof(int);
  if (::getsockopt(fd.get_unowned(), SOL_SOCKET, SO_DOMAIN, &domain, &len) !=
      0) {
    return ErrnoStatus(
        errno, absl::StrCat("socket activation: ", what, " is not a socket"));
  }
  len = sizeof(int);
  (void)::getsockopt(fd.get_unowned(), SOL_SOCKET, SO_TYPE, &got_type, &len);
  len = sizeof(int);
  (void)::getsockopt(fd.get_unowned(), SOL_SOCKET, SO_ACCEPTCONN, &listening,
                     &len);
  if (domain != AF_UNIX || got_type != type || listening == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket activation: ", what, " must be a listening AF_UNIX ",
        type == SOCK_STREAM ? "SOCK_STREAM" : "SOCK_SEQPACKET",
        " socket (got domain ", domain, ", type ", got_type,
        listening != 0 ? ", listening" : ", not listening",
        "); fix devmemd.socket"));
  }
  const int flags = ::fcntl(fd.get_unowned(), F_GETFL);
  if (flags < 0 ||
      ::fcntl(fd.get_unowned(), F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(fd.get_unowned(), F_SETFD, FD_CLOEXEC) != 0) {
    return ErrnoStatus(errno, absl::StrCat("socket activation: fcntl ", what));
  }
  return fd;
}

}  // namespace

Daemon::Daemon(Options options)
    : options_(std::move(options)), events_(options_.event_capacity) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(Options options) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  absl::Status s = d->Init();
  if (!s.ok()) {
    d->Shutdown();
    return s;
  }
  return d;
}

std::string Daemon::grpc_socket_path() const {
  return absl::StrCat(options_.config.runtime_dir(), "/grpc.sock");
}

std::string Daemon::session_socket_path() const {
  return absl::StrCat(options_.config.runtime_dir(), "/session.sock");
}

absl::Status Daemon::Init() {
  // Before anything can share the monitor.
  health_.AddListener([this](const HealthReport& report) {
    devmem::v1::Event e;
    e.set_type("health");
    e.set_state(HealthStateName(report.state));
    std::vector<std::string> reasons;
    for (const HealthReason& r : report.reasons) reasons.push_back(r.message);
    e.set_detail(absl::StrJoin(reasons, "; "));
    events_.Publish(std::move(e));
    absl::MutexLock lock(&admin_bus_mu_);
    if (admin_bus_) admin_bus_->OnHealth(report);
  });
  MakeSessions();
  if (options_.nic_control == nullptr || options_.inventory == nullptr) {
    return absl::InvalidArgumentError(
        "daemon needs a NIC inventory and a NIC backend");
  }
  // The journal comes first: nothing is changed that it cannot record.
  absl::Status s = OpenJournal();
  if (!s.ok()) return s;
  MakeNicManager();
  UniqueFd grpc_fd;
  UniqueFd session_fd;
  s = OpenSockets(&grpc_fd, &session_fd);
  if (!s.ok()) return s;
  // /healthz says "starting" while the profiles and recovery run.
  s = StartMetrics();
  if (!s.ok()) return s;
  PrepareNicsAndRecover();
  // Reservations past their deadline give their unbound queues back within
  // a second (every call that looks at them expires them too).
  NicManager* nics = nics_.get();
  expiry_ = std::make_unique<PeriodicTask>(absl::Seconds(1), [nics] {
    nics->ExpireReservations();
    for (const std::string& line : nics->ExpireProfileChanges()) {
      std::fprintf(stderr, "devmemd: %s\n", line.c_str());
    }
  });
  expiry_->Start();
  MakeSessionServer(std::move(session_fd));
  s = StartGrpc(std::move(grpc_fd));
  if (!s.ok()) return s;
  s = session_server_->Start();
  if (!s.ok()) return s;
  health_.SetServing();
  return StartAdminBus();
}

// The access policy and the session manager, from the config.
void Daemon::MakeSessions() {
  const auto& c = options_.config;
  std::vector<uint32_t> uids(c.allow_uids().begin(), c.allow_uids().end());
  std::vector<uint32_t> gids(c.allow_gids().begin(), c.allow_gids().end());
  policy_ = std::make_unique<AccessPolicy>(
      uids, gids, options_.config_source,
      std::vector<std::string>(c.allow_units().begin(), c.allow_units().end()),
      std::vector<std::string>(c.allow_slices().begin(),
                               c.allow_slices().end()));
  SessionManager::Options so;
  so.ticket_ttl = absl::Milliseconds(c.ticket_ttl_ms());
  so.max_tickets_per_session = c.max_tickets_per_session();
  so.max_sessions = c.max_sessions();
  so.max_sessions_per_uid = c.max_sessions_per_uid();
  so.max_sockets_per_uid = c.max_sockets_per_uid();
  sessions_ = std::make_unique<SessionManager>(so, RealClock::Get());
}

// Locks the state directory and opens (replays) the journal.
absl::Status Daemon::OpenJournal() {
  const auto& c = options_.config;
  absl::Status s = MakeDirs(c.state_dir());
  if (!s.ok()) return s;
  auto lock = LockStateDir(c.state_dir());
  if (!lock.ok()) return lock.status();
  state_lock_ = *std::move(lock);
  LeaseJournal::Options jo;
  jo.path = absl::StrCat(c.state_dir(), "/journal");
  jo.sync = options_.journal_sync;
  jo.fdatasync = options_.journal_fdatasync;
  auto journal = LeaseJournal::Open(jo, &recovery_report_);
  if (!journal.ok()) {
    return absl::Status(
        journal.status().code(),
        absl::StrCat("cannot open the journal: ", journal.status().message(),
                     "; fix the state directory (state_dir / --state_dir)"));
  }
  journal_ = *std::move(journal);
  std::fprintf(stderr, "devmemd: %sjournal %s: %s\n",
               journal_->volatile_medium() ? "warning: " : "",
               journal_->path().c_str(), journal_->durability().c_str());
  auto key =
      LoadOrCreateHostKey(absl::StrCat(c.state_dir(), "/reservation.key"));
  if (!key.ok()) {
    return absl::Status(
        key.status().code(),
        absl::StrCat("reservation key: ", key.status().message()));
  }
  host_key_ = *std::move(key);
  return absl::OkStatus();
}

// The NIC side, wired to the session layer's answers about anchors.
void Daemon::MakeNicManager() {
  anchor_store_ = SystemdFdStore::FromEnvironment();
  NicManager::Options no;
  no.config = &options_.config;
  no.control = options_.nic_control.get();
  no.inventory = options_.inventory.get();
  no.journal = journal_.get();
  no.anchors = anchor_store_.get();
  no.host_key = host_key_;
  no.events = &events_;
  no.topology = options_.topology;
  SessionManager* sm = sessions_.get();
  no.session_record =
      [sm](uint64_t id) -> std::optional<devmem::v1::JournaledSession> {
    auto owner = sm->OwnerOf(id);
    if (!owner.ok()) return std::nullopt;
    devmem::v1::JournaledSession rec;
    rec.set_id(id);
    rec.set_token(owner->token);
    rec.set_uid(owner->peer.uid);
    rec.set_gid(owner->peer.gid);
    rec.set_pid(owner->peer.pid);
    return rec;
  };
  no.withdraw_anchor_ticket = [sm](uint64_t session, uint64_t handle) {
    sm->WithdrawAnchor(session, handle);
  };
  no.anchor_handed_out = [sm](uint64_t session, uint64_t handle) {
    return sm->AnchorHandedOut(session, handle);
  };
  nics_ = std::make_unique<NicManager>(no);
  NicManager* nics = nics_.get();
  sessions_->SetCloseObserver(
      [nics](uint64_t session) { nics->ReleaseSession(session); });
}

// The gRPC and session sockets: handed over by socket activation, or made
// here (and removed at exit).
absl::Status Daemon::OpenSockets(UniqueFd* grpc, UniqueFd* session) {
  const auto& c = options_.config;
  absl::Status s = MakeDirs(c.runtime_dir());
  if (!s.ok()) return s;
  auto gid = GroupId(c.socket_group());
  if (!gid.ok()) return gid.status();
  const bool grpc_activated = options_.activated_grpc.valid();
  absl::StatusOr<UniqueFd> grpc_fd =
      grpc_activated
          ? CheckActivated(std::move(options_.activated_grpc), SOCK_STREAM,
                           "devmemd-grpc (ListenStream= in devmemd.socket)")
          : BindUnix(grpc_socket_path(), SOCK_STREAM, *gid);
  if (!grpc_fd.ok()) return grpc_fd.status();
  created_grpc_ = !grpc_activated;
  const bool session_activated = options_.activated_session.valid();
  absl::StatusOr<UniqueFd> session_fd =
      session_activated
          ? CheckActivated(std::move(options_.activated_session),
                           SOCK_SEQPACKET,
                           "devmemd-session (ListenSequentialPacket= in "
                           "devmemd.socket)")
          : BindUnix(session_socket_path(), SOCK_SEQPACKET, *gid);
  if (!session_fd.ok()) return session_fd.status();
  created_session_ = !session_activated;
  *grpc = *std::move(grpc_fd);
  *session = *std::move(session_fd);
  return absl::OkStatus();
}

// Applies the profiles, then recovers an earlier run's leases.
void Daemon::PrepareNicsAndRecover() {
  const auto& c = options_.config;
  // Profiles are applied before anyone can connect: a workload never sees a
  // half-prepared NIC.
  profile_report_ = nics_->ApplyAll();
  // Then the leases of an earlier run: reconciled with the kernel, and their
  // sessions given restart_grace_ms to come back.
  std::vector<devmem::v1::JournaledSession> detached;
  for (std::string& line : nics_->Recover(
           journal_->state(), std::move(options_.stored_anchors), &detached)) {
    recovery_report_.push_back(std::move(line));
  }
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(c.restart_grace_ms());
  for (const auto& rec : detached) {
    PeerCred owner;
    owner.uid = rec.uid();
    owner.gid = rec.gid();
    owner.pid = rec.pid();
    sessions_->AddDetached(rec.id(), rec.token(), owner, deadline);
  }
  if (!detached.empty()) {
    recovery_report_.push_back(absl::StrCat(
        detached.size(), " session(s) detached; they have ",
        c.restart_grace_ms(), " ms to resume before their leases go"));
  }
}

// The session server, with the leases' anchor hooks and the metrics.
void Daemon::MakeSessionServer(UniqueFd session_fd) {
  NicManager* nics = nics_.get();
  session_server_ = std::make_unique<SessionServer>(
      std::move(session_fd), policy_.get(), sessions_.get());
  SessionServer::LeaseHooks hooks;
  hooks.awaiting_anchor = [nics](uint64_t s) {
    return nics->AwaitingAnchor(s);
  };
  hooks.anchored = [nics](uint64_t s) { return nics->Anchored(s); };
  SessionManager* sm_hooks = sessions_.get();
  hooks.return_anchor = [nics, sm_hooks](uint64_t s, uint64_t h, UniqueFd fd) {
    auto kernel_id = nics->ReturnAnchor(s, h, std::move(fd));
    // The workload sent a copy and keeps its own.
    if (kernel_id.ok()) sm_hooks->NoteAnchorHeld(s, h);
    return kernel_id;
  };
  session_server_->SetLeaseHooks(std::move(hooks));
  DaemonMetrics* metrics = metrics_.get();
  SessionServer::Observer observer;
  observer.frame = [metrics](absl::string_view method, absl::StatusCode code,
                             absl::Duration elapsed) {
    metrics->ObserveRequest(method, code, elapsed);
  };
  observer.fd = [metrics](absl::string_view direction, absl::string_view kind,
                          size_t count) {
    metrics->CountFd(direction, kind, count);
  };
  session_server_->SetObserver(std::move(observer));
}

// The gRPC service and server, fed by GrpcUnixListener on `grpc_fd`.
absl::Status Daemon::StartGrpc(UniqueFd grpc_fd) {
  DaemonMetrics* metrics = metrics_.get();
  DevmemService::Deps deps;
  deps.config = &options_.config;
  deps.policy = policy_.get();
  deps.peers = &peers_;
  deps.sessions = sessions_.get();
  deps.inventory = options_.inventory.get();
  deps.nics = nics_.get();
  deps.events = &events_;
  deps.topology = options_.topology;
  SessionServer* ss = session_server_.get();
  deps.fds_handed_off = [ss] { return ss->fds_handed_off(); };
  deps.health = [this] { return health_.Check(); };
  deps.started = absl::Now();
  deps.static_status = options_.static_status;
  for (const std::string& line : recovery_report_) {
    deps.static_status.add_recovery(line);
  }
  service_ = std::make_unique<DevmemService>(std::move(deps));

  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  // Requests are small; a bounded size keeps one client from making the
  // daemon allocate without limit.
  builder.SetMaxReceiveMessageSize(kMaxGrpcRequestBytes);
  // Keep up to kGrpcIdleThreads request threads waiting instead of gRPC's 2:
  // a job's start brings bursts of concurrent calls, and a thread made and
  // ended per burst (clone, a fresh malloc arena, munmap) cost ~10% of the
  // daemon's CPU while 1000 sessions bound.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kGrpcIdleThreads);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(MakeRpcObserverFactory(
      [metrics](absl::string_view method, absl::StatusCode code,
                absl::Duration elapsed) {
        metrics->ObserveRequest(method, code, elapsed);
      }));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // No listening port: connections arrive through GrpcUnixListener so the
  // daemon sees each peer's SO_PEERCRED.
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::InternalError("gRPC server did not start");
  }
  grpc_listener_ = std::make_unique<GrpcUnixListener>(
      std::move(grpc_fd), server_.get(), &peers_, policy_.get());
  return grpc_listener_->Start();
}

absl::Status Daemon::StartAdminBus() {
  if (options_.dbus_address.empty()) return absl::OkStatus();
  const auto& c = options_.config;
  AdminBus::Options bo;
  bo.address = options_.dbus_address;
  bo.version = options_.static_status.version();
  bo.backend = nics_->backend();
  bo.config_source = options_.config_source;
  bo.admin_uids.assign(c.admin_uids().begin(), c.admin_uids().end());
  bo.policy = policy_.get();
  bo.sessions = sessions_.get();
  bo.nics = nics_.get();
  bo.health = &health_;
  auto bus = AdminBus::Start(std::move(bo));
  if (!bus.ok()) {
    if (options_.dbus_address == "system") {
      dbus_warning_ = absl::StrCat(bus.status().message(),
                                   "; going on without the D-Bus interface");
      return absl::OkStatus();
    }
    return absl::Status(
        bus.status().code(),
        absl::StrCat("D-Bus interface (--dbus=", options_.dbus_address,
                     "): ", bus.status().message()));
  }
  absl::MutexLock lock(&admin_bus_mu_);
  admin_bus_ = *std::move(bus);
  return absl::OkStatus();
}

absl::Status Daemon::StartMetrics() {
  health_.AddProbe([this] { return ProbeHealth(); });
  DaemonMetrics::Sources ms;
  ms.version = options_.static_status.version();
  ms.backend = nics_->backend();
  NicManager* nics = nics_.get();
  SessionManager* sessions = sessions_.get();
  LeaseJournal* journal = journal_.get();
  ms.nics = [nics] { return nics->Metrics(); };
  ms.host = [nics] { return nics->HostMetrics(); };
  ms.sessions = [sessions] {
    DaemonMetrics::SessionFigures f;
    f.attached = sessions->session_count();
    f.detached = sessions->detached_count();
    f.pending_tickets = sessions->pending_tickets();
    f.opened_total = sessions->opened_total();
    return f;
  };
  ms.journal = [journal] {
    DaemonMetrics::JournalFigures f;
    f.healthy = journal->error().empty();
    f.errors_total = journal->errors();
    f.size_bytes = journal->size_bytes();
    f.syncs_total = journal->syncs();
    f.volatile_medium = journal->volatile_medium();
    return f;
  };
  ms.health = [this] { return health_.Check(); };
  NicControl* control = options_.nic_control.get();
  ms.queues = [control](uint32_t ifindex) {
    return control->GetQueues(ifindex);
  };
  auto netdev = NetdevGenl::Open();
  if (netdev.ok()) {
    kernel_stats_ = std::make_unique<NetdevKernelStats>(*std::move(netdev));
    ms.kernel = kernel_stats_.get();
  }
  metrics_ = std::make_unique<DaemonMetrics>(std::move(ms));

  const std::string& listen = options_.config.metrics_listen();
  if (listen.empty()) return absl::OkStatus();
  auto address = ParseLoopbackListen(listen, "metrics_listen");
  if (!address.ok()) return address.status();
  std::map<std::string, HttpServer::Handler> routes;
  DaemonMetrics* metrics = metrics_.get();
  routes["/metrics"] = [metrics] {
    return HttpServer::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                                metrics->Serialize()};
  };
  routes["/healthz"] = [this] {
    const HealthReport report = health_.Check();
    return HttpServer::Response{report.HttpStatus(), "application/json",
                                report.ToJson() + "\n"};
  };
  routes["/readyz"] = [this] {
    const HealthReport report = health_.Check();
    if (report.AcceptsWork()) {
      return HttpServer::Response{200, "text/plain; charset=utf-8", "ready\n"};
    }
    std::string body = absl::StrCat(HealthStateName(report.state), "\n");
    for (const HealthReason& r : report.reasons) {
      absl::StrAppend(&body, r.key, ": ", r.message, "\n");
    }
    return HttpServer::Response{503, "text/plain; charset=utf-8", body};
  };
  auto http = HttpServer::Start(*address, std::move(routes));
  if (!http.ok()) return http.status();
  http_ = *std::move(http);
  return absl::OkStatus();
}

std::vector<HealthIssue> Daemon::ProbeHealth() {
  std::vector<HealthIssue> issues;
  // Drift from the profile: "dm-a: link is down; ...".
  for (const std::string& line : nics_->CheckHealth()) {
    const size_t colon = line.find(':');
    issues.push_back(
        {absl::StrCat("nic/", line.substr(0, colon)), line, false});
  }
  size_t configured = 0;
  size_t unusable = 0;
  for (const NicManager::NicMetrics& n : nics_->Metrics()) {
    ++configured;
    const char* what = nullptr;
    switch (n.state) {
      case devmem::v1::PROFILE_STATE_NOT_CAPABLE:
        what = "is not devmem-capable";
        ++unusable;
        break;
      case devmem::v1::PROFILE_STATE_FAILED:
        what = "profile failed";
        ++unusable;
        break;
      case devmem::v1::PROFILE_STATE_RESTORED:
        what =
            "was restored by an admin; it serves no devmem until devmemd "
            "restarts";
        break;
      default:
        break;
    }
    if (what != nullptr) {
      issues.push_back({absl::StrCat("profile/", n.nic),
                        absl::StrCat(n.nic, " ", what,
                                     n.reason.empty() ? "" : ": ", n.reason),
                        false});
    }
  }
  if (configured > 0 && unusable == configured) {
    issues.push_back({"profiles",
                      absl::StrCat("none of the ", configured,
                                   " configured NIC profile(s) could be "
                                   "applied; see `devmemctl nic show`"),
                      true});
  }
  const std::string journal = nics_->journal_error();
  if (!journal.empty()) {
    issues.push_back(
        {"journal",
         absl::StrCat("new work is refused: ", journal, " (free space or fix ",
                      options_.config.state_dir(), ")"),
         false});
  }
  return issues;
}

void Daemon::Shutdown(bool release_leases) {
  if (shut_down_) return;
  shut_down_ = true;
  health_.SetStopping();
  // The bus first: no admin call may race the teardown.
  std::unique_ptr<AdminBus> bus;
  {
    absl::MutexLock lock(&admin_bus_mu_);
    bus = std::move(admin_bus_);
  }
  bus.reset();
  if (grpc_listener_) grpc_listener_->Stop();
  if (session_server_) session_server_->Stop(release_leases);
  if (expiry_) expiry_->Stop();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
  }
  // Sessions are closed by now (their leases released); put the NICs back.
  // When detaching, leases and profiles stay for the next devmemd.
  if (nics_ && release_leases) restore_report_ = nics_->RestoreAll();
  if (created_grpc_) ::unlink(grpc_socket_path().c_str());
  if (created_session_) ::unlink(session_socket_path().c_str());
  // Last: /healthz says "failed: stopping" until the end.
  http_.reset();
}

Daemon::~Daemon() { Shutdown(); }

}  // namespace devmem
