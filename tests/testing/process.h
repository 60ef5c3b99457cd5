#pragma once
// Process plumbing for the fault-injection suite: spawn devmemd and workloads
// as real processes, read their output line by line, kill -9 them, and act as
// a minimal systemd for the fd store (NOTIFY_SOCKET + LISTEN_FDS).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace devmem {
namespace testing {

// A child process with its stdin and stdout (stderr too, merged) on pipes.
class Proc {
 public:
  Proc() = default;
  Proc(Proc&& o) noexcept { *this = std::move(o); }
  Proc& operator=(Proc&& o) noexcept {
    if (this == &o) return *this;
    Kill();
    pid_ = std::exchange(o.pid_, -1);
    in_ = std::move(o.in_);
    out_ = std::move(o.out_);
    pending_ = std::move(o.pending_);
    all_ = std::move(o.all_);
    return *this;
  }
  ~Proc() { Kill(); }

  // `fds` are placed at 3, 4, ... in the child (for LISTEN_FDS); with
  // `listen_pid` the child runs through /bin/sh so that LISTEN_PID is its
  // own pid, as systemd sets it.
  static Proc Spawn(std::vector<std::string> argv,
                    const std::vector<std::string>& env = {},
                    const std::vector<int>& fds = {}, bool listen_pid = false) {
    Proc p;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return p;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
    // Two hops so that sources and targets cannot collide.
    for (size_t i = 0; i < fds.size(); ++i) {
      posix_spawn_file_actions_adddup2(&fa, fds[i], 900 + static_cast<int>(i));
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      posix_spawn_file_actions_adddup2(&fa, 900 + static_cast<int>(i),
                                       3 + static_cast<int>(i));
      posix_spawn_file_actions_addclose(&fa, 900 + static_cast<int>(i));
    }
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) {
      if (absl::StartsWith(*e, "LISTEN_") || absl::StartsWith(*e, "NOTIFY_")) {
        continue;
      }
      envs.push_back(*e);
    }
    for (const std::string& e : env) envs.push_back(e);
    if (listen_pid) {
      argv.insert(argv.begin(), {"/bin/sh", "-c",
                                 "export LISTEN_PID=$$; exec \"$0\" \"$@\""});
    }
    std::vector<char*> av, ev;
    for (std::string& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    for (std::string& e : envs) ev.push_back(e.data());
    ev.push_back(nullptr);
    if (posix_spawn(&p.pid_, av[0], &fa, nullptr, av.data(), ev.data()) != 0) {
      p.pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    p.in_.Reset(in[1]);
    p.out_.Reset(out[0]);
    return p;
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& output() const { return all_; }

  // The next output line starting with `prefix` (earlier lines are skipped
  // but kept in output()); nullopt on EOF or when `limit` passes.
  std::optional<std::string> WaitLine(
      const std::string& prefix, absl::Duration limit = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + limit;
    for (;;) {
      size_t nl;
      while ((nl = pending_.find('\n')) != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        if (absl::StartsWith(line, prefix)) return line;
      }
      if (!out_.valid()) return std::nullopt;
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (ms <= 0) return std::nullopt;
      struct pollfd pfd = {out_.get_unowned(), POLLIN, 0};
      int n = poll(&pfd, 1, static_cast<int>(ms));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      char buf[4096];
      ssize_t r = read(out_.get_unowned(), buf, sizeof(buf));
      if (r <= 0) {
        out_.Reset();
        continue;
      }
      pending_.append(buf, static_cast<size_t>(r));
      all_.append(buf, static_cast<size_t>(r));
    }
  }

  void Send(const std::string& line) {
    const std::string l = line + "\n";
    (void)!write(in_.get_unowned(), l.data(), l.size());
  }

  // SIGKILL and reap.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGTERM; returns the exit code (-1 if killed by a signal or on timeout).
  int Terminate(absl::Duration limit = absl::Seconds(20)) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + limit;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (absl::Now() > deadline) {
        Kill();
        return -1;
      }
      // Drain output so the child never blocks on a full pipe.
      (void)WaitLine("\x01never", absl::Milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd in_;
  UniqueFd out_;
  std::string pending_;
  std::string all_;
};

// Open fds of a process.
inline int FdCount(pid_t pid) {
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// systemd's side of the fd store: a datagram socket at `path` that the
// daemon's sd_pid_notify_with_fds() talks to. Keeps FDSTORE=1 fds by
// FDNAME and drops them on FDSTOREREMOVE=1.
class MiniSystemd {
 public:
  explicit MiniSystemd(std::string path) : path_(std::move(path)) {
    unlink(path_.c_str());
    sock_.Reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    ok_ = bind(sock_.get_unowned(), reinterpret_cast<sockaddr*>(&a),
               sizeof(a)) == 0;
  }
  ~MiniSystemd() { unlink(path_.c_str()); }
  bool ok() const { return ok_; }
  std::string env() const { return absl::StrCat("NOTIFY_SOCKET=", path_); }

  // Reads every queued notification.
  void Drain() {
    for (;;) {
      char buf[4096];
      char cbuf[CMSG_SPACE(sizeof(int) * 16) + CMSG_SPACE(64)];
      struct iovec iov = {buf, sizeof(buf) - 1};
      struct msghdr m = {};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = cbuf;
      m.msg_controllen = sizeof(cbuf);
      ssize_t n = recvmsg(sock_.get_unowned(), &m, MSG_CMSG_CLOEXEC);
      if (n < 0) return;
      buf[n] = '\0';
      std::vector<int> fds;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr;
           c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (size_t i = 0; i < k; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.push_back(fd);
          }
        }
      }
      std::string name;
      bool store = false, remove = false;
      for (absl::string_view kv : absl::StrSplit(buf, '\n')) {
        if (kv == "FDSTORE=1") store = true;
        if (kv == "FDSTOREREMOVE=1") remove = true;
        if (absl::ConsumePrefix(&kv, "FDNAME=")) name = std::string(kv);
      }
      if (remove) {
        for (auto it = stored_.begin(); it != stored_.end();) {
          it = it->first == name ? stored_.erase(it) : it + 1;
        }
      }
      for (int fd : fds) {
        if (store) {
          stored_.emplace_back(name, UniqueFd(fd));
        } else {
          close(fd);
        }
      }
    }
  }

  size_t stored() {
    Drain();
    return stored_.size();
  }
  // The stored fds in order and LISTEN_FDS / LISTEN_FDNAMES for them.
  std::vector<int> fds() const {
    std::vector<int> out;
    for (const auto& [n, fd] : stored_) out.push_back(fd.get_unowned());
    return out;
  }
  std::vector<std::string> listen_env() const {
    std::vector<std::string> names;
    for (const auto& [n, fd] : stored_) names.push_back(n);
    return {absl::StrCat("LISTEN_FDS=", stored_.size()),
            absl::StrCat("LISTEN_FDNAMES=", absl::StrJoin(names, ":"))};
  }

 private:
  std::string path_;
  UniqueFd sock_;
  bool ok_ = false;
  std::vector<std::pair<std::string, UniqueFd>> stored_;
};

}  // namespace testing
}  // namespace devmem
