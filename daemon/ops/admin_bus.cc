#include "daemon/ops/admin_bus.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "daemon/ops/bus_caller.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

// Owns one reference of an sd-bus message.
struct MessageRef {
  sd_bus_message* m = nullptr;
  ~MessageRef() { sd_bus_message_unref(m); }
};

std::string NicPath(const std::string& name) {
  char* out = nullptr;
  if (sd_bus_path_encode(kBusNicPrefix, name.c_str(), &out) < 0) return "";
  std::string path = out;
  std::free(out);
  return path;
}

// The NIC name of a NIC object path; "" if `path` is not one.
std::string NicOfPath(const char* path) {
  char* name = nullptr;
  if (path == nullptr || sd_bus_path_decode(path, kBusNicPrefix, &name) <= 0) {
    return "";
  }
  std::string out = name;
  std::free(name);
  return out;
}

// A status from the managers as a D-Bus error; returns what a handler
// returns (a negative errno).
int SetBusError(sd_bus_error* error, const absl::Status& status) {
  const char* name = SD_BUS_ERROR_FAILED;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      name = kBusNoSuchNicError;
      break;
    case absl::StatusCode::kPermissionDenied:
      name = SD_BUS_ERROR_ACCESS_DENIED;
      break;
    case absl::StatusCode::kInvalidArgument:
      name = SD_BUS_ERROR_INVALID_ARGS;
      break;
    case absl::StatusCode::kResourceExhausted:
      name = SD_BUS_ERROR_LIMITS_EXCEEDED;
      break;
    case absl::StatusCode::kFailedPrecondition:
      name = "org.devmemd.Devmemd1.FailedPrecondition";
      break;
    default:
      break;
  }
  const std::string message(status.message());
  return sd_bus_error_set(error, name, message.c_str());
}

// What the manager object shows; compared with what was last announced.
struct ManagerValues {
  std::string state;
  std::vector<std::tuple<std::string, std::string, uint64_t>> reasons;
  uint32_t sessions = 0;
  uint32_t detached = 0;
  uint32_t bindings = 0;
  uint32_t rules = 0;
  std::string journal_error;
};

// What a NIC object shows (Reason and Degraded texts are read on demand and
// announced along with ProfileState and a degraded flip).
struct NicValues {
  uint32_t ifindex = 0;
  std::string state;
  bool degraded = false;
  uint32_t queues_free = 0;
  uint32_t queues_used = 0;
  uint32_t bindings = 0;
  uint32_t rules = 0;
};

uint64_t MonotonicUsec() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

std::string ProfileStateBusName(devmem::v1::ProfileState state) {
  std::string name(absl::StripPrefix(devmem::v1::ProfileState_Name(state),
                                     "PROFILE_STATE_"));
  absl::AsciiStrToLower(&name);
  absl::StrReplaceAll({{"_", "-"}}, &name);
  return name.empty() ? "unknown" : name;
}

class AdminBus::Impl {
 public:
  explicit Impl(Options options) : o_(std::move(options)) {
    if (!o_.log) {
      o_.log = [](const std::string& line) {
        std::fprintf(stderr, "devmemd: %s\n", line.c_str());
      };
    }
  }
  ~Impl() { Stop(); }

  absl::Status Start();
  void Stop();
  void OnHealth(const HealthReport& report);

  // sd-bus callbacks; all run on the bus thread.
  static int GetManagerProperty(sd_bus* bus, const char* path,
                                const char* interface, const char* property,
                                sd_bus_message* reply, void* userdata,
                                sd_bus_error* error);
  static int GetNicProperty(sd_bus* bus, const char* path,
                            const char* interface, const char* property,
                            sd_bus_message* reply, void* userdata,
                            sd_bus_error* error);
  static int FindNic(sd_bus* bus, const char* path, const char* interface,
                     void* userdata, void** found, sd_bus_error* error);
  static int EnumerateNics(sd_bus* bus, const char* prefix, void* userdata,
                           char*** nodes, sd_bus_error* error);
  static int ListNics(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int ListLeases(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int RestoreNic(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int RestoreThisNic(sd_bus_message* m, void* userdata,
                            sd_bus_error* error);

 private:
  absl::Status Connect();
  void Run(std::promise<absl::Status>* started);
  void Loop();
  void Wake();
  std::string Where() const;
  // 0, or a negative errno with `error` set when the message being handled
  // comes from a peer the policy refuses (or, with `admin`, a non-admin).
  // Announcements (no message being handled) pass.
  int Authorize(sd_bus* bus, bool admin, absl::string_view what,
                sd_bus_error* error);
  ManagerValues ReadManager();
  std::map<std::string, NicValues> ReadNics();
  // Emits PropertiesChanged for what differs from the last announcement.
  void Announce();
  int Restore(sd_bus_message* m, const std::string& nic, sd_bus_error* error);

  Options o_;
  UniqueFd wake_;  // eventfd: stop, or a health report is pending
  std::thread thread_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<HealthReport> pending_ ABSL_GUARDED_BY(mu_);

  // Bus thread only (and Start() before the thread exists).
  sd_bus* bus_ = nullptr;
  HealthReport report_;
  std::optional<ManagerValues> shown_;
  std::map<std::string, NicValues> nics_shown_;
  BusCallerCheck callers_{o_.policy};
};

namespace {

// clang-format off
const sd_bus_vtable kManagerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Backend", "s", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("State", "s", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("StateReasons", "a(sst)",
                    AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Sessions", "u", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("DetachedSessions", "u",
                    AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Bindings", "u", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Rules", "u", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("JournalError", "s", AdminBus::Impl::GetManagerProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD_WITH_ARGS("ListNics", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("a(suso)", nics),
                            AdminBus::Impl::ListNics,
                            SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_ARGS("ListLeases", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("a(tuustuaubub)", leases),
                            AdminBus::Impl::ListLeases,
                            SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_ARGS("RestoreNic", SD_BUS_ARGS("s", nic),
                            SD_BUS_RESULT("u", bindings_released,
                                          "u", rules_removed),
                            AdminBus::Impl::RestoreNic,
                            SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

const sd_bus_vtable kNicVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Name", "s", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Ifindex", "u", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("ProfileState", "s", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Reason", "s", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Degraded", "s", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("QueuesFree", "u", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("QueuesUsed", "u", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Bindings", "u", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Rules", "u", AdminBus::Impl::GetNicProperty, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD_WITH_ARGS("Restore", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("u", bindings_released,
                                          "u", rules_removed),
                            AdminBus::Impl::RestoreThisNic,
                            SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};
// clang-format on

}  // namespace

std::string AdminBus::Impl::Where() const {
  if (o_.address != "system") return absl::StrCat("the bus at ", o_.address);
  const char* env = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
  return absl::StrCat(
      "the system bus (",
      env != nullptr ? env : "unix:path=/run/dbus/system_bus_socket", ")");
}

absl::Status AdminBus::Impl::Start() {
  if (o_.policy == nullptr || o_.sessions == nullptr || o_.nics == nullptr) {
    return absl::InvalidArgumentError(
        "the D-Bus interface needs the policy, sessions and NICs");
  }
  wake_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return ErrnoStatus(errno, "eventfd");
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  thread_ = std::thread([this, &started] { Run(&started); });
  absl::Status s = result.get();
  if (!s.ok()) thread_.join();
  return s;
}

void AdminBus::Impl::Run(std::promise<absl::Status>* started) {
  absl::Status s = Connect();
  if (!s.ok()) {
    bus_ = sd_bus_flush_close_unref(bus_);
    started->set_value(s);
    return;
  }
  started->set_value(absl::OkStatus());  // `started` is gone after this
  Loop();
  bus_ = sd_bus_flush_close_unref(bus_);
}

absl::Status AdminBus::Impl::Connect() {
  int r;
  if (o_.address == "system") {
    r = sd_bus_open_system_with_description(&bus_, "devmemd");
  } else {
    r = sd_bus_new(&bus_);
    if (r >= 0) r = sd_bus_set_address(bus_, o_.address.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
    if (r >= 0) r = sd_bus_set_description(bus_, "devmemd");
    if (r >= 0) r = sd_bus_start(bus_);
  }
  if (r < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", Where(), ": ", std::strerror(-r)));
  }
  r = sd_bus_add_object_vtable(bus_, nullptr, kBusPath, kBusManagerInterface,
                               kManagerVtable, this);
  if (r >= 0) {
    r = sd_bus_add_fallback_vtable(bus_, nullptr, kBusNicPrefix,
                                   kBusNicInterface, kNicVtable, FindNic, this);
  }
  if (r >= 0) {
    r = sd_bus_add_node_enumerator(bus_, nullptr, kBusNicPrefix, EnumerateNics,
                                   this);
  }
  if (r >= 0) r = sd_bus_add_object_manager(bus_, nullptr, kBusPath);
  if (r < 0) {
    return absl::InternalError(
        absl::StrCat("cannot register D-Bus objects: ", std::strerror(-r)));
  }
  // The first values, before anyone can ask for them.
  if (o_.health != nullptr) report_ = o_.health->Check();
  Announce();
  r = sd_bus_request_name(bus_, kBusName, 0);
  if (r == -EEXIST || r == -EALREADY) {
    return absl::AlreadyExistsError(
        absl::StrCat("another process owns ", kBusName, " on ", Where(),
                     "; is another devmemd running?"));
  }
  if (r == -EACCES || r == -EPERM) {
    return absl::PermissionDeniedError(absl::StrCat(
        Where(), " does not let uid ", ::geteuid(), " own ", kBusName,
        "; install deploy/dbus/org.devmemd.Devmemd1.conf as "
        "/usr/share/dbus-1/system.d/org.devmemd.Devmemd1.conf and reload "
        "dbus, or run devmemd as root or the devmemd user"));
  }
  if (r < 0) {
    return absl::UnavailableError(absl::StrCat("cannot take the name ",
                                               kBusName, " on ", Where(), ": ",
                                               std::strerror(-r)));
  }
  return absl::OkStatus();
}

void AdminBus::Impl::Loop() {
  absl::Time next_refresh = absl::Now() + o_.refresh;
  for (;;) {
    for (;;) {
      const int r = sd_bus_process(bus_, nullptr);
      if (r < 0) {
        o_.log(absl::StrCat("lost ", Where(), " (", std::strerror(-r),
                            "); the D-Bus interface is gone until devmemd "
                            "restarts"));
        return;
      }
      if (r == 0) break;
    }
    std::optional<HealthReport> pending;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      pending.swap(pending_);
    }
    if (pending.has_value()) {
      report_ = *std::move(pending);
      Announce();
    }
    if (absl::Now() >= next_refresh) {
      if (o_.health != nullptr) report_ = o_.health->Check();
      Announce();
      next_refresh = absl::Now() + o_.refresh;
    }
    const int events = sd_bus_get_events(bus_);
    if (events < 0) {
      o_.log(absl::StrCat("lost ", Where(), " (", std::strerror(-events),
                          "); the D-Bus interface is gone until devmemd "
                          "restarts"));
      return;
    }
    int64_t wait_ms = std::max<int64_t>(
        0, absl::ToInt64Milliseconds(next_refresh - absl::Now()) + 1);
    uint64_t until = 0;
    if (sd_bus_get_timeout(bus_, &until) >= 0 && until != UINT64_MAX) {
      const uint64_t now = MonotonicUsec();
      const int64_t bus_ms =
          until > now ? static_cast<int64_t>((until - now + 999) / 1000) : 0;
      wait_ms = std::min(wait_ms, bus_ms);
    }
    struct pollfd fds[2] = {
        {sd_bus_get_fd(bus_), static_cast<decltype(pollfd::events)>(events), 0},
        {wake_.get_unowned(), POLLIN, 0},
    };
    if (::poll(fds, 2, static_cast<int>(wait_ms)) > 0 &&
        (fds[1].revents & POLLIN) != 0) {
      uint64_t drained;
      (void)!::read(wake_.get_unowned(), &drained, sizeof(drained));
    }
  }
}

void AdminBus::Impl::Wake() {
  const uint64_t one = 1;
  if (wake_) (void)!::write(wake_.get_unowned(), &one, sizeof(one));
}

void AdminBus::Impl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

void AdminBus::Impl::OnHealth(const HealthReport& report) {
  {
    absl::MutexLock lock(&mu_);
    pending_ = report;
  }
  Wake();
}

int AdminBus::Impl::Authorize(sd_bus* bus, bool admin, absl::string_view what,
                              sd_bus_error* error) {
  sd_bus_message* m = sd_bus_get_current_message(bus);
  if (m == nullptr) return 0;
  absl::StatusOr<PeerCred> caller = callers_.Check(m);
  if (!caller.ok()) return SetBusError(error, caller.status());
  if (!admin || caller->uid == 0 ||
      std::find(o_.admin_uids.begin(), o_.admin_uids.end(), caller->uid) !=
          o_.admin_uids.end()) {
    return 0;
  }
  return sd_bus_error_set(
      error, SD_BUS_ERROR_ACCESS_DENIED,
      absl::StrCat(what, " is an admin call; uid ", caller->uid,
                   " is neither 0 nor listed in admin_uids; add it to "
                   "admin_uids in ",
                   o_.config_source)
          .c_str());
}

ManagerValues AdminBus::Impl::ReadManager() {
  ManagerValues v;
  v.state = HealthStateName(report_.state);
  for (const HealthReason& r : report_.reasons) {
    v.reasons.emplace_back(r.key, r.message,
                           static_cast<uint64_t>(absl::ToUnixMicros(r.since)));
  }
  v.sessions = static_cast<uint32_t>(o_.sessions->session_count());
  v.detached = static_cast<uint32_t>(o_.sessions->detached_count());
  v.bindings = static_cast<uint32_t>(o_.nics->binding_count());
  v.rules = static_cast<uint32_t>(o_.nics->rule_count());
  v.journal_error = o_.nics->journal_error();
  return v;
}

std::map<std::string, NicValues> AdminBus::Impl::ReadNics() {
  std::map<std::string, NicValues> out;
  for (const NicManager::NicMetrics& m : o_.nics->Metrics()) {
    NicValues& v = out[m.nic];
    v.ifindex = m.ifindex;
    v.state = ProfileStateBusName(m.state);
    v.degraded = m.degraded;
    v.queues_free = m.queues_free;
    v.queues_used = m.queues_used;
    v.bindings = m.bindings_rx + m.bindings_tx;
    v.rules = m.rules;
  }
  return out;
}

namespace {

void Emit(sd_bus* bus, const std::string& path, const char* interface,
          std::vector<const char*> names) {
  if (names.empty()) return;
  names.push_back(nullptr);
  // Best effort: a lost bus shows in the next sd_bus_process().
  (void)sd_bus_emit_properties_changed_strv(bus, path.c_str(), interface,
                                            const_cast<char**>(names.data()));
}

}  // namespace

void AdminBus::Impl::Announce() {
  ManagerValues v = ReadManager();
  if (shown_.has_value()) {
    std::vector<const char*> changed;
    if (v.state != shown_->state) changed.push_back("State");
    if (v.reasons != shown_->reasons) changed.push_back("StateReasons");
    if (v.sessions != shown_->sessions) changed.push_back("Sessions");
    if (v.detached != shown_->detached) changed.push_back("DetachedSessions");
    if (v.bindings != shown_->bindings) changed.push_back("Bindings");
    if (v.rules != shown_->rules) changed.push_back("Rules");
    if (v.journal_error != shown_->journal_error) {
      changed.push_back("JournalError");
    }
    Emit(bus_, kBusPath, kBusManagerInterface, std::move(changed));
  }
  shown_ = std::move(v);

  std::map<std::string, NicValues> nics = ReadNics();
  for (const auto& [name, now] : nics) {
    auto it = nics_shown_.find(name);
    if (it == nics_shown_.end()) continue;
    const NicValues& was = it->second;
    std::vector<const char*> changed;
    if (now.ifindex != was.ifindex) changed.push_back("Ifindex");
    if (now.state != was.state) {
      changed.push_back("ProfileState");
      changed.push_back("Reason");
    }
    if (now.degraded != was.degraded) changed.push_back("Degraded");
    if (now.queues_free != was.queues_free) changed.push_back("QueuesFree");
    if (now.queues_used != was.queues_used) changed.push_back("QueuesUsed");
    if (now.bindings != was.bindings) changed.push_back("Bindings");
    if (now.rules != was.rules) changed.push_back("Rules");
    Emit(bus_, NicPath(name), kBusNicInterface, std::move(changed));
  }
  nics_shown_ = std::move(nics);
}

int AdminBus::Impl::GetManagerProperty(sd_bus* bus, const char* path,
                                       const char* interface,
                                       const char* property,
                                       sd_bus_message* reply, void* userdata,
                                       sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(bus, /*admin=*/false, "", error);
  if (r < 0) return r;
  const absl::string_view p = property;
  if (p == "Version") {
    return sd_bus_message_append(reply, "s", self->o_.version.c_str());
  }
  if (p == "Backend") {
    return sd_bus_message_append(reply, "s", self->o_.backend.c_str());
  }
  const ManagerValues v = self->ReadManager();
  if (p == "State") return sd_bus_message_append(reply, "s", v.state.c_str());
  if (p == "StateReasons") {
    r = sd_bus_message_open_container(reply, 'a', "(sst)");
    for (const auto& [key, message, since] : v.reasons) {
      if (r < 0) break;
      r = sd_bus_message_append(reply, "(sst)", key.c_str(), message.c_str(),
                                since);
    }
    return r < 0 ? r : sd_bus_message_close_container(reply);
  }
  if (p == "Sessions") return sd_bus_message_append(reply, "u", v.sessions);
  if (p == "DetachedSessions") {
    return sd_bus_message_append(reply, "u", v.detached);
  }
  if (p == "Bindings") return sd_bus_message_append(reply, "u", v.bindings);
  if (p == "Rules") return sd_bus_message_append(reply, "u", v.rules);
  if (p == "JournalError") {
    return sd_bus_message_append(reply, "s", v.journal_error.c_str());
  }
  return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY,
                           "no property %s", property);
}

int AdminBus::Impl::GetNicProperty(sd_bus* bus, const char* path,
                                   const char* interface, const char* property,
                                   sd_bus_message* reply, void* userdata,
                                   sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(bus, /*admin=*/false, "", error);
  if (r < 0) return r;
  const std::string name = NicOfPath(path);
  const absl::string_view p = property;
  if (p == "Name") return sd_bus_message_append(reply, "s", name.c_str());
  if (p == "Reason" || p == "Degraded") {
    auto states = self->o_.nics->States({name});
    if (!states.ok()) return SetBusError(error, states.status());
    const devmem::v1::NicState& st = states->front();
    return sd_bus_message_append(
        reply, "s", (p == "Reason" ? st.reason() : st.degraded()).c_str());
  }
  const std::map<std::string, NicValues> nics = self->ReadNics();
  auto it = nics.find(name);
  if (it == nics.end()) {
    return sd_bus_error_setf(error, kBusNoSuchNicError,
                             "no NIC profile for \"%s\"", name.c_str());
  }
  const NicValues& v = it->second;
  if (p == "Ifindex") return sd_bus_message_append(reply, "u", v.ifindex);
  if (p == "ProfileState") {
    return sd_bus_message_append(reply, "s", v.state.c_str());
  }
  if (p == "QueuesFree") {
    return sd_bus_message_append(reply, "u", v.queues_free);
  }
  if (p == "QueuesUsed") {
    return sd_bus_message_append(reply, "u", v.queues_used);
  }
  if (p == "Bindings") return sd_bus_message_append(reply, "u", v.bindings);
  if (p == "Rules") return sd_bus_message_append(reply, "u", v.rules);
  return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY,
                           "no property %s", property);
}

int AdminBus::Impl::FindNic(sd_bus* bus, const char* path,
                            const char* interface, void* userdata, void** found,
                            sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  const std::string name = NicOfPath(path);
  if (name.empty()) return 0;
  for (const NicManager::NicMetrics& m : self->o_.nics->Metrics()) {
    if (m.nic == name) {
      *found = userdata;
      return 1;
    }
  }
  return 0;
}

int AdminBus::Impl::EnumerateNics(sd_bus* bus, const char* prefix,
                                  void* userdata, char*** nodes,
                                  sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  const std::vector<NicManager::NicMetrics> nics = self->o_.nics->Metrics();
  // sd-bus takes the array and its strings (malloc'd, NULL-terminated).
  auto** out = static_cast<char**>(std::calloc(nics.size() + 1, sizeof(char*)));
  if (out == nullptr) return -ENOMEM;
  size_t k = 0;
  for (const NicManager::NicMetrics& m : nics) {
    if (sd_bus_path_encode(kBusNicPrefix, m.nic.c_str(), &out[k]) >= 0) ++k;
  }
  *nodes = out;
  return 1;
}

int AdminBus::Impl::ListNics(sd_bus_message* m, void* userdata,
                             sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(sd_bus_message_get_bus(m), /*admin=*/false,
                          "ListNics", error);
  if (r < 0) return r;
  MessageRef reply;
  r = sd_bus_message_new_method_return(m, &reply.m);
  if (r >= 0) r = sd_bus_message_open_container(reply.m, 'a', "(suso)");
  for (const auto& [name, v] : self->ReadNics()) {
    if (r < 0) break;
    r = sd_bus_message_append(reply.m, "(suso)", name.c_str(), v.ifindex,
                              v.state.c_str(), NicPath(name).c_str());
  }
  if (r >= 0) r = sd_bus_message_close_container(reply.m);
  if (r >= 0) r = sd_bus_send(nullptr, reply.m, nullptr);
  return r;
}

int AdminBus::Impl::ListLeases(sd_bus_message* m, void* userdata,
                               sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(sd_bus_message_get_bus(m), /*admin=*/true,
                          "ListLeases", error);
  if (r < 0) return r;
  MessageRef reply;
  r = sd_bus_message_new_method_return(m, &reply.m);
  if (r >= 0) r = sd_bus_message_open_container(reply.m, 'a', "(tuustuaubub)");
  for (const NicManager::LeaseInfo& l : self->o_.nics->Leases()) {
    if (r < 0) break;
    // The owner's uid and pid; never its token.
    uint32_t uid = 0, pid = 0;
    auto owner = self->o_.sessions->OwnerOf(l.session);
    if (owner.ok()) {
      uid = owner->peer.uid;
      pid = static_cast<uint32_t>(owner->peer.pid);
    }
    r = sd_bus_message_open_container(reply.m, 'r', "tuustuaubub");
    if (r >= 0) {
      r = sd_bus_message_append(reply.m, "tuustu", l.session, uid, pid,
                                l.nic.c_str(), l.handle, l.kernel_id);
    }
    if (r >= 0) {
      r = sd_bus_message_append_array(reply.m, 'u', l.queues.data(),
                                      l.queues.size() * sizeof(uint32_t));
    }
    if (r >= 0) {
      r = sd_bus_message_append(reply.m, "bub", static_cast<int>(l.tx), l.rules,
                                static_cast<int>(l.anchored));
    }
    if (r >= 0) r = sd_bus_message_close_container(reply.m);
  }
  if (r >= 0) r = sd_bus_message_close_container(reply.m);
  if (r >= 0) r = sd_bus_send(nullptr, reply.m, nullptr);
  return r;
}

int AdminBus::Impl::Restore(sd_bus_message* m, const std::string& nic,
                            sd_bus_error* error) {
  if (nic.empty()) {
    return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                            "nic is required (a name ListNics shows)");
  }
  auto restored = o_.nics->Restore(nic);
  if (!restored.ok()) return SetBusError(error, restored.status());
  const int r = sd_bus_reply_method_return(
      m, "uu", restored->bindings_released(), restored->rules_removed());
  // The restored NIC shows in the health at once, not at the next refresh.
  if (o_.health != nullptr) report_ = o_.health->Check();
  Announce();
  return r;
}

int AdminBus::Impl::RestoreNic(sd_bus_message* m, void* userdata,
                               sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(sd_bus_message_get_bus(m), /*admin=*/true,
                          "RestoreNic", error);
  if (r < 0) return r;
  const char* nic = nullptr;
  r = sd_bus_message_read(m, "s", &nic);
  if (r < 0) return r;
  return self->Restore(m, nic != nullptr ? nic : "", error);
}

int AdminBus::Impl::RestoreThisNic(sd_bus_message* m, void* userdata,
                                   sd_bus_error* error) {
  auto* self = static_cast<Impl*>(userdata);
  int r = self->Authorize(sd_bus_message_get_bus(m), /*admin=*/true, "Restore",
                          error);
  if (r < 0) return r;
  return self->Restore(m, NicOfPath(sd_bus_message_get_path(m)), error);
}

AdminBus::AdminBus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminBus::~AdminBus() { Stop(); }

absl::StatusOr<std::unique_ptr<AdminBus>> AdminBus::Start(Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  absl::Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<AdminBus>(new AdminBus(std::move(impl)));
}

void AdminBus::OnHealth(const HealthReport& report) {
  if (impl_) impl_->OnHealth(report);
}

void AdminBus::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace devmem
