// Where the poller's claimed steps go, as a plain value a test drives
// without an actor system: per handler, which instances are busy and which
// steps wait for one; and how many steps to claim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tasker::actors {

class dispatcher {
public:
  /// One handler's instances and its queue.
  struct lane {
    /// Steps per instance whose reply has not come back. A step that timed
    /// out keeps its instance busy until the late reply: the instance is
    /// still working on it.
    std::vector<std::size_t> active;
    std::vector<std::uint64_t> generation;  ///< bumped when an instance is replaced
    std::deque<std::int64_t> queued;        ///< claimed steps waiting for a free instance
    /// Whether an instance is free and nothing waits for one.
    bool idles() const;
  };

  /// Which instance a step goes to; `generation` tells its reply from one
  /// of a replaced instance.
  struct assignment {
    std::int64_t step_id;
    std::size_t instance;
    std::uint64_t generation;
  };

  /// `max_in_flight`: claimed and not completed, at most; `batch_size`: steps per claim.
  dispatcher(std::size_t max_in_flight, std::size_t batch_size)
    : max_in_flight_(max_in_flight), batch_size_(batch_size) {}

  /// Adds a handler run by `instances` actors.
  lane& add(const std::string& handler, std::size_t instances);
  /// The handler's lane; null when no handler has that name.
  lane* find(const std::string& handler);
  std::unordered_map<std::string, lane>& lanes() { return lanes_; }

  /// The next queued step of `l` and a free instance for it, now counted
  /// busy; nothing when the queue is empty or every instance is busy.
  static std::optional<assignment> next(lane& l);
  /// A reply of instance `i` of generation `g` came back: frees the
  /// instance; false (nothing changes) when it was replaced since.
  static bool release(lane& l, std::size_t i, std::uint64_t g);
  /// Instance `i` was replaced: it is free, and replies of its old self no
  /// longer count.
  static void replace(lane& l, std::size_t i);

  /// Free places, when `load` steps are claimed and not completed.
  std::size_t capacity(std::size_t load) const {
    return load >= max_in_flight_ ? 0 : max_in_flight_ - load;
  }
  /// How many steps to claim now, at `load`, once `freed` results complete;
  /// 0: not worth a store transaction yet. A claim smaller than a batch only
  /// when some handler instance would otherwise idle (see docs/benchmarks.md).
  std::size_t claim_size(std::size_t load, std::size_t freed = 0) const;
  std::size_t batch_size() const { return batch_size_; }
  std::size_t max_in_flight() const { return max_in_flight_; }

private:
  std::size_t max_in_flight_;
  std::size_t batch_size_;
  std::unordered_map<std::string, lane> lanes_;
};

}  // namespace tasker::actors
