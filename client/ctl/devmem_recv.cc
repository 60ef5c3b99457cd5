#include "client/ctl/devmem_recv.h"

#include <unistd.h>

#include <cerrno>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "client/devmem_receiver.h"
#include "client/ncdevmem_pattern.h"
#include "client/pattern.h"
#include "kernel/dmabuf_view.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace ctl {
namespace {

constexpr size_t kBufferBytes = 1 << 20;

// Checks the stream's bytes in order against the chosen pattern.
class StreamCheck {
 public:
  explicit StreamCheck(const DevmemRecvArgs& args)
      : expect_pattern_(args.expect_pattern) {
    if (args.ncdevmem_n != 0) ncdevmem_.emplace(args.ncdevmem_n);
  }
  bool active() const { return expect_pattern_ || ncdevmem_.has_value(); }

  absl::Status Feed(absl::Span<const char> data) {
    if (expect_pattern_) {
      const int64_t bad = FirstPatternMismatch(offset_, data);
      if (bad >= 0) {
        const uint64_t at = offset_ + static_cast<uint64_t>(bad);
        return absl::FailedPreconditionError(absl::StrFormat(
            "pattern mismatch at byte offset %u: expected 0x%02x, got 0x%02x",
            at, PatternByte(at), static_cast<uint8_t>(data[bad])));
      }
    }
    if (ncdevmem_.has_value() && !ncdevmem_->Check(data)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "more than ", NcdevmemPattern::kMaxMismatches,
          " bytes differ from ncdevmem's pattern (the first at offset ",
          ncdevmem_->first_mismatch(), ")"));
    }
    offset_ += data.size();
    return absl::OkStatus();
  }

  absl::Status Finish() const {
    if (ncdevmem_.has_value() && ncdevmem_->mismatches() > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(ncdevmem_->mismatches(),
                       " byte(s) differ from ncdevmem's pattern "
                       "(the first at offset ",
                       ncdevmem_->first_mismatch(), ")"));
    }
    return absl::OkStatus();
  }

 private:
  bool expect_pattern_;
  std::optional<NcdevmemPattern> ncdevmem_;
  uint64_t offset_ = 0;
};

// The bytes of each piece, in order, to the check and --output.
class PieceSink {
 public:
  PieceSink(const DevmemRecvArgs& args, StreamCheck& check)
      : args_(args), check_(check) {}

  absl::Status Batch(const RecvBatch& batch, absl::Span<const char> buffer) {
    if (!batch.steered) return Bytes(buffer.subspan(0, batch.bytes));
    if (!check_.active() && args_.out_fd < 0) return absl::OkStatus();
    bool mapped_reads = false;
    for (const RecvPiece& p : batch.pieces) {
      if (p.kind == RecvPiece::kLinear) {
        absl::Status s = Bytes(buffer.subspan(p.buffer_offset, p.size));
        if (!s.ok()) return s;
        continue;
      }
      absl::StatusOr<DmabufView*> view = View();
      if (!view.ok()) return view.status();
      if (!mapped_reads) {
        absl::Status begun = (*view)->BeginRead();
        if (!begun.ok()) return begun;
        mapped_reads = true;
      }
      absl::StatusOr<absl::Span<const char>> bytes =
          (*view)->Bytes(p.dmabuf_offset, p.size);
      absl::Status s = bytes.ok() ? Bytes(*bytes) : bytes.status();
      if (!s.ok()) return s;
    }
    return mapped_reads ? (*View())->EndRead() : absl::OkStatus();
  }

 private:
  absl::StatusOr<DmabufView*> View() {
    if (!view_.has_value()) {
      if (args_.buffer_fd < 0) {
        return absl::FailedPreconditionError(
            "device fragments arrived but no bound buffer is at hand to read "
            "them");
      }
      absl::StatusOr<DmabufView> mapped = DmabufView::Map(args_.buffer_fd);
      if (!mapped.ok()) return mapped.status();
      view_.emplace(*std::move(mapped));
    }
    return &*view_;
  }

  absl::Status Bytes(absl::Span<const char> data) {
    absl::Status checked = check_.Feed(data);
    if (!checked.ok()) return checked;
    if (args_.out_fd >= 0) {
      return WriteOut(data);
    }
    return absl::OkStatus();
  }

  absl::Status WriteOut(absl::Span<const char> data) const {
    while (!data.empty()) {
      const ssize_t n = write(args_.out_fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoStatus(errno, "write --output");
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  const DevmemRecvArgs& args_;
  StreamCheck& check_;
  std::optional<DmabufView> view_;
};

}  // namespace

absl::Status ReceiveDevmem(const DevmemRecvArgs& args, DevmemRecvFigures* out) {
  DevmemReceiver::Options options;
  options.dmabuf_id = args.dmabuf_id;
  options.calls = args.calls;
  DevmemReceiver rx(args.fd, options);
  StreamCheck check(args);
  PieceSink sink(args, check);
  std::vector<char> buffer(kBufferBytes);
  absl::Status status = absl::OkStatus();
  for (;;) {
    size_t want = buffer.size();
    if (args.max_bytes > 0) {
      if (out->bytes >= args.max_bytes) break;
      want = static_cast<size_t>(
          std::min<uint64_t>(want, args.max_bytes - out->bytes));
    }
    absl::StatusOr<const RecvBatch*> batch =
        rx.Receive(absl::MakeSpan(buffer.data(), want));
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
    if ((*batch)->bytes == 0) break;
    out->bytes += (*batch)->bytes;
    status = sink.Batch(**batch, absl::MakeConstSpan(buffer));
    if (!status.ok()) break;
  }
  absl::Status returned = rx.ReturnTokens();
  if (status.ok()) status = returned;
  if (status.ok()) status = check.Finish();
  const ReceiverStats& s = rx.stats();
  out->device_bytes = s.device_bytes;
  out->linear_bytes = s.linear_bytes;
  out->unsteered_bytes = s.unsteered_bytes;
  out->fragments = s.fragments;
  out->recv_calls = s.recv_calls;
  out->tokens_returned = rx.token_stats().returned;
  out->dontneed_calls = rx.token_stats().dontneed_calls;
  return status;
}

std::string DescribeFigures(const DevmemRecvFigures& f) {
  return absl::StrFormat(
      "device %u B, linear %u B, not steered %u B; %u fragments, %u tokens "
      "returned in %u setsockopt call(s), %u recvmsg call(s)",
      f.device_bytes, f.linear_bytes, f.unsteered_bytes, f.fragments,
      f.tokens_returned, f.dontneed_calls, f.recv_calls);
}

std::string FiguresJson(const DevmemRecvFigures& f) {
  return absl::StrFormat(
      "\"device_bytes\":%u,\"linear_bytes\":%u,\"unsteered_bytes\":%u,"
      "\"fragments\":%u,\"tokens_returned\":%u,\"dontneed_calls\":%u,"
      "\"recv_calls\":%u",
      f.device_bytes, f.linear_bytes, f.unsteered_bytes, f.fragments,
      f.tokens_returned, f.dontneed_calls, f.recv_calls);
}

}  // namespace ctl
}  // namespace devmem
