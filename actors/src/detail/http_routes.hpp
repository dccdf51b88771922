// The HTTP actor's routing: pure functions from a request to what answers
// it, and from a poller error to an HTTP status. No Beast here (it stays in
// http_actor.cpp), so this compiles fast and is testable without sockets.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <caf/fwd.hpp>
#include <nlohmann/json_fwd.hpp>

#include <tasker/actors/http_actor.hpp>
#include <tasker/messages/task_request.hpp>

namespace tasker::actors::detail {

/// What a request asked for; the label of its counters.
enum class route : std::uint8_t {
  health,   ///< GET /health
  live,     ///< GET /health/live
  ready,    ///< GET /health/ready
  metrics,  ///< GET /metrics
  create,   ///< POST /v1/tasks
  status,   ///< GET /v1/tasks/{id}
  list,     ///< GET /v1/tasks
  cancel,   ///< POST /v1/tasks/{id}/cancel
  signal,   ///< POST /v1/signals/{token}
  other,    ///< unknown path, or a request that could not be parsed
};
constexpr std::size_t route_count = static_cast<std::size_t>(route::other) + 1;
constexpr std::array<const char*, route_count> route_labels = {
    "health",      "health_live", "health_ready", "metrics", "create_task",
    "task_status", "list_tasks",  "cancel_task",  "signal",  "other"};

/// An answer, before it becomes a Beast response.
struct answer {
  unsigned status = 200;
  std::string body;
  bool prometheus = false;  ///< text/plain in the Prometheus format, else JSON
  const char* allow = nullptr;
  bool close = false;  ///< close the connection after it
};

/// Who answers a request.
enum class responder : std::uint8_t {
  now,      ///< the plan's answer, made by routing
  metrics,  ///< the session, from the server's counters and the metrics callback
  submit,   ///< the task service: create, with the created flag
  status,   ///< the task service: status
  list,     ///< the task service: list
  cancel,   ///< the task service: cancel
  ping,     ///< the poller: ping_atom (readiness); the store's ping without one
  signal,   ///< the signal hook, on a scheduler thread
};

struct plan {
  route what = route::other;
  responder by = responder::now;
  answer now;         ///< by == now
  task_request task;  ///< submit
  std::int64_t id = 0;
  std::string text;  ///< list filter JSON; signal token
  std::string body;  ///< signal body
};

/// The parts of a request that routing looks at.
struct request_view {
  std::string_view method;  ///< "GET", "POST"...
  std::string_view target;  ///< path and query
  std::string_view authorization;
  std::string_view body;
};

/// What answers `req`: an answer made now, or the responder to ask.
plan route_request(const http_config& cfg, const request_view& req);

/// A JSON error body, {"error": name of the status, "message": ...}.
answer error_answer(unsigned status, const std::string& message, bool close = false);
answer json_answer(unsigned status, const nlohmann::json& body);

/// The answer to a poller error: the core's status decides, not its message.
answer from_error(const caf::error& e, route what, std::chrono::milliseconds waited);

/// Counters of the I/O thread (read and written there only: no locks).
struct http_counters {
  std::array<std::map<unsigned, std::uint64_t>, route_count> answered;
  std::uint64_t rejected_connections = 0;

  void count(route r, unsigned status) { ++answered[static_cast<std::size_t>(r)][status]; }

  std::string render(std::size_t open_connections) const {
    std::string out;
    out += "# HELP tasker_http_requests_total HTTP requests answered, by route and status code.\n"
           "# TYPE tasker_http_requests_total counter\n";
    for (std::size_t r = 0; r < route_count; ++r)
      for (const auto& [code, n] : answered[r])
        out += "tasker_http_requests_total{route=\"" + std::string(route_labels[r]) + "\",code=\""
               + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    out += "# HELP tasker_http_connections Open HTTP connections.\n"
           "# TYPE tasker_http_connections gauge\n"
           "tasker_http_connections "
           + std::to_string(open_connections)
           + "\n"
             "# HELP tasker_http_connections_rejected_total Connections closed at once because "
             "max_connections were open.\n"
             "# TYPE tasker_http_connections_rejected_total counter\n"
             "tasker_http_connections_rejected_total "
           + std::to_string(rejected_connections) + "\n";
    return out;
  }
};

}  // namespace tasker::actors::detail
