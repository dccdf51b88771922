// The Prometheus text exposition (format 0.0.4) of a profiler's snapshot.
#include <tasker/runtime/profiler.hpp>

#include <cstdio>
#include <iterator>

#include <fmt/format.h>

namespace tasker {

namespace {

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

}  // namespace

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

}  // namespace tasker
