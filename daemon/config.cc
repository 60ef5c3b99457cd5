#include "daemon/config.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/base/text_proto.h"
#include "daemon/ops/listen_address.h"
#include "daemon/session/unit_identity.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

absl::Status CheckRange(absl::string_view source, absl::string_view field,
                        uint32_t value, uint32_t lo, uint32_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field ", field, " = ", value,
                     " is out of range [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

// Each profile names a NIC once, and its pool and rule quota make sense.
absl::Status CheckProfiles(const devmem::v1::DaemonConfig& c,
                           absl::string_view source) {
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < c.nic_profiles_size(); ++i) {
    const devmem::v1::NicProfile& p = c.nic_profiles(i);
    const std::string where = absl::StrCat(source, ": nic_profiles[", i, "]");
    absl::Status s = CheckProfile(p, where);
    if (!s.ok()) return s;
    if (!seen.insert(p.nic()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": nic \"", p.nic(), "\" has more than one profile"));
    }
  }
  return absl::OkStatus();
}

// admin_users: each name's uid joins admin_uids and allow_uids (once).
absl::Status ResolveAdminUsers(devmem::v1::DaemonConfig* c,
                               absl::string_view source) {
  for (int i = 0; i < c->admin_users_size(); ++i) {
    struct passwd pw;
    struct passwd* result = nullptr;
    std::vector<char> buf(16384);
    int err = ::getpwnam_r(c->admin_users(i).c_str(), &pw, buf.data(),
                           buf.size(), &result);
    if (result == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": field admin_users[", i, "] = \"", c->admin_users(i),
          "\": no such user",
          err != 0 ? absl::StrCat(" (", std::strerror(err), ")") : "",
          "; create it (e.g. with sysusers.d) or remove the line"));
    }
    const uint32_t uid = result->pw_uid;
    auto has = [uid](const auto& list) {
      return std::find(list.begin(), list.end(), uid) != list.end();
    };
    if (!has(c->admin_uids())) c->add_admin_uids(uid);
    if (!has(c->allow_uids())) c->add_allow_uids(uid);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FinalizeConfig(devmem::v1::DaemonConfig* c,
                            absl::string_view source) {
  if (c->runtime_dir().empty()) c->set_runtime_dir(kDaemonRuntimeDir);
  if (c->ticket_ttl_ms() == 0) c->set_ticket_ttl_ms(10000);
  if (c->max_tickets_per_session() == 0) {
    c->set_max_tickets_per_session(1024);
  }
  if (c->max_sessions() == 0) c->set_max_sessions(4096);
  if (c->default_backlog() == 0) c->set_default_backlog(128);
  if (c->default_connect_timeout_ms() == 0) {
    c->set_default_connect_timeout_ms(5000);
  }
  if (c->state_dir().empty()) c->set_state_dir(kDefaultStateDir);
  if (c->max_rules_per_session() == 0) c->set_max_rules_per_session(4096);
  if (c->max_bindings_per_session() == 0) c->set_max_bindings_per_session(8);
  if (c->nic_backend().empty()) c->set_nic_backend("kernel");
  if (c->runtime_dir().front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field runtime_dir = \"", c->runtime_dir(),
                     "\" must be an absolute path"));
  }
  if (c->restart_grace_ms() == 0) c->set_restart_grace_ms(30000);
  if (c->max_sessions_per_uid() == 0) c->set_max_sessions_per_uid(1024);
  if (c->max_bindings_per_uid() == 0) c->set_max_bindings_per_uid(64);
  if (c->max_rules_per_uid() == 0) c->set_max_rules_per_uid(16384);
  if (c->max_sockets_per_uid() == 0) c->set_max_sockets_per_uid(65536);
  if (c->max_reservation_ttl_s() == 0) c->set_max_reservation_ttl_s(86400);
  if (c->max_reservations() == 0) c->set_max_reservations(4096);
  struct Range {
    const char* field;
    uint32_t value;
    uint32_t lo;
    uint32_t hi;
  };
  const Range ranges[] = {
      {"ticket_ttl_ms", c->ticket_ttl_ms(), 100, 600000},
      {"max_tickets_per_session", c->max_tickets_per_session(), 1, 4096},
      {"max_sessions", c->max_sessions(), 1, 65536},
      {"default_backlog", c->default_backlog(), 1, 65535},
      {"default_connect_timeout_ms", c->default_connect_timeout_ms(), 1,
       600000},
      {"max_rules_per_session", c->max_rules_per_session(), 1, 65536},
      {"max_bindings_per_session", c->max_bindings_per_session(), 1, 1024},
      {"restart_grace_ms", c->restart_grace_ms(), 100, 3600000},
      {"max_sessions_per_uid", c->max_sessions_per_uid(), 1, 65536},
      {"max_bindings_per_uid", c->max_bindings_per_uid(), 1, 65536},
      {"max_rules_per_uid", c->max_rules_per_uid(), 1, 1048576},
      {"max_sockets_per_uid", c->max_sockets_per_uid(), 1, 1048576},
      {"max_reservation_ttl_s", c->max_reservation_ttl_s(), 1, 31536000},
      {"max_reservations", c->max_reservations(), 1, 1048576},
  };
  absl::Status s;
  for (const Range& r : ranges) {
    s = CheckRange(source, r.field, r.value, r.lo, r.hi);
    if (!s.ok()) break;
  }
  if (s.ok()) s = CheckProfiles(*c, source);
  if (!s.ok()) return s;
  if (c->state_dir().front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field state_dir = \"", c->state_dir(),
                     "\" must be an absolute path"));
  }
  if (c->nic_backend() != "kernel" && c->nic_backend() != "simulated") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": field nic_backend = \"", c->nic_backend(),
        "\" is unknown; use \"kernel\" (real NICs) or \"simulated\" (a "
        "simulated devmem NIC per profile, for demos without hardware)"));
  }
  if (!c->metrics_listen().empty()) {
    auto listen = ParseLoopbackListen(
        c->metrics_listen(), absl::StrCat(source, ": field metrics_listen"));
    if (!listen.ok()) return listen.status();
  }
  for (int i = 0; i < c->allow_units_size(); ++i) {
    const std::string problem = UnitRuleProblem(c->allow_units(i));
    if (!problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field allow_units[", i, "] = \"",
                       c->allow_units(i), "\" ", problem));
    }
  }
  for (int i = 0; i < c->allow_slices_size(); ++i) {
    const std::string problem = SliceRuleProblem(c->allow_slices(i));
    if (!problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field allow_slices[", i, "] = \"",
                       c->allow_slices(i), "\" ", problem));
    }
  }
  s = ResolveAdminUsers(c, source);
  if (!s.ok()) return s;
  if (!c->socket_group().empty()) {
    struct group gr;
    struct group* result = nullptr;
    std::vector<char> buf(16384);
    int err = ::getgrnam_r(c->socket_group().c_str(), &gr, buf.data(),
                           buf.size(), &result);
    if (result == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": field socket_group = \"", c->socket_group(),
          "\": no such group",
          err != 0 ? absl::StrCat(" (", std::strerror(err), ")") : "",
          "; create it (e.g. with sysusers.d) or leave socket_group empty"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckProfile(const devmem::v1::NicProfile& p,
                          absl::string_view where) {
  if (p.nic().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field nic is required (an interface name)"));
  }
  if (p.nic().size() >= 16) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": nic \"", p.nic(),
                     "\" is longer than an interface name can be (15)"));
  }
  if (p.pool_queue_ids_size() > 0 && p.pool_queues() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": set pool_queues or pool_queue_ids, not both"));
  }
  absl::flat_hash_set<uint32_t> ids;
  for (uint32_t q : p.pool_queue_ids()) {
    if (!ids.insert(q).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": queue ", q, " is listed twice in pool_queue_ids"));
    }
  }
  absl::Status s = CheckRange(where, "pool_queues", p.pool_queues(), 0, 1024);
  if (s.ok()) {
    s = CheckRange(where, "combined_channels", p.combined_channels(), 0, 4096);
  }
  return s;
}

absl::StatusOr<devmem::v1::DaemonConfig> ParseConfig(absl::string_view text,
                                                     absl::string_view source) {
  devmem::v1::DaemonConfig config;
  absl::Status s = ParseTextProto(text, source, &config);
  if (s.ok()) s = FinalizeConfig(&config, source);
  if (!s.ok()) return s;
  return config;
}

absl::StatusOr<devmem::v1::DaemonConfig> LoadConfigFile(
    const std::string& path) {
  std::string text;
  absl::Status read = ReadTextFile(path, &text);
  if (!read.ok()) return read;
  return ParseConfig(text, path);
}

}  // namespace devmem
