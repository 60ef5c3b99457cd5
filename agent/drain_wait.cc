#include "agent/drain_wait.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"

namespace devmem::agent {
namespace {

constexpr uint32_t kDefaultDrainDeadlineS = 300;

}  // namespace

grpc::Status DrainAndWait(DevmemdLink* link, grpc::ServerContext* ctx,
                          const std::string& by, uint32_t deadline_s) {
  devmem::v1::DrainRequest up;
  up.set_reason("NIC profile change (ApplyProfile with drain_first)");
  up.set_by(by);
  up.set_deadline_s(deadline_s == 0 ? kDefaultDrainDeadlineS : deadline_s);
  auto upstream = DevmemdLink::StreamContext();
  auto reader = link->stub()->Drain(upstream.get(), up);
  // The caller going away cancels the drain's wait (not the cordon).
  absl::Notification read_done;
  std::thread follow([&] {
    while (!read_done.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
      if (ctx->IsCancelled()) {
        upstream->TryCancel();
        return;
      }
    }
  });
  devmem::v1::DrainProgress progress;
  devmem::v1::DrainProgress last;
  while (reader->Read(&progress)) last = progress;
  read_done.Notify();
  follow.join();
  grpc::Status s = link->Relay(reader->Finish());
  if (ctx->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "the client went away while the host drained");
  }
  if (!s.ok()) return s;
  if (last.done()) return grpc::Status::OK;
  return grpc::Status(
      grpc::StatusCode::DEADLINE_EXCEEDED,
      absl::StrCat("the drain before the profile change did not finish in ",
                   up.deadline_s(),
                   " s; still there: ", absl::StrJoin(last.remaining(), "; "),
                   ". The host stays cordoned; release those or raise "
                   "drain_deadline_s"));
}

}  // namespace devmem::agent
