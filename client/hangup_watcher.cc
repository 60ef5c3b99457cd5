#include "client/hangup_watcher.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "kernel/errno_status.h"

namespace devmem {

HangupWatcher::HangupWatcher()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!epoll_.valid() || !stop_.valid()) return;  // Watch reports it
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(epoll_.get_unowned(), EPOLL_CTL_ADD, stop_.get_unowned(),
                  &ev) != 0) {
    stop_.Reset();
    return;
  }
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), kHangupThreadName);
    Loop();
  });
}

HangupWatcher::~HangupWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_.get_unowned(), &one, sizeof(one));
    thread_.join();
  }
}

HangupWatcher& HangupWatcher::Shared() {
  static absl::Mutex mu(absl::kConstInit);
  static HangupWatcher* watcher = nullptr;
  static pid_t owner = 0;
  absl::MutexLock lock(&mu);
  // After fork() the parent's watcher thread does not exist in the child,
  // and its epoll set is the parent's: the child's sessions get a new one
  // (the old object is left alone; its thread is not ours to join).
  if (watcher == nullptr || owner != ::getpid()) {
    watcher = new HangupWatcher();
    owner = ::getpid();
  }
  return *watcher;
}

absl::StatusOr<uint64_t> HangupWatcher::Watch(int fd,
                                              std::function<void()> on_hangup) {
  if (!thread_.joinable()) {
    return absl::InternalError(
        "the hang-up watcher could not start (epoll_create1 or eventfd "
        "failed)");
  }
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  struct epoll_event ev = {};
  // Never EPOLLIN: the socket's answers are read by its owner.
  ev.events = EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_.get_unowned(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(EPOLL_CTL_ADD) of a session socket");
  }
  entries_[id] = Entry{fd, std::move(on_hangup)};
  return id;
}

void HangupWatcher::Unwatch(uint64_t id) {
  if (id == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    (void)::epoll_ctl(epoll_.get_unowned(), EPOLL_CTL_DEL, it->second.fd,
                      nullptr);
    entries_.erase(it);
  }
  // Called from the callback itself, waiting would never end.
  if (std::this_thread::get_id() == thread_.get_id()) return;
  while (running_ == id) callback_done_.Wait(&mu_);
}

size_t HangupWatcher::watched() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

bool HangupWatcher::Take(uint64_t id, std::function<void()>* on_hangup) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  // Its owner has not unwatched it, so the fd is still open and still the
  // socket that was registered.
  (void)::epoll_ctl(epoll_.get_unowned(), EPOLL_CTL_DEL, it->second.fd,
                    nullptr);
  *on_hangup = std::move(it->second.on_hangup);
  entries_.erase(it);
  running_ = id;
  return true;
}

void HangupWatcher::Loop() {
  struct epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll_.get_unowned(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == 0) return;  // stop
      std::function<void()> on_hangup;
      if (!Take(id, &on_hangup)) continue;  // unwatched meanwhile
      // Outside the lock: the callback may Watch, and its owner may be
      // in Unwatch (which waits for it).
      on_hangup();
      absl::MutexLock lock(&mu_);
      running_ = 0;
      callback_done_.SignalAll();
    }
  }
}

}  // namespace devmem
