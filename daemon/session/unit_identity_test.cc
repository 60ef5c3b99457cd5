#include "daemon/session/unit_identity.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/session/peer_cred.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(SliceAndParents, SystemdNestsSlicesByDashes) {
  EXPECT_THAT(
      SliceAndParents("batch-gpu-a.slice"),
      ElementsAre("batch-gpu-a.slice", "batch-gpu.slice", "batch.slice"));
  EXPECT_THAT(SliceAndParents("user.slice"), ElementsAre("user.slice"));
  EXPECT_THAT(SliceAndParents("-.slice"), IsEmpty());
  EXPECT_THAT(SliceAndParents(""), IsEmpty());
  EXPECT_THAT(SliceAndParents("train.service"), IsEmpty());
}

TEST(UnitRuleProblem, AcceptsUnitsThatRunProcesses) {
  for (const char* ok :
       {"train.service", "job-7.scope", "session-3.scope", "user@1000.service",
        "getty@tty1.service", "a.b:c_d\\x2d.socket", "var-lib.mount",
        "dev-x.swap"}) {
    EXPECT_EQ(UnitRuleProblem(ok), "") << ok;
  }
}

TEST(UnitRuleProblem, RefusesWhatCannotMatchAProcess) {
  EXPECT_THAT(UnitRuleProblem(""), HasSubstr("empty"));
  EXPECT_THAT(UnitRuleProblem("train"), HasSubstr("not a unit name"));
  EXPECT_THAT(UnitRuleProblem(".service"), HasSubstr("not a unit name"));
  EXPECT_THAT(UnitRuleProblem("batch.slice"), HasSubstr("allow_slices"));
  EXPECT_THAT(UnitRuleProblem("multi-user.target"),
              HasSubstr("runs no processes"));
  EXPECT_THAT(
      UnitRuleProblem("worker@.service"),
      HasSubstr("template; name an instance, e.g. \"worker@1.service\""));
  EXPECT_THAT(UnitRuleProblem("@x.service"), HasSubstr("not a unit name"));
  EXPECT_THAT(UnitRuleProblem("a@b@c.service"), HasSubstr("more than one"));
  EXPECT_THAT(UnitRuleProblem("tr ain.service"), HasSubstr("not a unit name"));
  EXPECT_THAT(UnitRuleProblem("train/x.service"), HasSubstr("not a unit name"));
  EXPECT_THAT(UnitRuleProblem(std::string(300, 'a') + ".service"),
              HasSubstr("longer"));
}

TEST(SliceRuleProblem, OnlyNamedSlicesBelowTheRoot) {
  EXPECT_EQ(SliceRuleProblem("batch.slice"), "");
  EXPECT_EQ(SliceRuleProblem("batch-gpu.slice"), "");
  EXPECT_THAT(SliceRuleProblem("batch"), HasSubstr("end in \".slice\""));
  EXPECT_THAT(SliceRuleProblem("train.service"), HasSubstr("end in"));
  EXPECT_THAT(SliceRuleProblem("-.slice"), HasSubstr("root slice"));
  EXPECT_THAT(SliceRuleProblem("a--b.slice"), HasSubstr("not a slice name"));
  EXPECT_THAT(SliceRuleProblem("-a.slice"), HasSubstr("not a slice name"));
  EXPECT_THAT(SliceRuleProblem("a-.slice"), HasSubstr("not a slice name"));
  EXPECT_THAT(SliceRuleProblem("a@b.slice"), HasSubstr("not a slice name"));
}

TEST(LookupUnitIdentity, OwnProcessHasASlice) {
  // Wherever the test runs, sd-login places it in some slice ("-.slice" at
  // the root); a pidfd of a live process keeps the answer.
  UnitIdentity id = LookupUnitIdentity(getpid(), -1);
  EXPECT_EQ(id.error, "");
  EXPECT_THAT(id.slice, ::testing::EndsWith(".slice"));
}

TEST(LookupUnitIdentity, PeerOfAnotherUidIsAliveNotGone) {
  // devmemd runs as its own user: signal 0 to a peer of another uid fails
  // with EPERM, which must not read as "exited".
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another uid";
  const pid_t parent = getpid();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, parent, 0));
    if (pidfd < 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    const UnitIdentity id = LookupUnitIdentity(parent, pidfd);
    _exit(id.error.empty() && !id.slice.empty() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LookupUnitIdentity, ExitedPeerIsNotTrusted) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pidfd, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);  // reaped: the pid is free
  const UnitIdentity id = LookupUnitIdentity(child, pidfd);
  close(pidfd);
  EXPECT_THAT(id.error, HasSubstr("exited before its cgroup could be read"));
  EXPECT_EQ(id.slice, "");
}

TEST(LookupUnitIdentity, UnknownPidSaysWhy) {
  UnitIdentity id = LookupUnitIdentity(0, -1);
  EXPECT_THAT(id.error, HasSubstr("pid is unknown"));
}

TEST(GetPeerCred, FillsTheSliceOfTheOtherEnd) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto cred = GetPeerCred(sv[0]);
  close(sv[0]);
  close(sv[1]);
  ASSERT_TRUE(cred.ok()) << cred.status();
  EXPECT_EQ(cred->pid, getpid());
  EXPECT_EQ(cred->slice, LookupUnitIdentity(getpid(), -1).slice);
  EXPECT_EQ(cred->unit_error, "");
}

TEST(GetPeerCred, SkipsTheUnitOfAPeerItsIdsAllow) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // Allowed by uid: the unit and slice could not change the answer.
  const AccessPolicy by_uid({static_cast<uint32_t>(geteuid())}, {}, "c");
  auto allowed = GetPeerCred(sv[0], &by_uid);
  // Not allowed by its ids: the units and slices must be read.
  const AccessPolicy by_slice({}, {}, "c", {}, {"batch.slice"});
  auto unit_needed = GetPeerCred(sv[0], &by_slice);
  close(sv[0]);
  close(sv[1]);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(allowed->pid, getpid());
  EXPECT_EQ(allowed->slice, "");
  EXPECT_TRUE(by_uid.Check(*allowed).ok());
  ASSERT_TRUE(unit_needed.ok()) << unit_needed.status();
  EXPECT_EQ(unit_needed->slice, LookupUnitIdentity(getpid(), -1).slice);
  EXPECT_NE(unit_needed->slice, "");
}

PeerCred Peer(uint32_t uid, std::string unit, std::string slice) {
  PeerCred p;
  p.uid = uid;
  p.gid = uid;
  p.pid = 42;
  p.unit = std::move(unit);
  p.slice = std::move(slice);
  return p;
}

TEST(AccessPolicy, UidGidUnitOrSliceAllows) {
  AccessPolicy policy({1000}, {2000}, "c.textproto", {"train.service"},
                      {"batch.slice"});
  EXPECT_TRUE(policy.Check(Peer(1000, "", "")).ok());
  PeerCred by_gid = Peer(7, "", "");
  by_gid.gid = 2000;
  EXPECT_TRUE(policy.Check(by_gid).ok());
  EXPECT_TRUE(policy.Check(Peer(7, "train.service", "system.slice")).ok());
  EXPECT_TRUE(policy.Check(Peer(7, "x.scope", "batch.slice")).ok());
  EXPECT_TRUE(policy.Check(Peer(7, "x.scope", "batch-gpu-a.slice")).ok());
  // Not a parent: a sibling whose name merely starts the same way.
  EXPECT_FALSE(policy.Check(Peer(7, "x.scope", "batchy.slice")).ok());
  EXPECT_FALSE(policy.Check(Peer(7, "train.scope", "system.slice")).ok());
  // A user manager's own unit does not count.
  PeerCred user = Peer(7, "user@7.service", "user-7.slice");
  user.user_unit = "train.service";
  EXPECT_FALSE(policy.Check(user).ok());
}

TEST(AccessPolicy, RefusalNamesThePeerAndEveryWayToAllowIt) {
  AccessPolicy policy({0}, {}, "/etc/devmemd/devmemd.textproto",
                      {"train.service"}, {});
  absl::Status s = policy.Check(Peer(65534, "job-1.scope", "batch-gpu.slice"));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "peer uid 65534 gid 65534 pid 42 unit job-1.scope slice "
            "batch-gpu.slice is not allowed to use devmemd; add its uid to "
            "allow_uids, its gid to allow_gids, its unit to allow_units or "
            "its slice (or a slice above it) to allow_slices in "
            "/etc/devmemd/devmemd.textproto");
  PeerCred hidden = Peer(65534, "", "");
  hidden.unit_error = "cannot read /proc/42/cgroup: No such process";
  EXPECT_THAT(policy.Check(hidden).message(),
              HasSubstr("pid 42 (cannot read /proc/42/cgroup: No such "
                        "process) is not allowed"));
  // Without unit/slice rules the lookup error is noise and is left out.
  AccessPolicy plain({0}, {}, "c");
  EXPECT_THAT(plain.Check(hidden).message(),
              HasSubstr("pid 42 is not allowed to use devmemd; add its uid to "
                        "allow_uids or its gid to allow_gids in c"));
}

}  // namespace
}  // namespace devmem
