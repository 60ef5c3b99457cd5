// Session's live restart (docs/PROTOCOL.md section 8): the hang-up watch
// that notices devmemd going away (one thread per process, HangupWatcher),
// the reconnect thread and its Resume with the binding anchors handed back,
// and the waiting of calls made meanwhile.
#include <poll.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/libdevmem.h"
#include "client/rpc_deadline.h"
#include "client/session_socket.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {

using devmem::v1::SessionFrame;

bool Session::AwaitResume() const {
  if (!options_.auto_reconnect) return false;
  // A call that reached a restarted devmemd before the resume would fail
  // with UNAUTHENTICATED (its token is not known there yet): wait for the
  // watch thread instead. Past the deadline the call goes as it is.
  const absl::Time deadline = absl::Now() + options_.reconnect_timeout;
  bool waited = false;
  absl::MutexLock lock(&reconnect_mu_);
  while (watching_ && absl::Now() < deadline) {
    if (!reconnecting_) {
      reconnect_mu_.Unlock();
      const bool hung_up = SessionSocketHungUp();
      reconnect_mu_.Lock();
      // Hung up but not reconnecting: the watch thread is about to start.
      if (!hung_up && !reconnecting_) break;
    }
    waited = true;
    reconnect_cv_.WaitWithDeadline(
        &reconnect_mu_,
        std::min(deadline, absl::Now() + absl::Milliseconds(10)));
  }
  return waited;
}

grpc::Status Session::CallResuming(
    const std::function<grpc::Status(grpc::ClientContext*)>& call) const {
  const uint64_t before = reconnects_.load();
  grpc::Status status;
  {
    grpc::ClientContext context;
    status = call(&context);
  }
  if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED ||
      !options_.auto_reconnect) {
    return status;
  }
  // Refused by a daemon that did not know the session yet: devmemd went
  // away before the hang-up showed on the session socket. Once the resume
  // is done, once more (a refused call changed nothing).
  if (!AwaitResume() && reconnects_.load() == before) return status;
  grpc::ClientContext again;
  return call(&again);
}

bool Session::SessionSocketHungUp() const {
  absl::MutexLock lock(&mu_);
  struct pollfd pfd = {};
  pfd.fd = session_fd_.get_unowned();
  pfd.events = POLLRDHUP;
  if (pfd.fd < 0 || ::poll(&pfd, 1, 0) != 1) return false;
  return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

absl::StatusOr<bool> Session::Reconnect(absl::Duration timeout) {
  absl::StatusOr<bool> resumed = ReconnectSessionSocket(timeout);
  if (!resumed.ok()) return resumed;
  // gRPC notices an idle connection died only when it next writes to it (its
  // backup poller runs every 5 s). Make it notice now, so the caller's next
  // call goes to the new daemon instead of failing with "Broken pipe".
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    SetRpcDeadline(context, options_.frame_timeout, /*wait_for_ready=*/true);
    devmem::v1::GetStatusResponse response;
    if (stub_->GetStatus(&context, devmem::v1::GetStatusRequest(), &response)
            .ok()) {
      break;
    }
  }
  return resumed;
}

std::map<uint64_t, UniqueFd> Session::ResendAnchors(
    int fd, const devmem::v1::Resumed& resumed) {
  std::map<uint64_t, UniqueFd> anchors;
  {
    absl::MutexLock state(&state_mu_);
    anchors.swap(anchors_);
  }
  const auto& awaiting = resumed.awaiting_anchor();
  const auto& adopted = resumed.adopted();
  std::map<uint64_t, UniqueFd> kept;
  for (auto& [handle, anchor] : anchors) {
    const bool wants =
        std::find(awaiting.begin(), awaiting.end(), handle) != awaiting.end();
    const bool has =
        std::find(adopted.begin(), adopted.end(), handle) != adopted.end();
    if (has) {
      kept[handle] = std::move(anchor);
      continue;
    }
    if (!wants) continue;  // the daemon dropped it: our copy goes
    SessionFrame give;
    give.mutable_return_anchor()->set_handle(handle);
    absl::StatusOr<std::string> gb = EncodeFrame(give);
    const int afd = anchor.get_unowned();
    if (!gb.ok() || !SendWithFds(fd, *gb, absl::MakeSpan(&afd, 1)).ok()) {
      break;
    }
    absl::StatusOr<SessionReply> ack =
        ReadFrame(fd, DeadlineAfter(options_.frame_timeout));
    if (!ack.ok()) break;
    if (ack->frame.has_anchor_accepted()) {
      kept[handle] = std::move(anchor);
    }
    // An Error (binding died, not ours any more) drops our copy.
  }
  return kept;
}

absl::StatusOr<bool> Session::ReconnectSessionSocket(absl::Duration timeout) {
  if (stub_ == nullptr) {
    return absl::FailedPreconditionError(
        "this session was not made with Session::Open(); it cannot "
        "reconnect");
  }
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(10);
  absl::Status last = absl::UnavailableError("no attempt made");
  absl::MutexLock lock(&mu_);
  for (;;) {
    absl::StatusOr<UniqueFd> fd = ConnectSessionSocket(options_.runtime_dir);
    absl::StatusOr<devmem::v1::Hello> hello =
        fd.ok() ? ReadHello(fd->get_unowned(),
                            std::min(options_.frame_timeout,
                                     std::max(deadline - absl::Now(),
                                              absl::Milliseconds(10))))
                : absl::StatusOr<devmem::v1::Hello>(fd.status());
    if (hello.ok()) {
      // Resume the old session on the new connection.
      SessionFrame request;
      request.mutable_resume()->set_session_token(session_token());
      absl::StatusOr<std::string> bytes = EncodeFrame(request);
      if (!bytes.ok()) return bytes.status();
      absl::Status sent = SendWithFds(fd->get_unowned(), *bytes, {});
      absl::StatusOr<SessionReply> answer =
          sent.ok() ? ReadFrame(fd->get_unowned(),
                                DeadlineAfter(options_.frame_timeout))
                    : absl::StatusOr<SessionReply>(sent);
      if (answer.ok() && answer->frame.has_resumed()) {
        std::map<uint64_t, UniqueFd> kept =
            ResendAnchors(fd->get_unowned(), answer->frame.resumed());
        {
          absl::MutexLock state(&state_mu_);
          anchors_ = std::move(kept);
          hello_ = *hello;
          hello_.set_session_id(answer->frame.resumed().session_id());
        }
        RewatchSocket(fd->get_unowned());
        session_fd_ = *std::move(fd);
        broken_ = absl::OkStatus();
        return true;
      }
      if (answer.ok() && answer->frame.has_error() &&
          answer->frame.error().code() ==
              static_cast<int>(absl::StatusCode::kNotFound)) {
        // Unknown to this daemon: carry on with the fresh session.
        RewatchSocket(fd->get_unowned());
        absl::MutexLock state(&state_mu_);
        anchors_.clear();
        hello_ = *hello;
        token_ = hello->session_token();
        session_fd_ = *std::move(fd);
        broken_ = absl::OkStatus();
        return false;
      }
      if (answer.ok() && answer->frame.has_error()) {
        return ErrorFrameStatus(answer->frame.error());
      }
      last =
          answer.ok()
              ? absl::InternalError(absl::StrCat(
                    "devmemd answered Resume with ", BodyName(answer->frame)))
              : answer.status();
    } else {
      last = hello.status();
      if (hello.status().code() == absl::StatusCode::kPermissionDenied) {
        return hello.status();
      }
    }
    if (absl::Now() + backoff > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "devmemd did not come back within ", absl::FormatDuration(timeout),
          "; last error: ", last.message()));
    }
    // Backoff between attempts: a restarting daemon needs a moment to bind
    // its sockets again.
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(250));
  }
}

void Session::WatchSocket(int fd) {
  absl::StatusOr<uint64_t> id = watcher_->Watch(fd, [this] { OnHangup(); });
  if (id.ok()) {
    watch_id_ = *id;
    return;
  }
  watching_ = false;  // no hang-up will be noticed
  reconnect_cv_.SignalAll();
}

void Session::RewatchSocket(int fd) {
  uint64_t old = 0;
  {
    absl::MutexLock lock(&reconnect_mu_);
    old = std::exchange(watch_id_, 0);
  }
  // Not under reconnect_mu_: the callback Unwatch may wait for takes it.
  watcher_->Unwatch(old);
  absl::MutexLock lock(&reconnect_mu_);
  if (!closing_ && watching_) WatchSocket(fd);
}

void Session::OnHangup() {
  {
    // watch_id_ stays this registration's: ~Session unwatches it, which
    // waits for this callback to end before the session goes.
    absl::MutexLock lock(&reconnect_mu_);
    if (closing_) return;
    if (options_.auto_reconnect) {
      reconnecting_ = true;
      if (reconnector_running_) {
        hangup_pending_ = true;  // the running thread goes once more
        return;
      }
      // The last reconnect thread, if any, has finished its work.
      if (reconnector_.joinable()) reconnector_.join();
      reconnector_running_ = true;
      reconnector_ = std::thread([this] { ReconnectLoop(); });
      return;
    }
    watching_ = false;
    reconnect_cv_.SignalAll();
  }
  // The leases are gone with the session: our anchor copies must not keep
  // the kernel bindings (and their queues) alive.
  absl::MutexLock lock(&state_mu_);
  anchors_.clear();
}

void Session::ReconnectLoop() {
  for (;;) {
    // Watches the new socket itself (RewatchSocket) once it is resumed.
    absl::StatusOr<bool> resumed = Reconnect(options_.reconnect_timeout);
    if (resumed.ok() && *resumed) ++resumes_;
    ++reconnects_;
    {
      absl::MutexLock lock(&reconnect_mu_);
      reconnecting_ = hangup_pending_ && resumed.ok();
      if (!resumed.ok()) watching_ = false;  // the session stays broken
      reconnect_cv_.SignalAll();
    }
    if (options_.on_reconnect) {
      options_.on_reconnect(resumed.status(), resumed.ok() && *resumed);
    }
    if (!resumed.ok()) {
      absl::MutexLock lock(&state_mu_);
      anchors_.clear();
    }
    absl::MutexLock lock(&reconnect_mu_);
    if (!hangup_pending_ || closing_ || !watching_) {
      hangup_pending_ = false;
      reconnecting_ = false;
      reconnector_running_ = false;
      reconnect_cv_.SignalAll();
      return;
    }
    hangup_pending_ = false;
  }
}

}  // namespace devmem
