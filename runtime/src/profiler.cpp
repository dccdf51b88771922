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

// Recording goes to one of a few shards per profiler. The first threads to
// record into a profiler get a shard each, which only they write: a plain
// load and store, no locked instruction. Later threads share the last shard
// with atomic adds. (In a worker the poller is the only recording thread.)
constexpr std::size_t shard_count = 4;

std::atomic<std::uint64_t> next_profiler_id{1};

struct shard_ref {
  std::size_t index;
  bool exclusive;
};

void bump(std::atomic<std::uint64_t>& a, std::uint64_t v, bool exclusive) noexcept {
  if (exclusive)
    a.store(a.load(relaxed) + v, relaxed);
  else
    a.fetch_add(v, relaxed);
}

std::uint64_t to_ns(std::chrono::nanoseconds d) noexcept {
  return d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
}

std::size_t series_hash(std::string_view namespace_name, std::string_view handler) noexcept {
  const std::hash<std::string_view> h;
  return h(namespace_name) * 31 + h(handler);
}

// Bucket counts and the sum of one histogram (one shard of it).
template <std::size_t Bounds>
struct counts {
  std::array<std::atomic<std::uint64_t>, Bounds + 1> buckets{};
  std::atomic<std::uint64_t> sum{0};

  void add(std::size_t bucket, std::uint64_t value, bool exclusive) noexcept {
    bump(buckets[bucket], 1, exclusive);
    bump(sum, value, exclusive);
  }
  void add_to(histogram_snapshot& out) const {
    out.buckets.resize(Bounds + 1, 0);
    for (std::size_t i = 0; i <= Bounds; ++i)
      out.buckets[i] += buckets[i].load(relaxed);
    out.sum += sum.load(relaxed);
  }
};

using duration_counts = counts<duration_buckets::count>;

histogram_snapshot empty_histogram(std::size_t bounds) {
  histogram_snapshot h;
  h.buckets.assign(bounds + 1, 0);
  return h;
}

constexpr std::string_view outcome_names[] = {"succeeded", "failed", "timed_out", "waited"};
constexpr std::string_view call_names[] = {"poll", "complete", "complete_and_poll"};

struct error_slot {
  std::string type;
  std::atomic<std::uint64_t> count{0};
};

struct alignas(64) series_shard {
  std::atomic<std::uint64_t> claimed{0};
  std::array<std::atomic<std::uint64_t>, 4> outcomes{};  // by step_outcome
  duration_counts queue_wait;
  duration_counts run_time;
  duration_counts cpu_time;
};

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

struct profiler::series {
  static constexpr std::size_t max_error_types = 16;
  std::string namespace_name;
  std::string handler;
  std::uint64_t slow_threshold_ns = 0;
  std::array<series_shard, shard_count> shards;
  // Error types seen, found without a lock; added under the profiler's
  // create_mu_. Beyond max_error_types they count as "_other".
  std::array<std::atomic<error_slot*>, max_error_types> errors{};
  std::vector<std::unique_ptr<error_slot>> owned_errors;
  error_slot other_errors;

  // Failures are rare: always atomic adds, whoever records.
  void record_failure(std::string_view type, std::mutex& mu) noexcept {
    for (auto& e : errors) {
      auto* slot = e.load(std::memory_order_acquire);
      if (!slot)
        break;
      if (slot->type == type) {
        slot->count.fetch_add(1, relaxed);
        return;
      }
    }
    try {
      std::lock_guard<std::mutex> g{mu};
      for (auto& e : errors) {
        auto* slot = e.load(std::memory_order_acquire);
        if (slot && slot->type == type) {
          slot->count.fetch_add(1, relaxed);
          return;
        }
        if (!slot) {
          owned_errors.push_back(std::make_unique<error_slot>());
          owned_errors.back()->type = type;
          owned_errors.back()->count.store(1, relaxed);
          e.store(owned_errors.back().get(), std::memory_order_release);
          return;
        }
      }
    } catch (...) {  // out of memory: count it with the rest
    }
    other_errors.count.fetch_add(1, relaxed);
  }
};

struct alignas(64) profiler::worker_shard {
  std::atomic<std::uint64_t> claimed{0};
  std::atomic<std::uint64_t> completed{0};
  counts<size_buckets::count> poll_batch;
  std::array<duration_counts, 3> core_calls;  // by core_call
};

profiler::profiler(profiler_options options)
  : options_(std::move(options)), id_(next_profiler_id.fetch_add(1, relaxed)),
    table_(new std::atomic<series*>[table_size]()), worker_(new worker_shard[shard_count]()) {
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
    auto* s = table_[(hash + i) % table_size].load(std::memory_order_acquire);
    if (!s)
      break;
    if (s->handler == handler && s->namespace_name == namespace_name)
      return s;
  }
  try {
    return create(namespace_name, handler);
  } catch (...) {
    return nullptr;  // out of memory: this step goes unrecorded
  }
}

profiler::series* profiler::create(std::string_view namespace_name, std::string_view handler) {
  std::lock_guard<std::mutex> g{create_mu_};
  const std::size_t hash = series_hash(namespace_name, handler);
  std::size_t free_slot = table_size;
  for (std::size_t i = 0; i < table_size; ++i) {
    const auto slot = (hash + i) % table_size;
    auto* s = table_[slot].load(std::memory_order_acquire);
    if (!s) {
      free_slot = slot;
      break;
    }
    if (s->handler == handler && s->namespace_name == namespace_name)
      return s;  // another thread made it first
  }
  const bool full = owned_.size() - (other_ ? 1 : 0) >= options_.max_series;
  if (full || free_slot == table_size) {
    if (!other_) {
      owned_.push_back(std::make_unique<series>());
      other_ = owned_.back().get();
      other_->namespace_name = "_other";
      other_->handler = "_other";
    }
    return other_;
  }
  auto s = std::make_unique<series>();
  s->namespace_name = namespace_name;
  s->handler = handler;
  if (auto it = options_.slow_thresholds.find(s->handler); it != options_.slow_thresholds.end())
    s->slow_threshold_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(it->second).count());
  auto* raw = s.get();
  owned_.push_back(std::move(s));
  table_[free_slot].store(raw, std::memory_order_release);
  return raw;
}

// ---- hooks (the poller's thread) ---------------------------------------------

std::pair<std::size_t, bool> profiler::my_shard() noexcept {
  // Keyed by the profiler's id, not its address: a new profiler at a freed
  // one's address must not inherit a shard another thread may own.
  thread_local std::uint64_t owner = 0;
  thread_local shard_ref ref{shard_count - 1, false};
  if (owner != id_) {
    const auto n = next_shard_.fetch_add(1, relaxed);
    ref = n < shard_count - 1 ? shard_ref{n, true} : shard_ref{shard_count - 1, false};
    owner = id_;
  }
  return {ref.index, ref.exclusive};
}

void* profiler::on_step_claimed(const step_claimed_event& e) noexcept {
  auto* s = find_or_create(e.namespace_name, e.handler);
  if (s) {
    const auto [i, mine] = my_shard();
    bump(s->shards[i].claimed, 1, mine);
  }
  return s;
}

void profiler::on_step_started(const step_started_event& e) noexcept {
  auto* s = e.cookie ? static_cast<series*>(e.cookie) : find_or_create(e.namespace_name, e.handler);
  if (!s)
    return;
  const auto wait = to_ns(e.started_at - e.claimed_at);
  const auto [i, mine] = my_shard();
  s->shards[i].queue_wait.add(duration_buckets::index(wait), wait, mine);
}

void profiler::on_step_finished(const step_finished_event& e) noexcept {
  auto* s = e.cookie ? static_cast<series*>(e.cookie) : find_or_create(e.namespace_name, e.handler);
  if (!s)
    return;
  const auto [i, mine] = my_shard();
  auto& shard = s->shards[i];
  if (e.started) {
    const auto run = to_ns(e.finished_at - e.started_at);
    shard.run_time.add(duration_buckets::index(run), run, mine);
    if (e.cpu_time.count() >= 0) {
      const auto cpu = to_ns(e.cpu_time);
      shard.cpu_time.add(duration_buckets::index(cpu), cpu, mine);
    }
    if (s->slow_threshold_ns > 0 && run > s->slow_threshold_ns)
      spdlog::warn("slow step: task={} step={} name={} handler={} attempt={} ran {} (threshold {})",
                   e.task_id, e.step_id, e.step_name, e.handler, e.attempt,
                   human(static_cast<double>(run)),
                   human(static_cast<double>(s->slow_threshold_ns)));
  }
  if (e.outcome != step_outcome::succeeded && e.outcome != step_outcome::waited)
    s->record_failure(e.error_type.empty() ? std::string_view{"unknown"} : e.error_type,
                      create_mu_);
  // Counted last, after the claim it pairs with (the snapshot reads outcomes
  // before claims, and clamps in-flight at zero in any case).
  bump(shard.outcomes[static_cast<std::size_t>(e.outcome)], 1, mine);
}

void profiler::on_poll(const poll_event& e) noexcept {
  const auto [i, mine] = my_shard();
  auto& w = worker_[i];
  if (e.call == core_call::poll)
    w.core_calls[0].add(duration_buckets::index(to_ns(e.duration)), to_ns(e.duration), mine);
  if (!e.ok)
    return;
  bump(w.claimed, e.claimed, mine);
  w.poll_batch.add(size_buckets::index(e.claimed), e.claimed, mine);
}

void profiler::on_complete_batch(const complete_batch_event& e) noexcept {
  const auto [i, mine] = my_shard();
  auto& w = worker_[i];
  w.core_calls[static_cast<std::size_t>(e.call)].add(duration_buckets::index(to_ns(e.duration)),
                                                     to_ns(e.duration), mine);
  if (e.ok)
    bump(w.completed, e.size, mine);
}

// ---- reading -----------------------------------------------------------------

metrics_snapshot profiler::snapshot() const {
  metrics_snapshot out;
  out.taken = observer_clock::now();
  std::vector<const series*> all;
  {
    std::lock_guard<std::mutex> g{create_mu_};
    for (const auto& s : owned_)
      all.push_back(s.get());
  }
  for (const auto* s : all) {
    series_snapshot ss;
    ss.namespace_name = s->namespace_name;
    ss.handler = s->handler;
    ss.queue_wait = empty_histogram(duration_buckets::count);
    ss.run_time = empty_histogram(duration_buckets::count);
    ss.cpu_time = empty_histogram(duration_buckets::count);
    // Outcomes before claims: every step is claimed before it finishes, so
    // the in-flight difference cannot go below zero.
    for (const auto& shard : s->shards) {
      ss.succeeded += shard.outcomes[0].load(relaxed);
      ss.failed += shard.outcomes[1].load(relaxed);
      ss.timed_out += shard.outcomes[2].load(relaxed);
      ss.waited += shard.outcomes[3].load(relaxed);
    }
    for (const auto& shard : s->shards) {
      ss.claimed += shard.claimed.load(relaxed);
      shard.queue_wait.add_to(ss.queue_wait);
      shard.run_time.add_to(ss.run_time);
      shard.cpu_time.add_to(ss.cpu_time);
    }
    ss.in_flight = ss.claimed - std::min(ss.claimed, ss.finished());
    {
      std::lock_guard<std::mutex> g{create_mu_};
      for (const auto& e : s->owned_errors)
        ss.failures.emplace_back(e->type, e->count.load(relaxed));
    }
    if (const auto n = s->other_errors.count.load(relaxed))
      ss.failures.emplace_back("_other", n);
    std::sort(ss.failures.begin(), ss.failures.end());
    out.series.push_back(std::move(ss));
  }
  std::sort(out.series.begin(), out.series.end(), [](const auto& a, const auto& b) {
    return std::tie(a.namespace_name, a.handler) < std::tie(b.namespace_name, b.handler);
  });
  out.poll_batch = empty_histogram(size_buckets::count);
  for (auto& c : out.core_calls)
    c = empty_histogram(duration_buckets::count);
  for (std::size_t i = 0; i < shard_count; ++i) {
    const auto& w = worker_[i];
    out.claimed += w.claimed.load(relaxed);
    out.completed += w.completed.load(relaxed);
    w.poll_batch.add_to(out.poll_batch);
    for (std::size_t c = 0; c < 3; ++c)
      w.core_calls[c].add_to(out.core_calls[c]);
  }
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
