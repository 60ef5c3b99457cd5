#include "agent/heap_trimmer.h"

#include <malloc.h>

namespace devmem::agent {

HeapTrimmer::HeapTrimmer(absl::Duration delay) : delay_(delay) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(delay_)) {
      if (requested_.exchange(false, std::memory_order_relaxed)) {
        ::malloc_trim(0);
        trims_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
}

HeapTrimmer::~HeapTrimmer() {
  stop_.Notify();
  thread_.join();
}

}  // namespace devmem::agent
