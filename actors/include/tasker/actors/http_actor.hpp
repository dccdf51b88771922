// The HTTP actor: a Boost.Beast server on an io_context thread of its own.
// Requests that need the core go to a bridge actor on a thread of its own,
// which calls the task service (the core's C ABI, directly) and posts each
// answer back to its connection, so the I/O thread never waits for the
// store. Readiness asks the poller, when there is one. Opt-in: the worker
// starts one when `http-port` is set; tests and embedders can start one on
// any task service.
//
//   tasker::actors::http_config hc;
//   hc.port = 0;                                  // ephemeral
//   tasker::actors::http_server http{sys, tasks, poller, hc};
//   std::printf("listening on %u\n", http.port());
//   ...
//   http.stop(std::chrono::seconds{5});           // graceful
//
// Routes (all answers are JSON except /metrics):
//   GET  /health, /health/live        200 while the server runs
//   GET  /health/ready                200 when the poller and its store answer, else 503
//   GET  /metrics                     Prometheus text
//   POST /v1/tasks                    create; 201 {"id","created":true} or 200 for a repeat
//   GET  /v1/tasks                    list (?state=&namespace=&after=&limit=)
//   GET  /v1/tasks/{id}               status
//   POST /v1/tasks/{id}/cancel        cancel
//   POST /v1/signals/{token}          deliver a signal (tk_signal; body: the payload JSON)
// With a bearer token configured, every route but /health* needs
// `Authorization: Bearer <token>` (/metrics included).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include <tasker/actors/poller.hpp>
#include <tasker/actors/task_service.hpp>

namespace tasker::actors {

/// An HTTP answer made outside the server (by the signal hook).
struct http_reply {
  unsigned status = 200;  ///< an HTTP status code
  std::string body;       ///< JSON
};

struct http_config {
  std::string bind = "127.0.0.1";  ///< address to listen on
  std::uint16_t port = 0;          ///< 0: an ephemeral port (see http_server::port)
  /// Bearer token; empty: no authentication. When set, every route but
  /// /health, /health/live and /health/ready needs it.
  std::string token;
  std::size_t max_body_bytes = 1 << 20;     ///< larger bodies: 413
  std::size_t max_header_bytes = 16 << 10;  ///< larger headers: 431
  /// From a request's first byte to its last, and for writing an answer.
  std::chrono::milliseconds read_timeout{10000};
  /// A keep-alive connection that owes nothing and receives nothing is closed after this.
  std::chrono::milliseconds idle_timeout{30000};
  /// How long /health/ready waits for the poller; then 503. (Task requests
  /// call the store directly: its own bounds apply, e.g. SQLite's
  /// busy_timeout_ms.)
  std::chrono::milliseconds ready_timeout{1000};
  /// Requests of one connection read ahead of their answers (answers go
  /// out in request order); reading pauses at this many.
  std::size_t max_pipelined = 16;
  /// Connections at once; more are closed as soon as they are accepted.
  std::size_t max_connections = 1024;
  /// Prometheus text to add to /metrics (the server adds its own counters).
  /// Called on the I/O thread: it must be quick and thread-safe.
  std::function<std::string()> metrics;
  /// Replaces how POST /v1/signals/{token} is answered (token, request
  /// body): for embedders that route signals elsewhere, and for tests. Called
  /// on a CAF scheduler thread, never on the I/O thread. Empty (the default):
  /// the task service delivers the signal with tk_signal: 200 {"signalled":true},
  /// 404 for an unknown token, 409 for one used already or whose wait is
  /// over, 400 for a body that is not JSON.
  std::function<http_reply(const std::string& token, const std::string& body)> signal;
};

/// The server. Construction binds and starts the I/O thread (throws
/// std::runtime_error when the address cannot be bound); stop() or the
/// destructor ends it. The actor system and the task service must outlive
/// it. `poller` may be null (a server with no claim loop beside it): then
/// /health/ready asks the store itself.
class http_server {
public:
  http_server(caf::actor_system& sys, const task_service& tasks, poller_actor poller,
              http_config config);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound port (the ephemeral one when the config said 0).
  std::uint16_t port() const;

  /// Graceful stop: stops accepting, closes idle connections, lets requests
  /// already read get their answers for up to `deadline`, then closes what
  /// is left and joins the I/O thread. True when nothing was cut off.
  /// Idempotent.
  bool stop(std::chrono::milliseconds deadline = std::chrono::milliseconds{5000});

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

}  // namespace tasker::actors
