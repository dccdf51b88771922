#include <tasker/runtime/profiler.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <tasker/runtime/dogstatsd.hpp>

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

histogram_snapshot empty_histogram(std::size_t bounds) {
  histogram_snapshot h;
  h.buckets.assign(bounds + 1, 0);
  return h;
}

constexpr std::string_view outcome_names[] = {"succeeded", "failed", "timed_out", "waited"};
constexpr std::string_view call_names[] = {"poll", "complete", "complete_and_poll"};

// "namespace=\"…\",handler=\"…\"" for a series.
std::string series_labels(const series_snapshot& s) {
  return "namespace=\"" + prometheus_escape(s.namespace_name) + "\",handler=\""
         + prometheus_escape(s.handler) + "\"";
}

// Seconds, exactly, from whole nanoseconds: 1000 -> "0.000001", 2e9 -> "2".
std::string seconds_text(std::uint64_t ns) {
  std::string out = std::to_string(ns / 1'000'000'000ULL);
  if (const auto frac = ns % 1'000'000'000ULL) {
    char digits[16];
    std::snprintf(digits, sizeof digits, "%09llu", static_cast<unsigned long long>(frac));
    std::string f = digits;
    f.erase(f.find_last_not_of('0') + 1);
    out += "." + f;
  }
  return out;
}

using buffer = fmt::memory_buffer;

void family(buffer& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One histogram's _bucket (cumulative), _sum and _count lines.
void histogram_lines(buffer& out, std::string_view name, const std::string& labels,
                     const histogram_snapshot& h, const std::vector<std::string>& le,
                     bool ns_to_seconds) {
  const std::string sep = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    fmt::format_to(std::back_inserter(out), "{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep,
                   i < le.size() ? le[i] : std::string("+Inf"), cumulative);
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  if (ns_to_seconds)
    fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n", name, braces,
                   static_cast<double>(h.sum) / 1e9);
  else
    fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n", name, braces, h.sum);
  fmt::format_to(std::back_inserter(out), "{}_count{} {}\n", name, braces, cumulative);
}

const std::vector<std::string>& duration_le() {
  static const std::vector<std::string> le = [] {
    std::vector<std::string> v;
    for (auto b : duration_buckets::bounds)
      v.push_back(seconds_text(b));
    return v;
  }();
  return le;
}

const std::vector<std::string>& size_le() {
  static const std::vector<std::string> le = [] {
    std::vector<std::string> v;
    for (auto b : size_buckets::bounds)
      v.push_back(std::to_string(b));
    return v;
  }();
  return le;
}

// 1234 ns -> "1.23 ms" style, for log lines.
std::string human(double ns) {
  if (ns < 1e3)
    return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6)
    return fmt::format("{:.3g} us", ns / 1e3);
  if (ns < 1e9)
    return fmt::format("{:.3g} ms", ns / 1e6);
  return fmt::format("{:.3g} s", ns / 1e9);
}

}  // namespace

// ---- buckets and snapshots ---------------------------------------------------

std::size_t duration_buckets::index(std::uint64_t ns) noexcept {
  return static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), ns)
                                  - bounds.begin());
}

std::size_t size_buckets::index(std::uint64_t n) noexcept {
  return static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), n)
                                  - bounds.begin());
}

std::uint64_t histogram_snapshot::count() const {
  std::uint64_t n = 0;
  for (auto b : buckets)
    n += b;
  return n;
}

double histogram_snapshot::quantile(double p, const std::uint64_t* bounds,
                                    std::size_t bound_count) const {
  const auto n = count();
  if (n == 0)
    return 0;
  const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(n);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0 || static_cast<double>(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i >= bound_count)  // +Inf: the highest finite bound is all we know
      return static_cast<double>(bounds[bound_count - 1]);
    const double lo = i == 0 ? 0.0 : static_cast<double>(bounds[i - 1]);
    const double hi = static_cast<double>(bounds[i]);
    return lo + (hi - lo) * (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
  }
  return static_cast<double>(bounds[bound_count - 1]);
}

histogram_snapshot histogram_snapshot::minus(const histogram_snapshot& before) const {
  histogram_snapshot out = *this;
  for (std::size_t i = 0; i < out.buckets.size() && i < before.buckets.size(); ++i)
    out.buckets[i] -= std::min(out.buckets[i], before.buckets[i]);
  out.sum -= std::min(out.sum, before.sum);
  return out;
}

const series_snapshot* metrics_snapshot::find(std::string_view namespace_name,
                                              std::string_view handler) const {
  for (const auto& s : series)
    if (s.namespace_name == namespace_name && s.handler == handler)
      return &s;
  return nullptr;
}

std::string prometheus_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

// ---- the profiler's records --------------------------------------------------

namespace {

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
                   human(static_cast<double>(run)),
                   human(static_cast<double>(s->slow_threshold_ns)));
  }
  if (e.outcome != step_outcome::succeeded && e.outcome != step_outcome::waited)
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

// ---- reading -----------------------------------------------------------------

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

std::string profiler::prometheus_text() const {
  const auto snap = snapshot();
  buffer out;
  auto it = std::back_inserter(out);
  std::vector<std::string> labels;
  for (const auto& s : snap.series)
    labels.push_back(series_labels(s));

  family(out, "tasker_steps_claimed_total", "counter", "Steps claimed from the core.");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    fmt::format_to(it, "tasker_steps_claimed_total{{{}}} {}\n", labels[i], snap.series[i].claimed);

  family(out, "tasker_steps_completed_total", "counter",
         "Steps whose run ended, by outcome (succeeded, failed, timed_out, waited: the "
         "handler answered wait_for).");
  for (std::size_t i = 0; i < snap.series.size(); ++i) {
    const auto& s = snap.series[i];
    const std::uint64_t by_outcome[] = {s.succeeded, s.failed, s.timed_out, s.waited};
    for (std::size_t o = 0; o < 4; ++o)
      fmt::format_to(it, "tasker_steps_completed_total{{{},outcome=\"{}\"}} {}\n", labels[i],
                     outcome_names[o], by_outcome[o]);
  }

  family(out, "tasker_steps_failed_total", "counter",
         "Failed runs by error type (timeouts are handler_timeout).");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    for (const auto& [type, n] : snap.series[i].failures)
      fmt::format_to(it, "tasker_steps_failed_total{{{},error_type=\"{}\"}} {}\n", labels[i],
                     prometheus_escape(type), n);

  family(out, "tasker_steps_in_flight", "gauge", "Steps claimed and not yet finished.");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    fmt::format_to(it, "tasker_steps_in_flight{{{}}} {}\n", labels[i], snap.series[i].in_flight);

  family(out, "tasker_step_queue_wait_seconds", "histogram",
         "Time from claim to dispatch to a handler actor.");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    histogram_lines(out, "tasker_step_queue_wait_seconds", labels[i], snap.series[i].queue_wait,
                    duration_le(), true);

  family(out, "tasker_step_execution_duration_seconds", "histogram",
         "Wall time from dispatch to the handler's answer.");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    histogram_lines(out, "tasker_step_execution_duration_seconds", labels[i],
                    snap.series[i].run_time, duration_le(), true);

  family(out, "tasker_step_cpu_seconds", "histogram",
         "CPU time of the handler's thread during the call (function handlers).");
  for (std::size_t i = 0; i < snap.series.size(); ++i)
    histogram_lines(out, "tasker_step_cpu_seconds", labels[i], snap.series[i].cpu_time,
                    duration_le(), true);

  family(out, "tasker_worker_steps_claimed_total", "counter", "Steps this worker claimed.");
  fmt::format_to(it, "tasker_worker_steps_claimed_total {}\n", snap.claimed);
  family(out, "tasker_worker_steps_completed_total", "counter",
         "Step results this worker handed to the core in successful calls.");
  fmt::format_to(it, "tasker_worker_steps_completed_total {}\n", snap.completed);

  family(out, "tasker_poll_batch_size", "histogram", "Steps claimed per call that claims.");
  histogram_lines(out, "tasker_poll_batch_size", "", snap.poll_batch, size_le(), false);

  family(out, "tasker_core_call_duration_seconds", "histogram",
         "Duration of the worker's calls into the core (store transactions).");
  for (std::size_t c = 0; c < 3; ++c)
    histogram_lines(out, "tasker_core_call_duration_seconds",
                    fmt::format("call=\"{}\"", call_names[c]), snap.core_calls[c], duration_le(),
                    true);
  return fmt::to_string(out);
}

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
                     human(run.quantile(0.5, bounds, duration_buckets::count)),
                     human(run.quantile(0.99, bounds, duration_buckets::count)), in_flight, failed,
                     timed_out);
}

// ---- reporting thread ----------------------------------------------------------

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
  }
}

void profiler::report_loop() {
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
    const auto now = clock::now();
    try {
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
    } catch (const std::exception& e) {
      spdlog::warn("profiler: reporting failed: {}", e.what());
    }
    lk.lock();
  }
}

}  // namespace tasker
