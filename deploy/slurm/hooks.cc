#include "deploy/slurm/hooks.h"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/libdevmem.h"
#include "deploy/slurm/job_files.h"
#include "deploy/slurm/job_gres.h"
#include "deploy/slurm/run_command.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {
namespace slurm {
namespace {

// Who the reservations are made as: `devmemctl reservations` shows it, and
// the Epilog releases only what a Prolog made.
constexpr char kOwner[] = "slurm";
constexpr char kRequestId[] = "slurm-prolog";
constexpr size_t kMaxReasonBytes = 200;

struct JobEnv {
  std::string job_id;
  std::string node;
  uid_t uid = 0;
  gid_t gid = 0;
};

std::string Env(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : value;
}

absl::StatusOr<uint32_t> EnvId(const char* name) {
  uint32_t id = 0;
  if (!absl::SimpleAtoi(Env(name), &id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("$", name,
                     " is not set to a number: run this as "
                     "slurm.conf's Prolog/Epilog, where slurmd sets it"));
  }
  return id;
}

// The job as slurmd's environment for the hook describes it.
absl::StatusOr<JobEnv> ReadJobEnv(bool need_user) {
  JobEnv env;
  env.job_id = Env("SLURM_JOB_ID");
  env.node = Env("SLURMD_NODENAME");
  if (env.job_id.empty()) {
    return absl::InvalidArgumentError(
        "$SLURM_JOB_ID is not set: run this from Slurm (slurm.conf Prolog=, "
        "Epilog= or TaskProlog=)");
  }
  if (!need_user) return env;
  if (env.node.empty()) {
    return absl::InvalidArgumentError("$SLURMD_NODENAME is not set");
  }
  absl::StatusOr<uint32_t> uid = EnvId("SLURM_JOB_UID");
  if (!uid.ok()) return uid.status();
  absl::StatusOr<uint32_t> gid = EnvId("SLURM_JOB_GID");
  if (!gid.ok()) return gid.status();
  env.uid = *uid;
  env.gid = *gid;
  return env;
}

// This node's devmemq count and the job's time limit, from scontrol.
absl::StatusOr<JobGres> AskSlurm(const HookConfig& config, const JobEnv& env) {
  absl::StatusOr<CommandResult> shown =
      RunCommand({config.scontrol, "show", "job", "-d", env.job_id},
                 config.scontrol_timeout);
  if (!shown.ok()) return shown.status();
  if (shown->exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat(config.scontrol, " show job -d ", env.job_id,
                     " failed (exit ", shown->exit_code, "): ", shown->output));
  }
  return ParseJobGres(shown->output, env.node);
}

// An untyped devmemq comes from --nic, or from the one NIC with a pool.
absl::StatusOr<std::string> DefaultNic(const HookConfig& config,
                                       Session& session) {
  if (!config.nic.empty()) return config.nic;
  absl::StatusOr<v1::GetNicStateResponse> state = session.GetNicState();
  if (!state.ok()) return state.status();
  std::vector<std::string> pools;
  for (const v1::NicState& nic : state->nics()) {
    if (!nic.pool_queues().empty()) pools.push_back(nic.nic());
  }
  if (pools.size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("devmemd has ", pools.size(), " NICs with a devmem pool (",
                     absl::StrJoin(pools, ", "),
                     "); give the Prolog --nic, or type the GRES per NIC "
                     "(devmemctl gres-conf)"));
  }
  return pools[0];
}

absl::StatusOr<v1::ReserveRequest> ReserveRequestFor(const HookConfig& config,
                                                     const JobEnv& env,
                                                     const JobGres& gres,
                                                     Session& session) {
  v1::ReserveRequest req;
  req.set_job_id(env.job_id);
  req.set_request_id(kRequestId);
  req.set_owner(kOwner);
  req.set_redeemer_uid(env.uid);
  const absl::Duration ttl =
      gres.time_limit.has_value()
          ? std::min(*gres.time_limit + config.ttl_margin, config.max_ttl)
          : config.max_ttl;
  req.set_ttl_s(
      static_cast<uint32_t>(std::max<int64_t>(1, absl::ToInt64Seconds(ttl))));
  for (const auto& [type, count] : gres.queues) {
    v1::ReservationItem* item = req.add_items();
    if (type.empty()) {
      absl::StatusOr<std::string> nic = DefaultNic(config, session);
      if (!nic.ok()) return nic.status();
      item->set_nic(*nic);
    } else {
      item->set_nic(type);
    }
    item->set_queue_count(count);
  }
  return req;
}

std::string Describe(const v1::Reservation& r) {
  std::vector<std::string> items;
  for (const v1::ReservedItem& item : r.items()) {
    items.push_back(absl::StrCat(item.nic(), " queues ",
                                 absl::StrJoin(item.queues(), ",")));
  }
  return absl::StrCat(r.id(), " (", absl::StrJoin(items, "; "), ")");
}

absl::Status Prolog(const HookConfig& config, const JobEnv& env) {
  absl::StatusOr<JobFiles> files = JobFiles::For(config.token_dir, env.job_id);
  if (!files.ok()) return files.status();
  absl::StatusOr<JobGres> gres = AskSlurm(config, env);
  if (!gres.ok()) return gres.status();
  if (gres->queues.empty()) return absl::OkStatus();  // no devmemq asked
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Open(config.runtime_dir);
  if (!session.ok()) {
    return absl::UnavailableError(
        absl::StrCat("devmemd is not reachable: ", session.status().message()));
  }
  absl::StatusOr<v1::ReserveRequest> req =
      ReserveRequestFor(config, env, *gres, **session);
  if (!req.ok()) return req.status();
  absl::StatusOr<v1::ReserveResponse> made = (*session)->Reserve(*req);
  if (!made.ok()) {
    return absl::Status(made.status().code(),
                        absl::StrCat("devmemd refused the reservation: ",
                                     made.status().message()));
  }
  absl::Status written = files->MakeDir();
  if (written.ok()) {
    written = files->WriteToken(made->token(), env.uid, env.gid);
  }
  if (written.ok()) written = files->WriteState(Describe(made->reservation()));
  if (!written.ok()) {  // leave nothing behind
    v1::ReleaseReservationRequest undo;
    undo.set_id(made->reservation().id());
    undo.set_owner(kOwner);
    (void)(*session)->ReleaseReservation(undo);
    return written;
  }
  absl::PrintF(
      "devmem-slurm prolog: job %s on %s: reserved %s for uid %d; "
      "token in %s\n",
      env.job_id, env.node, Describe(made->reservation()), env.uid,
      files->token_path());
  return absl::OkStatus();
}

absl::Status Epilog(const HookConfig& config, const JobEnv& env) {
  absl::StatusOr<JobFiles> files = JobFiles::For(config.token_dir, env.job_id);
  if (!files.ok()) return files.status();
  absl::StatusOr<std::string> state = files->ReadState();
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Open(config.runtime_dir);
  if (!session.ok()) {
    if (!state.ok()) return absl::OkStatus();  // nothing reserved here
    return absl::UnavailableError(absl::StrCat(
        "devmemd is not reachable, so reservation ", *state,
        " stays until its TTL ends: ", session.status().message()));
  }
  v1::ReleaseReservationRequest req;
  req.set_job_id(env.job_id);
  req.set_request_id(kRequestId);
  req.set_owner(kOwner);
  absl::StatusOr<v1::ReleaseReservationResponse> released =
      (*session)->ReleaseReservation(req);
  if (!released.ok()) {
    return absl::Status(released.status().code(),
                        absl::StrCat("devmemd did not release the job: ",
                                     released.status().message()));
  }
  absl::Status removed = files->Remove();
  if (!removed.ok()) return removed;
  if (!released->released().empty()) {
    absl::PrintF("devmem-slurm epilog: job %s: released %s\n", env.job_id,
                 absl::StrJoin(released->released(), ", "));
  }
  return absl::OkStatus();
}

// Says why on stderr (slurmd logs it) and drains the node with the reason.
int Failed(const char* hook, const HookConfig& config, const JobEnv& env,
           const absl::Status& status) {
  const std::string what =
      absl::StrCat("job ", env.job_id, ": ", status.message());
  absl::FPrintF(stderr, "devmem-slurm %s: %s (%s)\n", hook, what,
                absl::StatusCodeToString(status.code()));
  if (config.drain_on_failure && !env.node.empty()) {
    std::string reason = absl::StrCat("devmem ", hook, ": ", what);
    if (reason.size() > kMaxReasonBytes) reason.resize(kMaxReasonBytes);
    absl::StatusOr<CommandResult> drained =
        RunCommand({config.scontrol, "update", "nodename=" + env.node,
                    "state=drain", "reason=" + reason},
                   config.scontrol_timeout);
    if (!drained.ok() || drained->exit_code != 0) {
      absl::FPrintF(stderr, "devmem-slurm %s: could not drain %s: %s\n", hook,
                    env.node,
                    drained.ok() ? drained->output
                                 : std::string{drained.status().message()});
    }
  }
  return 1;
}

}  // namespace

int RunProlog(const HookConfig& config) {
  absl::StatusOr<JobEnv> env = ReadJobEnv(/*need_user=*/true);
  if (!env.ok()) return Failed("prolog", config, JobEnv{}, env.status());
  absl::Status done = Prolog(config, *env);
  return done.ok() ? 0 : Failed("prolog", config, *env, done);
}

int RunEpilog(const HookConfig& config) {
  absl::StatusOr<JobEnv> env = ReadJobEnv(/*need_user=*/false);
  if (!env.ok()) return Failed("epilog", config, JobEnv{}, env.status());
  env->node = Env("SLURMD_NODENAME");
  absl::Status done = Epilog(config, *env);
  return done.ok() ? 0 : Failed("epilog", config, *env, done);
}

int RunTaskProlog(const HookConfig& config) {
  absl::StatusOr<JobEnv> env = ReadJobEnv(/*need_user=*/false);
  if (!env.ok()) return 0;  // not a Slurm task: nothing to export
  absl::StatusOr<JobFiles> files = JobFiles::For(config.token_dir, env->job_id);
  absl::StatusOr<std::string> token =
      files.ok() ? files->ReadToken() : files.status();
  if (token.ok() && !token->empty() &&
      token->find_first_of(" \t\n'\"$\\`") == std::string::npos) {
    absl::PrintF("export %s=%s\n", kReservationEnv, *token);
  } else if (!token.ok() && !absl::IsNotFound(token.status())) {
    // Slurm shows "print" lines on the task's stdout.
    absl::PrintF("print devmem-slurm task-prolog: no %s: %s\n", kReservationEnv,
                 token.status().message());
  }
  return 0;
}

}  // namespace slurm
}  // namespace devmem
