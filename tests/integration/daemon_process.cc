#include "tests/integration/daemon_process.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

bool Accepts(const std::string& path, int type) {
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd.get_unowned(), reinterpret_cast<sockaddr*>(&addr),
                   sizeof(addr)) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(
    const std::string& binary, const std::string& runtime_dir,
    const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {binary,
                                   absl::StrCat("--runtime_dir=", runtime_dir)};
  // Each test daemon gets its own journal unless the test names one.
  bool has_state_dir = false;
  for (const std::string& a : extra_args) {
    if (a.rfind("--state_dir=", 0) == 0) has_state_dir = true;
  }
  if (!has_state_dir) args.push_back("--state_dir=" + runtime_dir + "/state");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  std::unique_ptr<DaemonProcess> d(new DaemonProcess(pid, runtime_dir));
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  // The session socket is created last; a probe connection on it opens (and at
  // once closes) one session, which is harmless.
  while (!Accepts(runtime_dir + "/session.sock", SOCK_SEQPACKET)) {
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      d->reaped_ = true;
      return absl::FailedPreconditionError(
          absl::StrCat("devmemd exited during start-up, status ", status));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("devmemd did not start within 15 s");
    }
    std::this_thread::yield();
  }
  return d;
}

int DaemonProcess::FdCount() const {
  DIR* dir = ::opendir(absl::StrCat("/proc/", pid_, "/fd").c_str());
  if (dir == nullptr) return -1;
  int n = 0;
  while (struct dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

int DaemonProcess::Terminate() {
  if (!reaped_) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return status_;
}

DaemonProcess::~DaemonProcess() { Terminate(); }

}  // namespace devmem
