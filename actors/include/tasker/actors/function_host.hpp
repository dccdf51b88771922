// The actors that run function handlers: each answers a step_event with the
// step_result of one function call, one step at a time.
#pragma once

#include <cstdint>
#include <functional>

#include <tasker/actors/step_handler.hpp>

namespace tasker::actors {

/// A type-erased handler: the runtime wraps user functions (which take a
/// step_context) into this.
using step_function = std::function<step_result(const step_event&)>;

/// Which runs of one function-handler instance have their CPU time measured:
/// reading the thread CPU clock is a system call (~0.4 us here), so after a
/// run that used less than `always_from_ns` of CPU only one run in `every`
/// is measured; after a longer one, the next is measured too.
class cpu_sampler {
public:
  static constexpr unsigned every = 16;
  static constexpr std::int64_t always_from_ns = 50'000;

  /// Whether to measure the coming run.
  bool measure_next() noexcept {
    if (skip_ == 0)
      return true;
    --skip_;
    return false;
  }
  /// The CPU time of a measured run.
  void measured(std::int64_t cpu_ns) noexcept { skip_ = cpu_ns < always_from_ns ? every - 1 : 0; }

private:
  unsigned skip_ = 0;
};

/// The behavior of one instance of a function handler. An exception the
/// function lets escape becomes a retryable `handler_error` failure. With
/// `measure_cpu`, results carry the thread CPU time of the call
/// (step_result::cpu_time_ns) when a cpu_sampler picks them.
step_handler_behavior function_host(step_handler_pointer self, step_function fn,
                                    bool measure_cpu = false);

}  // namespace tasker::actors
