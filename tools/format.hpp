// Text output of the tasker command: tables cut to the terminal, times and
// durations. Plain functions of their inputs, so they need no store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tasker::tools {

/// Columns available on stdout: the terminal's width when stdout is one,
/// else $COLUMNS when it is a number, else 100.
std::size_t terminal_width();

/// Width of UTF-8 text on a terminal, counted in code points.
std::size_t display_width(std::string_view text);

/// `text` on one line (control characters, newlines included, become spaces)
/// and at most `width` code points, ending in "..." when it was cut.
std::string fit(std::string_view text, std::size_t width);

/// "2024-05-01T10:00:00Z": milliseconds since the epoch in UTC; "-" when negative.
std::string format_time(std::int64_t ms);

/// "850ms", "12.3s", "4m05s", "2h03m", "3d04h"; "-" when negative.
std::string format_duration(std::int64_t ms);

/// Rows of cells under a header, left-aligned in columns two spaces apart.
/// Only the last column is cut (with fit) so that a line fits the width;
/// the others are never cut.
class table {
public:
  explicit table(std::vector<std::string> header);
  void add(std::vector<std::string> row);
  /// Lines, each ending in '\n'.
  std::string render(std::size_t width) const;

private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

}  // namespace tasker::tools
