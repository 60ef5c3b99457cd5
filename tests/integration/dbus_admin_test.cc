// The D-Bus admin interface (org.devmemd.Devmemd1, docs/DBUS.md) for real:
// a private dbus-daemon with the system bus's default policy plus the shipped
// deploy/dbus/org.devmemd.Devmemd1.conf, a real devmemd (simulated devmem NIC
// over lo) with --dbus=<that bus>, and busctl and dbus-send as independent
// witnesses. PropertiesChanged is watched with an sd-bus match in the test.
// The other-uid cases need root (they run the tools as other users through
// setpriv) and skip with the reason otherwise.
#include <poll.h>
#include <pwd.h>
#include <sys/mman.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/libdevmem.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace devmem {
namespace {

using ::devmem::testing::Proc;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kName[] = "org.devmemd.Devmemd1";
constexpr char kPath[] = "/org/devmemd/Devmemd1";
constexpr char kManager[] = "org.devmemd.Devmemd1.Manager";
constexpr char kNicLo[] = "/org/devmemd/Devmemd1/nic/lo";
constexpr char kNic[] = "org.devmemd.Devmemd1.Nic";

// A tool's exit code and its stdout+stderr.
struct ToolRun {
  int code = -1;
  std::string out;
};

// Runs `argv` (as `uid` through setpriv when uid >= 0).
ToolRun Tool(std::vector<std::string> argv, int uid = -1) {
  if (uid >= 0) {
    argv.insert(argv.begin(),
                {"/usr/bin/setpriv", absl::StrCat("--reuid=", uid),
                 absl::StrCat("--regid=", uid), "--clear-groups"});
  }
  // Wide enough that busctl's tables are never cut.
  Proc p = Proc::Spawn(argv, {"COLUMNS=300", "SYSTEMD_PAGER=cat"});
  ToolRun r;
  r.code = p.Wait(absl::Seconds(20));
  r.out = p.output();
  return r;
}

// The values of one PropertiesChanged signal, "Name=value" (strings quoted
// as busctl does, other types by their number).
struct Change {
  std::string path;
  std::string interface;
  std::vector<std::string> values;
};

int OnPropertiesChanged(sd_bus_message* m, void* userdata,
                        sd_bus_error* error) {
  auto* seen = static_cast<std::vector<Change>*>(userdata);
  Change c;
  c.path = sd_bus_message_get_path(m);
  const char* interface = nullptr;
  if (sd_bus_message_read(m, "s", &interface) < 0) return 0;
  c.interface = interface;
  if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return 0;
  while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
    const char* name = nullptr;
    char type = 0;
    const char* contents = nullptr;
    sd_bus_message_read(m, "s", &name);
    sd_bus_message_peek_type(m, &type, &contents);
    std::string value = "?";
    if (contents != nullptr && std::string(contents) == "u") {
      uint32_t u = 0;
      sd_bus_message_read(m, "v", "u", &u);
      value = absl::StrCat(u);
    } else if (contents != nullptr && std::string(contents) == "s") {
      const char* s = nullptr;
      sd_bus_message_read(m, "v", "s", &s);
      value = absl::StrCat("\"", s, "\"");
    } else {
      sd_bus_message_skip(m, "v");
    }
    c.values.push_back(absl::StrCat(name, "=", value));
    sd_bus_message_exit_container(m);
  }
  seen->push_back(std::move(c));
  return 0;
}

// The system bus's default policy (deny by default, as
// /usr/share/dbus-1/system.conf) with devmemd's policy file included.
std::string BusConfig(const std::string& socket, const std::string& policy) {
  std::string own;
  const passwd* pw = getpwuid(getuid());
  if (getuid() != 0 && pw != nullptr) {
    // Not root: let this user own the name too, as the devmemd user may.
    own = absl::StrCat("<policy user=\"", pw->pw_name,
                       "\"><allow own=\"org.devmemd.Devmemd1\"/>"
                       "<allow send_destination=\"org.devmemd.Devmemd1\"/>"
                       "</policy>");
  }
  return absl::StrCat(
      R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=)",
      socket, R"(</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>)",
      policy, "</include>\n", own, "\n</busconfig>\n");
}

class DbusAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat("/tmp/dmbus", getpid(), "_", n_++);
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
    const std::string policy =
        std::filesystem::absolute("deploy/dbus/org.devmemd.Devmemd1.conf");
    ASSERT_TRUE(std::filesystem::exists(policy));
    std::ofstream(dir_ + "/bus.conf") << BusConfig(dir_ + "/bus", policy);
    bus_daemon_ = Proc::Spawn({"/usr/bin/dbus-daemon",
                               "--config-file=" + dir_ + "/bus.conf",
                               "--nofork", "--print-address"});
    auto line = bus_daemon_.WaitLine("unix:", absl::Seconds(10));
    ASSERT_TRUE(line.has_value()) << bus_daemon_.output();
    address_ = *line;
    bus_daemon_.DrainInBackground();
    // Workloads of this test's uid, and nobody, may use devmemd; admins are
    // uid 0 only.
    const uint32_t me = getuid();
    std::ofstream(dir_ + "/c.textproto")
        << "nic_profiles { nic: \"lo\" }\n"
        << "allow_uids: [" << me << (me != 65534 ? ", 65534" : "") << "]\n";
  }

  void TearDown() override {
    if (client_ != nullptr) sd_bus_flush_close_unref(client_);
    if (devmemd_.running()) {
      EXPECT_EQ(devmemd_.Terminate(), 0) << devmemd_.output();
    }
    bus_daemon_.Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Proc StartDevmemd(const std::string& runtime, const std::string& dbus,
                    const std::vector<std::string>& env = {}) {
    return Proc::Spawn({"daemon/devmemd", "--config=" + dir_ + "/c.textproto",
                        "--runtime_dir=" + dir_ + "/" + runtime,
                        "--state_dir=" + dir_ + "/" + runtime + "-state",
                        "--nic_backend=simulated", "--dbus=" + dbus},
                       env);
  }

  void StartServing() {
    devmemd_ = StartDevmemd("r", address_);
    ASSERT_TRUE(devmemd_.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
        << devmemd_.output();
    devmemd_.DrainInBackground();
  }

  ToolRun Busctl(std::vector<std::string> args, int uid = -1) {
    args.insert(args.begin(),
                {"/usr/bin/busctl", "--address=" + address_, "--no-pager"});
    return Tool(args, uid);
  }
  ToolRun DbusSend(std::vector<std::string> args, int uid = -1) {
    args.insert(args.begin(),
                {"/usr/bin/dbus-send", "--bus=" + address_, "--print-reply",
                 "--dest=" + std::string(kName)});
    return Tool(args, uid);
  }

  // An sd-bus client of the test's own, watching PropertiesChanged of
  // devmemd's objects.
  void Watch() {
    ASSERT_GE(sd_bus_new(&client_), 0);
    ASSERT_GE(sd_bus_set_address(client_, address_.c_str()), 0);
    ASSERT_GE(sd_bus_set_bus_client(client_, 1), 0);
    ASSERT_GE(sd_bus_start(client_), 0);
    // Synchronous: the match is in place when this returns.
    ASSERT_GE(sd_bus_match_signal(client_, nullptr, kName, nullptr,
                                  "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged", OnPropertiesChanged,
                                  &changes_),
              0);
  }

  // Waits (with a deadline) for a PropertiesChanged of `path` that
  // announces `value` ("Sessions=1").
  bool WaitChange(const std::string& path, const std::string& value,
                  absl::Duration limit = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + limit;
    for (;;) {
      while (sd_bus_process(client_, nullptr) > 0) {
      }
      for (const Change& c : changes_) {
        if (c.path == path && std::find(c.values.begin(), c.values.end(),
                                        value) != c.values.end()) {
          return true;
        }
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      sd_bus_wait(client_, static_cast<uint64_t>(absl::ToInt64Microseconds(
                               std::min(left, absl::Milliseconds(200)))));
    }
  }
  std::string ChangesSeen() const {
    std::vector<std::string> out;
    for (const Change& c : changes_) {
      out.push_back(absl::StrCat(c.path, " ", c.interface, " {",
                                 absl::StrJoin(c.values, ", "), "}"));
    }
    return absl::StrJoin(out, "\n");
  }

  static int n_;
  std::string dir_;
  std::string address_;
  Proc bus_daemon_;
  Proc devmemd_;
  sd_bus* client_ = nullptr;
  std::vector<Change> changes_;
};
int DbusAdminTest::n_ = 0;

TEST_F(DbusAdminTest, TreeIntrospectPropertiesAndListNics) {
  StartServing();
  EXPECT_THAT(devmemd_.output(),
              HasSubstr("devmemd: D-Bus: org.devmemd.Devmemd1 on " + address_));

  ToolRun tree = Busctl({"tree", kName});
  EXPECT_EQ(tree.code, 0) << tree.out;
  EXPECT_THAT(tree.out, HasSubstr("/org/devmemd/Devmemd1/nic/lo"));

  ToolRun manager = Busctl({"introspect", kName, kPath, kManager});
  EXPECT_EQ(manager.code, 0) << manager.out;
  for (const char* member :
       {".ListLeases", ".ListNics", ".RestoreNic", ".Sessions", ".Bindings",
        ".StateReasons", ".DetachedSessions", ".JournalError", ".Rules"}) {
    EXPECT_THAT(manager.out, HasSubstr(member));
  }
  EXPECT_THAT(manager.out, HasSubstr("a(tuustuaubub)"));
  EXPECT_THAT(manager.out, HasSubstr("\"ready\""));

  EXPECT_EQ(Busctl({"get-property", kName, kPath, kManager, "State"}).out,
            "s \"ready\"\n");
  EXPECT_EQ(Busctl({"get-property", kName, kPath, kManager, "Sessions"}).out,
            "u 0\n");
  EXPECT_EQ(Busctl({"get-property", kName, kPath, kManager, "Backend"}).out,
            "s \"simulated\"\n");
  EXPECT_EQ(
      Busctl({"get-property", kName, kPath, kManager, "StateReasons"}).out,
      "a(sst) 0\n");

  ToolRun nics = Busctl({"call", kName, kPath, kManager, "ListNics"});
  EXPECT_EQ(nics.code, 0) << nics.out;
  EXPECT_THAT(nics.out, StartsWith("a(suso) 1 \"lo\" 1 \"applied\" "
                                   "\"/org/devmemd/Devmemd1/nic/lo\""));

  ToolRun nic =
      Busctl({"get-property", kName, kNicLo, kNic, "Name", "ProfileState",
              "QueuesFree", "QueuesUsed", "Degraded"});
  EXPECT_EQ(nic.out, "s \"lo\"\ns \"applied\"\nu 1\nu 0\ns \"\"\n");
  std::cout << "busctl tree:\n" << tree.out << "ListNics: " << nics.out;

  // SIGTERM: devmemd leaves the bus with the name.
  EXPECT_EQ(devmemd_.Terminate(), 0) << devmemd_.output();
  ToolRun names = Busctl({"list", "--acquired"});
  EXPECT_THAT(names.out, ::testing::Not(HasSubstr(kName)));
}

TEST_F(DbusAdminTest, SessionsAndBindingsAreAnnouncedWithPropertiesChanged) {
  StartServing();
  Watch();
  SessionOptions so;
  so.runtime_dir = dir_ + "/r";
  auto session = Session::Open(so);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_TRUE(WaitChange(kPath, "Sessions=1")) << ChangesSeen();
  EXPECT_EQ(Busctl({"get-property", kName, kPath, kManager, "Sessions"}).out,
            "u 1\n");

  // A binding on lo (the simulated NIC binds a memfd): the manager's and
  // the NIC's counts move.
  UniqueFd mem(memfd_create("dmbus", MFD_CLOEXEC));
  ASSERT_TRUE(mem.valid());
  ASSERT_EQ(ftruncate(mem.get_unowned(), 1 << 20), 0);
  BindOptions bo;
  bo.nic = "lo";
  bo.queue_count = 1;
  auto binding = (*session)->BindRx(mem.get_unowned(), bo);
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_TRUE(WaitChange(kPath, "Bindings=1")) << ChangesSeen();
  EXPECT_TRUE(WaitChange(kNicLo, "QueuesUsed=1")) << ChangesSeen();
  EXPECT_TRUE(WaitChange(kNicLo, "QueuesFree=0")) << ChangesSeen();

  if (getuid() == 0) {
    // Admins see whose it is (uid and pid, never the token).
    ToolRun leases = Busctl({"call", kName, kPath, kManager, "ListLeases"});
    EXPECT_EQ(leases.code, 0) << leases.out;
    EXPECT_THAT(leases.out,
                StartsWith(absl::StrCat(
                    "a(tuustuaubub) 1 ", (*session)->session_id(), " 0 ",
                    getpid(), " \"lo\" ", binding->handle(), " ")));
    EXPECT_THAT(leases.out, ::testing::EndsWith(" 1 7 false 0 true\n"));
    EXPECT_THAT(leases.out,
                ::testing::Not(HasSubstr((*session)->session_token())));
    std::cout << "ListLeases: " << leases.out;
  }

  session->reset();
  EXPECT_TRUE(WaitChange(kPath, "Sessions=0")) << ChangesSeen();
  EXPECT_TRUE(WaitChange(kPath, "Bindings=0")) << ChangesSeen();
  std::cout << "PropertiesChanged seen:\n" << ChangesSeen() << "\n";
}

TEST_F(DbusAdminTest, RestoreNicAsAdminAndUnknownNic) {
  StartServing();
  Watch();
  ToolRun unknown =
      DbusSend({kPath, std::string(kManager) + ".RestoreNic", "string:nope"});
  if (getuid() != 0) {
    // This uid is allowed but no admin.
    EXPECT_THAT(unknown.out,
                HasSubstr("Error org.freedesktop.DBus.Error.AccessDenied: "
                          "RestoreNic is an admin call; uid "));
    GTEST_SKIP() << "restoring a NIC needs an admin: run as root";
  }
  EXPECT_NE(unknown.code, 0);
  EXPECT_THAT(unknown.out,
              HasSubstr("Error org.devmemd.Devmemd1.NoSuchNic: no NIC profile "
                        "for \"nope\"; profiles: lo"));
  ToolRun unknown_busctl =
      Busctl({"call", kName, kPath, kManager, "RestoreNic", "s", "nope"});
  EXPECT_EQ(unknown_busctl.out,
            "Call failed: no NIC profile for \"nope\"; profiles: lo\n");

  ToolRun restored =
      Busctl({"call", kName, kPath, kManager, "RestoreNic", "s", "lo"});
  EXPECT_EQ(restored.code, 0) << restored.out;
  EXPECT_EQ(restored.out, "uu 0 0\n");
  EXPECT_TRUE(WaitChange(kNicLo, "ProfileState=\"restored\"")) << ChangesSeen();
  EXPECT_EQ(Busctl({"get-property", kName, kNicLo, kNic, "ProfileState"}).out,
            "s \"restored\"\n");
  // The per-NIC method, on a NIC with nothing left to restore.
  ToolRun again = DbusSend({kNicLo, std::string(kNic) + ".Restore"});
  EXPECT_THAT(again.out,
              HasSubstr("Error org.devmemd.Devmemd1.FailedPrecondition: lo "
                        "has nothing to restore"));
}

TEST_F(DbusAdminTest, NonAdminsAndStrangersAreRefused) {
  if (getuid() != 0) {
    GTEST_SKIP() << "needs root: runs busctl and dbus-send as other uids "
                    "(setpriv)";
  }
  StartServing();
  // nobody is allowed (allow_uids) but not an admin: reads, no admin calls.
  EXPECT_EQ(
      Busctl({"get-property", kName, kPath, kManager, "State"}, 65534).out,
      "s \"ready\"\n");
  EXPECT_THAT(Busctl({"call", kName, kPath, kManager, "ListNics"}, 65534).out,
              StartsWith("a(suso) 1 \"lo\""));
  const std::string how = absl::StrCat(
      " is an admin call; uid 65534 is neither 0 nor listed in admin_uids; "
      "add it to admin_uids in ",
      dir_, "/c.textproto");
  ToolRun leases =
      DbusSend({kPath, std::string(kManager) + ".ListLeases"}, 65534);
  EXPECT_THAT(leases.out,
              HasSubstr("Error org.freedesktop.DBus.Error.AccessDenied: "
                        "ListLeases" +
                        how));
  ToolRun restore = DbusSend(
      {kPath, std::string(kManager) + ".RestoreNic", "string:lo"}, 65534);
  EXPECT_THAT(restore.out,
              HasSubstr("Error org.freedesktop.DBus.Error.AccessDenied: "
                        "RestoreNic" +
                        how));
  ToolRun restore_nic =
      DbusSend({kNicLo, std::string(kNic) + ".Restore"}, 65534);
  EXPECT_THAT(restore_nic.out,
              HasSubstr("Error org.freedesktop.DBus.Error.AccessDenied: "
                        "Restore" +
                        how));
  // busctl shows every AccessDenied as "Access denied" (systemd's
  // bus_error_message); the NIC is untouched either way.
  EXPECT_EQ(
      Busctl({"call", kName, kPath, kManager, "RestoreNic", "s", "lo"}, 65534)
          .out,
      "Call failed: Access denied\n");
  EXPECT_EQ(Busctl({"get-property", kName, kNicLo, kNic, "ProfileState"}).out,
            "s \"applied\"\n");

  // A uid no allow-list names cannot even read.
  const passwd* daemon_user = getpwnam("daemon");
  ASSERT_NE(daemon_user, nullptr);
  const int stranger = static_cast<int>(daemon_user->pw_uid);
  ToolRun get = DbusSend({kPath, "org.freedesktop.DBus.Properties.Get",
                          std::string("string:") + kManager, "string:State"},
                         stranger);
  EXPECT_THAT(get.out,
              HasSubstr(absl::StrCat(
                  "Error org.freedesktop.DBus.Error.AccessDenied: peer uid ",
                  stranger, " gid ")));
  EXPECT_THAT(get.out, HasSubstr("is not allowed to use devmemd; add its uid "
                                 "to allow_uids"));
  std::cout << "stranger: " << get.out;

  // The shipped bus policy: nobody may not take devmemd's name, nor set
  // properties.
  ToolRun own =
      Tool({"/usr/bin/dbus-send", "--bus=" + address_, "--print-reply",
            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName", "string:org.devmemd.Devmemd1",
            "uint32:0"},
           65534);
  EXPECT_THAT(own.out, HasSubstr("Error org.freedesktop.DBus.Error."
                                 "AccessDenied: Connection"));
  EXPECT_THAT(own.out, HasSubstr("is not allowed to own the service "
                                 "\"org.devmemd.Devmemd1\""));
  ToolRun set = DbusSend({kPath, "org.freedesktop.DBus.Properties.Set",
                          std::string("string:") + kManager, "string:State",
                          "variant:string:failed"},
                         65534);
  EXPECT_THAT(set.out, HasSubstr("Error org.freedesktop.DBus.Error."
                                 "AccessDenied: Rejected send message"));
}

TEST_F(DbusAdminTest, ExplicitAddressThatFailsStopsDevmemd) {
  Proc d = StartDevmemd("r", "unix:path=" + dir_ + "/no-such-bus");
  EXPECT_EQ(d.Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(
      d.output(),
      HasSubstr("devmemd: cannot start: D-Bus interface (--dbus=unix:"
                "path=" +
                dir_ +
                "/no-such-bus): cannot connect to the bus at unix:path=" +
                dir_ + "/no-such-bus: No such file or directory"));
  // It restored what it had prepared and removed its sockets.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/r/session.sock"));
}

TEST_F(DbusAdminTest, NameAlreadyOwnedStopsTheSecondDevmemd) {
  StartServing();
  Proc second = StartDevmemd("r2", address_);
  EXPECT_EQ(second.Wait(absl::Seconds(20)), 1);
  EXPECT_THAT(second.output(),
              HasSubstr("another process owns org.devmemd.Devmemd1 on the bus "
                        "at " +
                        address_ + "; is another devmemd running?"));
  // The first one still answers.
  EXPECT_EQ(Busctl({"get-property", kName, kPath, kManager, "State"}).out,
            "s \"ready\"\n");
}

TEST_F(DbusAdminTest, LosingTheBusIsLoggedAndDevmemdServesOn) {
  StartServing();
  bus_daemon_.Kill();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(devmemd_.output(), "devmemd: lost the bus at") &&
         absl::Now() < deadline) {
    struct pollfd none = {-1, 0, 0};
    poll(&none, 1, 10);
  }
  EXPECT_THAT(devmemd_.output(),
              HasSubstr("devmemd: lost the bus at " + address_ + " ("));
  EXPECT_THAT(devmemd_.output(), HasSubstr("); the D-Bus interface is gone "
                                           "until devmemd restarts"));
  SessionOptions so;
  so.runtime_dir = dir_ + "/r";
  EXPECT_TRUE(Session::Open(so).ok());
}

TEST_F(DbusAdminTest, UnreachableSystemBusIsOneWarning) {
  Proc d = StartDevmemd(
      "r", "system",
      {"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + dir_ + "/no-system-bus"});
  ASSERT_TRUE(d.WaitLine("devmemd 0", absl::Seconds(20)).has_value())
      << d.output();
  EXPECT_THAT(d.output(),
              HasSubstr("devmemd: warning: cannot connect to the system bus "
                        "(unix:path=" +
                        dir_ +
                        "/no-system-bus): No such file or directory; going on "
                        "without the D-Bus interface\n"));
  SessionOptions so;
  so.runtime_dir = dir_ + "/r";
  EXPECT_TRUE(Session::Open(so).ok());
  EXPECT_EQ(d.Terminate(), 0) << d.output();
}

}  // namespace
}  // namespace devmem
