#include "abi/event_buffer.hpp"

#include <cstring>

namespace tasker::core {

void event_buffer::clear() {
  if (!pooled_) {
    std::vector<tk_step_event>().swap(events_);
    std::vector<spans>().swap(spans_);
    std::string().swap(arena_);
    std::vector<std::unique_ptr<char[]>>().swap(copies_);
    return;
  }
  events_.clear();
  spans_.clear();
  arena_.clear();
}

tk_step_event& event_buffer::add() {
  events_.emplace_back();
  spans_.emplace_back();
  return events_.back();
}

void event_buffer::end_context() {
  spans_.back().context = start_;
  spans_.back().context_len = arena_.size() - start_;
  arena_.push_back('\0');
}

void event_buffer::end_dependency_results() {
  spans_.back().deps = start_;
  spans_.back().deps_len = arena_.size() - start_;
  arena_.push_back('\0');
}

void event_buffer::end_string(field f) {
  auto& sp = spans_.back();
  sp.at[f] = start_;
  sp.len[f] = arena_.size() - start_;
  sp.set[f] = true;
  arena_.push_back('\0');
}

void event_buffer::drop_last() {
  events_.pop_back();
  spans_.pop_back();
}

const tk_step_event* event_buffer::finish() {
  const char* base = arena_.data();
  for (std::size_t i = 0; i < events_.size(); ++i) {
    auto& e = events_[i];
    const auto& s = spans_[i];
    e.task_context = base + s.context;
    e.task_context_len = s.context_len;
    e.dependency_results = base + s.deps;
    e.dependency_results_len = s.deps_len;
    const char** targets[3] = {&e.wait_token, &e.signal_name, &e.signal_payload};
    std::size_t* lens[3] = {&e.wait_token_len, &e.signal_name_len, &e.signal_payload_len};
    for (int f = 0; f < 3; ++f) {
      *targets[f] = s.set[f] ? base + s.at[f] : nullptr;
      *lens[f] = s.set[f] ? s.len[f] : 0;
    }
    if (!pooled_) {
      const char** strings[5] = {&e.task_context, &e.dependency_results, &e.wait_token,
                                 &e.signal_name, &e.signal_payload};
      const std::size_t sizes[5] = {e.task_context_len, e.dependency_results_len, e.wait_token_len,
                                    e.signal_name_len, e.signal_payload_len};
      for (int k = 0; k < 5; ++k) {
        if (!*strings[k])
          continue;
        copies_.emplace_back(new char[sizes[k] + 1]);
        std::memcpy(copies_.back().get(), *strings[k], sizes[k] + 1);
        *strings[k] = copies_.back().get();
      }
    }
  }
  return events_.data();
}

}  // namespace tasker::core
