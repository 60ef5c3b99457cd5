// Runs the devmemctl binary against an in-process FakeDevmemd: output
// formats, exit codes (0 ok, 1 failure, 2 usage) and a loopback transfer.

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/pattern.h"
#include "client/testing/fake_devmemd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/testing/netns_veth.h"
#include "kernel/unique_fd.h"

extern char** environ;

namespace devmem {
namespace {

using ::testing::ContainsRegex;
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

// The kernel documentation's sender (KERNEL_API.md's corrected form) into a
// file that `connect --input` sends.
std::string NcdevmemSenderFile(int64_t bytes) {
  const std::string path = TempPath("ncdevmem-pattern");
  const std::string cmd = absl::StrCat(
      "yes \"$(printf '\\1\\2\\3\\4\\5\\6')\" | head -c ", bytes, " > ", path);
  EXPECT_EQ(system(cmd.c_str()), 0);
  return path;
}

TEST_F(DevmemctlTest, ListenRecvDevmemValidatesNcdevmemsPattern) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1",
                  "--bind_memfd_mb=4", "--recv", "devmem", "--validate", "7"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  const int64_t kBytes = 5 * (1 << 20) + 3;
  Result sender = RunCtl({"connect", DirFlag(), "--nic=lo",
                          absl::StrCat("--remote=127.0.0.1:", port),
                          "--input=" + NcdevmemSenderFile(kBytes)});
  EXPECT_EQ(sender.code, 0) << sender.err;
  EXPECT_EQ(listener.Finish(), 0) << listener.err();
  // Loopback carries ordinary data: all of it "not steered", all checked.
  EXPECT_THAT(listener.out(),
              HasSubstr(absl::StrCat("received ", kBytes, " bytes in ")));
  EXPECT_THAT(listener.out(),
              HasSubstr(absl::StrCat("pattern ok; device 0 B, linear 0 B, "
                                     "not steered ",
                                     kBytes, " B; 0 fragments")));
}

TEST_F(DevmemctlTest, ListenRecvDevmemNamesAPatternMismatch) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1",
                  "--bind_memfd_mb=4", "--recv=devmem", "--validate=6"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  RunCtl({"connect", DirFlag(), "--nic=lo",
          absl::StrCat("--remote=127.0.0.1:", port),
          "--input=" + NcdevmemSenderFile(1000)});
  EXPECT_EQ(listener.Finish(), 1);
  EXPECT_THAT(listener.err(),
              HasSubstr("differ from ncdevmem's pattern (the first at offset "
                        "5)"));
  Result usage = RunCtl({"listen", DirFlag(), "--nic=lo", "--recv=devmem"});
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.err, HasSubstr("--recv devmem needs a binding"));
}

TEST_F(DevmemctlTest, ConnectSendDevmemNamesTheKernelsRefusal) {
  Result usage = RunCtl({"connect", DirFlag(), "--nic=lo",
                         "--remote=127.0.0.1:9", "--send=devmem"});
  EXPECT_EQ(usage.code, 2);
  EXPECT_THAT(usage.err, HasSubstr("--send devmem sends --bytes=N"));
  utsname u{};
  uname(&u);
  int major = 0;
  int minor = 0;
  sscanf(u.release, "%d.%d", &major, &minor);
  if (major < 6 || (major == 6 && minor < 16)) {
    GTEST_SKIP() << "devmem TX needs kernel 6.16+";
  }
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  // The binding exists in the (fake) daemon, not in the kernel: the kernel
  // refuses the send, and devmemctl says what that means.
  Result r = RunCtl({"connect", DirFlag(), "--nic=lo",
                     absl::StrCat("--remote=127.0.0.1:", port), "--send=devmem",
                     "--bind_memfd_mb=2", "--bytes=1048576"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("for TX"));
  if (geteuid() == 0) {
    EXPECT_THAT(r.err, HasSubstr("EINVAL: the kernel has no bind-tx binding "
                                 "of that id"));
  } else {  // the fake daemon could not bind the socket to lo
    EXPECT_THAT(r.err, HasSubstr("the socket is bound to device \"\""));
  }
  listener.Finish();
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

// ---------------------------------------------------------------------------
// nic show / nic restore
// ---------------------------------------------------------------------------

TEST_F(DevmemctlTest, NicShowPrintsStateTableAndMissingCapabilities) {
  Result r = RunCtl({"nic", "show", DirFlag()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lo: applied (ifindex 1, backend simulated)\n"
                               "  reason: profile applied; queues 4-7 form "
                               "the devmem pool\n"));
  EXPECT_THAT(r.out, ContainsRegex("  SETTING +ORIGINAL +DESIRED +ACTUAL\n"));
  EXPECT_THAT(r.out, ContainsRegex("  channels \\(c/rx/tx\\) +8/-/- +8/-/- "
                                   "+8/-/-\n"));
  EXPECT_THAT(r.out, ContainsRegex("  tcp-data-split +unknown \\(auto\\) "
                                   "+enabled +enabled\n"));
  EXPECT_THAT(r.out, ContainsRegex("  hds-thresh +256 +0 +0\n"));
  EXPECT_THAT(r.out, ContainsRegex("  ntuple +off +on +on\n"));
  EXPECT_THAT(r.out, ContainsRegex("  rss +queues 0-7 \\(128 entries\\) "
                                   "+queues 0-3 \\(128 entries\\) +queues "
                                   "0-3 \\(128 entries\\)\n"));
  EXPECT_THAT(r.out, ContainsRegex("  pool queues: +4-7\n"));
  EXPECT_THAT(r.out, ContainsRegex("  free queues: +4-7\n"));
  EXPECT_THAT(r.out, ContainsRegex("  rules: +0 \\(quota 64\\)\n"));
  EXPECT_THAT(r.out, ContainsRegex("  record: +/.*/state/lo.nicstate\n"));
  // The NIC that cannot do devmem: each capability with errno and message.
  EXPECT_THAT(r.out, HasSubstr("dvveth0: not devmem-capable (ifindex 9, "
                               "backend simulated)\n"));
  EXPECT_THAT(r.out, HasSubstr("  missing:\n    rings: unsupported: ethtool "
                               "rings-get dvveth0: Operation not supported "
                               "(errno 95)\n"));
  EXPECT_THAT(r.out, HasSubstr("    ntuple: unsupported (errno 95): "
                               "rx-ntuple-filter is off [fixed]\n"));
  EXPECT_THAT(r.out, ContainsRegex("  channels \\(c/rx/tx\\) +-/1/1 +- +"
                                   "-/1/1\n"));
  EXPECT_THAT(r.out, ContainsRegex("  record: +- \\(nothing recorded\\)\n"));
}

TEST_F(DevmemctlTest, NicShowNamesOneNicAndJson) {
  Result r = RunCtl({"nic", "show", "lo", DirFlag(), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"state\":\"PROFILE_STATE_APPLIED\""));
  EXPECT_THAT(r.out, HasSubstr("\"pool_queues\":[4,5,6,7]"));
  EXPECT_THAT(r.out, Not(HasSubstr("dvveth0")));
}

TEST_F(DevmemctlTest, NicShowUnknownListsProfiles) {
  Result r = RunCtl({"nic", "show", "eth9", DirFlag()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND: no NIC profile for \"eth9\"; "
                               "profiles: dvveth0, lo"));
  EXPECT_THAT(r.err, HasSubstr("hint: devmemd manages only the NICs in its "
                               "config's nic_profiles"));
}

TEST_F(DevmemctlTest, NicRestorePrintsWhatWasReleased) {
  Result r = RunCtl({"nic", "restore", "lo", DirFlag()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lo: released 0 binding(s) and removed 0 "
                               "rule(s); state restored\n"));
  EXPECT_THAT(r.out, HasSubstr("lo: restored (ifindex 1"));
  // Actual is the original again.
  EXPECT_THAT(r.out, ContainsRegex("  tcp-data-split +unknown \\(auto\\) "
                                   "+enabled +unknown \\(auto\\)\n"));
}

TEST_F(DevmemctlTest, NicRestoreAsNonAdminGetsHint) {
  daemon_.RefuseRestore(
      "RestoreNic is an admin call; uid 1000 is neither 0 nor listed in "
      "admin_uids");
  Result r = RunCtl({"nic", "restore", "--nic=lo", DirFlag()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("devmemctl nic restore: RestoreNic lo: "
                               "PERMISSION_DENIED: RestoreNic is an admin "
                               "call"));
  EXPECT_THAT(r.err, HasSubstr("hint: restoring a NIC is an admin call: run "
                               "as root, or ask the admin to add your uid to "
                               "admin_uids"));
}

TEST_F(DevmemctlTest, NicRestoreUnknownListsProfiles) {
  Result r = RunCtl({"nic", "restore", "eth9", DirFlag()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND: no NIC profile for \"eth9\"; "
                               "profiles: dvveth0, lo"));
}

// ---------------------------------------------------------------------------
// listen / connect with a binding
// ---------------------------------------------------------------------------

TEST_F(DevmemctlTest, ListenWithMemfdBindingPrintsBindingAndRule) {
  Child listener({"listen", DirFlag(), "--json", "--nic=lo", "--addr=127.0.0.1",
                  "--bind_memfd_mb=4", "--queues=2", "--expect_pattern"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  ASSERT_GT(port, 0) << listener.err();
  EXPECT_THAT(listener.err(), HasSubstr("bound 4 MiB memfd: binding 1 "
                                        "(kernel id 1) on nic lo RX queues "
                                        "4-5\n"));
  EXPECT_THAT(
      listener.err(),
      HasSubstr(absl::StrCat("steering rule at location 1023 on lo: tcp4 dst "
                             "127.0.0.1:",
                             port,
                             " -> queue 4 (3-tuple: the listener's address "
                             "and port)\n")));
  ASSERT_EQ(daemon_.bind_requests().size(), 1u);
  EXPECT_EQ(daemon_.bind_requests()[0].queue_count(), 2u);
  EXPECT_EQ(daemon_.bind_requests()[0].nic(), "lo");
  ASSERT_EQ(daemon_.listen_requests().size(), 1u);
  EXPECT_EQ(daemon_.listen_requests()[0].binding(), 1u);

  // The binding shows in nic show while the listener holds it.
  Result shown = RunCtl({"nic", "show", "lo", DirFlag()});
  EXPECT_THAT(shown.out, ContainsRegex("  free queues: +6-7\n"));
  EXPECT_THAT(shown.out, ContainsRegex("  bindings: +1\n"));

  Result sender = RunCtl({"connect", DirFlag(), "--nic=lo",
                          absl::StrCat("--remote=127.0.0.1:", port),
                          "--bytes=100000", "--pattern"});
  EXPECT_EQ(sender.code, 0) << sender.err;
  ASSERT_EQ(listener.Finish(), 0) << listener.err();
  EXPECT_THAT(listener.out(), HasSubstr("{\"binding\":{\"handle\":\"1\","));
  EXPECT_THAT(listener.out(), HasSubstr("\"kernel_id\":1,\"queues\":[4,5]"));
  EXPECT_THAT(listener.out(), HasSubstr("\"rule\":{\"family\":"
                                        "\"ADDRESS_FAMILY_INET\""));
  EXPECT_THAT(listener.out(), HasSubstr("\"pattern_checked\":true,"
                                        "\"binding\":1}"));
}

TEST_F(DevmemctlTest, ConnectWithBindingPrintsFiveTupleRule) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  const int port = PortFromListening(listener.err());
  Result sender = RunCtl({"connect", DirFlag(), "--nic=lo",
                          absl::StrCat("--remote=127.0.0.1:", port),
                          "--bytes=1000", "--bind_memfd_mb=1"});
  EXPECT_EQ(sender.code, 0) << sender.err;
  EXPECT_THAT(sender.err, HasSubstr("bound 1 MiB memfd: binding 1 (kernel id "
                                    "1) on nic lo RX queues 4\n"));
  EXPECT_THAT(sender.err,
              ContainsRegex(absl::StrCat(
                  "steering rule at location 1023 on lo: tcp4 src 127.0.0.1:",
                  port, " dst 127.0.0.1:[0-9]+ -> queue 4 \\(5-tuple\\)\n")));
  EXPECT_EQ(listener.Finish(), 0) << listener.err();
}

TEST_F(DevmemctlTest, KernelBackendRefusesMemfdWithHint) {
  daemon_.SetBackend("kernel");
  Result r = RunCtl({"listen", DirFlag(), "--nic=lo", "--bind_memfd_mb=1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("devmemctl listen: BindRx of 1 MiB memfd on "
                               "nic lo: INVALID_ARGUMENT: fd "));
  EXPECT_THAT(r.err, HasSubstr("is a memfd, not a dma-buf"));
  EXPECT_THAT(r.err, HasSubstr("hint: only devmemd's simulated backend "
                               "(--nic_backend=simulated) binds memfd-backed "
                               "memory"));
  EXPECT_THAT(r.err, HasSubstr("--dmabuf_fd"));
  EXPECT_TRUE(daemon_.listen_requests().empty());
}

TEST_F(DevmemctlTest, BindOnUncapableNicIsFailedPrecondition) {
  Result r = RunCtl({"connect", DirFlag(), "--nic=dvveth0",
                     "--remote=127.0.0.1:1", "--bind_memfd_mb=1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION: dvveth0: dvveth0 lacks "
                               "rings, ntuple, rss"));
  EXPECT_THAT(r.err, HasSubstr("hint: `devmemctl nic show dvveth0`"));
}

TEST_F(DevmemctlTest, NicRestoreReleasesAListenersBinding) {
  Child listener({"listen", DirFlag(), "--nic=lo", "--addr=127.0.0.1",
                  "--bind_memfd_mb=1"});
  ASSERT_TRUE(listener.WaitForStderr("fd from devmemd)\n")) << listener.err();
  Result r = RunCtl({"nic", "restore", "lo", DirFlag()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lo: released 1 binding(s) and removed 1 "
                               "rule(s); state restored\n"));
  const int port = PortFromListening(listener.err());
  Result sender =
      RunCtl({"connect", DirFlag(), "--nic=lo",
              absl::StrCat("--remote=127.0.0.1:", port), "--bytes=10"});
  EXPECT_EQ(listener.Finish(), 0) << listener.err();
}

// ---------------------------------------------------------------------------
// selftest
// ---------------------------------------------------------------------------

TEST(DevmemctlSelftestTest, SimulatedSequencePasses) {
  Result r =
      RunCtl({"selftest", "--nic=dvsim0", "--simulated", "--memory_mb=4"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SIMULATED devmem selftest on dvsim0 "
                               "(simulated NIC"));
  EXPECT_THAT(r.out, HasSubstr("memory: 4 MiB memfd (simulated device "
                               "memory)\n"));
  for (const char* step :
       {"  PASS  probe: 8 RX queues, testing queues 4-7",
        "  PASS  (a) bind without queues fails: refused: ",
        "  PASS  (b) bind with split off fails: refused: ",
        "(kernel: tcp-data-split is disabled)",
        "  PASS  (c) bind succeeds: binding id ",
        "  PASS  (d) channels below bound queues refused: combined 4 refused",
        "memory provider setting (8))", "  PASS  (e) unbind on close: ",
        "  PASS  restore: read back as recorded"}) {
    EXPECT_THAT(r.out, HasSubstr(step));
  }
  EXPECT_THAT(r.out, HasSubstr("SIMULATED result: PASSED (10 steps); dvsim0 "
                               "restored as recorded\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("FAIL ")));
}

TEST(DevmemctlSelftestTest, SimulatedJson) {
  Result r = RunCtl(
      {"selftest", "--nic=dvsim0", "--simulated", "--json", "--memory_mb=1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"simulated\":true"));
  EXPECT_THAT(r.out, HasSubstr("\"passed\":true"));
  EXPECT_THAT(r.out, HasSubstr("\"name\":\"(c) bind succeeds\""));
  EXPECT_THAT(r.out, Not(HasSubstr("PASS ")));  // one JSON line only
}

TEST(DevmemctlSelftestTest, CudaMemoryWithoutTheDriverSaysSo) {
  if (void* lib = dlopen("libcuda.so.1", RTLD_NOW)) {
    dlclose(lib);
    GTEST_SKIP() << "an NVIDIA driver is installed here";
  }
  Result r = RunCtl({"selftest", "--nic=dvsim0", "--simulated", "--memory=cuda",
                     "--memory_mb=4"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("memory: none (no CUDA dma-buf could be made)"));
  EXPECT_THAT(r.out, HasSubstr("dma-buf: unsupported: FAILED_PRECONDITION: the "
                               "NVIDIA driver is not installed here"));
  Result both =
      RunCtl({"selftest", "--nic=dvsim0", "--memory=cuda", "--dmabuf_fd=0"});
  EXPECT_EQ(both.code, 2);
}

TEST(DevmemctlSelftestTest, UnknownInterfaceIsRuntimeFailure) {
  Result r = RunCtl({"selftest", "--nic=dvnosuch0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no interface dvnosuch0: NOT_FOUND: "
                               "if_nametoindex dvnosuch0: No such device"));
  EXPECT_THAT(r.err, HasSubstr("hint: `ip link` lists the interfaces"));
}

// The real kernel on a veth in a private netns: veth lacks rings, ntuple
// and RSS and has one RX queue, and this machine has no dma-buf exporter.
TEST(DevmemctlSelftestTest, VethSaysPreciselyWhyItCannotRun) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root for a netns + veth and for the selftest "
                    "(CAP_NET_ADMIN)";
  }
  absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
      testing::ScopedNetns::Enter();
  if (!ns.ok()) GTEST_SKIP() << "cannot create a netns: " << ns.status();
  absl::StatusOr<std::unique_ptr<testing::ScopedVethPair>> veth =
      testing::ScopedVethPair::Create("dvst0", "dvst1");
  ASSERT_TRUE(veth.ok()) << veth.status();
  // Spawned from this thread, the child runs in the private netns.
  Result r = RunCtl({"selftest", "--nic=dvst0"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("devmem selftest on dvst0 (ifindex "));
  EXPECT_THAT(r.out, HasSubstr("cannot run: dvst0 lacks what devmem needs; "
                               "nothing was changed\n"));
  EXPECT_THAT(r.out, HasSubstr("  channels: unsupported: 1 RX queue(s); the "
                               "test binds the upper half of at least 2"));
  EXPECT_THAT(r.out, HasSubstr("  rings: unsupported: ethtool rings-get "));
  EXPECT_THAT(r.out, HasSubstr("Operation not supported (errno 95)\n"));
  EXPECT_THAT(r.out, HasSubstr("  ntuple: unsupported (errno 95): "
                               "rx-ntuple-filter is neither active nor "
                               "changeable"));
  EXPECT_THAT(r.out, HasSubstr("  rss: unsupported: "));
  if (access("/dev/udmabuf", F_OK) != 0) {
    EXPECT_THAT(r.out, HasSubstr("  dma-buf: unsupported: no dma-buf "
                                 "exporter: /dev/udmabuf is missing"));
    EXPECT_THAT(r.out, HasSubstr("No such file or directory (errno 2)\n"));
  }
  EXPECT_THAT(r.out, Not(HasSubstr("PASS")));
  EXPECT_THAT(r.err, HasSubstr("hint: devmem RX needs a NIC with header "
                               "split, ntuple and RSS"));
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
  EXPECT_THAT(r.out, HasSubstr("--bind_memfd_mb"));
}

TEST(DevmemctlUsageTest, NicAndSelftestHelp) {
  Result r = RunCtl({"--help"});
  EXPECT_THAT(r.out, HasSubstr("  nic show "));
  EXPECT_THAT(r.out, HasSubstr("  nic restore "));
  EXPECT_THAT(r.out, HasSubstr("  selftest "));
  r = RunCtl({"nic", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: devmemctl nic <show|restore>"));
  r = RunCtl({"nic", "show", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: devmemctl nic show [NIC...]"));
  r = RunCtl({"help", "nic", "restore"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: devmemctl nic restore NIC"));
  EXPECT_THAT(r.out, HasSubstr("admin_uids"));
  r = RunCtl({"selftest", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--simulated"));
  EXPECT_THAT(r.out, HasSubstr("CAP_NET_ADMIN"));
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
           {"nic"},
           {"nic", "frob"},
           {"nic", "restore"},  // which NIC?
           {"nic", "restore", "a", "b"},
           {"nic", "show", "--port=80"},
           {"selftest"},  // --nic missing
           {"selftest", "--nic=lo", "--memory_mb=0"},
           {"selftest", "--nic=lo,eth0"},
           {"selftest", "--nic=lo", "--bytes=1"},
           {"listen", "--nic=lo", "--queues=2"},  // nothing to bind
           {"listen", "--nic=lo", "--bind_memfd_mb=-1"},
           {"listen", "--nic=lo", "--bind_memfd_mb=1", "--dmabuf_fd=0"},
           {"listen", "--nic=lo", "--dmabuf_fd=999"},  // not open
           {"connect", "--nic=lo", "--remote=10.0.0.1:80", "--queues=65",
            "--bind_memfd_mb=1"},
       }) {
    Result r = RunCtl(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << "\n" << r.err;
  }
}

}  // namespace
}  // namespace devmem
