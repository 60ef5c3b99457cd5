#include "daemon/base/random_token.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/escaping.h"

namespace devmem {
namespace {

// Each thread draws 32 tokens' worth of bits per getrandom(2) call (a job's
// start issues thousands of tickets). A forked child draws afresh, so it
// never repeats its parent's tokens.
constexpr size_t kPoolBytes = 512;
constexpr size_t kTokenBytes = 16;

std::atomic<uint64_t> fork_generation{0};

void AfterFork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct Pool {
  unsigned char bytes[kPoolBytes];
  size_t used = kPoolBytes;
  uint64_t generation = ~uint64_t{0};
};

void FillRandom(unsigned char* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::getrandom(buf + got, size - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // No entropy source means no unguessable tickets: refusing to run is the
      // only safe answer.
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
}

}  // namespace

std::string RandomHex128() {
  static const int registered = ::pthread_atfork(nullptr, nullptr, AfterFork);
  (void)registered;
  thread_local Pool pool;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (pool.used + kTokenBytes > kPoolBytes || pool.generation != generation) {
    FillRandom(pool.bytes, kPoolBytes);
    pool.used = 0;
    pool.generation = generation;
  }
  unsigned char* token = pool.bytes + pool.used;
  std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(token), kTokenBytes));
  // A token handed out leaves no copy of its bits behind.
  ::explicit_bzero(token, kTokenBytes);
  pool.used += kTokenBytes;
  return hex;
}

bool IsTicketFormat(absl::string_view ticket) {
  if (ticket.size() != 32) return false;
  for (char c : ticket) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace devmem
