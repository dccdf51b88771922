// The results waiting for the core, as a plain value a test drives without
// an actor system: pending results in, the core's tk_step_result array out,
// and the core's per-result outcomes applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <tasker/core.h>
#include <tasker/messages/step_result.hpp>

namespace tasker::actors {

class completion_batch {
public:
  /// A step's result, until the core has it.
  struct entry {
    std::int64_t step_id;
    std::int64_t token;  ///< the claim's fencing token
    step_result result;
  };

  void add(std::int64_t step_id, std::int64_t token, step_result result) {
    pending_.push_back({step_id, token, std::move(result)});
  }
  bool empty() const { return pending_.empty(); }
  std::size_t size() const { return pending_.size(); }
  const std::vector<entry>& pending() const { return pending_; }

  /// The core's view of every pending result (pointing into them; valid
  /// until the next add or settle), with one outcome slot each (outcomes()),
  /// reset to TK_OK.
  const tk_step_result* build();
  int* outcomes() { return outcomes_.data(); }

  /// Applies the outcomes the core wrote after build(). A result the core
  /// refused as malformed or too large becomes a permanent
  /// `malformed_result` failure and stays pending (the step still gets
  /// exactly one result); every other result leaves the batch, and
  /// `done(step_id, outcome)` is called for it (TK_OK, TK_DUPLICATE,
  /// TK_STALE, or another refusal).
  template <class F>
  void settle(F&& done) {
    std::vector<entry> redo;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      auto& p = pending_[i];
      if (outcomes_[i] == TK_MALFORMED_JSON || outcomes_[i] == TK_TOO_LARGE) {
        redo.push_back({p.step_id, p.token, refused(outcomes_[i])});
        continue;
      }
      done(p.step_id, outcomes_[i]);
    }
    pending_ = std::move(redo);
  }

private:
  static step_result refused(int outcome);

  std::vector<entry> pending_;
  std::vector<tk_step_result> batch_;  // reused
  std::vector<int> outcomes_;          // reused
};

}  // namespace tasker::actors
