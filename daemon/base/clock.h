#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace devmem {

// Injectable time source, so ticket expiry is tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static RealClock* Get() {
    static RealClock* clock = new RealClock();
    return clock;
  }
};

}  // namespace devmem
