// Durations for log lines: the slow-step warning (recording.cpp) and the
// summary line (reporter.cpp).
#pragma once

#include <string>

namespace tasker::detail {

/// 1234 ns -> "1.23 us"; ns, us, ms or s, three significant digits.
std::string human_duration(double ns);

}  // namespace tasker::detail
