// A clock a test moves by hand, over the core's clock hook (tk_set_clock).
#pragma once

#include <cstdint>

#include <tasker/core.h>
#include <tasker/core_testing.h>

namespace tasker::test {

/// A start time far from zero, so "0" never passes for a real timestamp.
inline constexpr std::int64_t clock_start_ms = 1'700'000'000'000;

/// A clock the test moves by hand. It must outlive every core it is installed in.
struct manual_clock {
  std::int64_t now_ms = clock_start_ms;

  static std::int64_t read(void* self) { return static_cast<manual_clock*>(self)->now_ms; }
  void advance(std::int64_t ms) { now_ms += ms; }

  /// Makes it `core`'s clock.
  tk_status install(tk_core* core, tk_error* err = nullptr) {
    return tk_set_clock(core, &manual_clock::read, this, err);
  }
};

}  // namespace tasker::test
