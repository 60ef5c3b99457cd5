// devmemctl listen and connect: sockets from devmemd, with optional bindings.
#include "client/ctl/cli.h"
#include "client/ctl/devmem_recv.h"
#include "client/ctl/devmem_send.h"
#include "client/ctl/socket_batch.h"

#include <arpa/inet.h>
#include <fcntl.h>
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
#include "client/host_port.h"
#include "client/libdevmem.h"
#include "client/pattern.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

ABSL_DECLARE_FLAG(int32_t, count);

ABSL_FLAG(std::string, addr, "",
          "Local numeric IP to listen on; empty means the wildcard address.");
ABSL_FLAG(int32_t, port, 0, "Local port to listen on; 0 lets the kernel pick.");
ABSL_FLAG(std::string, family, "",
          "inet or inet6; empty derives it from --addr (IPv6 if --addr is "
          "empty).");
ABSL_FLAG(int32_t, backlog, 0,
          "listen(2) backlog; 0 means the daemon default.");
ABSL_FLAG(
    std::string, output, "",
    "Where received bytes go: a FILE, or - for stdout. Default: discard.");
ABSL_FLAG(bool, expect_pattern, false,
          "Check every received byte against the devmemctl test pattern and "
          "fail naming the first bad offset.");
ABSL_FLAG(int64_t, max_bytes, 0,
          "Stop after receiving this many bytes; 0 means read until EOF.");
ABSL_FLAG(std::string, remote, "",
          "Peer to connect to: IP:PORT, or [IPv6]:PORT (required).");
ABSL_FLAG(std::string, local, "",
          "Optional local address to bind before connecting: IP, IP:PORT or "
          "[IPv6]:PORT.");
ABSL_FLAG(int32_t, timeout_ms, 0,
          "Connect timeout in ms; 0 means the daemon default.");
ABSL_FLAG(int64_t, bytes, 0,
          "Send this many bytes: the test pattern with --pattern, zeros "
          "without.");
ABSL_FLAG(bool, pattern, false,
          "With --bytes: send the deterministic test pattern that "
          "`listen --expect_pattern` checks.");
ABSL_FLAG(std::string, input, "",
          "Send the contents of FILE, or of stdin with -, instead of --bytes.");
ABSL_FLAG(int32_t, bind_memfd_mb, 0,
          "Before the socket: bind N MiB of memfd-backed stand-in device "
          "memory to the NIC's devmem pool (BindRx) and steer the socket's "
          "flows to it. Only devmemd's simulated backend accepts a memfd; "
          "the kernel backend needs --dmabuf_fd. 0 = no binding.");
ABSL_FLAG(int32_t, bind_cuda_mb, 0,
          "Before the socket: allocate N MiB of GPU memory (CUDA, loaded at "
          "run time; --gpu picks the GPU by PCI address, else CUDA device 0), "
          "export it as a dma-buf and bind it like --dmabuf_fd. 0 = none.");
ABSL_FLAG(std::string, send, "plain",
          "connect: plain (write(2)), or devmem: the buffer is bound with "
          "BindTx (kernel 6.16+), filled with the test pattern, and sent "
          "through libdevmem's DevmemSender (MSG_ZEROCOPY from dma-buf "
          "offsets).");
ABSL_FLAG(std::string, recv, "plain",
          "listen: plain (read(2)), or devmem: recvmsg(MSG_SOCK_DEVMEM) "
          "through libdevmem's DevmemReceiver, device fragments read through "
          "a CPU view of the bound buffer, tokens returned in batches; needs "
          "a binding.");
ABSL_FLAG(int32_t, validate, 0,
          "listen --recv devmem: check ncdevmem's pattern (`ncdevmem -v N`: "
          "bytes 1..N-1 and a newline, repeated), N in 2..256; 0 = off.");
ABSL_FLAG(int32_t, queues, 0,
          "RX queues the binding takes from the NIC's devmem pool; 0 means "
          "1. Needs --bind_memfd_mb or --dmabuf_fd.");

ABSL_DECLARE_FLAG(std::string, gpu);

namespace devmem {
namespace ctl {
namespace {

// ---------------------------------------------------------------------------
// listen
// ---------------------------------------------------------------------------

std::string SocketHint(const absl::Status& status, absl::string_view command) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "run `devmemctl nics` to see the NICs devmemd knows";
    case absl::StatusCode::kAlreadyExists:
      return "the address is in use: pick another --port, or --port=0 to let "
             "the kernel choose";
    case absl::StatusCode::kInvalidArgument:
      return command == "listen"
                 ? "check --addr, --port and --family (numeric addresses only)"
                 : "check --remote and --local (numeric IP:PORT, [IPv6]:PORT)";
    case absl::StatusCode::kUnavailable:
      if (command == "connect" &&
          !absl::StrContains(status.message(), "session")) {
        return "is anything listening at --remote, and is it reachable "
               "through --nic?";
      }
      return HintFor(status);
    case absl::StatusCode::kDeadlineExceeded:
      if (command == "connect") {
        return "the peer did not answer in time: check --remote and routing "
               "via --nic, or raise --timeout_ms";
      }
      return HintFor(status);
    default:
      return HintFor(status);
  }
}

// ---------------------------------------------------------------------------
// Bindings for listen/connect (--bind_memfd_mb, --dmabuf_fd, --queues)
// ---------------------------------------------------------------------------

struct BindFlags {
  int32_t memfd_mb = 0;
  int32_t cuda_mb = 0;
  int32_t dmabuf_fd = -1;
  int32_t queues = 0;
  bool wanted() const { return memfd_mb > 0 || cuda_mb > 0 || dmabuf_fd >= 0; }
};

// The memory a binding was made with, kept alive while it is bound.
struct BoundMemory {
  UniqueFd memfd;                    // --bind_memfd_mb
  std::unique_ptr<CudaDmabuf> cuda;  // --bind_cuda_mb
  int fd = -1;                       // whichever was bound
};

// Reads and checks the binding flags; kExitOk, or the usage exit code
// after printing what is wrong.
int ParseBindFlags(const char* command, BindFlags* flags) {
  flags->memfd_mb = absl::GetFlag(FLAGS_bind_memfd_mb);
  flags->cuda_mb = absl::GetFlag(FLAGS_bind_cuda_mb);
  flags->dmabuf_fd = absl::GetFlag(FLAGS_dmabuf_fd);
  flags->queues = absl::GetFlag(FLAGS_queues);
  if (flags->memfd_mb < 0 || flags->memfd_mb > 65536) {
    return UsageError(command, "--bind_memfd_mb must be in 0..65536");
  }
  if (flags->dmabuf_fd < -1) {
    return UsageError(command, "--dmabuf_fd must be a file descriptor or -1");
  }
  if (flags->cuda_mb < 0 || flags->cuda_mb > 1 << 20) {
    return UsageError(command, "--bind_cuda_mb must be in 0..1048576");
  }
  if ((flags->memfd_mb > 0) + (flags->cuda_mb > 0) + (flags->dmabuf_fd >= 0) >
      1) {
    return UsageError(command,
                      "--bind_memfd_mb, --bind_cuda_mb and --dmabuf_fd are "
                      "alternatives");
  }
  if (flags->queues < 0 || flags->queues > 64) {
    return UsageError(command, "--queues must be in 0..64");
  }
  if (flags->queues > 0 && !flags->wanted()) {
    return UsageError(command,
                      "--queues needs --bind_memfd_mb, --bind_cuda_mb or "
                      "--dmabuf_fd");
  }
  if (flags->dmabuf_fd >= 0 && fcntl(flags->dmabuf_fd, F_GETFD) < 0) {
    return UsageError(command,
                      absl::StrCat("--dmabuf_fd=", flags->dmabuf_fd, ": fd ",
                                   flags->dmabuf_fd,
                                   " is not open in this process (it must be "
                                   "inherited, e.g. `devmemctl ... 7<&N`)"));
  }
  return kExitOk;
}

std::string BindHint(const absl::Status& status, const BindFlags& flags,
                     absl::string_view nic) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      if (flags.memfd_mb > 0 && absl::StrContains(status.message(), "memfd")) {
        return "only devmemd's simulated backend (--nic_backend=simulated) "
               "binds memfd-backed memory; this devmemd drives the real "
               "kernel, which needs a real dma-buf: pass one with "
               "--dmabuf_fd (e.g. GPU memory exported with "
               "cuMemGetHandleForAddressRange)";
      }
      return "--dmabuf_fd must be a dma-buf (fstatfs reports DMA_BUF_MAGIC)";
    case absl::StatusCode::kNotFound:
      return "bindings go to NICs with a devmem profile: `devmemctl nic show` "
             "lists them";
    case absl::StatusCode::kResourceExhausted:
      return absl::StrCat("the devmem pool of ", nic,
                          " has too few free queues: ask for fewer --queues "
                          "or wait; `devmemctl nic show ",
                          nic, "` shows the free queues");
    case absl::StatusCode::kFailedPrecondition:
      return absl::StrCat("`devmemctl nic show ", nic,
                          "` shows the NIC's profile state; `devmemctl "
                          "selftest --nic ",
                          nic, "` checks the NIC itself");
    default:
      return HintFor(status);
  }
}

// Binds the memory the flags name, prints the binding (stderr; a JSON line
// on stdout with --json) and returns kExitOk with `*binding` set, or the
// failure exit code. `*memory` keeps a memfd or GPU memory alive while the
// binding lives.
int BindForSocket(const char* command, Session& session, const std::string& nic,
                  const BindFlags& flags, BoundMemory* memory,
                  v1::Binding* binding, bool tx = false) {
  std::string what;
  int fd = flags.dmabuf_fd;
  if (flags.cuda_mb > 0) {
    CudaDmabuf::Options gpu;
    gpu.bytes = static_cast<size_t>(flags.cuda_mb) << 20;
    gpu.gpu_pci = absl::GetFlag(FLAGS_gpu);
    absl::StatusOr<std::unique_ptr<CudaDmabuf>> cuda =
        CudaDmabuf::Allocate(gpu);
    if (!cuda.ok()) {
      return Fail(command, "GPU memory for --bind_cuda_mb", cuda.status());
    }
    memory->cuda = *std::move(cuda);
    fd = memory->cuda->fd();
    what = absl::StrCat(flags.cuda_mb, " MiB of GPU memory on ",
                        memory->cuda->gpu_name(), " (", memory->cuda->gpu_pci(),
                        ", CUDA dma-buf)");
  } else if (flags.memfd_mb > 0) {
    absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(
        static_cast<size_t>(flags.memfd_mb) << 20, "devmemctl");
    if (!memfd.ok()) {
      return Fail(command, "creating the memfd for --bind_memfd_mb",
                  memfd.status());
    }
    memory->memfd = *std::move(memfd);
    fd = memory->memfd.get_unowned();
    what = absl::StrCat(flags.memfd_mb, " MiB memfd");
  } else {
    what = absl::StrCat("fd ", fd, " (", DmabufKindName(ClassifyFd(fd)), ")");
  }
  memory->fd = fd;
  BindOptions options;
  options.nic = nic;
  options.queue_count = flags.queues == 0 ? 1 : flags.queues;
  absl::StatusOr<v1::Binding> bound =
      tx ? session.BindTx(fd, options) : session.BindRx(fd, options);
  if (!bound.ok()) {
    return Fail(
        command,
        absl::StrCat(tx ? "BindTx" : "BindRx", " of ", what, " on nic ", nic),
        bound.status(), BindHint(bound.status(), flags, nic));
  }
  *binding = *bound;
  absl::FPrintF(stderr, "bound %s: binding %u (kernel id %u) on nic %s %s%s\n",
                what, binding->handle(), binding->kernel_id(),
                binding->nic().empty() ? nic : binding->nic(),
                tx ? "for TX"
                   : absl::StrCat("RX queues ", QueueRanges(binding->queues())),
                binding->has_rss_context()
                    ? absl::StrCat(", rss context ", binding->rss_context())
                    : "");
  if (absl::GetFlag(FLAGS_json)) {
    absl::PrintF("{\"binding\":%s}\n", ToJson(*binding));
    std::fflush(stdout);
  }
  return kExitOk;
}

std::string Endpoint(const std::string& ip, uint32_t port) {
  if (ip.empty() && port == 0) return "*";
  return FormatHostPort(ip.empty() ? "*" : ip, static_cast<uint16_t>(port));
}

// "steering rule at location 1023 on lo: tcp4 dst 10.0.0.1:5000 -> queue 4
// (3-tuple: ...)".
std::string RuleLine(const v1::FlowRule& rule, bool listener) {
  std::string match =
      absl::StrCat(rule.family() == v1::ADDRESS_FAMILY_INET ? "tcp4" : "tcp6");
  if (!rule.src_ip().empty() || rule.src_port() != 0) {
    absl::StrAppend(&match, " src ", Endpoint(rule.src_ip(), rule.src_port()));
  }
  absl::StrAppend(&match, " dst ", Endpoint(rule.dst_ip(), rule.dst_port()));
  const std::string target =
      rule.has_rss_context() ? absl::StrCat("rss context ", rule.rss_context(),
                                            " (offset ", rule.queue(), ")")
                             : absl::StrCat("queue ", rule.queue());
  const char* tuple = rule.five_tuple() ? "5-tuple"
                      : listener ? "3-tuple: the listener's address and port"
                                 : "3-tuple fallback: the NIC refused the "
                                   "5-tuple";
  return absl::StrCat("steering rule at location ", rule.location(), " on ",
                      rule.nic(), ": ", match, " -> ", target, " (", tuple,
                      ")");
}

void PrintRule(const v1::SocketResponse& info, bool listener) {
  if (!info.has_rule()) {
    absl::FPrintF(stderr, "no steering rule reported by devmemd\n");
    return;
  }
  absl::FPrintF(stderr, "%s\n", RuleLine(info.rule(), listener));
}

// Reads `fd` to EOF (or `max_bytes`), checking the test pattern if `check`
// and copying to `out_fd` if it is >= 0; `*received` counts the bytes.
// kExitOk, or the failure exit code after saying what went wrong.
int Receive(int fd, const std::string& peer, int out_fd, int64_t max_bytes,
            bool check, bool json, uint64_t* received) {
  std::string buf(kIoChunk, '\0');
  for (;;) {
    size_t want = buf.size();
    if (max_bytes > 0) {
      const uint64_t left = static_cast<uint64_t>(max_bytes) - *received;
      if (left == 0) break;
      want = std::min<uint64_t>(want, left);
    }
    ssize_t n = read(fd, buf.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(
          "listen",
          absl::StrCat("receiving from ", peer, " after ", *received, " bytes"),
          ErrnoStatus(errno, "read"),
          "the sender reset the connection or the link went down");
    }
    if (n == 0) break;
    absl::string_view chunk(buf.data(), static_cast<size_t>(n));
    if (check) {
      int64_t bad = CheckPattern(*received, chunk);
      if (bad >= 0) {
        const uint64_t offset = *received + static_cast<uint64_t>(bad);
        absl::FPrintF(stderr,
                      "devmemctl listen: pattern mismatch at byte offset %u: "
                      "expected 0x%02x, got 0x%02x\n"
                      "  hint: the data was corrupted, reordered or lost on "
                      "the way; was the sender `devmemctl connect --pattern` "
                      "from offset 0?\n",
                      offset, PatternByte(offset),
                      static_cast<uint8_t>(chunk[static_cast<size_t>(bad)]));
        if (json) {
          absl::PrintF(
              "{\"command\":\"listen\",\"ok\":false,\"bytes\":%u,"
              "\"pattern_mismatch_offset\":%u}\n",
              *received + static_cast<uint64_t>(bad), offset);
        }
        return kExitFailure;
      }
    }
    if (out_fd >= 0) {
      absl::Status written =
          WriteAll(out_fd, chunk.data(), chunk.size(), "write --output");
      if (!written.ok()) return Fail("listen", "--output", written);
    }
    *received += static_cast<uint64_t>(n);
  }
  return kExitOk;
}

// What `listen` was asked to do, from its flags.
struct ListenArgs {
  ListenOptions options;
  BindFlags bind;
  bool devmem = false;    // --recv devmem
  uint32_t validate = 0;  // --validate N
  bool json = false;
  std::string output;
  int64_t max_bytes = 0;
  int count = 0;  // --count
};

// --count for listen/connect: kExitOk with *count set, or a usage error.
// Batches only make sockets: no data options, no fixed listening port.
int CountFromFlags(const char* command, bool data_options, uint16_t port,
                   int* count) {
  *count = absl::GetFlag(FLAGS_count);
  if (*count < 0 || *count > 65536) {
    return UsageError(command, "--count must be in 0..65536");
  }
  if (*count <= 1) return kExitOk;
  if (port != 0) {
    return UsageError(command,
                      "--count > 1 needs --port 0: one port takes one "
                      "listener");
  }
  if (data_options) {
    return UsageError(command,
                      "--count > 1 makes sockets and reports them; drop the "
                      "data options (--recv/--send devmem, --output, --input, "
                      "--bytes, --max_bytes)");
  }
  return kExitOk;
}

// Reads and checks listen's flags: kExitOk, or the usage exit code after
// saying what is wrong.
int ListenArgsFromFlags(ListenArgs* args) {
  args->json = absl::GetFlag(FLAGS_json);
  args->output = absl::GetFlag(FLAGS_output);
  args->max_bytes = absl::GetFlag(FLAGS_max_bytes);
  const bool json = args->json;
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const std::string& output = args->output;
  const int32_t port = absl::GetFlag(FLAGS_port);
  const int32_t backlog = absl::GetFlag(FLAGS_backlog);
  const int64_t max_bytes = args->max_bytes;
  const std::string family = absl::GetFlag(FLAGS_family);
  if (nic.empty()) return UsageError("listen", "--nic is required");
  if (port < 0 || port > 65535) {
    return UsageError("listen", "--port must be in 0..65535");
  }
  if (backlog < 0) return UsageError("listen", "--backlog must be >= 0");
  if (max_bytes < 0) return UsageError("listen", "--max_bytes must be >= 0");
  if (json && output == "-") {
    return UsageError("listen",
                      "--json and --output=- would both write to stdout");
  }
  if (int rc = ParseBindFlags("listen", &args->bind); rc != kExitOk) {
    return rc;
  }
  const std::string recv = absl::GetFlag(FLAGS_recv);
  const int32_t validate = absl::GetFlag(FLAGS_validate);
  if (recv != "plain" && recv != "devmem") {
    return UsageError("listen", "--recv must be plain or devmem");
  }
  args->devmem = recv == "devmem";
  if (args->devmem && !args->bind.wanted()) {
    return UsageError("listen",
                      "--recv devmem needs a binding: --bind_memfd_mb or "
                      "--dmabuf_fd");
  }
  if (validate != 0 && (validate < 2 || validate > 256 || !args->devmem)) {
    return UsageError("listen",
                      "--validate takes N in 2..256, with --recv "
                      "devmem");
  }
  args->validate = static_cast<uint32_t>(validate);
  ListenOptions& options = args->options;
  options.nic = nic;
  options.port = static_cast<uint16_t>(port);
  options.backlog = static_cast<uint32_t>(backlog);
  if (!absl::GetFlag(FLAGS_addr).empty()) {
    absl::StatusOr<HostPort> addr =
        ParseHostPort(absl::GetFlag(FLAGS_addr), /*port_optional=*/true);
    if (!addr.ok()) {
      return UsageError("listen", absl::StrCat(addr.status().message()));
    }
    if (addr->port != 0) {
      return UsageError("listen", "--addr takes an IP only; use --port");
    }
    options.ip = addr->ip;
  }
  if (family == "inet") {
    options.family = v1::ADDRESS_FAMILY_INET;
  } else if (family == "inet6") {
    options.family = v1::ADDRESS_FAMILY_INET6;
  } else if (!family.empty()) {
    return UsageError("listen", "--family must be inet or inet6");
  }
  return CountFromFlags(
      "listen", args->devmem || !args->output.empty() || args->max_bytes > 0,
      options.port, &args->count);
}

int RunListen(const std::vector<std::string>&) {
  ListenArgs args;
  if (int rc = ListenArgsFromFlags(&args); rc != kExitOk) return rc;
  const bool json = args.json;
  const std::string& nic = args.options.nic;
  const std::string& output = args.output;
  const int64_t max_bytes = args.max_bytes;
  const BindFlags& bind = args.bind;
  ListenOptions& options = args.options;
  UniqueFd out;
  if (!output.empty()) {
    absl::StatusOr<UniqueFd> opened = OpenPath(output, /*for_write=*/true);
    if (!opened.ok()) return Fail("listen", "--output", opened.status());
    out = *std::move(opened);
  }

  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("listen", session.status());
  BoundMemory memory;  // while it is bound
  v1::Binding binding;
  if (bind.wanted()) {
    int rc = BindForSocket("listen", **session, nic, bind, &memory, &binding);
    if (rc != kExitOk) return rc;
    options.binding = binding.handle();
  }
  if (args.count > 1) {
    SocketSpec spec;
    spec.listen = options;
    return OpenManySockets("listen", **session, spec, args.count);
  }
  absl::StatusOr<SocketHandle> sock = (*session)->Listen(options);
  if (!sock.ok()) {
    return Fail("listen", absl::StrCat("Listen on nic ", nic), sock.status(),
                SocketHint(sock.status(), "listen"));
  }
  const std::string local =
      FormatHostPort(sock->info.local().ip(), sock->info.local().port());
  if (json) {
    absl::PrintF("%s\n", ToJson(sock->info));
    std::fflush(stdout);
  }
  if (bind.wanted()) PrintRule(sock->info, /*listener=*/true);
  // Scripts wait for this line to learn the port, so flush it now.
  absl::FPrintF(stderr, "listening on %s (nic %s, fd from devmemd)\n", local,
                sock->info.nic().empty() ? nic : sock->info.nic());
  std::fflush(stderr);

  sockaddr_storage peer_addr{};
  socklen_t peer_len = sizeof(peer_addr);
  UniqueFd conn;
  for (;;) {
    conn.Reset(accept4(sock->fd.get_unowned(),
                       reinterpret_cast<sockaddr*>(&peer_addr), &peer_len,
                       SOCK_CLOEXEC));
    if (conn.valid() || errno != EINTR) break;
  }
  if (!conn.valid()) {
    return Fail("listen", "accept", ErrnoStatus(errno, "accept4"),
                "the fd from devmemd should be a listening socket; report a "
                "devmemd bug if this persists");
  }
  sock->fd.Reset();  // one connection only
  const std::string peer = PeerName(peer_addr);
  absl::FPrintF(stderr, "accepted connection from %s\n", peer);
  std::fflush(stderr);

  const bool check = absl::GetFlag(FLAGS_expect_pattern);
  uint64_t received = 0;
  const absl::Time start = absl::Now();
  std::string figures;  // --recv devmem's, for the report
  if (args.devmem) {
    DevmemRecvArgs rx;
    rx.fd = conn.get_unowned();
    rx.dmabuf_id = binding.kernel_id();
    rx.buffer_fd = memory.fd;
    rx.ncdevmem_n = args.validate;
    rx.expect_pattern = check;
    rx.out_fd = out.valid() ? out.get_unowned() : -1;
    rx.max_bytes = static_cast<uint64_t>(max_bytes);
    DevmemRecvFigures f;
    absl::Status got = ReceiveDevmem(rx, &f);
    received = f.bytes;
    if (!got.ok()) {
      return Fail("listen",
                  absl::StrCat("receiving (devmem) from ", peer, " after ",
                               f.bytes, " bytes; ", DescribeFigures(f)),
                  got);
    }
    figures = json ? absl::StrCat(",", FiguresJson(f))
                   : absl::StrCat("; ", DescribeFigures(f));
  } else if (int rc = Receive(conn.get_unowned(), peer, out.get_unowned(),
                              max_bytes, check, json, &received);
             rc != kExitOk) {
    return rc;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  FILE* report = output == "-" ? stderr : stdout;
  const bool checked = check || args.validate != 0;
  if (json) {
    absl::PrintF(
        "{\"command\":\"listen\",\"ok\":true,\"local\":\"%s\",\"peer\":\"%s\","
        "\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f,\"pattern_checked\":%s,"
        "\"binding\":%u%s}\n",
        local, peer, received, seconds, Gbps(received, seconds),
        checked ? "true" : "false", binding.handle(), figures);
  } else {
    absl::FPrintF(report, "received %u bytes in %.3f s (%.3f Gbit/s)%s%s\n",
                  received, seconds, Gbps(received, seconds),
                  checked ? ", pattern ok" : "", figures);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------

// After shutdown(SHUT_WR), waits (bounded) for the peer to close, so that we
// exit only once the receiver has read everything; a close with unread
// incoming data would turn into a RST that can discard data in flight.
void DrainUntilPeerCloses(int fd, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  char buf[4096];
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

// Sends the contents of `in_fd` (if >= 0), else `bytes` of the test pattern
// or of zeros, on `fd`; `*sent` counts the bytes. kExitOk, or the failure
// exit code after saying what went wrong.
int Send(int fd, int in_fd, int64_t bytes, bool pattern, uint64_t* sent) {
  if (in_fd >= 0) {
    std::string buf(kIoChunk, '\0');
    for (;;) {
      ssize_t n = read(in_fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail("connect", "reading --input", ErrnoStatus(errno, "read"));
      }
      if (n == 0) break;
      absl::Status s = SendAll(fd, buf.data(), static_cast<size_t>(n));
      if (!s.ok()) {
        return Fail("connect", absl::StrCat("sending after ", *sent, " bytes"),
                    s, "the receiver closed or reset the connection");
      }
      *sent += static_cast<uint64_t>(n);
    }
  } else if (bytes > 0) {
    const std::string zeros =
        pattern ? std::string() : std::string(kIoChunk, '\0');
    const std::string& source = pattern ? PatternPeriod() : zeros;
    const uint64_t total = static_cast<uint64_t>(bytes);
    while (*sent < total) {
      // The pattern repeats every kPatternPeriod bytes, so one precomputed
      // period serves any stream offset.
      const size_t phase = pattern ? *sent % kPatternPeriod : 0;
      const size_t n = std::min<uint64_t>(total - *sent, source.size() - phase);
      absl::Status s = SendAll(fd, source.data() + phase, n);
      if (!s.ok()) {
        return Fail("connect", absl::StrCat("sending after ", *sent, " bytes"),
                    s, "the receiver closed or reset the connection");
      }
      *sent += n;
    }
  }
  return kExitOk;
}

// What `connect` was asked to do, from its flags.
struct ConnectArgs {
  ConnectOptions options;
  BindFlags bind;
  bool devmem = false;  // --send devmem
  bool json = false;
  std::string input;
  int64_t bytes = 0;
  bool pattern = false;
  int count = 0;  // --count
};

// Reads and checks connect's flags: kExitOk, or the usage exit code after
// saying what is wrong.
int ConnectArgsFromFlags(ConnectArgs* args) {
  args->json = absl::GetFlag(FLAGS_json);
  args->input = absl::GetFlag(FLAGS_input);
  args->bytes = absl::GetFlag(FLAGS_bytes);
  args->pattern = absl::GetFlag(FLAGS_pattern);
  const std::string nic = absl::GetFlag(FLAGS_nic);
  const std::string& input = args->input;
  const int64_t bytes = args->bytes;
  const bool pattern = args->pattern;
  const int32_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (nic.empty()) return UsageError("connect", "--nic is required");
  if (absl::GetFlag(FLAGS_remote).empty()) {
    return UsageError("connect", "--remote IP:PORT is required");
  }
  if (bytes < 0) return UsageError("connect", "--bytes must be >= 0");
  if (timeout_ms < 0) return UsageError("connect", "--timeout_ms must be >= 0");
  if (!input.empty() && (bytes > 0 || pattern)) {
    return UsageError("connect",
                      "--input and --bytes/--pattern are alternatives");
  }
  if (pattern && bytes == 0) {
    return UsageError("connect", "--pattern needs --bytes=N");
  }
  if (int rc = ParseBindFlags("connect", &args->bind); rc != kExitOk) {
    return rc;
  }
  const std::string send = absl::GetFlag(FLAGS_send);
  if (send != "plain" && send != "devmem") {
    return UsageError("connect", "--send must be plain or devmem");
  }
  args->devmem = send == "devmem";
  if (args->devmem && (!args->bind.wanted() || !input.empty() || bytes == 0)) {
    return UsageError("connect",
                      "--send devmem sends --bytes=N of the test pattern from "
                      "a bind-tx binding: give --bytes and --bind_memfd_mb, "
                      "--bind_cuda_mb or --dmabuf_fd");
  }
  ConnectOptions& options = args->options;
  options.nic = nic;
  options.timeout = absl::Milliseconds(timeout_ms);
  absl::StatusOr<HostPort> remote = ParseHostPort(absl::GetFlag(FLAGS_remote));
  if (!remote.ok()) {
    return UsageError("connect",
                      absl::StrCat("--remote: ", remote.status().message()));
  }
  options.remote = *remote;
  if (!absl::GetFlag(FLAGS_local).empty()) {
    absl::StatusOr<HostPort> local =
        ParseHostPort(absl::GetFlag(FLAGS_local), /*port_optional=*/true);
    if (!local.ok()) {
      return UsageError("connect",
                        absl::StrCat("--local: ", local.status().message()));
    }
    options.local = *local;
  }
  return CountFromFlags("connect",
                        args->devmem || !input.empty() || bytes > 0 || pattern,
                        /*port=*/0, &args->count);
}

int RunConnect(const std::vector<std::string>&) {
  ConnectArgs args;
  if (int rc = ConnectArgsFromFlags(&args); rc != kExitOk) return rc;
  const bool json = args.json;
  const std::string& nic = args.options.nic;
  const std::string& input = args.input;
  const int64_t bytes = args.bytes;
  const bool pattern = args.pattern;
  const BindFlags& bind = args.bind;
  ConnectOptions& options = args.options;
  UniqueFd in;
  if (!input.empty()) {
    absl::StatusOr<UniqueFd> opened = OpenPath(input, /*for_write=*/false);
    if (!opened.ok()) return Fail("connect", "--input", opened.status());
    in = *std::move(opened);
  }

  absl::StatusOr<std::unique_ptr<Session>> session = OpenSession();
  if (!session.ok()) return FailOpen("connect", session.status());
  BoundMemory memory;  // while it is bound
  v1::Binding binding;
  if (bind.wanted()) {
    int rc = BindForSocket("connect", **session, nic, bind, &memory, &binding,
                           /*tx=*/args.devmem);
    if (rc != kExitOk) return rc;
    // An RX binding steers the connection's incoming flow; a TX one is
    // only named in each send.
    if (!args.devmem) options.binding = binding.handle();
  }
  if (args.count > 1) {
    SocketSpec spec;
    spec.connect = options;
    return OpenManySockets("connect", **session, spec, args.count);
  }
  absl::StatusOr<SocketHandle> sock = (*session)->Connect(options);
  if (!sock.ok()) {
    return Fail(
        "connect",
        absl::StrCat("Connect to ",
                     FormatHostPort(options.remote.ip, options.remote.port),
                     " via nic ", nic),
        sock.status(), SocketHint(sock.status(), "connect"));
  }
  const std::string remote_name =
      FormatHostPort(options.remote.ip, options.remote.port);
  const std::string local_name =
      FormatHostPort(sock->info.local().ip(), sock->info.local().port());
  if (json) {
    absl::PrintF("%s\n", ToJson(sock->info));
    std::fflush(stdout);
  }
  if (bind.wanted() && !args.devmem) PrintRule(sock->info, /*listener=*/false);
  absl::FPrintF(stderr, "connected to %s from %s (nic %s, fd from devmemd)\n",
                remote_name, local_name,
                sock->info.nic().empty() ? nic : sock->info.nic());
  std::fflush(stderr);

  const int fd = sock->fd.get_unowned();
  uint64_t sent = 0;
  const absl::Time start = absl::Now();
  std::string figures;
  if (args.devmem) {
    DevmemSendArgs tx;
    tx.fd = fd;
    tx.binding_id = binding.kernel_id();
    tx.buffer_fd = memory.fd;
    tx.device = binding.nic().empty() ? nic : binding.nic();
    tx.bytes = static_cast<uint64_t>(bytes);
    tx.fill_pattern = !memory.cuda;
    DevmemSendFigures f;
    absl::Status done = SendDevmem(tx, &f);
    sent = f.bytes;
    figures =
        absl::StrFormat("; %u sendmsg call(s), %u completion(s) (%u copied)",
                        f.sendmsg_calls, f.completions, f.copied);
    if (!done.ok()) {
      return Fail(
          "connect",
          absl::StrCat("sending (devmem) after ", f.bytes, " bytes", figures),
          done);
    }
  } else if (int rc = Send(fd, in.get_unowned(), bytes, pattern, &sent);
             rc != kExitOk) {
    return rc;
  }
  if (shutdown(fd, SHUT_WR) != 0) {
    return Fail("connect", "shutdown", ErrnoStatus(errno, "shutdown(SHUT_WR)"));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  DrainUntilPeerCloses(fd, absl::Seconds(10));
  if (json) {
    absl::PrintF(
        "{\"command\":\"connect\",\"ok\":true,\"local\":\"%s\",\"remote\":"
        "\"%s\",\"bytes\":%u,\"seconds\":%.6f,\"gbps\":%.3f,\"binding\":%u}\n",
        local_name, remote_name, sent, seconds, Gbps(sent, seconds),
        binding.handle());
  } else {
    absl::PrintF("sent %u bytes in %.3f s (%.3f Gbit/s)%s\n", sent, seconds,
                 Gbps(sent, seconds), figures);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> SocketCommands() {
  return {
      {"listen",
       "--nic IF [--addr IP] [--port P] [--output FILE|-] [--expect_pattern] "
       "[--max_bytes N] [--bind_memfd_mb N | --dmabuf_fd FD [--queues N]] "
       "[--recv devmem [--validate N]] | --count N [--hold D]",
       "Receive one TCP stream on a socket from devmemd.",
       "Get a listening TCP socket bound to IF from devmemd, print "
       "\"listening on IP:PORT ...\" to stderr, accept one connection, read "
       "it to EOF and report bytes, seconds and Gbit/s. With --bind_memfd_mb "
       "or --dmabuf_fd the memory is first bound to IF's devmem pool "
       "(BindRx) and the listener's flows are steered to it; the binding and "
       "the steering rule are printed to stderr (and as JSON with --json). "
       "--recv devmem receives as a devmem workload does (libdevmem's "
       "DevmemReceiver: device fragments, linear bytes, tokens returned in "
       "batches) and adds those figures to the report; with --validate N it "
       "checks ncdevmem's pattern, so the kernel documentation's recipe with "
       "a plain `nc` sender works against devmemd. With --count N (> 1) it "
       "makes N such listeners in batches (OpenSockets, RedeemMany; each "
       "steered if bound), prints one line per socket and the time taken, "
       "holds them for --hold, and closes them.",
       {{"nic", "NIC the socket is bound to (required)."},
        {"addr"},
        {"port"},
        {"family"},
        {"backlog"},
        {"output"},
        {"expect_pattern"},
        {"max_bytes"},
        {"bind_memfd_mb"},
        {"bind_cuda_mb"},
        {"gpu", "With --bind_cuda_mb: the GPU's PCI address."},
        {"dmabuf_fd"},
        {"queues"},
        {"recv"},
        {"validate"},
        {"count", "Make this many listeners in batches and report them."},
        {"hold"}},
       /*takes_positional=*/false,
       RunListen},
      {"connect",
       "--nic IF --remote IP:PORT [--local IP[:PORT]] [--timeout_ms MS] "
       "[--bytes N [--pattern] | --input FILE|-] | --count N [--hold D]",
       "Send one TCP stream on a socket from devmemd.",
       "Get a TCP socket bound to IF and connected to --remote from devmemd, "
       "send --bytes (or --input), shut down writing, wait for the receiver "
       "to close, and report bytes sent. With --bind_memfd_mb or --dmabuf_fd "
       "the memory is first bound to IF's devmem pool (BindRx) and the "
       "connection's incoming flow is steered to it (5-tuple, or the 3-tuple "
       "if the NIC refuses it); binding and rule go to stderr. --send devmem "
       "binds the memory for TX instead and sends --bytes of the test "
       "pattern from it with DevmemSender, reporting sendmsg calls and "
       "completions. With --count N (> 1) it makes N such connections in "
       "batches (OpenSockets, RedeemMany), prints them and the time taken, "
       "holds them for --hold, and closes them.",
       {{"nic", "NIC the socket is bound to (required)."},
        {"remote"},
        {"local"},
        {"timeout_ms"},
        {"bytes"},
        {"pattern"},
        {"input"},
        {"bind_memfd_mb"},
        {"bind_cuda_mb"},
        {"gpu", "With --bind_cuda_mb: the GPU's PCI address."},
        {"dmabuf_fd"},
        {"queues"},
        {"send"},
        {"count", "Make this many connections in batches and report them."},
        {"hold"}},
       /*takes_positional=*/false,
       RunConnect},
  };
}

}  // namespace ctl
}  // namespace devmem
