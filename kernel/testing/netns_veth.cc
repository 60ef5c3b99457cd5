#include "kernel/testing/netns_veth.h"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kernel/errno_status.h"

extern char** environ;

namespace devmem::testing {
namespace {

struct SpawnActions {
  posix_spawn_file_actions_t actions;
  SpawnActions() { posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
};

}  // namespace

absl::StatusOr<std::string> ResolveTool(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::vector<std::string> dirs =
      absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty());
  for (const char* extra : {"/usr/local/sbin", "/usr/sbin", "/sbin"}) {
    dirs.push_back(extra);
  }
  for (const std::string& dir : dirs) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      name, " not found in $PATH or /usr/local/sbin, /usr/sbin, /sbin"));
}

namespace {

// Spawns argv; closes the parent's `write_end` (if any) right after, so the
// child holds the only writer, drains `read_end` into `output` until EOF,
// then reaps the child. Returns its exit code (-1 if signaled).
absl::StatusOr<int> SpawnAndWait(const std::vector<std::string>& argv,
                                 const SpawnActions& actions,
                                 UniqueFd* write_end, UniqueFd* read_end,
                                 std::string* output) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  absl::StatusOr<std::string> program = ResolveTool(argv[0]);
  if (!program.ok()) {
    if (write_end != nullptr) write_end->Reset();
    return program.status();
  }
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, program->c_str(), &actions.actions, nullptr,
                              args.data(), environ);
  if (write_end != nullptr) write_end->Reset();
  if (err != 0) return ErrnoStatus(err, absl::StrCat("spawn ", argv[0]));
  if (read_end != nullptr) {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(read_end->get_unowned(), buf, sizeof(buf));
      if (n > 0) {
        output->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return ErrnoStatus(errno, absl::StrCat("waitpid ", argv[0]));
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  SpawnActions actions;
  // dup2 in the child clears O_CLOEXEC on its copies only.
  posix_spawn_file_actions_adddup2(&actions.actions, write_end.get_unowned(),
                                   STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions.actions, write_end.get_unowned(),
                                   STDERR_FILENO);
  CommandResult result;
  absl::StatusOr<int> code =
      SpawnAndWait(argv, actions, &write_end, &read_end, &result.output);
  if (!code.ok()) return code.status();
  result.exit_code = *code;
  return result;
}

absl::StatusOr<int> RunQuiet(const std::vector<std::string>& argv) {
  SpawnActions actions;
  posix_spawn_file_actions_addopen(&actions.actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions.actions, STDERR_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  return SpawnAndWait(argv, actions, nullptr, nullptr, nullptr);
}

absl::StatusOr<std::unique_ptr<ScopedNetns>> ScopedNetns::Enter() {
  UniqueFd original(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!original) return ErrnoStatus(errno, "open /proc/thread-self/ns/net");
  if (unshare(CLONE_NEWNET) != 0) {
    return ErrnoStatus(errno, "unshare(CLONE_NEWNET)");
  }
  return std::unique_ptr<ScopedNetns>(new ScopedNetns(std::move(original)));
}

ScopedNetns::~ScopedNetns() {
  // Back to where we were; the private namespace dies with its last user.
  if (setns(original_.get_unowned(), CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "ScopedNetns: setns back failed: %s\n",
                 std::strerror(errno));
  }
}

absl::StatusOr<std::unique_ptr<ScopedVethPair>> ScopedVethPair::Create(
    const std::string& a, const std::string& b) {
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "link", "add", a, "type", "veth", "peer", "name", b},
      {"ip", "link", "set", a, "up"},
      {"ip", "link", "set", b, "up"},
  };
  // Owns the pair from the first step on, so a later failure cleans up.
  std::unique_ptr<ScopedVethPair> pair;
  for (const std::vector<std::string>& step : steps) {
    absl::StatusOr<CommandResult> r = RunCommand(step);
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) {
      return absl::InternalError(absl::StrCat("`", absl::StrJoin(step, " "),
                                              "` exited with ", r->exit_code,
                                              ": ", r->output));
    }
    if (pair == nullptr) pair.reset(new ScopedVethPair(a, b));
  }
  return pair;
}

ScopedVethPair::~ScopedVethPair() {
  // Deleting one end deletes the pair.
  (void)RunQuiet({"ip", "link", "del", a_});
}

}  // namespace devmem::testing
