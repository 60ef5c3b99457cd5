#include "deploy/slurm/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace devmem {
namespace slurm {
namespace {

constexpr int kExecFailed = 127;

// Reads `fd` until EOF or the deadline; false on the deadline.
bool Drain(int fd, absl::Time deadline, std::string* out) {
  char buf[4096];
  for (;;) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int ready =
        poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (ready < 0 && errno != EINTR) return true;
    if (ready <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    if (out->size() < (1 << 20)) out->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return absl::InvalidArgumentError("a command needs an absolute path");
  }
  if (access(argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat(argv[0], " cannot be executed: ", strerror(errno)));
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    dup2(write_end.get_unowned(), STDOUT_FILENO);
    dup2(write_end.get_unowned(), STDERR_FILENO);
    execve(args[0], args.data(), environ);
    _exit(kExecFailed);
  }
  write_end.Reset();
  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool finished = Drain(read_end.get_unowned(), deadline, &result.output);
  int status = 0;
  // Output closed: the program has exited or is about to (or closed it
  // early; the deadline holds for that too).
  while (finished && waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) finished = false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (!finished) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (!finished) {
    return absl::DeadlineExceededError(
        absl::StrCat(absl::StrJoin(argv, " "), " did not finish within ",
                     absl::FormatDuration(timeout), "; killed it"));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace slurm
}  // namespace devmem
