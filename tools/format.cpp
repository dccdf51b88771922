#include "format.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace tasker::tools {

std::size_t terminal_width() {
  winsize ws{};
  if (::isatty(STDOUT_FILENO) && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long n = std::strtol(columns, &end, 10);
    if (end != columns && *end == '\0' && n > 0 && n < 100000)
      return static_cast<std::size_t>(n);
  }
  return 100;
}

namespace {

bool continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return !continuation(c); }));
}

std::string fit(std::string_view text, std::size_t width) {
  std::string line;
  line.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    line += u < 0x20 || u == 0x7F ? ' ' : c;  // no escape sequences reach the terminal
  }
  if (display_width(line) <= width)
    return line;
  const std::size_t keep = width > 3 ? width - 3 : 0;
  std::size_t points = 0;
  std::size_t cut = 0;
  while (cut < line.size()) {
    if (!continuation(line[cut])) {
      if (points == keep)
        break;
      ++points;
    }
    ++cut;
  }
  line.resize(cut);
  line += std::string_view("...").substr(0, std::min<std::size_t>(3, width));
  return line;
}

std::string format_time(std::int64_t ms) {
  if (ms < 0)
    return "-";
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  if (::gmtime_r(&seconds, &utc) == nullptr)
    return "-";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string format_duration(std::int64_t ms) {
  if (ms < 0)
    return "-";
  char buf[32];
  const std::int64_t s = ms / 1000;
  if (ms < 1000)
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  else if (ms < 60'000)
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms / 100) / 10.0);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  else if (s < 86'400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86'400),
                  static_cast<long long>(s % 86'400 / 3600));
  return buf;
}

table::table(std::vector<std::string> header) {
  rows_.push_back(std::move(header));
}

void table::add(std::vector<std::string> row) {
  row.resize(rows_.front().size());
  rows_.push_back(std::move(row));
}

std::string table::render(std::size_t width) const {
  const std::size_t columns = rows_.front().size();
  std::vector<std::size_t> widths(columns, 0);
  for (const auto& row : rows_)
    for (std::size_t c = 0; c < columns; ++c)
      widths[c] = std::max(widths[c], display_width(fit(row[c], SIZE_MAX)));
  // The last column gets what the others leave, but never less than 12.
  std::size_t before_last = 0;
  for (std::size_t c = 0; c + 1 < columns; ++c)
    before_last += widths[c] + 2;
  const std::size_t last = width > before_last + 12 ? width - before_last : 12;
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t c = 0; c < columns; ++c) {
      const bool is_last = c + 1 == columns;
      const auto cell = fit(row[c], is_last ? last : SIZE_MAX);
      line += cell;
      if (!is_last)
        line.append(widths[c] - display_width(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace tasker::tools
