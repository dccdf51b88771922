// The profiler: an observer that keeps per-handler counts and latency
// histograms and per-worker store-call figures, renders them as Prometheus
// text, and (on a thread of its own) sends them as DogStatsD, logs a summary
// line and warns about slow steps. No CAF here.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tasker/actors/observer.hpp>

namespace tasker {

// The observer's vocabulary, as the runtime's users see it.
using actors::complete_batch_event;
using actors::core_call;
using actors::observer;
using actors::observer_clock;
using actors::poll_event;
using actors::step_claimed_event;
using actors::step_finished_event;
using actors::step_outcome;
using actors::step_started_event;

class dogstatsd_client;

/// Fixed log-scale (1-2-5) buckets for durations, from 1 µs to 100 s, plus
/// the +Inf bucket.
struct duration_buckets {
  static constexpr std::size_t count = 25;  ///< finite upper bounds
  /// Upper bounds in nanoseconds: 1 µs, 2 µs, 5 µs, 10 µs … 50 s, 100 s.
  static constexpr std::array<std::uint64_t, count> bounds = {
      1'000ULL,          2'000ULL,          5'000ULL,          10'000ULL,
      20'000ULL,         50'000ULL,         100'000ULL,        200'000ULL,
      500'000ULL,        1'000'000ULL,      2'000'000ULL,      5'000'000ULL,
      10'000'000ULL,     20'000'000ULL,     50'000'000ULL,     100'000'000ULL,
      200'000'000ULL,    500'000'000ULL,    1'000'000'000ULL,  2'000'000'000ULL,
      5'000'000'000ULL,  10'000'000'000ULL, 20'000'000'000ULL, 50'000'000'000ULL,
      100'000'000'000ULL};
  /// The bucket of a value: the first whose bound is >= it; `count` is +Inf.
  static std::size_t index(std::uint64_t ns) noexcept;
};

/// Buckets for poll batch sizes: 0, 1, 2, 4 … 1024, plus +Inf.
struct size_buckets {
  static constexpr std::size_t count = 12;
  static constexpr std::array<std::uint64_t, count> bounds = {0,  1,  2,   4,   8,   16,
                                                              32, 64, 128, 256, 512, 1024};
  static std::size_t index(std::uint64_t n) noexcept;
};

/// A histogram read at one moment: per-bucket counts (not cumulative; the
/// last is +Inf) and the sum of the recorded values (ns for durations).
struct histogram_snapshot {
  std::vector<std::uint64_t> buckets;
  std::uint64_t sum = 0;

  std::uint64_t count() const;
  /// The p-quantile (p in [0, 1]) estimated by linear interpolation inside
  /// its bucket (as Prometheus' histogram_quantile does); 0 when empty.
  double quantile(double p, const std::uint64_t* bounds, std::size_t bound_count) const;
  /// this - before, bucket by bucket.
  histogram_snapshot minus(const histogram_snapshot& before) const;
};

/// What the profiler knows of one (namespace, handler).
struct series_snapshot {
  std::string namespace_name;
  std::string handler;
  std::uint64_t claimed = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;     ///< failures other than timeouts
  std::uint64_t timed_out = 0;  ///< `handler_timeout`
  std::uint64_t waited = 0;     ///< runs that answered wait_for (the step then waits for a signal)
  std::vector<std::pair<std::string, std::uint64_t>> failures;  ///< by error type (timeouts too)
  std::uint64_t in_flight = 0;                                  ///< claimed and not finished
  histogram_snapshot queue_wait;  ///< claim → start (its count: steps started)
  histogram_snapshot run_time;    ///< start → result, wall clock
  histogram_snapshot cpu_time;    ///< the handler thread's CPU time (function handlers)

  std::uint64_t finished() const { return succeeded + failed + timed_out + waited; }
};

/// Everything at one moment.
struct metrics_snapshot {
  observer_clock::time_point taken{};
  std::vector<series_snapshot> series;
  std::uint64_t claimed = 0;    ///< by all polls
  std::uint64_t completed = 0;  ///< results the core recorded (successful complete calls)
  histogram_snapshot poll_batch;
  /// Store call durations by core_call (poll, complete, complete_and_poll).
  std::array<histogram_snapshot, 3> core_calls;

  /// The series of a (namespace, handler), or null.
  const series_snapshot* find(std::string_view namespace_name, std::string_view handler) const;
};

struct profiler_options {
  /// DogStatsD destination "host:port" (IPv6 as "[addr]:port"); empty: off.
  std::string statsd_address;
  std::chrono::milliseconds statsd_interval{10000};
  /// How often a summary line is logged; 0: never.
  std::chrono::milliseconds summary_interval{60000};
  /// Per handler name: a run longer than this logs a warning; absent or 0: off.
  std::unordered_map<std::string, std::chrono::milliseconds> slow_thresholds;
  /// (namespace, handler) pairs tracked one by one; later ones share one
  /// series labelled "_other" (a bound on label cardinality).
  std::size_t max_series = 256;
};

/// Per-handler and per-worker metrics. Install it as a worker's observer:
/// its hooks must run one at a time (on the poller's thread, as
/// actors::observer promises); they count without a locked instruction and
/// take a lock only to add a series or an error type. Read it with
/// prometheus_text() or snapshot() from any thread.
class profiler final : public observer {
public:
  /// Throws std::invalid_argument for a statsd address that does not parse
  /// or resolve.
  explicit profiler(profiler_options options = {});
  ~profiler() override;
  profiler(const profiler&) = delete;
  profiler& operator=(const profiler&) = delete;

  void* on_step_claimed(const step_claimed_event& e) noexcept override;
  void on_step_started(const step_started_event& e) noexcept override;
  void on_step_finished(const step_finished_event& e) noexcept override;
  void on_poll(const poll_event& e) noexcept override;
  void on_complete_batch(const complete_batch_event& e) noexcept override;

  /// The Prometheus text exposition (format 0.0.4) of every metric.
  std::string prometheus_text() const;
  metrics_snapshot snapshot() const;

  /// Starts the thread that sends DogStatsD and logs the summary line (when
  /// either is configured). Idempotent.
  void start_reporting();
  /// Stops that thread after one last DogStatsD flush. Idempotent; the
  /// destructor calls it.
  void stop_reporting();
  /// Sends what changed since the last flush now (false: DogStatsD is off).
  bool flush_statsd();

  /// The summary line of what happened between two snapshots.
  static std::string summary_line(const metrics_snapshot& before, const metrics_snapshot& now);

private:
  struct series;  // one (namespace, handler)'s records
  struct totals;  // the worker's store calls

  series* find_or_create(std::string_view namespace_name, std::string_view handler) noexcept;
  series* add_series(std::string_view namespace_name, std::string_view handler,
                     series*& slot) noexcept;
  void record_failure(series& s, std::string_view type) noexcept;
  void report_loop() noexcept;

  profiler_options options_;
  // The hooks' own: an open-addressing table of series pointers (at most
  // half full) that only they read and write.
  static constexpr std::size_t table_size = 1024;
  std::vector<series*> table_;
  // What readers reach: series and their error types are added by the hooks
  // (rarely) under `mu_`, which readers hold while they copy; never removed.
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<series>> series_;
  series* other_ = nullptr;
  std::unique_ptr<totals> totals_;  // store calls

  const observer_clock::time_point created_ = observer_clock::now();
  std::unique_ptr<dogstatsd_client> statsd_;
  metrics_snapshot statsd_sent_;  // what the last flush covered (guarded by statsd_mu_)
  std::mutex statsd_mu_;
  std::thread reporter_;
  std::mutex report_mu_;
  std::condition_variable report_cv_;
  bool stopping_ = false;
};

/// A label value escaped for the Prometheus text format (\\, \", \n).
std::string prometheus_escape(std::string_view value);

}  // namespace tasker
