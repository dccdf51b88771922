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
    const char** targets[field_count] = {&e.wait_token, &e.signal_name, &e.signal_payload,
                                         &e.step_name, &e.step_inputs};
    std::size_t* lens[field_count] = {&e.wait_token_len, &e.signal_name_len, &e.signal_payload_len,
                                      &e.step_name_len, &e.step_inputs_len};
    for (int f = 0; f < field_count; ++f) {
      if (s.set[f]) {
        *targets[f] = base + s.at[f];
        *lens[f] = s.len[f];
      } else if (f == step_inputs) {
        *targets[f] = "{}";
        *lens[f] = 2;
      } else if (f != step_name) {  // step_name keeps the pipeline's
        *targets[f] = nullptr;
        *lens[f] = 0;
      }
    }
    if (!pooled_) {
      const char** strings[7] = {&e.task_context, &e.dependency_results, &e.wait_token,
                                 &e.signal_name,  &e.signal_payload,     &e.step_name,
                                 &e.step_inputs};
      const std::size_t sizes[7] = {e.task_context_len, e.dependency_results_len, e.wait_token_len,
                                    e.signal_name_len,  e.signal_payload_len,     e.step_name_len,
                                    e.step_inputs_len};
      for (int k = 0; k < 7; ++k) {
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
