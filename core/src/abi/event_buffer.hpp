// The pooled memory behind the events of one tk_poll: one growing arena for
// the strings built per event, one vector of events. Both are cleared, not
// freed, between polls, so a steady-state poll allocates nothing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/wait_token.hpp"
#include <tasker/core.h>

namespace tasker::core {

class event_buffer {
public:
  /// Pooled (the default): memory is kept from poll to poll. Not pooled:
  /// the baseline a naive FFI would be, for the benchmark of option
  /// "pooled_events": every poll starts from freed memory and every event's
  /// strings get heap blocks of their own.
  void set_pooled(bool pooled) { pooled_ = pooled; }

  /// Forgets the previous poll's events, keeping the capacity.
  void clear();

  /// Starts a new event; string fields that point into the arena are set
  /// with the calls below, other pointers may be set directly (they must
  /// outlive the event).
  tk_step_event& add();

  /// Opens an arena string for the current event's context / dependency results.
  void begin_string() { start_ = arena_.size(); }
  void append(std::string_view s) { arena_.append(s.data(), s.size()); }
  void append(char c) { arena_.push_back(c); }
  /// Closes the string opened last as the current event's task context.
  void end_context();
  /// Closes the string opened last as the current event's dependency results.
  void end_dependency_results();
  /// The optional strings of an event.
  /// step_name, when set, replaces the name the event was given (a batch
  /// worker instance's own); step_inputs is "{}" unless set.
  enum field { wait_token, signal_name, signal_payload, step_name, step_inputs, field_count };
  /// Closes the string opened last as the current event's `f`.
  void end_string(field f);
  /// Appends a wait token (wait_token.hpp) without a temporary string.
  void append_wait_token(const wait_key& key, std::int64_t step_id, std::int64_t seq) {
    tasker::core::append_wait_token(arena_, key, step_id, seq);
  }

  /// Drops the current event (its claim did not happen).
  void drop_last();

  /// Resolves arena offsets to pointers; call once all events are added.
  const tk_step_event* finish();
  std::size_t size() const { return events_.size(); }

private:
  struct spans {
    std::size_t context = 0, context_len = 0, deps = 0, deps_len = 0;
    std::size_t at[field_count] = {}, len[field_count] = {};
    bool set[field_count] = {};
  };
  std::vector<tk_step_event> events_;
  std::vector<spans> spans_;
  std::string arena_;
  std::size_t start_ = 0;
  bool pooled_ = true;
  std::vector<std::unique_ptr<char[]>> copies_;  ///< not pooled: one block per string
};

}  // namespace tasker::core
