// The process actor's I/O thread: spawns children with posix_spawn, feeds
// their stdin, drains stdout/stderr and learns of their exit through one
// epoll set, enforces timeouts, and reaps them with wait4.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <tasker/messages/process_messages.hpp>

namespace tasker::actors::detail {

class process_runner {
public:
  /// Called on the I/O thread when a run ends (never while the runner holds
  /// a lock; it may destroy the runner).
  using done_fn = std::function<void(std::uint64_t key, process_result result)>;

  /// Starts the I/O thread. At most `max_running` children run at once; the
  /// rest wait in line (their timeout starts when they are spawned). Bare
  /// program names are looked up in `default_path` when a request's
  /// environment has no PATH. Throws std::system_error when the thread or its
  /// epoll set cannot be made.
  process_runner(std::size_t max_running, std::string default_path, done_fn done);
  /// Kills every child still running (SIGKILL to its process group), reaps
  /// it, and stops the thread; runs still in flight get no result.
  ~process_runner();
  process_runner(const process_runner&) = delete;
  process_runner& operator=(const process_runner&) = delete;

  /// Runs `request`; its result comes back through done_fn under `key`.
  void submit(std::uint64_t key, process_request request);
  /// Terminates the run `key` like a timeout (SIGTERM, then SIGKILL after its
  /// grace period), or drops it if it waits in line; its result says
  /// `cancelled`. Nothing happens for a run that already ended.
  void cancel(std::uint64_t key);

  struct core;

private:
  std::shared_ptr<core> core_;
  std::thread thread_;
};

/// The program posix_spawn should run for `name`: `name` itself when it has a
/// slash, else the first executable regular file `dir/name` of `path` (":"-
/// separated). Empty when none is found.
std::string find_program(const std::string& name, const std::string& path);

}  // namespace tasker::actors::detail
