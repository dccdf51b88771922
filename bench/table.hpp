// One row of the summary table that bench/run collects from every benchmark:
//   table: <benchmark> | <baseline> | <optimized> | <ratio> | <target> | pass|miss
// `ratio` is how many times better the optimized figure is (for "lower is
// better" figures: baseline / optimized); the row passes when it reaches
// the target ratio.
#pragma once

#include <cstdio>
#include <string>

namespace bench {

inline void table_row(const std::string& name, const std::string& baseline,
                      const std::string& optimized, double ratio, double target) {
  std::printf("table: %s | %s | %s | %.2fx | >= %.2fx | %s\n", name.c_str(), baseline.c_str(),
              optimized.c_str(), ratio, target, ratio >= target ? "pass" : "miss");
  std::fflush(stdout);
}

/// A row whose target is an absolute figure rather than a ratio (e.g. a
/// throughput goal): `better` says whether `value` met it.
inline void table_row_absolute(const std::string& name, const std::string& reference,
                               const std::string& value, const std::string& target, bool better) {
  std::printf("table: %s | %s | %s | - | %s | %s\n", name.c_str(), reference.c_str(), value.c_str(),
              target.c_str(), better ? "pass" : "miss");
  std::fflush(stdout);
}

/// A row reported for information: no target applies (e.g. where an
/// optimization is documented as not worth it).
inline void table_row_info(const std::string& name, const std::string& baseline,
                           const std::string& optimized, double ratio) {
  std::printf("table: %s | %s | %s | %.2fx | - | info\n", name.c_str(), baseline.c_str(),
              optimized.c_str(), ratio);
  std::fflush(stdout);
}

/// A figure with a unit, e.g. fmt(12.34, "ms") -> "12.3 ms".
inline std::string fmt(double v, const char* unit, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f %s", decimals, v, unit);
  return buf;
}

}  // namespace bench
