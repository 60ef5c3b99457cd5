#include "bench/bench_env.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "kernel/errno_status.h"

// posix_spawn needs the environment to pass on.
extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace devmem {
namespace bench {
namespace {

constexpr absl::Duration kToolTimeout = absl::Seconds(15);
constexpr absl::Duration kDaemonStartTimeout = absl::Seconds(15);
constexpr absl::Duration kDaemonStopTimeout = absl::Seconds(5);

}  // namespace

double MicrosSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::micro>(end - start).count();
}

// ---------------------------------------------------------------------------
// Child processes.

// Starts argv[0] (searched in PATH) with default signal dispositions and an
// empty signal mask: this process blocks the stop signals for its sigwait
// thread, and children must not inherit that.
// With `cpu` >= 0 the child starts pinned to that CPU.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args,
                            bool stdout_to_null, int cpu) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_to_null) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
  }
  // A child inherits its parent thread's CPU mask across fork and exec, so
  // this thread borrows the child's mask for the call.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  bool borrowed = false;
  if (cpu >= 0 && cpu < CPU_SETSIZE &&
      ::sched_getaffinity(0, sizeof(saved), &saved) == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    borrowed = ::sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  pid_t pid = -1;
  const int rc =
      posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), environ);
  if (borrowed) ::sched_setaffinity(0, sizeof(saved), &saved);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return ErrnoStatus(rc, absl::StrCat("spawn ", absl::StrJoin(args, " ")));
  }
  return pid;
}

UniqueFd PidFd(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// Waits for `pid` to exit and reaps it. Returns its wait status, or
// DEADLINE_EXCEEDED (the child is left running) after `timeout`.
absl::StatusOr<int> WaitExit(pid_t pid, absl::Duration timeout) {
  UniqueFd pidfd = PidFd(pid);
  if (pidfd) {
    struct pollfd pfd = {pidfd.get_unowned(), POLLIN, 0};
    int n;
    do {
      n = ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "pid ", pid, " still running after ", absl::FormatDuration(timeout)));
    }
  }
  int wstatus = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &wstatus, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, absl::StrCat("waitpid ", pid));
  return wstatus;
}

std::string DescribeWait(int wstatus) {
  if (WIFEXITED(wstatus)) return absl::StrCat("exit ", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wstatus));
  }
  return absl::StrCat("wait status ", wstatus);
}

// Runs a tool (here: `ip`) to completion; anything but exit 0 is an error.
absl::Status RunTool(const std::vector<std::string>& args) {
  absl::StatusOr<pid_t> pid = Spawn(args, /*stdout_to_null=*/false);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> wstatus = WaitExit(*pid, kToolTimeout);
  if (!wstatus.ok()) {
    ::kill(*pid, SIGKILL);
    (void)WaitExit(*pid, kToolTimeout);
    return wstatus.status();
  }
  if (!WIFEXITED(*wstatus) || WEXITSTATUS(*wstatus) != 0) {
    return absl::InternalError(absl::StrCat(
        "`", absl::StrJoin(args, " "), "` failed: ", DescribeWait(*wstatus)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
void Cleanup::SetDaemon(pid_t pid) {
  absl::MutexLock lock(&mu_);
  daemon_ = pid;
}

void Cleanup::SetSender(pid_t pid) {
  absl::MutexLock lock(&mu_);
  sender_ = pid;
  if (done_ && pid > 0) ::kill(pid, SIGKILL);
}

void Cleanup::AddNetns(const std::string& name) {
  absl::MutexLock lock(&mu_);
  netns_.push_back(name);
}

void Cleanup::SetRuntimeDir(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  runtime_dir_ = dir;
}

void Cleanup::Run() {
  absl::MutexLock lock(&mu_);
  if (done_) return;
  done_ = true;
  if (sender_ > 0) {
    ::kill(sender_, SIGKILL);
    (void)WaitExit(sender_, kDaemonStopTimeout);
    sender_ = -1;
  }
  if (daemon_ > 0) {
    ::kill(daemon_, SIGTERM);
    absl::StatusOr<int> w = WaitExit(daemon_, kDaemonStopTimeout);
    if (!w.ok()) {
      std::fprintf(stderr,
                   "handoff_bench: devmemd (pid %d) ignored SIGTERM for %s; "
                   "sending SIGKILL\n",
                   daemon_, absl::FormatDuration(kDaemonStopTimeout).c_str());
      ::kill(daemon_, SIGKILL);
      (void)WaitExit(daemon_, kDaemonStopTimeout);
    } else if (!WIFEXITED(*w) || WEXITSTATUS(*w) != 0) {
      std::fprintf(stderr, "handoff_bench: devmemd stopped with %s\n",
                   DescribeWait(*w).c_str());
    }
    daemon_ = -1;
  }
  for (auto it = netns_.rbegin(); it != netns_.rend(); ++it) {
    absl::Status s = RunTool({"ip", "netns", "del", *it});
    if (!s.ok()) {
      absl::FPrintF(stderr, "handoff_bench: cleanup: %s\n", s.message());
    }
  }
  netns_.clear();
  if (!runtime_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir_, ec);
    if (ec) {
      std::fprintf(stderr, "handoff_bench: cleanup: remove %s: %s\n",
                   runtime_dir_.c_str(), ec.message().c_str());
    }
    runtime_dir_.clear();
  }
}

Cleanup& TheCleanup() {
  static Cleanup* const cleanup = new Cleanup();
  return *cleanup;
}

// Blocks the stop signals in this (still single-threaded) process, so every
// later thread inherits the mask, and handles them on one thread that can
// safely fork/exec `ip netns del`.
void StartSignalThread() {
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::thread([stop] {
    int sig = 0;
    sigwait(&stop, &sig);
    std::fprintf(stderr, "handoff_bench: %s received, cleaning up\n",
                 strsignal(sig));
    TheCleanup().Run();
    _exit(128 + sig);
  }).detach();
}

// ---------------------------------------------------------------------------
// Namespaces.

absl::StatusOr<Netns> CreateVethPair() {
  Netns ns{absl::StrCat("devmemd-bench-a-", ::getpid()),
           absl::StrCat("devmemd-bench-b-", ::getpid())};
  for (const std::string& name : {ns.a, ns.b}) {
    absl::Status s = RunTool({"ip", "netns", "add", name});
    if (!s.ok()) return s;
    TheCleanup().AddNetns(name);
  }
  // Both ends are created directly inside their namespaces, so the names
  // cannot collide with anything on the host.
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "-n", ns.a, "link", "add", kNicA, "type", "veth", "peer", "name",
       kNicB, "netns", ns.b},
      {"ip", "-n", ns.a, "addr", "add", absl::StrCat(kIpA, "/", kPrefixLen),
       "dev", kNicA},
      {"ip", "-n", ns.b, "addr", "add", absl::StrCat(kIpB, "/", kPrefixLen),
       "dev", kNicB},
      {"ip", "-n", ns.a, "link", "set", "lo", "up"},
      {"ip", "-n", ns.b, "link", "set", "lo", "up"},
      {"ip", "-n", ns.a, "link", "set", kNicA, "up"},
      {"ip", "-n", ns.b, "link", "set", kNicB, "up"},
  };
  for (const auto& step : steps) {
    absl::Status s = RunTool(step);
    if (!s.ok()) return s;
  }
  return ns;
}

// Moves the calling thread (the main thread, before gRPC starts any) into
// namespace `name`, so the bench's own sockets live beside devmemd's.
absl::Status EnterNetns(const std::string& name) {
  const std::string path = absl::StrCat("/run/netns/", name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (::setns(fd.get_unowned(), CLONE_NEWNET) != 0) {
    return ErrnoStatus(errno, absl::StrCat("setns ", path));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// devmemd.

absl::StatusOr<std::unique_ptr<Session>> StartDaemon(
    const std::string& devmemd, const std::string& netns,
    const std::string& runtime_dir) {
  TheCleanup().SetRuntimeDir(runtime_dir);
  absl::StatusOr<pid_t> pid =
      Spawn({"ip", "netns", "exec", netns, devmemd,
             absl::StrCat("--runtime_dir=", runtime_dir), "--allow_uids=0"},
            /*stdout_to_null=*/false);
  if (!pid.ok()) return pid.status();
  // `ip netns exec` execs the command in place: *pid is devmemd itself.
  TheCleanup().SetDaemon(*pid);
  UniqueFd pidfd = PidFd(*pid);
  if (!pidfd) return ErrnoStatus(errno, "pidfd_open(devmemd)");

  const absl::Time deadline = absl::Now() + kDaemonStartTimeout;
  absl::Status last;
  for (;;) {
    absl::StatusOr<std::unique_ptr<Session>> session =
        Session::Open(runtime_dir);
    if (session.ok()) return session;
    last = session.status();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("devmemd did not accept a session within ",
                       absl::FormatDuration(kDaemonStartTimeout),
                       "; last error: ", last.message()));
    }
    // Waits on devmemd's exit, which doubles as the retry interval.
    struct pollfd pfd = {pidfd.get_unowned(), POLLIN, 0};
    if (::poll(&pfd, 1, /*timeout=*/20) > 0) {
      absl::StatusOr<int> w = WaitExit(*pid, absl::ZeroDuration());
      TheCleanup().SetDaemon(-1);
      return absl::FailedPreconditionError(
          absl::StrCat("devmemd exited during start-up (",
                       w.ok() ? DescribeWait(*w) : w.status().ToString(),
                       "); see its messages above"));
    }
  }
}

}  // namespace bench
}  // namespace devmem
