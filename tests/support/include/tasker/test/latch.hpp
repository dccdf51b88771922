// A latch the code under test sets, and a bounded wait for what no code of
// the test can set (another process, a server, a thread of the library).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

namespace tasker::test {

/// A count that the code under test brings down (from a handler, a callback,
/// another thread) and that a test waits on, instead of sleeping and looking.
/// Like C++20's std::latch, with a bounded wait.
class latch {
public:
  explicit latch(std::ptrdiff_t count = 1) : count_(count) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// Brings the count down by `n` (not below zero); at zero, wakes the waiters.
  void count_down(std::ptrdiff_t n = 1) {
    std::lock_guard<std::mutex> g{mu_};
    count_ = count_ > n ? count_ - n : 0;
    if (count_ == 0)
      cv_.notify_all();
  }
  /// True once the count is zero.
  bool try_wait() const {
    std::lock_guard<std::mutex> g{mu_};
    return count_ == 0;
  }
  /// Waits until the count is zero or `timeout` passed; true when it is zero.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    std::unique_lock<std::mutex> g{mu_};
    return cv_.wait_for(g, timeout, [this] { return count_ == 0; });
  }

private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::ptrdiff_t count_;
};

/// Asks `done` every `step` until it holds or `timeout` passed; returns its
/// last answer. Only for what the test cannot be told about (the state of
/// another process, a server's view, output of the library's own threads):
/// where the code under test can say so, it sets a latch.
template <class Predicate, class Rep, class Period>
bool eventually(Predicate done, std::chrono::duration<Rep, Period> timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds{5}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return done();
    std::this_thread::sleep_for(step);
  }
  return true;
}

}  // namespace tasker::test
