// A workload for the fault-injection suite (tests/faults/fault_test.cc): it
// walks the devmem protocol one step at a time, announcing each step on
// stdout ("STEP <name> ..."), and can stop at any step until told to go on
// (a line on stdin), so the test can kill -9 it, or the daemon, right there.
//
//   fault_client --runtime_dir=DIR --nic=lo [--pause_at=bound] [--bytes=N]
//
// Steps: opened, deposited, bound, listening, accepted, streaming, done.
// With the session's auto-reconnect on, a daemon restart while paused is
// survived: "RECONNECT resumed=<0|1> status=<...>" is printed each time.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "kernel/udmabuf.h"

ABSL_FLAG(std::string, runtime_dir, "/run/devmemd", "devmemd's runtime dir");
ABSL_FLAG(std::string, nic, "lo", "NIC to bind and listen on");
ABSL_FLAG(std::string, pause_at, "", "step to stop at until a stdin line");
ABSL_FLAG(uint64_t, bytes, 8 << 20, "bytes to receive and check");
ABSL_FLAG(bool, reconnect, true, "auto-reconnect the session");
ABSL_FLAG(int, batches, 0,
          "after `bound`: make this many OpenSockets batches of steered "
          "listeners (printing BATCH lines), then STEP batched, instead of "
          "listening and receiving");
ABSL_FLAG(int, batch_size, 32, "listeners per batch");

namespace {

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int Fail(const std::string& what, const absl::Status& s) {
  Say(absl::StrCat("FAIL ", what, ": ", s.ToString()));
  return 1;
}

void Step(const std::string& name, const std::string& extra = "") {
  Say(absl::StrCat("STEP ", name, extra.empty() ? "" : " ", extra));
  if (absl::GetFlag(FLAGS_pause_at) == name) {
    std::string line;
    std::getline(std::cin, line);
    Say(absl::StrCat("CONTINUE ", name));
  }
}

// --batches: OpenSockets of --batch_size steered listeners, again and
// again, keeping every socket it is given. A batch that fails as a whole
// (devmemd died under it) is reported and the next one goes on once the
// session is resumed. Waits for a stdin line, then releases the binding.
int Batches(devmem::Session& session, uint64_t binding) {
  std::vector<devmem::SocketSpec> specs(
      static_cast<size_t>(absl::GetFlag(FLAGS_batch_size)));
  for (devmem::SocketSpec& spec : specs) {
    spec.listen = devmem::ListenOptions{};
    spec.listen->ip = "127.0.0.1";
    spec.listen->binding = binding;
  }
  std::vector<devmem::UniqueFd> held;
  for (int b = 0; b < absl::GetFlag(FLAGS_batches); ++b) {
    auto opened = session.OpenSockets(specs);
    if (!opened.ok()) {
      Say(absl::StrCat("BATCH ", b, " error=", opened.status().ToString()));
      continue;
    }
    int failed = 0;
    for (auto& r : *opened) {
      if (r.ok()) {
        held.push_back(std::move(r->fd));
      } else {
        ++failed;
      }
    }
    Say(absl::StrCat("BATCH ", b, " acked=", held.size(), " failed=", failed));
  }
  Say(absl::StrCat("STEP batched acked=", held.size(),
                   " resumes=", session.resumes()));
  std::string line;
  std::getline(std::cin, line);
  auto released = session.ReleaseBinding(binding);
  Say(absl::StrCat("RELEASED ",
                   released.ok() ? "OK" : released.status().ToString()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  devmem::SessionOptions so;
  so.runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  so.auto_reconnect = absl::GetFlag(FLAGS_reconnect);
  so.reconnect_timeout = absl::Seconds(60);
  so.on_reconnect = [](const absl::Status& s, bool resumed) {
    Say(absl::StrCat("RECONNECT resumed=", resumed ? 1 : 0,
                     " status=", s.ok() ? "OK" : s.ToString()));
  };
  auto session = devmem::Session::Open(so);
  if (!session.ok()) return Fail("open", session.status());
  Step("opened", absl::StrCat("session=", (*session)->session_id()));

  auto mem = devmem::CreateSealedMemfd(1 << 20, "fault_client");
  if (!mem.ok()) return Fail("memfd", mem.status());
  auto ticket = (*session)->Deposit(mem->get_unowned(), "dmabuf");
  if (!ticket.ok()) return Fail("deposit", ticket.status());
  Step("deposited");

  devmem::BindOptions bo;
  bo.nic = absl::GetFlag(FLAGS_nic);
  auto binding = (*session)->BindRx(mem->get_unowned(), bo);
  if (!binding.ok()) return Fail("bind", binding.status());
  Step("bound", absl::StrCat("handle=", binding->handle(),
                             " kernel_id=", binding->kernel_id(), " anchors=",
                             (*session)->anchored_bindings().size()));
  if (absl::GetFlag(FLAGS_batches) > 0) {
    return Batches(**session, binding->handle());
  }

  devmem::ListenOptions lo;
  lo.ip = "127.0.0.1";
  lo.binding = binding->handle();
  auto listener = (*session)->Listen(lo);
  if (!listener.ok()) return Fail("listen", listener.status());
  Step("listening", absl::StrCat("port=", listener->info.local().port(),
                                 " rule=", listener->info.rule().location()));

  int conn = ::accept(listener->fd.get_unowned(), nullptr, nullptr);
  if (conn < 0) return Fail("accept", absl::ErrnoToStatus(errno, "accept"));
  devmem::UniqueFd c(conn);
  Step("accepted");

  const uint64_t want = absl::GetFlag(FLAGS_bytes);
  std::vector<char> buf(256 * 1024);
  uint64_t got = 0;
  bool announced = false;
  while (got < want) {
    ssize_t n = ::recv(c.get_unowned(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    int64_t bad = devmem::FirstPatternMismatch(
        got, absl::MakeConstSpan(buf.data(), static_cast<size_t>(n)));
    if (bad >= 0) {
      Say(absl::StrCat("FAIL pattern mismatch at byte ", got + bad));
      return 1;
    }
    got += static_cast<uint64_t>(n);
    if (!announced && got >= want / 2) {
      announced = true;
      Step("streaming", absl::StrCat("bytes=", got));
    }
  }
  Say(absl::StrCat("STEP done bytes=", got, " ok=", got == want ? 1 : 0,
                   " resumes=", (*session)->resumes()));
  // Stay until told to leave, so the test can look at the leases.
  std::string line;
  std::getline(std::cin, line);
  auto released = (*session)->ReleaseBinding(binding->handle());
  Say(absl::StrCat("RELEASED ",
                   released.ok() ? "OK" : released.status().ToString()));
  return got == want ? 0 : 1;
}
