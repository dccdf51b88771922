// Order statistics of timing samples, shared by the benchmarks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace bench {

/// The sample at rank floor(p * n) (p in [0, 1]); 0 when there is none.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0.0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

/// The sample at rank floor(n / 2); 0 when there is none.
inline double median(std::vector<double> v) {
  return percentile(std::move(v), 0.5);
}

}  // namespace bench
