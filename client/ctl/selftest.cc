// devmemctl selftest: the kernel's devmem test sequence (ncdevmem), in-process.
#include "client/ctl/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cuda_dmabuf.h"
#include "client/libdevmem.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "kernel/devmem_selftest.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_control.h"
#include "kernel/nic_control.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_FLAG(bool, simulated, false,
          "Run against a simulated devmem NIC named --nic (in this process, "
          "with a memfd as device memory) instead of the real kernel: shows "
          "the sequence passing without hardware. Results are SIMULATED.");
ABSL_FLAG(std::string, memory, "",
          "What the selftest binds: udmabuf (host memory, the default; a "
          "memfd with --simulated) or cuda (GPU memory exported as a dma-buf; "
          "--gpu picks the GPU by PCI address).");
ABSL_FLAG(int32_t, memory_mb, 64,
          "Size of the memory the selftest binds: a udmabuf dma-buf on the "
          "kernel, a memfd with --simulated.");

ABSL_DECLARE_FLAG(std::string, gpu);

namespace devmem {
namespace ctl {
namespace {

// ---------------------------------------------------------------------------
// selftest
// ---------------------------------------------------------------------------

// Whether this process has CAP_NET_ADMIN in its effective set (bit 12 of
// CapEff in /proc/self/status). true when it cannot tell: the kernel then
// answers with EPERM itself.
bool HasNetAdmin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "CapEff:")) continue;
    uint64_t caps = 0;
    const std::string hex(absl::StripAsciiWhitespace(line.substr(7)));
    if (!absl::SimpleHexAtoi(hex, &caps)) return true;
    constexpr int kCapNetAdmin = 12;  // include/uapi/linux/capability.h
    return (caps >> kCapNetAdmin) & 1;
  }
  return true;
}

constexpr char kNeedsNetAdmin[] =
    "the selftest changes NIC settings (ethtool) and binds memory (netdev "
    "bind-rx is admin-perm), so it needs CAP_NET_ADMIN";
constexpr char kNetAdminHint[] =
    "run it as root (sudo devmemctl selftest --nic IF), or add --simulated "
    "to watch the sequence on a simulated NIC without privileges";

const char* CapSupportName(Support support) {
  switch (support) {
    case Support::kSupported:
      return "supported";
    case Support::kUnsupported:
      return "unsupported";
    case Support::kUnknown:
      break;
  }
  return "unknown";
}

v1::Capability CapabilityProto(const Capability& cap) {
  v1::Capability out;
  out.set_name(cap.name);
  out.set_support(cap.support == Support::kSupported ? v1::SUPPORT_SUPPORTED
                  : cap.support == Support::kUnsupported
                      ? v1::SUPPORT_UNSUPPORTED
                      : v1::SUPPORT_UNKNOWN);
  out.set_errno_value(cap.error);
  out.set_reason(cap.reason);
  return out;
}

std::string SelftestJson(const std::string& nic, uint32_t ifindex,
                         const std::string& backend, bool simulated,
                         const std::string& memory,
                         const SelftestResult& result) {
  using google::protobuf::Struct;
  using google::protobuf::Value;
  Struct out;
  auto& f = *out.mutable_fields();
  f["command"].set_string_value("selftest");
  f["nic"].set_string_value(nic);
  f["ifindex"].set_number_value(ifindex);
  f["backend"].set_string_value(backend);
  f["simulated"].set_bool_value(simulated);
  f["memory"].set_string_value(memory);
  f["ran"].set_bool_value(result.ran);
  f["passed"].set_bool_value(result.passed());
  f["restored"].set_bool_value(result.restored);
  auto* missing = f["missing"].mutable_list_value();
  for (const Capability& cap : result.missing) {
    auto& m = *missing->add_values()->mutable_struct_value()->mutable_fields();
    m["name"].set_string_value(cap.name);
    m["support"].set_string_value(CapSupportName(cap.support));
    m["errno"].set_number_value(cap.error);
    m["reason"].set_string_value(cap.reason);
  }
  auto* steps = f["steps"].mutable_list_value();
  for (const SelftestStep& step : result.steps) {
    auto& s = *steps->add_values()->mutable_struct_value()->mutable_fields();
    s["name"].set_string_value(step.name);
    s["passed"].set_bool_value(step.passed);
    s["detail"].set_string_value(step.detail);
  }
  return ToJson(out);
}

// The NIC to test: a simulated one named `nic`, or the kernel's (which
// needs CAP_NET_ADMIN). kExitOk with `*control` and `*ifindex` set, or the
// exit code after saying what is wrong.
int OpenControl(const std::string& nic, bool simulated,
                std::unique_ptr<NicControl>* control, uint32_t* ifindex) {
  *ifindex = if_nametoindex(nic.c_str());
  if (simulated) {
    SimulatedNicSpec spec;
    spec.name = nic;
    // A real link of that name lends its ifindex, for recognisable output.
    spec.ifindex = *ifindex != 0 ? *ifindex : 1;
    *ifindex = spec.ifindex;
    absl::StatusOr<std::unique_ptr<SimulatedNic>> sim =
        SimulatedNic::Create({spec});
    if (!sim.ok()) {
      return UsageError("selftest",
                        absl::StrCat("--nic: ", sim.status().message()));
    }
    *control = *std::move(sim);
  } else {
    if (*ifindex == 0) {
      return Fail("selftest", absl::StrCat("no interface ", nic),
                  ErrnoStatus(errno, absl::StrCat("if_nametoindex ", nic)),
                  "`ip link` lists the interfaces; with --simulated any "
                  "name works");
    }
    if (!HasNetAdmin()) {
      return Fail("selftest", absl::StrCat("selftest on ", nic),
                  absl::PermissionDeniedError(kNeedsNetAdmin), kNetAdminHint);
    }
    absl::StatusOr<std::unique_ptr<KernelNicControl>> kernel =
        KernelNicControl::Create();
    if (!kernel.ok()) {
      const bool eperm =
          StatusErrno(kernel.status()) == EPERM ||
          kernel.status().code() == absl::StatusCode::kPermissionDenied;
      return Fail("selftest", "opening the kernel's ethtool and netdev netlink",
                  kernel.status(),
                  eperm ? absl::StrCat(kNeedsNetAdmin, ": ", kNetAdminHint)
                        : "the kernel needs ethtool netlink and the netdev "
                          "family (6.12+ for devmem)");
    }
    *control = *std::move(kernel);
  }
  return kExitOk;
}

// The lines after the steps: why the sequence could not run, or the result.
void PrintSummary(const std::string& nic, bool simulated,
                  const SelftestResult& result) {
  if (!result.ran) {
    absl::PrintF(
        "cannot run: %s lacks what devmem needs; nothing was "
        "changed\n",
        nic);
    bool no_dmabuf = false;
    for (const Capability& cap : result.missing) {
      absl::PrintF("  %s\n", CapabilityLine(CapabilityProto(cap)));
      no_dmabuf |= cap.name == "dma-buf";
    }
    absl::FPrintF(
        stderr,
        "  hint: devmem RX needs a NIC with header split, ntuple and RSS "
        "whose driver binds unreadable memory (bnxt from 6.16, mlx5 from "
        "6.17, fbnic and gve from 6.18)%s\n",
        no_dmabuf ? ", and a dma-buf: modprobe udmabuf, or pass GPU memory "
                    "with --dmabuf_fd"
                  : "");
    return;
  }
  const size_t failed =
      std::count_if(result.steps.begin(), result.steps.end(),
                    [](const SelftestStep& s) { return !s.passed; });
  absl::PrintF("%sresult: %s; %s\n", simulated ? "SIMULATED " : "",
               failed == 0
                   ? absl::StrCat("PASSED (", result.steps.size(), " steps)")
                   : absl::StrCat("FAILED (", failed, " of ",
                                  result.steps.size(), " steps)"),
               result.restored
                   ? absl::StrCat(nic, " restored as recorded")
                   : absl::StrCat(nic, " NOT restored: see the restore step"));
}

// The memory the selftest binds, and what it is for the report.
struct SelftestMemory {
  UniqueFd owned;  // made here (memfd or udmabuf), else invalid
  std::unique_ptr<CudaDmabuf> cuda;  // --memory=cuda
  absl::StatusOr<int> fd;            // the fd to bind, or why there is none
  std::string description;
};

// The memory to bind: an inherited dma-buf, a memfd (simulated) or a
// udmabuf; a missing udmabuf exporter is reported by the probe, not here.
// Fails only if a memfd cannot be made.
absl::StatusOr<SelftestMemory> MemoryToBind(int32_t dmabuf_fd, bool simulated,
                                            int32_t memory_mb,
                                            const std::string& kind) {
  const size_t bytes = static_cast<size_t>(memory_mb) << 20;
  SelftestMemory m;
  m.fd = dmabuf_fd;
  if (kind == "cuda") {
    CudaDmabuf::Options gpu;
    gpu.bytes = bytes;
    gpu.gpu_pci = absl::GetFlag(FLAGS_gpu);
    absl::StatusOr<std::unique_ptr<CudaDmabuf>> cuda =
        CudaDmabuf::Allocate(gpu);
    if (cuda.ok()) {
      m.cuda = *std::move(cuda);
      m.fd = m.cuda->fd();
      m.description =
          absl::StrCat(memory_mb, " MiB of GPU memory on ", m.cuda->gpu_name(),
                       " (", m.cuda->gpu_pci(), ", CUDA dma-buf)");
    } else {
      m.fd = cuda.status();
      m.description = "none (no CUDA dma-buf could be made)";
    }
  } else if (dmabuf_fd >= 0) {
    m.description = absl::StrCat("fd ", dmabuf_fd, " (",
                                 DmabufKindName(ClassifyFd(dmabuf_fd)), ")");
  } else if (simulated) {
    absl::StatusOr<UniqueFd> memfd =
        CreateSealedMemfd(bytes, "devmemctl-selftest");
    if (!memfd.ok()) return memfd.status();
    m.owned = *std::move(memfd);
    m.fd = m.owned.get_unowned();
    m.description =
        absl::StrCat(memory_mb, " MiB memfd (simulated device memory)");
  } else {
    absl::StatusOr<UniqueFd> udmabuf = CreateUdmabuf(bytes);
    if (udmabuf.ok()) {
      m.owned = *std::move(udmabuf);
      m.fd = m.owned.get_unowned();
      m.description =
          absl::StrCat(memory_mb, " MiB udmabuf dma-buf (host memory)");
    } else {
      m.fd = udmabuf.status();
      m.description = "none (no dma-buf could be made)";
    }
  }
  return m;
}

int RunSelftest(const std::vector<std::string>&) {
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const bool simulated = absl::GetFlag(FLAGS_simulated);
  const int32_t memory_mb = absl::GetFlag(FLAGS_memory_mb);
  const int32_t dmabuf_fd = absl::GetFlag(FLAGS_dmabuf_fd);
  const std::string memory_kind = absl::GetFlag(FLAGS_memory);
  if (nic.empty()) return UsageError("selftest", "--nic is required");
  if (!memory_kind.empty() && memory_kind != "udmabuf" &&
      memory_kind != "cuda") {
    return UsageError("selftest", "--memory must be udmabuf or cuda");
  }
  if (memory_kind == "cuda" && dmabuf_fd >= 0) {
    return UsageError("selftest",
                      "--memory=cuda and --dmabuf_fd are "
                      "alternatives");
  }
  if (absl::StrContains(nic, ",")) {
    return UsageError("selftest", "--nic takes one NIC");
  }
  if (memory_mb < 1 || memory_mb > 65536) {
    return UsageError("selftest", "--memory_mb must be in 1..65536");
  }
  if (dmabuf_fd < -1) {
    return UsageError("selftest",
                      "--dmabuf_fd must be a file descriptor or -1");
  }
  if (dmabuf_fd >= 0 && fcntl(dmabuf_fd, F_GETFD) < 0) {
    return UsageError(
        "selftest", absl::StrCat("--dmabuf_fd=", dmabuf_fd, ": fd ", dmabuf_fd,
                                 " is not open in this process (it must "
                                 "be inherited)"));
  }
  std::unique_ptr<NicControl> control;
  uint32_t ifindex = 0;
  if (int rc = OpenControl(nic, simulated, &control, &ifindex); rc != kExitOk) {
    return rc;
  }

  absl::StatusOr<SelftestMemory> mem =
      MemoryToBind(dmabuf_fd, simulated, memory_mb, memory_kind);
  if (!mem.ok()) return Fail("selftest", "memfd", mem.status());
  const absl::StatusOr<int>& fd = mem->fd;
  const std::string& memory = mem->description;

  const std::string backend = control->BackendName();
  if (!json) {
    if (simulated) {
      absl::PrintF(
          "SIMULATED devmem selftest on %s (simulated NIC, ifindex %u): not "
          "real hardware; memory: %s\n",
          nic, ifindex, memory);
    } else {
      absl::PrintF(
          "devmem selftest on %s (ifindex %u, %s backend); memory: %s\n", nic,
          ifindex, backend, memory);
    }
    std::fflush(stdout);
  }
  SelftestReporter report = [json](const SelftestStep& step) {
    // A failed probe is explained capability by capability below.
    if (json || (step.name == "probe" && !step.passed)) return;
    absl::PrintF("  %s  %s: %s\n", step.passed ? "PASS" : "FAIL", step.name,
                 step.detail);
    std::fflush(stdout);
  };
  const SelftestResult result =
      RunDevmemSelftest(*control, ifindex, nic, fd, report);

  if (json) {
    absl::PrintF(
        "%s\n", SelftestJson(nic, ifindex, backend, simulated, memory, result));
    return result.passed() ? kExitOk : kExitFailure;
  }
  PrintSummary(nic, simulated, result);
  return result.passed() ? kExitOk : kExitFailure;
}

}  // namespace

std::vector<Command> SelftestCommands() {
  return {
      {"selftest",
       "--nic IF [--simulated] [--memory udmabuf|cuda [--gpu PCI]] "
       "[--memory_mb N] [--dmabuf_fd FD]",
       "Run the kernel's devmem test sequence on a NIC (ncdevmem).",
       "Run, in this process and without devmemd, the kernel's own devmem "
       "acceptance sequence "
       "(tools/testing/selftests/drivers/net/hw/ncdevmem.c "
       "test mode) on IF: probe channels, rings, ntuple, RSS and queues; "
       "record them; keep the upper half of the RX queues out of RSS; header "
       "split on; then (a) a bind without queues must fail, (b) a bind with "
       "header split off must fail, (c) a bind on the upper half must "
       "succeed "
       "and show in queue-get, (d) shrinking channels under it must fail, "
       "(e) "
       "closing its netlink socket must unbind; finally put everything back "
       "as "
       "recorded. Each step prints PASS or FAIL with the kernel's text. If "
       "the NIC cannot do devmem it says why (each missing capability with "
       "errno and message) and changes nothing. The memory is a udmabuf "
       "dma-buf (needs /dev/udmabuf) or --dmabuf_fd. Needs CAP_NET_ADMIN; "
       "--simulated runs on a simulated NIC instead, needing nothing. Do not "
       "run it on a NIC devmemd is using (`devmemctl nic restore IF` first). "
       "Exit 0 only if every step passed and the NIC was restored.",
       {{"nic", "The NIC to test (required)."},
        {"simulated"},
        {"memory"},
        {"gpu", "With --memory=cuda: the GPU's PCI address."},
        {"memory_mb"},
        {"dmabuf_fd",
         "An inherited dma-buf fd to bind instead of a udmabuf "
         "(e.g. exported GPU memory)."}},
       /*takes_positional=*/false,
       RunSelftest},
  };
}

}  // namespace ctl
}  // namespace devmem
