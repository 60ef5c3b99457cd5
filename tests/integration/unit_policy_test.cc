// allow_units / allow_slices for real: the test makes cgroups in the cgroup2
// hierarchy that sd-login reads, moves workloads (real processes, uid
// nobody, which no uid or gid rule allows) into them, and a real devmemd
// allows or refuses them by the unit and slice it reads from their cgroup.
// Needs root and a writable cgroup2 hierarchy; skips with the reason
// otherwise. The cgroups are removed afterwards.
#include <grp.h>
#include <linux/magic.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/session/unit_identity.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::Proc;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The cgroup2 mount sd-login reads a process's unit and slice from:
// /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on a hybrid one
// (systemd's cgroup-util.c, cg_unified_cached). "" if there is none.
std::string Cgroup2Root() {
  struct statfs fs;
  if (statfs("/sys/fs/cgroup", &fs) != 0) return "";
  if (fs.f_type == CGROUP2_SUPER_MAGIC) return "/sys/fs/cgroup";
  if (fs.f_type == TMPFS_MAGIC && statfs("/sys/fs/cgroup/unified", &fs) == 0 &&
      fs.f_type == CGROUP2_SUPER_MAGIC) {
    return "/sys/fs/cgroup/unified";
  }
  return "";
}

// What one workload saw: "self ...", "session <code> ...", "grpc <code> ...".
struct Outcome {
  std::map<std::string, std::string> lines;
  UnitIdentity seen_by_test;
  int exit_code = -1;
};

class UnitPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: it creates cgroups and runs workloads as "
                      "nobody";
    }
    root_ = Cgroup2Root();
    if (root_.empty()) {
      GTEST_SKIP() << "no cgroup2 hierarchy at /sys/fs/cgroup or "
                      "/sys/fs/cgroup/unified (cgroup v1 only)";
    }
    const std::string probe = absl::StrCat(root_, "/dmprobe", getpid());
    if (mkdir(probe.c_str(), 0755) != 0) {
      GTEST_SKIP() << "cgroup2 at " << root_
                   << " is not writable: mkdir: " << std::strerror(errno);
    }
    rmdir(probe.c_str());
    const passwd* pw = getpwnam("nobody");
    ASSERT_NE(pw, nullptr);
    const group* gr = getgrgid(pw->pw_gid);
    ASSERT_NE(gr, nullptr);
    nobody_group_ = gr->gr_name;
    tag_ = absl::StrCat(getpid());
    dir_ = absl::StrCat("/tmp/dmunit", tag_);
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }

  void TearDown() override {
    // Innermost first; the workloads have exited (rmdir fails while a
    // cgroup holds a process).
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      if (rmdir(it->c_str()) != 0) {
        ADD_FAILURE() << "rmdir " << *it << ": " << std::strerror(errno);
      }
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Creates root_/<path> (each level once), remembering it for TearDown.
  std::string MakeCgroup(const std::string& path) {
    std::string at = root_;
    for (absl::string_view part : absl::StrSplit(path, '/')) {
      absl::StrAppend(&at, "/", part);
      if (mkdir(at.c_str(), 0755) == 0) {
        made_.push_back(at);
      } else if (errno != EEXIST) {
        ADD_FAILURE() << "mkdir " << at << ": " << std::strerror(errno);
      }
    }
    return at;
  }

  Proc StartDaemon(const std::string& rules) {
    std::ofstream(dir_ + "/c.textproto")
        << "nic_profiles { nic: \"lo\" }\n"
        << "socket_group: \"" << nobody_group_ << "\"\n"
        << rules;
    Proc d =
        Proc::Spawn({"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
                     "--runtime_dir=" + dir_ + "/r",
                     "--state_dir=" + dir_ + "/s", "--nic_backend=simulated"});
    EXPECT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
        << d.output();
    return d;
  }

  // Runs cgroup_peer in the cgroup `cgroup` (relative to root_; "" leaves
  // it where the test is).
  Outcome RunWorkload(const std::string& cgroup) {
    Outcome out;
    Proc p = Proc::Spawn({"tests/integration/cgroup_peer", dir_ + "/r"});
    if (!p.WaitLine("ready", absl::Seconds(10)).has_value()) {
      ADD_FAILURE() << "cgroup_peer did not start: " << p.output();
      return out;
    }
    if (!cgroup.empty()) {
      const std::string procs = MakeCgroup(cgroup) + "/cgroup.procs";
      std::ofstream(procs) << p.pid() << "\n";
    }
    out.seen_by_test = LookupUnitIdentity(p.pid(), -1);
    p.Send("go");
    for (const char* key : {"self", "session", "grpc"}) {
      auto line = p.WaitLine(key, absl::Seconds(20));
      if (line.has_value()) out.lines[key] = *line;
    }
    out.exit_code = p.Wait();
    EXPECT_EQ(out.exit_code, 0) << p.output();
    return out;
  }

  std::string root_;
  std::string tag_;
  std::string dir_;
  std::string nobody_group_;
  std::vector<std::string> made_;
};

TEST_F(UnitPolicyTest, UnitAndSliceAllowWhatUidAndGidDoNot) {
  const std::string t = tag_;
  Proc d = StartDaemon(absl::StrCat("allow_uids: 0\n",  // not nobody
                                    "allow_units: \"dmt", t, "-unit.scope\"\n",
                                    "allow_slices: \"dmt", t, ".slice\"\n"));
  ASSERT_TRUE(d.running());

  // A slice below the allowed one: sd-login reports the innermost slice,
  // and its parent is what the config names.
  Outcome by_slice = RunWorkload(absl::StrCat(
      "dmt", t, ".slice/dmt", t, "-gpu.slice/dmt", t, "-job.scope"));
  EXPECT_EQ(by_slice.seen_by_test.unit, absl::StrCat("dmt", t, "-job.scope"));
  EXPECT_EQ(by_slice.seen_by_test.slice, absl::StrCat("dmt", t, "-gpu.slice"));
  EXPECT_EQ(by_slice.lines["self"],
            absl::StrCat("self unit=dmt", t, "-job.scope slice=dmt", t,
                         "-gpu.slice"));
  EXPECT_THAT(by_slice.lines["session"], StartsWith("session 0 "));
  EXPECT_THAT(by_slice.lines["grpc"], StartsWith("grpc 0 "));

  // The allowed unit, in a slice nobody allowed.
  Outcome by_unit =
      RunWorkload(absl::StrCat("dmo", t, ".slice/dmt", t, "-unit.scope"));
  EXPECT_EQ(by_unit.seen_by_test.unit, absl::StrCat("dmt", t, "-unit.scope"));
  EXPECT_THAT(by_unit.lines["session"], StartsWith("session 0 "));
  EXPECT_THAT(by_unit.lines["grpc"], StartsWith("grpc 0 "));

  // Another unit in another slice: refused on both sockets, and told what
  // devmemd saw and how to allow it.
  Outcome outside =
      RunWorkload(absl::StrCat("dmo", t, ".slice/dmo", t, "-x.scope"));
  EXPECT_EQ(outside.seen_by_test.slice, absl::StrCat("dmo", t, ".slice"));
  for (const char* key : {"session", "grpc"}) {
    const std::string& line = outside.lines[key];
    std::cout << "refused: " << line << "\n";
    EXPECT_THAT(line, StartsWith(absl::StrCat(key, " 7 peer uid 65534 gid ")));
    EXPECT_THAT(line,
                HasSubstr(absl::StrCat(" unit dmo", t, "-x.scope slice dmo", t,
                                       ".slice is not allowed")));
    EXPECT_THAT(line, HasSubstr("its unit to allow_units or its slice (or a "
                                "slice above it) to allow_slices in " +
                                dir_ + "/c.textproto"));
  }

  // Left in the test's own cgroup: no rule matches either.
  Outcome unmoved = RunWorkload("");
  EXPECT_THAT(unmoved.lines["session"], StartsWith("session 7 peer uid 65534"));
  EXPECT_THAT(unmoved.lines["grpc"], StartsWith("grpc 7 peer uid 65534"));

  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

// Needs neither root nor cgroups.
TEST(UnitPolicyConfigTest, BadRuleStopsTheDaemonNamingTheField) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/bad");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/bad.textproto") << "allow_slices: \"batch\"\n";
  Proc bad =
      Proc::Spawn({"daemon/devmemd", "--config=" + dir + "/bad.textproto",
                   "--runtime_dir=" + dir + "/r", "--state_dir=" + dir + "/s",
                   "--nic_backend=simulated"});
  EXPECT_EQ(bad.Wait(absl::Seconds(20)), 2);
  EXPECT_THAT(bad.output(),
              HasSubstr("refusing to start: " + dir +
                        "/bad.textproto: field allow_slices[0] = \"batch\" is "
                        "not a slice name"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/r"));
}

}  // namespace
}  // namespace devmem
