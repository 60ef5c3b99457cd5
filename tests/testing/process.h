#pragma once
// Process plumbing for tests and benches that run devmemd and workloads as
// real processes: spawn them, read their output line by line, kill -9 them,
// read their figures from /proc, and act as a minimal systemd for the fd
// store (NOTIFY_SOCKET + LISTEN_FDS).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace devmem {
namespace testing {

// A child process with its stdin and stdout (stderr too, merged unless asked
// otherwise) on pipes.
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
    // The drain thread (if any) holds the fd and the Output, neither of
    // which moves.
    output_ = std::exchange(o.output_, std::make_unique<Output>());
    drain_ = std::move(o.drain_);
    return *this;
  }
  ~Proc() { Kill(); }

  // `fds` are placed at 3, 4, ... in the child (for LISTEN_FDS); with
  // `listen_pid` the child runs through /bin/sh so that LISTEN_PID is its
  // own pid, as systemd sets it. Without `merge_stderr` the child's stderr
  // is this process's. Not running() if the spawn failed.
  static Proc Spawn(std::vector<std::string> argv,
                    const std::vector<std::string>& env = {},
                    const std::vector<int>& fds = {}, bool listen_pid = false,
                    bool merge_stderr = true) {
    Proc p;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return p;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (merge_stderr) {
      posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
    }
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
  // Everything read from the child's output so far.
  std::string output() const {
    absl::MutexLock lock(&output_->mu);
    return output_->all;
  }

  // The next output line starting with `prefix` (earlier lines are skipped
  // but kept in output(); "" takes the next line); nullopt on EOF, when
  // `limit` passes, or once DrainInBackground() was called.
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
      if (!out_.valid() || drain_.joinable()) return std::nullopt;
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
      absl::MutexLock lock(&output_->mu);
      output_->all.append(buf, static_cast<size_t>(r));
    }
  }

  // From now on a thread reads the child's output into output() as it
  // comes, so that a child that keeps writing never blocks on a full pipe
  // while nobody calls WaitLine (which then returns nullopt).
  void DrainInBackground() {
    if (!out_.valid() || drain_.joinable()) return;
    drain_ = std::thread([fd = out_.get_unowned(), o = output_.get()] {
      for (;;) {
        // Once stopped: only what is already in the pipe.
        const bool stop = o->stop.load();
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, stop ? 0 : 100) <= 0) {
          if (stop) return;
          continue;
        }
        char buf[4096];
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0) return;
        absl::MutexLock lock(&o->mu);
        o->all.append(buf, static_cast<size_t>(r));
      }
    });
  }

  // Writes `line` and a newline to the child's stdin.
  bool Send(const std::string& line) {
    const std::string l = line + "\n";
    return write(in_.get_unowned(), l.data(), l.size()) ==
           static_cast<ssize_t>(l.size());
  }
  // EOF on the child's stdin.
  void CloseStdin() { in_.Reset(); }

  // SIGKILL and reap.
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    StopDrain();
  }
  // Waits for the child to exit, reading its output into output() meanwhile
  // (so that it never blocks on a full pipe; lines not yet taken by WaitLine
  // are skipped), and returns its exit code; -1 if it was killed by a signal,
  // or if `limit` passed (it is then killed).
  int Wait(absl::Duration limit = absl::Seconds(30)) {
    if (pid_ <= 0) return -1;
    const absl::Time deadline = absl::Now() + limit;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (absl::Now() > deadline) {
        Kill();
        return -1;
      }
      if (drain_.joinable() || !out_.valid()) {
        absl::SleepFor(absl::Milliseconds(20));
      } else {
        (void)WaitLine("\x01never", absl::Milliseconds(20));
      }
    }
    pid_ = -1;
    StopDrain();
    // The rest of its output, up to EOF.
    (void)WaitLine("\x01never", absl::Milliseconds(100));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // SIGTERM and Wait().
  int Terminate(absl::Duration limit = absl::Seconds(20)) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    return Wait(limit);
  }

 private:
  struct Output {
    absl::Mutex mu;
    std::string all ABSL_GUARDED_BY(mu);
    std::atomic<bool> stop{false};
  };

  // Ends the drain thread once it has read what is in the pipe.
  void StopDrain() {
    if (!drain_.joinable()) return;
    output_->stop.store(true);
    drain_.join();
  }

  pid_t pid_ = -1;
  UniqueFd in_;
  UniqueFd out_;
  std::string pending_;
  std::unique_ptr<Output> output_ = std::make_unique<Output>();
  std::thread drain_;
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

// A number from /proc/<pid>/status ("VmRSS", "VmHWM" in KiB, "Threads");
// -1 if absent.
inline int64_t ProcStatusField(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) {
      std::vector<std::string> parts =
          absl::StrSplit(line.substr(field.size() + 1), absl::ByAnyChar(" \t"),
                         absl::SkipEmpty());
      int64_t v;
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &v)) return v;
    }
  }
  return -1;
}

// The numbers of an output line "TAG k=v k=v": {k: v}.
inline std::map<std::string, int64_t> LineFields(const std::string& line) {
  std::map<std::string, int64_t> out;
  for (absl::string_view part : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int64_t v;
    if (absl::SimpleAtoi(kv.second, &v)) out[kv.first] = v;
  }
  return out;
}

// Raises this process's RLIMIT_NOFILE (soft, and hard too when root) to
// `want`; children inherit it. FailedPrecondition if the hard limit is lower
// and this process is not root.
inline absl::Status RaiseFdLimit(rlim_t want) {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur >= want) return absl::OkStatus();
  if (r.rlim_max < want) {
    if (geteuid() != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "RLIMIT_NOFILE hard limit is ", r.rlim_max, "; this load needs ",
          want, " fds per process (run as root or raise it)"));
    }
    r.rlim_max = want;
  }
  r.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
    return absl::InternalError(absl::StrCat("setrlimit(RLIMIT_NOFILE, ", want,
                                            "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
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
      messages_.emplace_back(buf);
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

  // Every notification received so far (e.g. "READY=1\nSTATUS=...").
  std::vector<std::string> messages() {
    Drain();
    return messages_;
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
  std::vector<std::string> messages_;
};

}  // namespace testing
}  // namespace devmem
