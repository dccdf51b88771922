// The profiler's records and its hooks: one writer (the poller), readers on
// any thread.
#include <tasker/runtime/profiler.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <tuple>

#include <spdlog/spdlog.h>

#include <tasker/runtime/dogstatsd.hpp>

#include "profiler/human_duration.hpp"

namespace tasker {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

std::uint64_t to_ns(std::chrono::nanoseconds d) noexcept {
  return d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
}

std::size_t series_hash(std::string_view namespace_name, std::string_view handler) noexcept {
  const std::hash<std::string_view> h;
  return h(namespace_name) * 31 + h(handler);
}

// A count with one writer (the hooks run one at a time): an update is a
// plain load and store, no locked instruction; a reader on another thread
// loads it whole.
class counter {
public:
  void add(std::uint64_t v) noexcept { n_.store(n_.load(relaxed) + v, relaxed); }
  std::uint64_t get() const noexcept { return n_.load(relaxed); }

private:
  std::atomic<std::uint64_t> n_{0};
};

// Bucket counts and the sum of one histogram, over duration_buckets or
// size_buckets.
template <class Buckets>
struct histogram {
  std::array<counter, Buckets::count + 1> buckets;
  counter sum;

  void record(std::uint64_t value) noexcept {
    buckets[Buckets::index(value)].add(1);
    sum.add(value);
  }
  histogram_snapshot read() const {
    histogram_snapshot out;
    out.buckets.reserve(buckets.size());
    for (const auto& b : buckets)
      out.buckets.push_back(b.get());
    out.sum = sum.get();
    return out;
  }
};

using durations = histogram<duration_buckets>;

}  // namespace

struct profiler::series {
  static constexpr std::size_t max_error_types = 16;
  struct error_count {
    std::string type;
    counter count;
  };

  std::string namespace_name;
  std::string handler;
  std::uint64_t slow_threshold_ns = 0;
  counter claimed;
  std::array<counter, 4> outcomes;  // by step_outcome
  durations queue_wait;
  durations run_time;
  durations cpu_time;
  // Error types seen, up to max_error_types (later ones count as "_other");
  // the hooks search them unlocked and add to them under the profiler's mu_.
  std::vector<std::unique_ptr<error_count>> errors;
  counter other_errors;
};

struct profiler::totals {
  counter claimed;
  counter completed;
  histogram<size_buckets> poll_batch;
  std::array<durations, 3> core_calls;  // by core_call
};

profiler::profiler(profiler_options options)
  : options_(std::move(options)), table_(table_size, nullptr), totals_(std::make_unique<totals>()) {
  options_.max_series = std::clamp<std::size_t>(options_.max_series, 1, table_size / 2);
  if (!options_.statsd_address.empty()) {
    statsd_ = std::make_unique<dogstatsd_client>(options_.statsd_address);
    statsd_sent_ = snapshot();
  }
}

profiler::~profiler() {
  stop_reporting();
}

profiler::series* profiler::find_or_create(std::string_view namespace_name,
                                           std::string_view handler) noexcept {
  const std::size_t hash = series_hash(namespace_name, handler);
  for (std::size_t i = 0; i < table_size; ++i) {
    series*& slot = table_[(hash + i) % table_size];
    if (!slot)
      return add_series(namespace_name, handler, slot);
    if (slot->handler == handler && slot->namespace_name == namespace_name)
      return slot;
  }
  return nullptr;  // not reached: the table is at most half full
}

// A (namespace, handler) not in the table: a series of its own while there
// are fewer than max_series, else the shared "_other" (and the empty slot
// stays empty, so the table never holds more than max_series).
profiler::series* profiler::add_series(std::string_view namespace_name, std::string_view handler,
                                       series*& slot) noexcept {
  try {
    const bool full = series_.size() - (other_ ? 1 : 0) >= options_.max_series;
    if (full && other_)
      return other_;
    auto s = std::make_unique<series>();
    s->namespace_name = full ? "_other" : namespace_name;
    s->handler = full ? "_other" : handler;
    const auto slow = options_.slow_thresholds.find(s->handler);
    if (!full && slow != options_.slow_thresholds.end())
      s->slow_threshold_ns = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(slow->second).count());
    auto* raw = s.get();
    {
      std::lock_guard<std::mutex> g{mu_};
      series_.push_back(std::move(s));
    }
    (full ? other_ : slot) = raw;
    return raw;
  } catch (...) {
    return nullptr;  // out of memory: this step goes unrecorded
  }
}

void profiler::record_failure(series& s, std::string_view type) noexcept {
  for (const auto& e : s.errors)
    if (e->type == type) {
      e->count.add(1);
      return;
    }
  if (s.errors.size() < series::max_error_types) {
    try {
      auto e = std::make_unique<series::error_count>();
      e->type = type;
      e->count.add(1);
      std::lock_guard<std::mutex> g{mu_};
      s.errors.push_back(std::move(e));
      return;
    } catch (...) {  // out of memory: count it with the rest
    }
  }
  s.other_errors.add(1);
}

// ---- hooks (the poller's thread) ---------------------------------------------

void* profiler::on_step_claimed(const step_claimed_event& e) noexcept {
  auto* s = find_or_create(e.namespace_name, e.handler);
  if (s)
    s->claimed.add(1);
  return s;
}

void profiler::on_step_started(const step_started_event& e) noexcept {
  auto* s = e.cookie ? static_cast<series*>(e.cookie) : find_or_create(e.namespace_name, e.handler);
  if (s)
    s->queue_wait.record(to_ns(e.started_at - e.claimed_at));
}

void profiler::on_step_finished(const step_finished_event& e) noexcept {
  auto* s = e.cookie ? static_cast<series*>(e.cookie) : find_or_create(e.namespace_name, e.handler);
  if (!s)
    return;
  if (e.started) {
    const auto run = to_ns(e.finished_at - e.started_at);
    s->run_time.record(run);
    if (e.cpu_time.count() >= 0)
      s->cpu_time.record(to_ns(e.cpu_time));
    if (s->slow_threshold_ns > 0 && run > s->slow_threshold_ns)
      spdlog::warn("slow step: task={} step={} name={} handler={} attempt={} ran {} (threshold {})",
                   e.task_id, e.step_id, e.step_name, e.handler, e.attempt,
                   detail::human_duration(static_cast<double>(run)),
                   detail::human_duration(static_cast<double>(s->slow_threshold_ns)));
  }
  if (e.outcome != step_outcome::succeeded && e.outcome != step_outcome::waited
      && e.outcome != step_outcome::yielded)
    record_failure(*s, e.error_type.empty() ? std::string_view{"unknown"} : e.error_type);
  // Counted last, after the claim it pairs with (the snapshot reads outcomes
  // before claims, and clamps in-flight at zero in any case).
  s->outcomes[static_cast<std::size_t>(e.outcome)].add(1);
}

void profiler::on_poll(const poll_event& e) noexcept {
  auto& t = *totals_;
  if (e.call == core_call::poll)
    t.core_calls[0].record(to_ns(e.duration));
  if (!e.ok)
    return;
  t.claimed.add(e.claimed);
  t.poll_batch.record(e.claimed);
}

void profiler::on_complete_batch(const complete_batch_event& e) noexcept {
  auto& t = *totals_;
  t.core_calls[static_cast<std::size_t>(e.call)].record(to_ns(e.duration));
  if (e.ok)
    t.completed.add(e.size);
}

// Under mu_ throughout: the hooks take it only to add a series or an error
// type, so a snapshot delays the poller only then, and never its counting.
metrics_snapshot profiler::snapshot() const {
  metrics_snapshot out;
  out.taken = observer_clock::now();
  std::lock_guard<std::mutex> g{mu_};
  for (const auto& s : series_) {
    series_snapshot ss;
    ss.namespace_name = s->namespace_name;
    ss.handler = s->handler;
    // Outcomes before claims: every step is claimed before it finishes, so
    // the in-flight difference cannot go below zero.
    ss.succeeded = s->outcomes[0].get();
    ss.failed = s->outcomes[1].get();
    ss.timed_out = s->outcomes[2].get();
    ss.waited = s->outcomes[3].get();
    ss.claimed = s->claimed.get();
    ss.queue_wait = s->queue_wait.read();
    ss.run_time = s->run_time.read();
    ss.cpu_time = s->cpu_time.read();
    ss.in_flight = ss.claimed - std::min(ss.claimed, ss.finished());
    for (const auto& e : s->errors)
      ss.failures.emplace_back(e->type, e->count.get());
    if (const auto n = s->other_errors.get())
      ss.failures.emplace_back("_other", n);
    std::sort(ss.failures.begin(), ss.failures.end());
    out.series.push_back(std::move(ss));
  }
  std::sort(out.series.begin(), out.series.end(), [](const auto& a, const auto& b) {
    return std::tie(a.namespace_name, a.handler) < std::tie(b.namespace_name, b.handler);
  });
  const auto& t = *totals_;
  out.claimed = t.claimed.get();
  out.completed = t.completed.get();
  out.poll_batch = t.poll_batch.read();
  for (std::size_t c = 0; c < 3; ++c)
    out.core_calls[c] = t.core_calls[c].read();
  return out;
}

}  // namespace tasker
