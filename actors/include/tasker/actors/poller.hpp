// The poller actor: the only caller of the core's worker calls (poll,
// complete, heartbeat) in a worker process. It claims steps up to
// free capacity, hands each to its handler's actors, batches their results
// into one tk_complete, heartbeats leases, and sleeps until the core, a
// result, its one timer or the slow fallback poll wakes it. What to claim and
// where a step goes is decided by its dispatcher; what the core gets back is
// kept in its completion batch (both plain values, tested without actors).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/response_promise.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <tasker/actors/completion_batch.hpp>
#include <tasker/actors/core_error.hpp>
#include <tasker/actors/dispatcher.hpp>
#include <tasker/actors/observer.hpp>
#include <tasker/actors/step_handler.hpp>
#include <tasker/core.h>
#include <tasker/messages/messages.hpp>

namespace tasker::actors {

/// The poller's public protocol: what the worker and the HTTP actor ask of
/// it. (Task operations go to a task_service, which calls the core directly.)
using poller_actor = caf::typed_actor<caf::replies_to<idle_atom>::with<bool>,
                                      caf::replies_to<drain_atom, std::int64_t>::with<bool>,
                                      caf::replies_to<ping_atom>::with<bool>>;

/// The poller as it runs: the public protocol plus its own wake-ups and
/// timers, which only it (and the core's callbacks) send.
using poller_impl =
    poller_actor::extend<caf::reacts_to<wake_atom>, caf::reacts_to<flush_atom>,
                         caf::reacts_to<tick_atom, std::uint64_t>, caf::reacts_to<deadline_atom>,
                         caf::reacts_to<fallback_atom>, caf::reacts_to<heartbeat_atom>>;

/// The core a poller borrows. (A wrapper because CAF's spawn takes a raw
/// pointer argument for an actor.)
struct core_ref {
  tk_core* core = nullptr;
};

/// Where the steps of one handler name go.
struct handler_route {
  std::vector<step_handler_actor> instances;  ///< its actors; one step each at a time
  std::chrono::milliseconds timeout{30000};   ///< when the step has none of its own
  /// Makes a replacement for an instance that died (empty: none is made, and
  /// steps sent to the dead instance fail until the worker restarts).
  std::function<step_handler_actor()> respawn = nullptr;
  /// The entry points its actors answer (step_event::method); a step naming
  /// another fails as a permanent handler_not_found, never dispatched.
  std::vector<std::string> methods{"call"};
};

struct poller_config {
  std::string worker_name = "worker";
  std::vector<std::string> namespaces;  ///< empty: all
  std::size_t max_in_flight = 128;      ///< claimed and not yet completed
  std::size_t batch_size = 64;          ///< steps per tk_poll
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds fallback_poll{1000};  ///< safety net only
  /// Told of every claim, start, finish and store call, in this order (the
  /// worker's: its logger, and its profiler when it profiles); at most
  /// max_observers. Without any the poller pays one check per hook.
  std::vector<std::shared_ptr<actors::observer>> observers;
  static constexpr std::size_t max_observers = 4;
};

/// What the poller is doing.
enum class poller_mode : std::uint8_t {
  running,      ///< claiming and completing
  backing_off,  ///< a store call failed: nothing is tried before store_retry_at
  draining,     ///< claiming nothing new; finishing what runs, up to drain_deadline
};

/// The poller's state. Decisions are member functions, so tests can drive
/// them with CAF's test coordinator.
struct poller_state {
  static inline const char* name = "tasker.poller";

  /// A claimed step, until the core has its result.
  struct in_flight {
    /// The claimed step. Its payloads move into the handler's request at
    /// dispatch; its ids and names stay for the observers.
    step_event event;
    std::chrono::steady_clock::time_point claimed_at{};
    std::chrono::steady_clock::time_point started{};
    bool dispatched = false;
    bool finished = false;  ///< its result waits in `completions`
    std::size_t instance = 0;
    std::array<void*, poller_config::max_observers> cookies{};  ///< one per observer
  };

  /// When a dispatched step's handler must have answered.
  struct deadline {
    std::chrono::steady_clock::time_point at;
    std::int64_t step_id;
    std::int64_t token;
    std::chrono::milliseconds timeout;
    bool operator>(const deadline& o) const { return at > o.at; }
  };

  /// A handler's actors (the dispatcher keeps which are busy).
  struct route_state {
    handler_route route;
    dispatcher::lane* lane = nullptr;
  };

  poller_impl::stateful_pointer<poller_state> self = nullptr;
  poller_config config;
  /// Where the core's wake-up callback goes. Called on our thread (during
  /// our own store calls) it sets a flag; called from another thread (the
  /// PostgreSQL store's LISTEN thread, reporting other processes' work; or a
  /// client creating a task) it sends us one wake_atom until we take it.
  struct callback_target {
    poller_state* state = nullptr;
    std::thread::id owner;
    caf::actor_addr addr;
    std::atomic<bool> wake_sent{false};
    /// Called from another thread: send one wake_atom.
    void remote();
  };
  std::unique_ptr<callback_target> callbacks;
  tk_core* core = nullptr;  ///< borrowed: its owner outlives the poller
  tk_worker* worker = nullptr;
  dispatcher routing{0, 0};
  std::unordered_map<std::string, route_state> routes;
  std::unordered_map<std::int64_t, in_flight> running;  ///< by step id
  completion_batch completions;                         ///< to complete in the next flush
  poller_mode mode = poller_mode::running;
  bool flush_scheduled = false;
  bool wake_flag = false;  ///< set by the core's wake-up callback during our own calls
  bool core_dry = true;    ///< the last claim got fewer steps than it asked for
  /// After a failed store call: wait this long (doubling from 100 ms up to
  /// 5 s, reset by the next success) before calling the store again.
  std::chrono::milliseconds store_backoff{0};
  std::chrono::steady_clock::time_point store_retry_at{};
  std::chrono::steady_clock::time_point drain_deadline{};
  /// Handler deadlines, earliest first; one delayed message for the earliest
  /// (cheaper than a CAF request timeout per step, which costs a clock entry).
  std::priority_queue<deadline, std::vector<deadline>, std::greater<>> deadlines;
  bool deadline_armed = false;
  std::chrono::steady_clock::time_point deadline_armed_at{};
  std::uint64_t timer_generation = 0;
  bool timer_armed = false;
  std::chrono::steady_clock::time_point timer_due{};
  std::vector<caf::typed_response_promise<bool>> idle_waiters;
  std::vector<caf::typed_response_promise<bool>> drain_waiters;
  std::uint64_t steps_claimed = 0, steps_completed = 0;
  std::uint64_t poll_calls = 0, complete_calls = 0, heartbeat_calls = 0;
  std::vector<actors::observer*> obs;  ///< config.observers

  ~poller_state();

  /// The actor clock's time: real time in a worker, virtual time under CAF's
  /// test coordinator, so timeouts and deadlines are testable.
  std::chrono::steady_clock::time_point now() const { return self->clock().now(); }

  /// Opens the worker handle and installs the core's wake-up callback.
  void init(poller_impl::stateful_pointer<poller_state> self_ptr, tk_core* borrowed_core,
            poller_config cfg, std::unordered_map<std::string, handler_route> handler_routes);

  /// Completes pending results, claims up to capacity, re-arms the timer,
  /// answers idle/drain waiters. Every message handler ends here.
  void pump();
  /// Claimed steps not yet completed (dispatched, queued or with a pending result).
  std::size_t load() const { return running.size(); }
  std::size_t capacity() const { return routing.capacity(load()); }
  /// How many steps to claim now (after `freed` pending results complete); 0: none.
  std::size_t claim_size(std::size_t freed) const;
  /// Claims up to capacity; false when the core had fewer ready steps than asked.
  bool claim();
  void dispatch(route_state& route);
  /// A step's result came (`timed_out`: the poller's own timeout made it).
  void on_result(std::int64_t step_id, std::int64_t token, step_result result,
                 bool timed_out = false);
  void flush();
  /// Completes pending results and claims in one store call; false if it failed.
  bool cycle();
  /// Applies the core's outcomes of completing the batch.
  void completed();
  /// Takes claimed events into `running` and dispatches them.
  void accept(const tk_step_event* events, std::size_t count, std::size_t wanted);
  /// Arranges the next flush (one message for all results that arrive before it).
  void schedule_flush();
  void heartbeat();
  /// Fails the steps whose handler deadline passed; re-arms for the next one.
  void expire_deadlines();
  void arm_deadline(std::chrono::steady_clock::time_point at);
  void arm_timer();
  bool store_paused() const;
  /// Takes the wake-up another thread sent (the pump that follows claims).
  void take_remote();
  void store_failed(const std::string& what, const char* message);
  void store_ok();
  bool idle() const;
  /// Starts draining: claim nothing new, answer `promise` once what runs is
  /// done (true) or the deadline passed (false).
  void drain(std::chrono::milliseconds within, caf::typed_response_promise<bool> promise);
  /// One cheap store call (a one-task list): can the core answer now?
  tk_status ping(tk_error& err);
  /// A handler instance died: its running steps fail (retryable handler_error)
  /// and, when the route can, a new instance takes its place.
  void instance_down(const caf::down_msg& dm);
  /// A reply (or error) from instance `i` of `route` came back.
  void release_instance(route_state& route, std::size_t i, std::uint64_t generation);
  // Observer calls (only made when there are observers).
  void observe_claimed(std::int64_t step_id, in_flight& f);
  void observe_started(std::int64_t step_id, const in_flight& f);
  void observe_finished(std::int64_t step_id, const in_flight& f, const step_result& r,
                        step_outcome outcome);
};

/// Spawns nothing: the behavior of a poller; spawn it detached in a worker
/// (store calls block), or on the test coordinator in tests. `core` is
/// borrowed: whoever owns it (a task_service, in a worker) closes it only
/// after the poller has quit.
poller_impl::behavior_type poller(poller_impl::stateful_pointer<poller_state> self, core_ref core,
                                  poller_config config,
                                  std::unordered_map<std::string, handler_route> routes);

}  // namespace tasker::actors
