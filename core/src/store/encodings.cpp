#include "store/encodings.hpp"

#include <algorithm>
#include <charconv>

namespace tasker::core {

std::string_view ancestor_result(std::string_view results, int index) {
  auto done = results;
  while (!done.empty()) {
    auto c1 = done.find(':');
    auto c2 = done.find(':', c1 + 1);
    if (c1 == std::string_view::npos || c2 == std::string_view::npos)
      break;
    int idx = -1;
    std::size_t len = 0;
    std::from_chars(done.data(), done.data() + c1, idx);
    std::from_chars(done.data() + c1 + 1, done.data() + c2, len);
    auto value = done.substr(c2 + 1, len);
    if (idx == index)
      return value;
    done = done.substr(std::min(done.size(), c2 + 1 + len));
  }
  return {};
}

void append_finished(std::string& payload, std::int64_t task_id, task_state state) {
  if (!payload.empty())
    payload += ' ';
  payload += std::to_string(task_id) + ':' + to_string(state);
}

void parse_finished(std::string_view payload, effects& out) {
  while (!payload.empty()) {
    auto end = payload.find(' ');
    auto item = payload.substr(0, end);
    payload = end == std::string_view::npos ? std::string_view{} : payload.substr(end + 1);
    auto colon = item.find(':');
    if (colon == std::string_view::npos)
      continue;
    std::int64_t id = 0;
    task_state st{};
    if (std::from_chars(item.data(), item.data() + colon, id).ec == std::errc{}
        && parse_task_state(item.substr(colon + 1), st))
      out.finished.emplace_back(id, st);
  }
}

}  // namespace tasker::core
