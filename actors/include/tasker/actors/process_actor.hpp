// The process actor: runs programs (argv only, never a shell) with an
// explicit environment and working directory, each child in its own process
// group, with a timeout (SIGTERM to the group, then SIGKILL), capped output
// and rusage in the reply. Opt-in: spawn it with spawn_process_actor() when
// handlers need it.
//
//   auto procs = tasker::actors::spawn_process_actor(w.system());
//   tasker::process_request req;
//   req.argv = {"/usr/bin/convert", "in.png", "out.jpg"};
//   req.timeout_ms = 10000;
//   self->request(procs, 15s, tasker::run_atom_v, req)
//       .then([](tasker::process_result& r) { /* r.exit_code, r.stdout_data… */ });
//
// The actor itself only routes messages, on a thread of its own (detached),
// so that blocking clients on CAF's pool can never starve it. One I/O thread per actor does
// everything else: posix_spawn, one epoll set over every child's pipes and pidfd, timers, and wait4
// once a child has exited, so no CAF thread ever waits for a child.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <tasker/actors/detail/process_runner.hpp>
#include <tasker/messages/messages.hpp>

namespace tasker::actors {

/// The process actor's protocol. run: start a program, reply when it ended;
/// cancel: terminate the run with that request id (true when one was in
/// flight); done: internal, from the I/O thread.
using process_actor =
    caf::typed_actor<caf::replies_to<run_atom, process_request>::with<process_result>,
                     caf::replies_to<cancel_atom, std::uint64_t>::with<bool>,
                     caf::reacts_to<done_atom, std::uint64_t, process_result>>;

struct process_actor_config {
  /// Children running at once; further runs wait in line (their timeout
  /// starts when they are spawned).
  std::size_t max_running = 256;
  /// Where a bare program name is looked up when the request's environment
  /// has no PATH (posix_spawnp would use the worker's own PATH instead).
  std::string default_path = "/usr/local/bin:/usr/bin:/bin";
};

struct process_state {
  static inline const char* name = "tasker.process";
  std::unique_ptr<detail::process_runner> runner;
  std::string broken;  ///< why the runner could not start (every run fails with it)
  std::uint64_t next_key = 1;
  struct in_flight {
    caf::typed_response_promise<process_result> promise;
    std::uint64_t id = 0;  ///< the request's id
  };
  /// Runs in flight by key (the runner's name for them), and keys by request id.
  std::unordered_map<std::uint64_t, in_flight> pending;
  std::unordered_map<std::uint64_t, std::uint64_t> keys_by_id;
};

/// The behavior of a process actor (spawn_process_actor runs it detached).
process_actor::behavior_type process_worker(process_actor::stateful_pointer<process_state> self,
                                            process_actor_config config);

/// Spawns a process actor with its I/O thread. It stops on an exit message
/// (caf::anon_send_exit; runs in flight are answered with shut_down, and
/// their children killed and reaped), or when its last handle is gone and no
/// run is in flight.
process_actor spawn_process_actor(caf::actor_system& sys, process_actor_config config = {});

/// A blocking client for function handlers and non-actor code. run() waits
/// for the request's timeout plus its grace period plus `slack` (or
/// `max_wait` when the request has no timeout), never forever; when that
/// passes it cancels the run and returns an io_error result. A request
/// without an id gets one (high bit set) so that it can be cancelled.
class process_client {
public:
  process_client(caf::actor_system& sys, process_actor actor,
                 std::chrono::milliseconds slack = std::chrono::milliseconds{5000},
                 std::chrono::milliseconds max_wait = std::chrono::hours{1});

  process_result run(process_request request) const;
  /// Cancels the run with request id `id`; true when it was in flight.
  bool cancel(std::uint64_t id) const;

private:
  caf::actor_system* sys_;
  process_actor actor_;
  std::chrono::milliseconds slack_;
  std::chrono::milliseconds max_wait_;
};

}  // namespace tasker::actors
