// Retry policy of a step and the decision taken when one of its attempts fails.
#pragma once

#include <cstdint>
#include <random>

namespace tasker::core {

using millis = std::int64_t;

/// How the delay grows between attempts.
enum class backoff_kind {
  none,         ///< retry as soon as possible
  linear,       ///< base * n after the n-th failed attempt
  exponential,  ///< base * 2^(n-1) after the n-th failed attempt
  fibonacci     ///< base * fib(n) after the n-th failed attempt (1, 1, 2, 3, 5, 8…)
};

/// Per-step retry policy; defaults follow Tasker's.
struct retry_policy {
  int max_attempts = 3;  ///< executions in all, the first included
  backoff_kind backoff = backoff_kind::exponential;
  millis base_ms = 1000;  ///< first delay
  millis cap_ms = 30000;  ///< no delay exceeds this (before jitter)
  double jitter = 0.15;   ///< delay is scaled by a uniform factor in [1-j, 1+j]
  bool retryable = true;  ///< false: every failure is final
};

/// What happens to a step whose attempt failed.
struct failure_decision {
  bool retry = false;  ///< true: waiting_for_retry until ready_at; false: error
  millis ready_at = 0;
};

/// Decides the fate of a failed attempt. `attempts` counts executions so far
/// (the failed one included). A positive `retry_after_ms` from the handler
/// replaces the policy's backoff (no jitter, no cap).
failure_decision decide_failure(const retry_policy& policy, int attempts, bool retryable,
                                millis retry_after_ms, millis now, std::mt19937_64& rng);

/// The policy's delay after `attempts` failed executions, before jitter.
millis backoff_delay(const retry_policy& policy, int attempts);

}  // namespace tasker::core
