#include "daemon/state/journal.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/state/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ~uint64_t{0};
  return static_cast<uint64_t>(st.st_size);
}

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr ? base : "/tmp", "/journalXXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
  }
  return tmpl;
}

std::vector<std::string> SampleRecords(size_t n) {
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // Varying sizes, one empty record, binary bytes.
    out.push_back(i == 1 ? std::string()
                         : absl::StrCat("record-", i, std::string(i * 7, '\0'),
                                        "\xff\x01 end"));
  }
  return out;
}

Journal::Options Opts(const std::string& path, bool sync = false) {
  Journal::Options o;
  o.path = path;
  o.sync = sync;
  return o;
}

std::string Encode(const std::vector<std::string>& records) {
  std::string out;
  for (const std::string& r : records) out += EncodeJournalRecord(r);
  return out;
}

// ---------------------------------------------------------------------------
// ScanJournal / EncodeJournalRecord (no I/O)

TEST(ScanJournalTest, EmptyInputIsClean) {
  const JournalScan scan = ScanJournal("");
  EXPECT_TRUE(scan.records.empty());
  EXPECT_EQ(scan.valid_bytes, 0u);
  EXPECT_EQ(scan.dropped_bytes, 0u);
  EXPECT_EQ(scan.tail_problem, "");
}

TEST(ScanJournalTest, EncodeLayoutByteForByte) {
  const std::string len_bytes("\x03\x00\x00\x00", 4);
  const uint32_t crc = Crc32c(len_bytes + "abc");
  std::string want = "DMJ1" + len_bytes;
  for (int i = 0; i < 4; ++i) want.push_back(static_cast<char>(crc >> (8 * i)));
  want += "abc";
  EXPECT_EQ(EncodeJournalRecord("abc"), want);
  EXPECT_EQ(EncodeJournalRecord("").size(), kJournalHeaderBytes);
}

TEST(ScanJournalTest, RoundTripsRecords) {
  const std::vector<std::string> records = SampleRecords(6);
  const std::string bytes = Encode(records);
  const JournalScan scan = ScanJournal(bytes);
  EXPECT_EQ(scan.records, records);
  EXPECT_EQ(scan.valid_bytes, bytes.size());
  EXPECT_EQ(scan.dropped_bytes, 0u);
  EXPECT_EQ(scan.tail_problem, "");
}

TEST(ScanJournalTest, GarbageIsBadMagicAtRecordZero) {
  const JournalScan scan = ScanJournal("this is not a journal at all");
  EXPECT_TRUE(scan.records.empty());
  EXPECT_EQ(scan.valid_bytes, 0u);
  EXPECT_EQ(scan.dropped_bytes, 28u);
  EXPECT_EQ(scan.tail_problem, "record 0 at offset 0: bad magic");
}

TEST(ScanJournalTest, ZeroFilledTailIsBadMagic) {
  const std::string good = Encode({"a", "b"});
  const JournalScan scan = ScanJournal(good + std::string(4096, '\0'));
  EXPECT_EQ(scan.records, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(scan.dropped_bytes, 4096u);
  EXPECT_EQ(scan.tail_problem,
            absl::StrCat("record 2 at offset ", good.size(), ": bad magic"));
}

TEST(ScanJournalTest, LengthOverLimitIsCorruption) {
  // 0x0098967F = 9999999.
  const std::string header("DMJ1\x7f\x96\x98\x00\x00\x00\x00\x00", 12);
  const std::string good = EncodeJournalRecord("ok");
  const JournalScan scan = ScanJournal(good + header + std::string(64, 'x'));
  EXPECT_EQ(scan.records, std::vector<std::string>{"ok"});
  EXPECT_EQ(scan.valid_bytes, good.size());
  EXPECT_EQ(scan.tail_problem, absl::StrCat("record 1 at offset ", good.size(),
                                            ": length 9999999 over limit"));
  // One past the limit is rejected, the limit itself is fine.
  std::string over =
      EncodeJournalRecord(std::string(kMaxJournalRecordBytes, 'y'));
  EXPECT_EQ(ScanJournal(over).records.size(), 1u);
  over[4] = 1;  // length = 1 MiB + 1
  EXPECT_EQ(ScanJournal(over).tail_problem,
            "record 0 at offset 0: length 1048577 over limit");
}

TEST(ScanJournalTest, TruncationMessages) {
  const std::string first = EncodeJournalRecord("first");
  const std::string second = EncodeJournalRecord(std::string(120, 'p'));
  const std::string all = first + second;
  EXPECT_EQ(ScanJournal(all.substr(0, first.size() + 5)).tail_problem,
            absl::StrCat("record 1 at offset ", first.size(),
                         ": truncated header (needs 12 bytes, 5 present)"));
  EXPECT_EQ(ScanJournal(all.substr(0, first.size() + 2)).tail_problem,
            absl::StrCat("record 1 at offset ", first.size(),
                         ": truncated header (needs 12 bytes, 2 present)"));
  EXPECT_EQ(ScanJournal(all.substr(0, first.size() + 12 + 33)).tail_problem,
            absl::StrCat("record 1 at offset ", first.size(),
                         ": truncated payload (needs 120 bytes, 33 present)"));
}

TEST(ScanJournalTest, EveryFlippedByteInRecordKIsCaught) {
  const std::vector<std::string> records = SampleRecords(5);
  const std::string bytes = Encode(records);
  constexpr size_t k = 3;
  const size_t start = Encode({records.begin(), records.begin() + k}).size();
  const size_t len = kJournalHeaderBytes + records[k].size();
  for (size_t i = start; i < start + len; ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      const JournalScan scan = ScanJournal(bad);
      SCOPED_TRACE(absl::StrCat("byte ", i - start, " of record ", k, " ^ ",
                                mask, ": ", scan.tail_problem));
      EXPECT_EQ(scan.records,
                std::vector<std::string>(records.begin(), records.begin() + k));
      EXPECT_EQ(scan.valid_bytes, start);
      EXPECT_EQ(scan.dropped_bytes, bytes.size() - start);
      EXPECT_THAT(
          scan.tail_problem,
          StartsWith(absl::StrCat("record ", k, " at offset ", start, ": ")));
    }
  }
}

// ---------------------------------------------------------------------------
// Journal (files under $TEST_TMPDIR)

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/state/journal";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Journal> OpenOk(JournalScan* scan, bool sync = false) {
    absl::StatusOr<std::unique_ptr<Journal>> j =
        Journal::Open(Opts(path_, sync), scan);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *std::move(j) : nullptr;
  }

  // Opens, appends `records`, closes.
  void Populate(const std::vector<std::string>& records) {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan);
    ASSERT_NE(j, nullptr);
    for (const std::string& r : records) ASSERT_TRUE(j->Append(r).ok());
  }

  std::string dir_;
  std::string path_;
};

TEST_F(JournalTest, OpenCreatesPrivateDirectoryAndFile) {
  JournalScan scan;
  scan.tail_problem = "stale";
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(scan.records.empty());
  EXPECT_EQ(scan.tail_problem, "");
  EXPECT_EQ(j->path(), path_);
  EXPECT_EQ(j->size_bytes(), 0u);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(JournalTest, AppendReopenRoundTrip) {
  const std::vector<std::string> records = SampleRecords(8);
  {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan, /*sync=*/true);
    ASSERT_NE(j, nullptr);
    for (const std::string& r : records) ASSERT_TRUE(j->Append(r).ok());
    EXPECT_EQ(j->appends(), records.size());
    EXPECT_EQ(j->size_bytes(), Encode(records).size());
    EXPECT_EQ(FileSize(path_), j->size_bytes());
  }
  {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan, /*sync=*/true);
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(scan.records, records);
    EXPECT_EQ(scan.tail_problem, "");
    EXPECT_EQ(j->appends(), 0u);
    ASSERT_TRUE(j->Append("after reopen").ok());
  }
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  ASSERT_EQ(scan.records.size(), records.size() + 1);
  EXPECT_EQ(scan.records.back(), "after reopen");
  EXPECT_EQ(ReadFile(path_), Encode(scan.records));
}

TEST_F(JournalTest, EveryTornTailLengthIsCutOnOpen) {
  const std::vector<std::string> records = {"alpha", "beta", "gamma",
                                            "the last record, torn"};
  Populate(records);
  const std::string full = ReadFile(path_);
  const size_t last_start = Encode({records.begin(), records.end() - 1}).size();
  ASSERT_EQ(full.size(), last_start + kJournalHeaderBytes + records[3].size());
  for (size_t cut = last_start + 1; cut < full.size(); ++cut) {
    SCOPED_TRACE(absl::StrCat("file cut to ", cut, " bytes"));
    WriteFile(path_, full.substr(0, cut));
    {
      JournalScan scan;
      std::unique_ptr<Journal> j = OpenOk(&scan);
      ASSERT_NE(j, nullptr);
      EXPECT_EQ(scan.records,
                std::vector<std::string>(records.begin(), records.end() - 1));
      EXPECT_EQ(scan.valid_bytes, last_start);
      EXPECT_EQ(scan.dropped_bytes, cut - last_start);
      EXPECT_THAT(scan.tail_problem,
                  StartsWith(absl::StrCat("record 3 at offset ", last_start,
                                          ": truncated ")));
      EXPECT_EQ(FileSize(path_), last_start);
      EXPECT_EQ(j->size_bytes(), last_start);
      ASSERT_TRUE(j->Append("replacement").ok());
    }
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan);
    ASSERT_NE(j, nullptr);
    ASSERT_EQ(scan.records.size(), records.size());
    EXPECT_EQ(scan.records.back(), "replacement");
    EXPECT_EQ(scan.tail_problem, "");
  }
}

TEST_F(JournalTest, CorruptRecordIsCutOnOpenAndNamed) {
  const std::vector<std::string> records = SampleRecords(6);
  Populate(records);
  std::string bytes = ReadFile(path_);
  const size_t start = Encode({records.begin(), records.begin() + 2}).size();
  bytes[start + kJournalHeaderBytes + 3] ^= 0x20;  // payload byte of record 2
  WriteFile(path_, bytes);
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(scan.records,
            std::vector<std::string>(records.begin(), records.begin() + 2));
  EXPECT_EQ(scan.tail_problem,
            absl::StrCat("record 2 at offset ", start, ": checksum mismatch"));
  EXPECT_EQ(scan.dropped_bytes, bytes.size() - start);
  EXPECT_EQ(FileSize(path_), start);
}

TEST_F(JournalTest, ZeroLengthFileOpensClean) {
  ASSERT_EQ(::mkdir((dir_ + "/state").c_str(), 0700), 0);
  WriteFile(path_, "");
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(scan.records.empty());
  EXPECT_EQ(scan.dropped_bytes, 0u);
  EXPECT_EQ(scan.tail_problem, "");
  ASSERT_TRUE(j->Append("first").ok());
  EXPECT_EQ(ReadFile(path_), EncodeJournalRecord("first"));
}

TEST_F(JournalTest, GarbageFileIsCutToEmpty) {
  ASSERT_EQ(::mkdir((dir_ + "/state").c_str(), 0700), 0);
  const std::string garbage = "#!/bin/sh\necho not a journal\n";
  WriteFile(path_, garbage);
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(scan.records.empty());
  EXPECT_EQ(scan.tail_problem, "record 0 at offset 0: bad magic");
  EXPECT_EQ(scan.dropped_bytes, garbage.size());
  EXPECT_EQ(FileSize(path_), 0u);
  ASSERT_TRUE(j->Append("first").ok());
  EXPECT_EQ(ReadFile(path_), EncodeJournalRecord("first"));
}

TEST_F(JournalTest, PayloadOverLimitIsInvalidArgument) {
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  const absl::Status s =
      j->Append(std::string(kMaxJournalRecordBytes + 1, 'z'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(j->size_bytes(), 0u);
  ASSERT_TRUE(j->Append(std::string(kMaxJournalRecordBytes, 'z')).ok());
  j.reset();
  std::unique_ptr<Journal> again = OpenOk(&scan);
  ASSERT_EQ(scan.records.size(), 1u);
  EXPECT_EQ(scan.records[0].size(), kMaxJournalRecordBytes);
}

TEST_F(JournalTest, InjectedPartialWriteFailureRollsBack) {
  const std::vector<std::string> records = SampleRecords(3);
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan, /*sync=*/true);
  ASSERT_NE(j, nullptr);
  for (const std::string& r : records) ASSERT_TRUE(j->Append(r).ok());
  const std::string before = ReadFile(path_);

  j->InjectWriteFailureForTest(ENOSPC, /*partial=*/7);
  absl::Status s = j->Append("will not fit");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(path_));
  EXPECT_THAT(std::string(s.message()), HasSubstr("No space left on device"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("new work is refused"));
  EXPECT_EQ(StatusErrno(s), ENOSPC);
  EXPECT_EQ(ReadFile(path_), before);
  EXPECT_EQ(j->size_bytes(), before.size());

  j->InjectWriteFailureForTest(EIO, /*partial=*/20);
  s = j->Append("disk trouble");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(path_));
  EXPECT_THAT(std::string(s.message()), HasSubstr("Input/output error"));
  EXPECT_EQ(ReadFile(path_), before);

  const JournalScan after = ScanJournal(ReadFile(path_));
  EXPECT_EQ(after.records, records);
  EXPECT_EQ(after.tail_problem, "");
  EXPECT_EQ(j->appends(), records.size());

  ASSERT_TRUE(j->Append("works again").ok());
  j.reset();
  std::unique_ptr<Journal> again = OpenOk(&scan);
  ASSERT_EQ(scan.records.size(), records.size() + 1);
  EXPECT_EQ(scan.records.back(), "works again");
  EXPECT_EQ(scan.tail_problem, "");
}

TEST_F(JournalTest, InjectedFailureLastsNWrites) {
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  j->InjectWriteFailureForTest(EDQUOT, /*partial=*/0, /*n=*/2);
  EXPECT_EQ(j->Append("1").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(j->Append("2").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(j->Append("3").ok());
  EXPECT_EQ(ScanJournal(ReadFile(path_)).records,
            std::vector<std::string>{"3"});
}

TEST_F(JournalTest, RewriteReplacesContents) {
  Populate({"a", "b", "c", "d"});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  ASSERT_TRUE(j->Rewrite({"compacted-1", "compacted-2"}).ok());
  EXPECT_EQ(j->size_bytes(), Encode({"compacted-1", "compacted-2"}).size());
  ASSERT_TRUE(j->Append("after").ok());
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  j.reset();
  std::unique_ptr<Journal> again = OpenOk(&scan);
  EXPECT_EQ(scan.records,
            (std::vector<std::string>{"compacted-1", "compacted-2", "after"}));
  EXPECT_EQ(scan.tail_problem, "");
  // An empty rewrite leaves an empty journal.
  ASSERT_TRUE(again->Rewrite({}).ok());
  EXPECT_EQ(FileSize(path_), 0u);
}

TEST_F(JournalTest, RewriteWriteFailureKeepsOldJournal) {
  Populate({"a", "b"});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  j->InjectWriteFailureForTest(ENOSPC, /*partial=*/3);
  const absl::Status s = j->Rewrite({"x", "y", "z"});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(path_ + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  ASSERT_TRUE(j->Append("c").ok());
  j.reset();
  std::unique_ptr<Journal> again = OpenOk(&scan);
  EXPECT_EQ(scan.records, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(JournalTest, RewriteThatCannotCreateTmpKeepsOldJournal) {
  Populate({"a", "b"});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  // A directory where the .tmp file goes: open(O_CREAT) fails EISDIR, even
  // for root.
  ASSERT_EQ(::mkdir((path_ + ".tmp").c_str(), 0700), 0);
  const absl::Status s = j->Rewrite({"x"});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(StatusErrno(s), EISDIR);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path_ + ".tmp"));
  ASSERT_TRUE(j->Append("c").ok());
  ASSERT_EQ(::rmdir((path_ + ".tmp").c_str()), 0);
  j.reset();
  std::unique_ptr<Journal> again = OpenOk(&scan);
  EXPECT_EQ(scan.records, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(JournalTest, OpenRemovesStaleRewriteTmp) {
  Populate({"a"});
  WriteFile(path_ + ".tmp", EncodeJournalRecord("half-done rewrite"));
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  EXPECT_EQ(scan.records, std::vector<std::string>{"a"});
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
}

TEST_F(JournalTest, OpenUnderRegularFileFailsNamingPath) {
  WriteFile(dir_ + "/state", "a file, not a directory");
  JournalScan scan;
  const absl::StatusOr<std::unique_ptr<Journal>> j =
      Journal::Open(Opts(path_), &scan);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusErrno(j.status()), ENOTDIR);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr(path_));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("Not a directory"));
}

TEST_F(JournalTest, ConcurrentAppendsDoNotInterleave) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  constexpr size_t kTotal = size_t{kThreads} * kPerThread;
  {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan);
    ASSERT_NE(j, nullptr);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&j, t] {
        for (int i = 0; i < kPerThread; ++i) {
          EXPECT_TRUE(j->Append(absl::StrCat(t, ":", i)).ok());
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(j->appends(), kTotal);
  }
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(scan.tail_problem, "");
  ASSERT_EQ(scan.records.size(), kTotal);
  std::vector<int> next(kThreads, 0);
  for (const std::string& r : scan.records) {
    const int t = r[0] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(r, absl::StrCat(t, ":", next[t]++));  // each thread in order
  }
}

// ---------------------------------------------------------------------------
// Group commit, through the fdatasync seam.

constexpr absl::Duration kPatience = absl::Seconds(10);

// An fdatasync seam that counts calls, can hold one call until Release() and
// can fail one with an errno (after the hold, if both).
class SyncGate {
 public:
  struct Plan {
    int hold_call = 0;  // 1-based; 0 = hold none
    int fail_call = 0;  // 1-based; 0 = fail none
    int fail_errno = EIO;
  };
  explicit SyncGate(Plan plan) : plan_(plan) {}
  ~SyncGate() { Release(); }

  std::function<int(int)> Seam() {
    return [this](int fd) { return Call(fd); };
  }
  // True once the held call has started (false after kPatience).
  bool WaitHeld() const {
    return held_.WaitForNotificationWithTimeout(kPatience);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    if (!released_.HasBeenNotified()) released_.Notify();
  }
  int calls() const { return calls_.load(); }
  // Runs in the held call after Release(), before the real fdatasync.
  std::function<void(int fd)> on_release;

 private:
  int Call(int fd) {
    const int n = ++calls_;
    if (n == plan_.hold_call) {
      held_.Notify();
      released_.WaitForNotification();
      if (on_release) on_release(fd);
    }
    if (n == plan_.fail_call) {
      errno = plan_.fail_errno;
      return -1;
    }
    return ::fdatasync(fd);
  }

  const Plan plan_;
  std::atomic<int> calls_{0};
  absl::Notification held_;
  absl::Mutex mu_;  // one Notify() only
  absl::Notification released_;
};

class JournalGroupCommitTest : public JournalTest {
 protected:
  std::unique_ptr<Journal> OpenSynced(SyncGate* gate, JournalScan* scan) {
    Journal::Options o = Opts(path_, /*sync=*/true);
    o.fdatasync = gate->Seam();
    absl::StatusOr<std::unique_ptr<Journal>> j = Journal::Open(o, scan);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *std::move(j) : nullptr;
  }

  std::vector<std::string> Reopened() {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan);
    EXPECT_EQ(scan.tail_problem, "");
    return scan.records;
  }
};

TEST_F(JournalGroupCommitTest, HundredWritesShareOneFdatasync) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  for (uint64_t i = 1; i <= 100; ++i) {
    absl::StatusOr<uint64_t> seq = j->Write(absl::StrCat("r", i));
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, i);
  }
  EXPECT_EQ(j->syncs(), 0u) << "Write must not flush";
  ASSERT_TRUE(j->WaitDurable(100).ok());
  EXPECT_EQ(j->syncs(), 1u);
  EXPECT_EQ(gate.calls(), 1);
  // Already durable: no new fdatasync.
  ASSERT_TRUE(j->WaitDurable(100).ok());
  ASSERT_TRUE(j->WaitDurable(37).ok());
  EXPECT_EQ(j->syncs(), 1u);
  // An undurable Append is covered by the next durable one's flush.
  ASSERT_TRUE(j->Append("outcome", /*durable=*/false).ok());
  ASSERT_TRUE(j->Append("intent", /*durable=*/true).ok());
  EXPECT_EQ(j->syncs(), 2u);
  EXPECT_EQ(gate.calls(), 2);
  const absl::Status never = j->WaitDurable(103);
  EXPECT_EQ(never.code(), absl::StatusCode::kInvalidArgument) << never;
}

TEST_F(JournalGroupCommitTest, FlushStartsOneAndReturnsAtOnce) {
  SyncGate gate({/*hold_call=*/1});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  absl::Cleanup release = [&gate] { gate.Release(); };
  j->Flush();  // nothing written: nothing to do
  ASSERT_TRUE(j->Write("intent").ok());
  j->Flush();  // returns although the flush it starts is held
  ASSERT_TRUE(gate.WaitHeld()) << "Flush() started no flush";
  j->Flush();  // nothing new since that flush started
  gate.Release();
  ASSERT_TRUE(j->WaitDurable(1).ok());
  EXPECT_EQ(j->syncs(), 1u);
  // A flush asked for is finished before the journal closes.
  ASSERT_TRUE(j->Write("outcome").ok());
  j->Flush();
  j.reset();
  EXPECT_EQ(gate.calls(), 2);
}

TEST_F(JournalGroupCommitTest, RecordsWrittenDuringAFlushShareTheNextOne) {
  SyncGate gate({/*hold_call=*/1});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  absl::Cleanup release = [&gate] { gate.Release(); };
  ASSERT_TRUE(j->Write("first").ok());
  j->Flush();
  ASSERT_TRUE(gate.WaitHeld());

  constexpr int kWriters = 50;
  absl::Mutex mu;
  int written = 0;
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> threads;
  threads.reserve(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<uint64_t> seq = j->Write(absl::StrCat("w", i));
      {
        absl::MutexLock lock(&mu);
        ++written;
      }
      results[i] = seq.ok() ? j->WaitDurable(*seq) : seq.status();
    });
  }
  {
    // The flush runs without the journal's lock, so writers are not stuck.
    absl::MutexLock lock(&mu);
    auto all = [&written] { return written == kWriters; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), kPatience))
        << "Write blocked behind a flush in flight: " << written << " of "
        << kWriters;
  }
  EXPECT_EQ(j->syncs(), 1u);
  gate.Release();
  EXPECT_TRUE(j->WaitDurable(1).ok());
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(j->syncs(), 2u) << "the 50 records should share one flush";
  EXPECT_EQ(gate.calls(), 2);
  EXPECT_EQ(Reopened().size(), size_t{kWriters} + 1);
}

TEST_F(JournalGroupCommitTest, ConcurrentWriteAndWaitAllDurable) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread;
  {
    SyncGate gate({});
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
    ASSERT_NE(j, nullptr);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&j, t] {
        for (int i = 0; i < kPerThread; ++i) {
          absl::StatusOr<uint64_t> seq = j->Write(absl::StrCat(t, ":", i));
          ASSERT_TRUE(seq.ok()) << seq.status();
          const absl::Status s = j->WaitDurable(*seq);
          EXPECT_TRUE(s.ok()) << s;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(j->appends(), kTotal);
    EXPECT_GE(j->syncs(), 1u);
    EXPECT_LE(j->syncs(), kTotal);
    EXPECT_EQ(j->syncs(), static_cast<uint64_t>(gate.calls()));
  }
  const std::vector<std::string> records = Reopened();
  ASSERT_EQ(records.size(), kTotal);
  std::vector<int> next(kThreads, 0);
  for (const std::string& r : records) {
    const int t = r[0] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(r, absl::StrCat(t, ":", next[t]++));  // each thread in order
  }
}

TEST_F(JournalGroupCommitTest, FailedFdatasyncFailsWaitersUntilRewrite) {
  SyncGate gate({/*hold_call=*/1, /*fail_call=*/1, /*fail_errno=*/EIO});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  absl::Cleanup release = [&gate] { gate.Release(); };
  for (const char* r : {"a", "b", "c"}) ASSERT_TRUE(j->Write(r).ok());
  j->Flush();
  ASSERT_TRUE(gate.WaitHeld());
  // Written while the failing flush runs: in the page cache, behind pages
  // the kernel may drop, so it cannot become durable either.
  absl::StatusOr<uint64_t> during = j->Write("d");
  ASSERT_TRUE(during.ok()) << during.status();
  std::vector<absl::Status> results(4);
  std::vector<std::thread> waiters;
  waiters.reserve(results.size());
  for (uint64_t seq = 1; seq <= results.size(); ++seq) {
    waiters.emplace_back([&, seq] { results[seq - 1] = j->WaitDurable(seq); });
  }
  gate.Release();
  for (std::thread& t : waiters) t.join();
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path_));
    EXPECT_THAT(std::string(s.message()), HasSubstr("Input/output error"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("errno 5"));
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("records written since the last successful flush "
                          "may not be on disk"));
    EXPECT_EQ(StatusErrno(s), EIO);
  }
  const absl::StatusOr<uint64_t> refused = j->Write("e");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_EQ(j->Append("e").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(j->syncs(), 1u) << "a failed flush must not be retried";

  ASSERT_TRUE(j->Rewrite({"a", "b"}).ok());
  EXPECT_TRUE(j->WaitDurable(3).ok()) << "the rewrite made it durable";
  absl::StatusOr<uint64_t> after = j->Write("after");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, 5u) << "seqs are never reused";
  EXPECT_TRUE(j->WaitDurable(*after).ok());
  EXPECT_EQ(gate.calls(), 2);
  j.reset();
  EXPECT_EQ(Reopened(), (std::vector<std::string>{"a", "b", "after"}));
}

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(JournalGroupCommitTest, RewriteWaitsForAFlushInFlight) {
  SyncGate gate({/*hold_call=*/1});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  absl::Cleanup release = [&gate] { gate.Release(); };
  const ino_t old_inode = InodeOf(path_);
  std::atomic<bool> fd_intact{false};
  gate.on_release = [&](int fd) {
    struct stat st {};
    fd_intact = ::fstat(fd, &st) == 0 && st.st_ino == old_inode &&
                InodeOf(path_) == old_inode;
  };
  ASSERT_TRUE(j->Write("old-1").ok());
  ASSERT_TRUE(j->Write("old-2").ok());
  j->Flush();
  ASSERT_TRUE(gate.WaitHeld());

  absl::Notification returned;
  absl::Status rewrite;
  std::thread rewriter([&] {
    rewrite = j->Rewrite({"new-1"});
    returned.Notify();
  });
  // The new file is prepared while the flush runs (an event to wait for);
  // the swap must then wait for the flush, so Rewrite must not return: that
  // negative can only be checked for a while.
  const std::string tmp = path_ + ".tmp";
  const uint64_t tmp_size = Encode({"new-1"}).size();
  const absl::Time deadline = absl::Now() + kPatience;
  while (!returned.HasBeenNotified() && FileSize(tmp) != tmp_size &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "Rewrite returned while a flush was in flight";
  EXPECT_EQ(FileSize(tmp), tmp_size);
  EXPECT_EQ(InodeOf(path_), old_inode);
  gate.Release();
  rewriter.join();
  ASSERT_TRUE(rewrite.ok()) << rewrite;
  EXPECT_TRUE(fd_intact) << "the flush's fd was swapped or closed under it";
  EXPECT_NE(InodeOf(path_), old_inode);
  EXPECT_TRUE(j->WaitDurable(1).ok());
  EXPECT_TRUE(j->WaitDurable(2).ok());
  absl::StatusOr<uint64_t> after = j->Write("after");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, 3u);
  EXPECT_TRUE(j->WaitDurable(*after).ok());
  EXPECT_EQ(j->syncs(), 2u);
  j.reset();
  EXPECT_EQ(Reopened(), (std::vector<std::string>{"new-1", "after"}));
}

TEST_F(JournalGroupCommitTest, WithoutSyncWaitDurableReturnsAtOnce) {
  SyncGate gate({/*hold_call=*/1});
  Journal::Options o = Opts(path_, /*sync=*/false);
  o.fdatasync = gate.Seam();
  absl::StatusOr<std::unique_ptr<Journal>> j = Journal::Open(o, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE((*j)->Write("a").ok());
  (*j)->Flush();
  EXPECT_TRUE((*j)->WaitDurable(1).ok());
  EXPECT_TRUE((*j)->Append("b").ok());
  EXPECT_EQ((*j)->syncs(), 0u);
  EXPECT_EQ(gate.calls(), 0);
}

// ---------------------------------------------------------------------------
// Group write (Stage)

TEST_F(JournalGroupCommitTest, StagedRecordsStayInMemoryUntilNeeded) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  for (uint64_t i = 1; i <= 3; ++i) {
    absl::StatusOr<uint64_t> seq = j->Stage(absl::StrCat("s", i));
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, i);
  }
  EXPECT_EQ(FileSize(path_), 0u) << "Stage wrote at once";
  EXPECT_EQ(j->size_bytes(), 0u);
  EXPECT_EQ(j->appends(), 3u);
  // Waiting for the second writes all three, then flushes once.
  ASSERT_TRUE(j->WaitDurable(2).ok());
  EXPECT_EQ(ScanJournal(ReadFile(path_)).records,
            (std::vector<std::string>{"s1", "s2", "s3"}));
  EXPECT_EQ(j->syncs(), 1u);
  ASSERT_TRUE(j->WaitDurable(3).ok());
  EXPECT_EQ(j->syncs(), 1u) << "s3 went out with the first flush";
}

TEST_F(JournalGroupCommitTest, WriteAfterStageKeepsTheOrderOfSeqs) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  ASSERT_TRUE(j->Stage("staged 1").ok());
  ASSERT_TRUE(j->Stage("staged 2").ok());
  absl::StatusOr<uint64_t> seq = j->Write("written 3");
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 3u);
  ASSERT_TRUE(j->Stage("staged 4").ok());
  j->Flush();
  ASSERT_TRUE(j->WaitDurable(4).ok());
  EXPECT_EQ(Reopened(), (std::vector<std::string>{"staged 1", "staged 2",
                                                  "written 3", "staged 4"}));
}

TEST_F(JournalGroupCommitTest, StagedGroupIsWrittenOnceItIsLarge) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  const std::string big(Journal::kMaxStagedBytes / 4, 'b');
  uint64_t staged = 0;
  while (FileSize(path_) == 0 && staged < 16) {
    ASSERT_TRUE(j->Stage(big).ok());
    ++staged;
  }
  // The fourth record's header takes the group past the limit.
  EXPECT_EQ(staged, 4u);
  EXPECT_EQ(ScanJournal(ReadFile(path_)).records.size(), 4u);
  EXPECT_EQ(j->syncs(), 0u) << "a group write does not flush";
}

TEST_F(JournalGroupCommitTest, FailedGroupWriteFailsEveryRecordInIt) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  ASSERT_TRUE(j->Append("before").ok());
  const std::string before = ReadFile(path_);
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<uint64_t> seq = j->Stage(absl::StrCat("lost ", i));
    ASSERT_TRUE(seq.ok()) << seq.status();
    seqs.push_back(*seq);
  }
  // One write(2) for the whole group: a single injected failure fails all
  // five, and the next write works.
  j->InjectWriteFailureForTest(ENOSPC, /*partial=*/9, /*n=*/1);
  const absl::Status first = j->WaitDurable(seqs[2]);
  EXPECT_EQ(first.code(), absl::StatusCode::kResourceExhausted) << first;
  EXPECT_THAT(std::string(first.message()), HasSubstr(path_));
  for (uint64_t seq : seqs) {
    EXPECT_EQ(j->WaitDurable(seq).code(), absl::StatusCode::kResourceExhausted)
        << "seq " << seq;
  }
  EXPECT_EQ(ReadFile(path_), before) << "the partial group was not cut off";
  absl::StatusOr<uint64_t> after = j->Stage("after");
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(j->WaitDurable(*after).ok());
  EXPECT_TRUE(j->WaitDurable(1).ok());
  EXPECT_EQ(Reopened(), (std::vector<std::string>{"before", "after"}));
}

TEST_F(JournalGroupCommitTest, RewriteTakesTheStagedRecordsIn) {
  SyncGate gate({});
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenSynced(&gate, &scan);
  ASSERT_NE(j, nullptr);
  absl::StatusOr<uint64_t> seq = j->Stage("folded into the snapshot");
  ASSERT_TRUE(seq.ok()) << seq.status();
  ASSERT_TRUE(j->Rewrite({"snapshot"}).ok());
  // The snapshot supersedes it: durable, and not written again.
  ASSERT_TRUE(j->WaitDurable(*seq).ok());
  ASSERT_TRUE(j->Write("next").ok());
  j->Flush();
  EXPECT_EQ(Reopened(), (std::vector<std::string>{"snapshot", "next"}));
}

TEST_F(JournalTest, StagedRecordsAreWrittenWhenTheJournalCloses) {
  {
    JournalScan scan;
    std::unique_ptr<Journal> j = OpenOk(&scan, /*sync=*/true);
    ASSERT_NE(j, nullptr);
    ASSERT_TRUE(j->Stage("staged at close").ok());
  }
  EXPECT_EQ(ScanJournal(ReadFile(path_)).records,
            std::vector<std::string>{"staged at close"});
}

TEST_F(JournalTest, StagedPayloadOverLimitIsInvalidArgument) {
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan);
  ASSERT_NE(j, nullptr);
  absl::StatusOr<uint64_t> seq =
      j->Stage(std::string(kMaxJournalRecordBytes + 1, 'x'));
  EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(j->appends(), 0u);
}

// ---------------------------------------------------------------------------
// Medium detection

bool IsVolatileMagic(int64_t f_type) {
  return f_type == TMPFS_MAGIC || f_type == static_cast<int64_t>(RAMFS_MAGIC);
}

TEST_F(JournalTest, VolatileMediumFollowsStatfsOfTestTmpdir) {
  struct statfs fs {};
  ASSERT_EQ(::statfs(dir_.c_str(), &fs), 0) << std::strerror(errno);
  const bool is_volatile = IsVolatileMagic(fs.f_type);
  JournalScan scan;
  std::unique_ptr<Journal> j = OpenOk(&scan, /*sync=*/true);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->volatile_medium(), is_volatile);
  if (is_volatile) {
    EXPECT_THAT(j->durability(), StartsWith("volatile: " + path_ + " is on "));
  } else {
    EXPECT_THAT(j->durability(), StartsWith("fdatasync, group commit ("));
    EXPECT_THAT(j->durability(),
                HasSubstr(absl::StrCat(
                    "0x", absl::Hex(static_cast<uint32_t>(fs.f_type)), ")")));
    j.reset();
    j = OpenOk(&scan, /*sync=*/false);
    EXPECT_THAT(j->durability(), StartsWith("no fdatasync (sync off)"));
  }
}

TEST(JournalMediumTest, DevShmIsVolatile) {
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  std::string dir = "/dev/shm/journal_testXXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    GTEST_SKIP() << "cannot create a directory in /dev/shm: "
                 << std::strerror(errno);
  }
  absl::Cleanup remove = [&dir] { std::filesystem::remove_all(dir); };
  const std::string path = dir + "/journal";
  absl::StatusOr<std::unique_ptr<Journal>> j =
      Journal::Open(Opts(path, /*sync=*/true), nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE((*j)->volatile_medium());
  EXPECT_EQ((*j)->durability(),
            absl::StrCat("volatile: ", path,
                         " is on tmpfs; records survive a devmemd crash but "
                         "not a reboot"));
}

// ---------------------------------------------------------------------------
// Real ENOSPC / EROFS on a 64 KiB tmpfs in a private mount namespace (root).

class JournalTmpfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root to mount a tmpfs (euid " << ::geteuid()
                   << ")";
    }
    // The namespace is this test process's from here on; every later mount
    // stays private to it.
    if (::unshare(CLONE_NEWNS) != 0) {
      GTEST_SKIP() << "unshare(CLONE_NEWNS): " << std::strerror(errno);
    }
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      GTEST_SKIP() << "make / private: " << std::strerror(errno);
    }
    dir_ = MakeTempDir();
    if (::mount("none", dir_.c_str(), "tmpfs", 0, "size=64k,mode=0700") != 0) {
      const int err = errno;
      ::rmdir(dir_.c_str());
      dir_.clear();
      GTEST_SKIP() << "mount tmpfs: " << std::strerror(err);
    }
    mounted_ = true;
    path_ = dir_ + "/state/journal";
  }

  void TearDown() override {
    if (mounted_) {
      EXPECT_EQ(::umount(dir_.c_str()), 0) << std::strerror(errno);
    }
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }

  std::string dir_;
  std::string path_;
  bool mounted_ = false;
};

TEST_F(JournalTmpfsTest, RealEnospcIsResourceExhaustedAndKeepsAcceptedRecords) {
  std::vector<std::string> accepted;
  {
    JournalScan scan;
    absl::StatusOr<std::unique_ptr<Journal>> j =
        Journal::Open(Opts(path_, /*sync=*/true), &scan);
    ASSERT_TRUE(j.ok()) << j.status();
    absl::Status s;
    for (int i = 0; i < 1000 && s.ok(); ++i) {
      std::string payload = absl::StrCat("record ", i, " ");
      payload.resize(700, static_cast<char>('a' + i % 26));
      s = (*j)->Append(payload);
      if (s.ok()) accepted.push_back(payload);
    }
    ASSERT_FALSE(s.ok()) << "a 64 KiB tmpfs never filled up";
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("No space left"));
    EXPECT_THAT(std::string(s.message()), HasSubstr(path_));
    EXPECT_GT(accepted.size(), 10u);
    EXPECT_EQ((*j)->size_bytes(), Encode(accepted).size());
    EXPECT_EQ(FileSize(path_), Encode(accepted).size());
    // Still refused, and still nothing partial left behind.
    EXPECT_EQ((*j)->Append(std::string(700, 'q')).code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(FileSize(path_), Encode(accepted).size());
  }
  JournalScan scan;
  absl::StatusOr<std::unique_ptr<Journal>> j =
      Journal::Open(Opts(path_), &scan);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(scan.records, accepted);
  EXPECT_EQ(scan.tail_problem, "");
}

TEST_F(JournalTmpfsTest, ReadOnlyFileSystemIsUnavailableAndNamesPath) {
  JournalScan scan;
  absl::StatusOr<std::unique_ptr<Journal>> j =
      Journal::Open(Opts(path_), &scan);
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE((*j)->Append("before").ok());
  // The kernel refuses to make a file system read-only while a file on it is
  // open for writing (fs/namespace.c sb_prepare_remount_readonly), so an
  // open Journal never sees a real EROFS on write; inject that one.
  const int remount = ::mount("none", dir_.c_str(), "tmpfs",
                              MS_REMOUNT | MS_RDONLY, "size=64k");
  const int remount_errno = errno;
  EXPECT_NE(remount, 0);
  EXPECT_EQ(remount_errno, EBUSY) << std::strerror(remount_errno);
  (*j)->InjectWriteFailureForTest(EROFS);
  absl::Status s = (*j)->Append("after");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(StatusErrno(s), EROFS);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path_));
  EXPECT_THAT(std::string(s.message()), HasSubstr("Read-only file system"));
  j->reset();

  // A real EROFS: reopening on the now read-only file system.
  ASSERT_EQ(::mount("none", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY,
                    "size=64k"),
            0)
      << std::strerror(errno);
  j = Journal::Open(Opts(path_), &scan);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kUnavailable) << j.status();
  EXPECT_EQ(StatusErrno(j.status()), EROFS);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr(path_));
  EXPECT_THAT(std::string(j.status().message()),
              HasSubstr("Read-only file system"));
}

}  // namespace
}  // namespace devmem
