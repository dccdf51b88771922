// The LISTEN thread of a PostgreSQL store: notifications from other
// processes become store::watch calls.
//
// Every NOTIFY costs the server a delivery to each listening connection, and
// the listening process a wake-up, so a core listens only to what it has a
// callback for: "ready" with a wake-up callback, "done" with a task listener
// (store::interest). And a worker that is saturated (its claims come back
// full, and it claims again as each step ends) has no use for "ready": its
// store stops listening (saturated(true)) and listens again when a claim
// finds less than it asked for. Whatever was notified meanwhile is not lost:
// once listening again, the listener reports work ready, so the worker claims
// once more. Measured with three saturated workers: docs/benchmarks.md.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <libpq-fe.h>

#include "store/store.hpp"

namespace tasker::core {

class pg_listener {
public:
  /// `wanted` says whether work made ready in a namespace concerns this core.
  pg_listener(std::string conninfo, std::string schema, const std::atomic<int>& own_pid,
              std::function<void(const effects&)> fn, std::function<bool(std::string_view)> wanted);
  /// Which notifications the core has callbacks for. When it asks for more
  /// than before, returns once the LISTEN is in place (or after 5 s, if
  /// the server cannot be reached), so that the caller may look at the
  /// database's state and then rely on hearing of every later change.
  void interest(bool ready, bool done);
  /// Whether the worker is saturated, so that "ready" would only wake it.
  void saturated(bool yes) { set(saturated_, yes); }
  ~pg_listener();
  pg_listener(const pg_listener&) = delete;
  pg_listener& operator=(const pg_listener&) = delete;

private:
  std::string conninfo_, schema_;
  const std::atomic<int>& own_pid_;
  std::function<void(const effects&)> fn_;
  std::function<bool(std::string_view)> wanted_;
  int stop_pipe_[2] = {-1, -1};  // also wakes the thread when the wanted LISTENs change
  std::atomic<bool> stopping_{false};
  std::atomic<bool> interest_ready_{false}, interest_done_{false}, saturated_{false};
  std::mutex mu_;  // guards poked_ and reconciled_
  std::condition_variable cv_;
  std::uint64_t poked_ = 0;       ///< changes asked for so far
  std::uint64_t reconciled_ = 0;  ///< of those, the ones the LISTENs match
  std::thread thread_;

  // The listener thread (un)listens to match; a change pokes it.
  void set(std::atomic<bool>& flag, bool yes);
  bool want_ready() const { return interest_ready_.load() && !saturated_.load(); }

  // Waits up to `ms`, until stopped or poked; true when stopped.
  bool wait_stop(int fd, int ms);

  bool exec(PGconn* c, const std::string& sql);

  void run();

  void parse(std::string_view channel, std::string_view payload, effects& out);
};

}  // namespace tasker::core
