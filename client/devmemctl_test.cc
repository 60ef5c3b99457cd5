// Runs the devmemctl binary against an in-process FakeDevmemd: output
// formats, exit codes (0 ok, 1 failure, 2 usage) and a loopback transfer.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/pattern.h"
#include "client/testing/fake_devmemd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBinary[] = "client/devmemctl";  // runfiles-relative

// A running devmemctl with its stdout and stderr captured.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int out[2], err[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    out_.Reset(out[0]);
    err_.Reset(err[0]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<char*> argv;
    std::string binary = kBinary;
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(
        posix_spawn(&pid_, kBinary, &actions, nullptr, argv.data(), environ),
        0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
  }

  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Reads until stderr contains `needle` (true) or the deadline/EOF (false).
  bool WaitForStderr(const std::string& needle,
                     absl::Duration limit = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + limit;
    while (stderr_.find(needle) == std::string::npos) {
      if (!PumpOnce(deadline)) return false;
    }
    return true;
  }

  // Collects all output and the exit code (-1 on timeout or signal).
  int Finish(absl::Duration limit = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + limit;
    while (out_.valid() || err_.valid()) {
      if (!PumpOnce(deadline)) return -1;
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

 private:
  // One poll round over both pipes; false once the deadline passes.
  bool PumpOnce(absl::Time deadline) {
    struct pollfd pfds[2] = {{out_.get_unowned(), POLLIN, 0},
                             {err_.get_unowned(), POLLIN, 0}};
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    int n = poll(pfds, 2, static_cast<int>(ms));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    Drain(pfds[0], out_, stdout_);
    Drain(pfds[1], err_, stderr_);
    return true;
  }

  static void Drain(const pollfd& pfd, UniqueFd& fd, std::string& sink) {
    if (pfd.fd < 0 || pfd.revents == 0) return;
    char buf[4096];
    ssize_t n = read(fd.get_unowned(), buf, sizeof(buf));
    if (n <= 0) {
      fd.Reset();
    } else {
      sink.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  UniqueFd out_;
  UniqueFd err_;
  std::string stdout_;
  std::string stderr_;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCtl(const std::vector<std::string>& args) {
  Child child(args);
  int code = child.Finish();
  return {code, child.out(), child.err()};
}

// Port from "listening on 127.0.0.1:PORT (...".
int PortFromListening(const std::string& err) {
  const std::string key = "listening on 127.0.0.1:";
  size_t at = err.find(key);
  if (at == std::string::npos) return -1;
  size_t end = err.find(' ', at + key.size());
  int port = -1;
  if (!absl::SimpleAtoi(err.substr(at + key.size(), end - at - key.size()),
                        &port)) {
    return -1;
  }
  return port;
}

std::string TempPath(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

class DevmemctlTest : public ::testing::Test {
 protected:
  std::string DirFlag() const {
    return "--runtime_dir=" + daemon_.runtime_dir();
  }
  testing::FakeDevmemd daemon_;
};

TEST_F(DevmemctlTest, StatusPrintsKeyValueLines) {
  Result r = RunCtl({"status", DirFlag()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("version: fake-1\n"));
  EXPECT_THAT(r.out, HasSubstr("netdev_ops: dev-get,bind-rx\n"));
  EXPECT_THAT(r.out, HasSubstr("backend: simulated\n"));
}

TEST_F(DevmemctlTest, GlobalFlagsMayComeFirst) {
  Result r = RunCtl({DirFlag(), "--json", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"version\":\"fake-1\""));
  EXPECT_THAT(r.out, HasSubstr("\"kernel_release\":\"6.18.0-fake\""));
}

TEST_F(DevmemctlTest, NicsPrintsTableAndUnsupportedCapabilities) {
  Result r = RunCtl({"nics", DirFlag()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("NAME"));
  EXPECT_THAT(r.out, HasSubstr("TCP-DATA-SPLIT"));
  EXPECT_THAT(r.out, HasSubstr("\nlo "));
  EXPECT_THAT(r.out, HasSubstr("off [fixed]"));  // ntuple
  EXPECT_THAT(r.out, HasSubstr("lo: devmem RX not possible, missing: "
                               "channels\n"));
  EXPECT_THAT(r.out, HasSubstr("\n  channels: unsupported (errno 95): "
                               "Operation not supported\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("  features:")));
}

TEST_F(DevmemctlTest, NicsUnknownNameFailsWithHint) {
  Result r = RunCtl({"nics", "eth9", DirFlag()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND: no NIC named 'eth9'; NICs: lo"));
  EXPECT_THAT(r.err, HasSubstr("hint:"));
}

TEST_F(DevmemctlTest, ListenConnectPatternOverLoopback) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1",
                  "--expect_pattern"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  ASSERT_GT(port, 0) << listener.err();
  EXPECT_THAT(listener.err(), HasSubstr("(nic lo, fd from devmemd)"));

  // Not a multiple of the pattern's 1 MiB period, to cross a period edge.
  const int64_t kBytes = 3 * (1 << 20) + 12345;
  Result sender = RunCtl({"connect", DirFlag(), "--nic=lo",
                          absl::StrCat("--remote=127.0.0.1:", port),
                          absl::StrCat("--bytes=", kBytes), "--pattern"});
  EXPECT_EQ(sender.code, 0) << sender.err;
  EXPECT_THAT(sender.out, HasSubstr(absl::StrCat("sent ", kBytes, " bytes")));
  EXPECT_EQ(listener.Finish(), 0) << listener.err();
  EXPECT_THAT(listener.out(),
              HasSubstr(absl::StrCat("received ", kBytes, " bytes in ")));
  EXPECT_THAT(listener.out(), HasSubstr("Gbit/s), pattern ok"));
}

TEST_F(DevmemctlTest, ListenReportsFirstBadOffset) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1",
                  "--expect_pattern"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  // Zeros: byte 0 of the pattern is 0 too, byte 1 is 131.
  Result sender =
      RunCtl({"connect", DirFlag(), "--nic=lo",
              absl::StrCat("--remote=127.0.0.1:", port), "--bytes=1000"});
  EXPECT_EQ(listener.Finish(), 1);
  EXPECT_THAT(listener.err(),
              HasSubstr("pattern mismatch at byte offset 1: expected 0x83, "
                        "got 0x00"));
}

TEST_F(DevmemctlTest, InputToOutputFileWithJson) {
  const std::string in_path = TempPath("in.bin");
  const std::string out_path = TempPath("out.bin");
  std::string data;
  for (int i = 0; i < 200000; ++i) data.push_back(static_cast<char>(i * 7));
  std::ofstream(in_path, std::ios::binary) << data;

  Child listener({"listen", DirFlag(), "--json", "--nic=lo", "--addr=127.0.0.1",
                  "--output=" + out_path});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  Result sender =
      RunCtl({"connect", DirFlag(), "--json", "--nic=lo",
              absl::StrCat("--remote=127.0.0.1:", port), "--input=" + in_path});
  EXPECT_EQ(sender.code, 0) << sender.err;
  EXPECT_THAT(sender.out, HasSubstr("\"ticket\":"));
  EXPECT_THAT(sender.out, HasSubstr("\"command\":\"connect\",\"ok\":true"));
  EXPECT_THAT(sender.out, HasSubstr("\"bytes\":200000"));
  ASSERT_EQ(listener.Finish(), 0) << listener.err();
  EXPECT_THAT(listener.out(), HasSubstr("\"command\":\"listen\",\"ok\":true"));
  EXPECT_THAT(listener.out(), HasSubstr("\"bytes\":200000"));

  std::stringstream got;
  got << std::ifstream(out_path, std::ios::binary).rdbuf();
  EXPECT_EQ(got.str(), data);
}

TEST_F(DevmemctlTest, ConnectRefusedIsRuntimeFailureWithHint) {
  // Port 1 on loopback: nothing listens there in a test sandbox.
  Result r = RunCtl({"connect", DirFlag(), "--nic=lo", "--remote=127.0.0.1:1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(r.err, HasSubstr("hint: is anything listening"));
}

TEST_F(DevmemctlTest, ListenUnknownNicSuggestsNics) {
  Result r = RunCtl({"listen", DirFlag(), "--nic=eth9"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr("devmemctl nics"));
}

TEST_F(DevmemctlTest, RefusedPeerGetsPermissionHint) {
  daemon_.RefuseSessions(7, "uid 1000 gid 1000 is not allowed");
  Result r = RunCtl({"status", DirFlag()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err,
              HasSubstr("PERMISSION_DENIED: uid 1000 gid 1000 is not allowed"));
  EXPECT_THAT(r.err, HasSubstr("allow_uids"));
}

TEST(DevmemctlNoDaemonTest, MissingDaemonIsRuntimeFailure) {
  Result r = RunCtl({"status", "--runtime_dir=/nonexistent-devmemd"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("is devmemd running? no socket at "
                               "/nonexistent-devmemd/session.sock"));
}

TEST(DevmemctlUsageTest, HelpExitsZero) {
  Result r = RunCtl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("commands:"));
  r = RunCtl({"listen", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: devmemctl listen"));
  EXPECT_THAT(r.out, HasSubstr("--expect_pattern"));
  EXPECT_THAT(r.out, Not(HasSubstr("--remote")));
  r = RunCtl({"help", "connect"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--remote"));
}

TEST(DevmemctlUsageTest, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {},
           {"frobnicate"},
           {"status", "--no_such_flag"},
           {"nics", "--port=80"},               // flag of another command
           {"listen"},                          // --nic missing
           {"listen", "--nic=lo", "--port=x"},  // bad value
           {"listen", "--nic=lo", "--port=70000"},
           {"listen", "--nic=lo", "--json", "--output=-"},
           {"connect", "--nic=lo"},                       // --remote missing
           {"connect", "--nic=lo", "--remote=10.0.0.1"},  // no port
           {"connect", "--nic=lo", "--remote=host:80"},   // not numeric
           {"connect", "--nic=lo", "--remote=10.0.0.1:80", "--pattern"},
           {"status", "extra"},
       }) {
    Result r = RunCtl(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << "\n" << r.err;
  }
}

}  // namespace
}  // namespace devmem
