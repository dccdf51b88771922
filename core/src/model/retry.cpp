#include "model/retry.hpp"

#include <algorithm>
#include <cmath>

namespace tasker::core {

millis backoff_delay(const retry_policy& policy, int attempts) {
  const int n = std::max(attempts, 1);
  double delay = 0;
  switch (policy.backoff) {
    case backoff_kind::none: return 0;
    case backoff_kind::linear: delay = static_cast<double>(policy.base_ms) * n; break;
    case backoff_kind::exponential:
      // 2^62 already exceeds any sane cap: clamp the exponent, not the result.
      delay = static_cast<double>(policy.base_ms) * std::ldexp(1.0, std::min(n - 1, 62));
      break;
    case backoff_kind::fibonacci: {
      // fib(1) = fib(2) = 1; past fib(90) (2.9e18) any sane cap is long reached.
      double previous = 0, current = 1;
      for (int i = 1; i < std::min(n, 90); ++i) {
        const double next = previous + current;
        previous = current;
        current = next;
      }
      delay = static_cast<double>(policy.base_ms) * current;
      break;
    }
  }
  return static_cast<millis>(std::min(delay, static_cast<double>(policy.cap_ms)));
}

failure_decision decide_failure(const retry_policy& policy, int attempts, bool retryable,
                                millis retry_after_ms, millis now, std::mt19937_64& rng) {
  failure_decision d;
  if (!retryable || !policy.retryable || attempts >= policy.max_attempts)
    return d;
  d.retry = true;
  if (retry_after_ms > 0) {
    d.ready_at = now + retry_after_ms;
    return d;
  }
  auto delay = static_cast<double>(backoff_delay(policy, attempts));
  if (policy.jitter > 0 && delay > 0) {
    std::uniform_real_distribution<double> factor(1.0 - policy.jitter, 1.0 + policy.jitter);
    delay *= factor(rng);
  }
  d.ready_at = now + static_cast<millis>(std::llround(std::max(delay, 0.0)));
  return d;
}

}  // namespace tasker::core
