// The reporter thread: DogStatsD at its interval, the summary line in the
// log, and the last flush when it stops.
#include <tasker/runtime/profiler.hpp>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <tasker/runtime/dogstatsd.hpp>

#include "profiler/human_duration.hpp"

namespace tasker {

namespace {

histogram_snapshot empty_histogram(std::size_t bounds) {
  histogram_snapshot h;
  h.buckets.assign(bounds + 1, 0);
  return h;
}

}  // namespace

namespace detail {

std::string human_duration(double ns) {
  if (ns < 1e3)
    return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6)
    return fmt::format("{:.3g} us", ns / 1e3);
  if (ns < 1e9)
    return fmt::format("{:.3g} ms", ns / 1e6);
  return fmt::format("{:.3g} s", ns / 1e9);
}

}  // namespace detail

std::string profiler::summary_line(const metrics_snapshot& before, const metrics_snapshot& now) {
  std::uint64_t finished = 0, failed = 0, timed_out = 0, in_flight = 0;
  auto run = empty_histogram(duration_buckets::count);
  for (const auto& s : now.series) {
    const auto* b = before.find(s.namespace_name, s.handler);
    const series_snapshot zero;
    const auto& prev = b ? *b : zero;
    finished += s.finished() - std::min(s.finished(), prev.finished());
    failed += s.failed - std::min(s.failed, prev.failed);
    timed_out += s.timed_out - std::min(s.timed_out, prev.timed_out);
    in_flight += s.in_flight;
    const auto d = prev.run_time.buckets.empty() ? s.run_time : s.run_time.minus(prev.run_time);
    for (std::size_t i = 0; i < run.buckets.size() && i < d.buckets.size(); ++i)
      run.buckets[i] += d.buckets[i];
  }
  const double seconds =
      std::max(1e-3, std::chrono::duration<double>(now.taken - before.taken).count());
  const auto* bounds = duration_buckets::bounds.data();
  return fmt::format("metrics: {} steps in {:.1f} s ({:.1f}/s), run time p50 {} p99 {}, {} in "
                     "flight, {} failed and {} timed out since the last line",
                     finished, seconds, static_cast<double>(finished) / seconds,
                     detail::human_duration(run.quantile(0.5, bounds, duration_buckets::count)),
                     detail::human_duration(run.quantile(0.99, bounds, duration_buckets::count)),
                     in_flight, failed, timed_out);
}

bool profiler::flush_statsd() {
  if (!statsd_)
    return false;
  std::lock_guard<std::mutex> g{statsd_mu_};
  auto now = snapshot();
  statsd_->send(dogstatsd_lines(statsd_sent_, now));
  statsd_sent_ = std::move(now);
  return true;
}

void profiler::start_reporting() {
  std::lock_guard<std::mutex> g{report_mu_};
  if (reporter_.joinable() || stopping_)
    return;
  if (!statsd_ && options_.summary_interval.count() <= 0)
    return;
  reporter_ = std::thread([this] { report_loop(); });
}

// The thread reads the profiler's records and logs through spdlog's default
// logger, so it is joined before either may go: here, which the destructor
// calls first thing and a worker calls in stop() before it logs that it
// stopped.
void profiler::stop_reporting() {
  {
    std::lock_guard<std::mutex> g{report_mu_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  report_cv_.notify_all();
  if (reporter_.joinable())
    reporter_.join();
  try {
    flush_statsd();  // what the last interval collected
  } catch (const std::exception& e) {
    spdlog::warn("profiler: last DogStatsD flush failed: {}", e.what());
  } catch (...) {
    spdlog::warn("profiler: last DogStatsD flush failed");
  }
}

// The thread's body: nothing escapes it. A tick that fails is logged and the
// next one tries again.
void profiler::report_loop() noexcept {
  using clock = std::chrono::steady_clock;
  const auto statsd_every = std::max(options_.statsd_interval, std::chrono::milliseconds{10});
  const auto summary_every = options_.summary_interval;
  auto next_statsd = clock::now() + statsd_every;
  auto next_summary = clock::now() + summary_every;
  // The first summary covers everything since the profiler began, not since
  // this thread did: on a busy machine it may start after the first steps
  // ended, which a summary would then never count (a test caught it).
  metrics_snapshot last;
  last.taken = created_;
  auto tick = [&](clock::time_point now) {
    if (statsd_ && now >= next_statsd) {
      flush_statsd();
      next_statsd = now + statsd_every;
    }
    if (summary_every.count() > 0 && now >= next_summary) {
      auto current = snapshot();
      bool active = false;
      for (const auto& s : current.series) {
        const auto* b = last.find(s.namespace_name, s.handler);
        active = active || s.in_flight > 0 || !b || b->finished() != s.finished();
      }
      if (active)  // a quiet worker stays quiet
        spdlog::info("{}", summary_line(last, current));
      last = std::move(current);
      next_summary = now + summary_every;
    }
  };
  try {
    std::unique_lock<std::mutex> lk{report_mu_};
    while (!stopping_) {
      auto due = clock::time_point::max();
      if (statsd_)
        due = std::min(due, next_statsd);
      if (summary_every.count() > 0)
        due = std::min(due, next_summary);
      report_cv_.wait_until(lk, due, [this] { return stopping_; });
      if (stopping_)
        break;
      lk.unlock();
      try {
        tick(clock::now());
      } catch (const std::exception& e) {
        spdlog::warn("profiler: reporting failed: {}", e.what());
      } catch (...) {
        spdlog::warn("profiler: reporting failed");
      }
      lk.lock();
    }
  } catch (...) {  // the lock itself failed: stop reporting, quietly
  }
}

}  // namespace tasker
