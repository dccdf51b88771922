// Bucket edges and what a histogram snapshot computes: counts, quantiles,
// differences.
#include <tasker/runtime/profiler.hpp>

#include <algorithm>

namespace tasker {

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

}  // namespace tasker
