// Helpers for the doctest suites over the C ABI: opening cores and workers,
// pipeline JSON builders, and owned copies of claimed steps.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <tasker/core.hpp>
#include <tasker/core_testing.h>
#include <tasker/test/manual_clock.hpp>
#include <tasker/test/temp_dir.hpp>

namespace tasker::test {

using nlohmann::json;

using tasker::core_handle;

/// Opens a core (a failed check when it cannot), closed when the handle goes.
inline core_handle open_core(const std::string& url, const char* options = nullptr) {
  tk_error err{};
  auto core = core_handle::open(url.c_str(), options, err);
  INFO("tk_open(", url, "): ", err.message);
  REQUIRE(core);
  return core;
}

/// Makes `clock` the core's clock.
inline void use_clock(tk_core* core, manual_clock& clock) {
  tk_error err{};
  INFO("tk_set_clock: ", err.message);
  REQUIRE(clock.install(core, &err) == TK_OK);
}

/// Owns a tk_worker; closes it on destruction (before its core). It claims
/// from `namespaces` (empty: all) with leases of `lease_ms` (0: the core's default).
class worker_handle {
public:
  worker_handle(tk_core* core, const char* name, std::int64_t lease_ms = 0,
                const std::vector<const char*>& namespaces = {}) {
    tk_error err{};
    tk_worker_options options{};
    options.name = name;
    options.namespaces = namespaces.empty() ? nullptr : namespaces.data();
    options.namespace_count = namespaces.size();
    options.lease_ms = lease_ms;
    worker_ = tk_worker_open(core, &options, &err);
    INFO("tk_worker_open: ", err.message);
    REQUIRE(worker_ != nullptr);
  }
  ~worker_handle() { close(); }
  worker_handle(const worker_handle&) = delete;
  worker_handle& operator=(const worker_handle&) = delete;

  void close() {
    tk_worker_close(worker_);
    worker_ = nullptr;
  }
  tk_worker* get() const { return worker_; }
  operator tk_worker*() const { return worker_; }

private:
  tk_worker* worker_ = nullptr;
};

// ---- pipelines ----------------------------------------------------------

/// A retry policy object; jitter defaults to 0 so delays are exact.
inline json retry_policy(int max_attempts, std::string_view backoff = "none",
                         std::int64_t base_ms = 1000, std::int64_t cap_ms = 30000,
                         double jitter = 0.0, bool retryable = true) {
  return json{{"max_attempts", max_attempts},
              {"backoff", backoff},
              {"base_ms", base_ms},
              {"cap_ms", cap_ms},
              {"jitter", jitter},
              {"retryable", retryable}};
}

/// One step of a pipeline under construction.
struct step_spec {
  std::string name;
  std::vector<std::string> dependencies = {};
  json retry = nullptr;  ///< null: the default policy
  std::string handler = "noop";
  json config = nullptr;  ///< null: none
  std::string type = {};  ///< empty: standard
  json batch_config = nullptr;
};

inline json step_json(const step_spec& s) {
  json j{{"name", s.name}, {"handler", s.handler}, {"dependencies", s.dependencies}};
  if (!s.retry.is_null())
    j["retry"] = s.retry;
  if (!s.config.is_null())
    j["config"] = s.config;
  if (!s.type.empty())
    j["type"] = s.type;
  if (!s.batch_config.is_null())
    j["batch_config"] = s.batch_config;
  return j;
}

/// A pipeline definition as the JSON text tk_register_pipeline takes.
inline std::string pipeline_json(std::string_view ns, std::string_view name,
                                 const std::vector<step_spec>& steps,
                                 std::string_view version = "1") {
  json arr = json::array();
  for (const auto& s : steps)
    arr.push_back(step_json(s));
  return json{{"namespace", ns}, {"name", name}, {"version", version}, {"steps", arr}}.dump();
}

/// a -> b -> c -> d
inline std::vector<step_spec> linear_steps(json retry = nullptr) {
  return {{"a", {}, retry}, {"b", {"a"}, retry}, {"c", {"b"}, retry}, {"d", {"c"}, retry}};
}

/// a -> (b, c) -> d
inline std::vector<step_spec> diamond_steps(json retry = nullptr) {
  return {{"a", {}, retry}, {"b", {"a"}, retry}, {"c", {"a"}, retry}, {"d", {"b", "c"}, retry}};
}

inline void register_pipeline(tk_core* core, const std::string& pipeline) {
  tk_error err{};
  INFO("pipeline: ", pipeline);
  INFO("error: ", err.message);
  REQUIRE(tk_register_pipeline(core, pipeline.c_str(), &err) == TK_OK);
}

// ---- tasks ----------------------------------------------------------------

/// What to create; namespace/name/version default to the suites' usual pipeline.
struct task_args {
  std::string ns = "test";
  std::string name = "flow";
  std::string version = "1";
  std::string context = "{}";
  const char* idempotency_key = nullptr;
  std::int32_t priority = 0;
};

inline tk_status try_create_task(tk_core* core, const task_args& a, std::int64_t& id, int* created,
                                 tk_error& err) {
  tk_task_spec spec{};
  spec.namespace_name = a.ns.c_str();
  spec.name = a.name.c_str();
  spec.version = a.version.c_str();
  spec.context_json = a.context.c_str();
  spec.idempotency_key = a.idempotency_key;
  spec.priority = a.priority;
  return tk_create_task(core, &spec, &id, created, &err);
}

inline std::int64_t create_task(tk_core* core, const task_args& a = {}) {
  tk_error err{};
  std::int64_t id = 0;
  int created = -1;
  INFO("tk_create_task: ", err.message);
  REQUIRE(try_create_task(core, a, id, &created, err) == TK_OK);
  CHECK(created == 1);
  return id;
}

/// The parsed tk_task_status JSON.
inline json task_status(tk_core* core, std::int64_t task_id) {
  tk_error err{};
  char* text = nullptr;
  INFO("tk_task_status: ", err.message);
  REQUIRE(tk_task_status(core, task_id, &text, &err) == TK_OK);
  REQUIRE(text != nullptr);
  json j = json::parse(text, nullptr, false);
  tk_free(text);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

/// The entry of step `name` in a status document (a failed check when absent).
inline json step_status(const json& status, std::string_view name) {
  for (const auto& s : status.at("steps"))
    if (s.at("name") == name)
      return s;
  FAIL_CHECK("no step named ", name);
  return json::object();
}

inline std::string task_state(tk_core* core, std::int64_t task_id) {
  return task_status(core, task_id).at("state").get<std::string>();
}

/// The parsed tk_list_tasks JSON for a filter (NULL: none).
inline json list_tasks(tk_core* core, const char* filter) {
  tk_error err{};
  char* text = nullptr;
  INFO("tk_list_tasks: ", err.message);
  REQUIRE(tk_list_tasks(core, filter, &text, &err) == TK_OK);
  REQUIRE(text != nullptr);
  json j = json::parse(text, nullptr, false);
  tk_free(text);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

/// tk_next_due of a worker of `namespaces` (empty: all) opened for the question.
inline std::int64_t next_due(tk_core* core, const std::vector<const char*>& namespaces = {}) {
  worker_handle asking(core, "next-due", 0, namespaces);
  tk_error err{};
  std::int64_t delay = -2;
  INFO("tk_next_due: ", err.message);
  REQUIRE(tk_next_due(asking, &delay, &err) == TK_OK);
  return delay;
}

// ---- the worker side ------------------------------------------------------

/// An owned copy of a tk_step_event (events die at the next poll).
struct claimed_step {
  std::int64_t task_id = 0;
  std::int64_t step_id = 0;
  std::string ns, step_name, handler, method;
  json config, context, dependency_results;
  std::int32_t attempt = 0;
  std::int32_t max_attempts = 0;
  std::int64_t fencing_token = 0;
  std::int64_t lease_expires_at_ms = 0;
  std::int64_t timeout_ms = 0;
  std::string wait_token;
  bool signalled = false;  ///< the event carries a signal
  std::string signal_name;
  json signal_payload;
  json step_inputs;
};

inline json parse_event_json(const char* text, std::size_t len, const char* what) {
  INFO(what);
  REQUIRE(text != nullptr);
  CHECK(std::strlen(text) == len);
  json j = json::parse(std::string_view(text, len), nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  CHECK(j.is_object());
  return j;
}

inline claimed_step copy_event(const tk_step_event& e) {
  claimed_step c;
  c.task_id = e.task_id;
  c.step_id = e.step_id;
  REQUIRE(e.namespace_name != nullptr);
  REQUIRE(e.step_name != nullptr);
  REQUIRE(e.handler != nullptr);
  c.ns = e.namespace_name;
  c.step_name = e.step_name;
  c.handler = e.handler;
  CHECK(c.step_name.size() == e.step_name_len);
  CHECK(c.handler.size() == e.handler_len);
  REQUIRE(e.method != nullptr);
  c.method.assign(e.method, e.method_len);
  CHECK(std::strlen(e.method) == e.method_len);
  c.config = parse_event_json(e.handler_config, e.handler_config_len, "handler_config");
  c.context = parse_event_json(e.task_context, e.task_context_len, "task_context");
  c.dependency_results =
      parse_event_json(e.dependency_results, e.dependency_results_len, "dependency_results");
  c.attempt = e.attempt;
  c.max_attempts = e.max_attempts;
  c.fencing_token = e.fencing_token;
  c.lease_expires_at_ms = e.lease_expires_at_ms;
  c.timeout_ms = e.timeout_ms;
  REQUIRE(e.wait_token != nullptr);
  c.wait_token = e.wait_token;
  CHECK(c.wait_token.size() == e.wait_token_len);
  c.step_inputs = parse_event_json(e.step_inputs, e.step_inputs_len, "step_inputs");
  c.signalled = e.signal_payload != nullptr;
  CHECK((e.signal_name != nullptr) == c.signalled);
  if (c.signalled) {
    c.signal_name = e.signal_name;
    CHECK(c.signal_name.size() == e.signal_name_len);
    CHECK(std::strlen(e.signal_payload) == e.signal_payload_len);
    c.signal_payload = json::parse(e.signal_payload, nullptr, false);
    CHECK_FALSE(c.signal_payload.is_discarded());
  }
  return c;
}

/// Polls up to `max` steps (of the worker's namespaces) and copies them.
inline std::vector<claimed_step> poll(tk_worker* worker, std::size_t max) {
  tk_error err{};
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  INFO("tk_poll: ", err.message);
  REQUIRE(tk_poll(worker, max, &events, &count, &err) == TK_OK);
  REQUIRE(count <= max);
  std::vector<claimed_step> out;
  for (std::size_t i = 0; i < count; ++i)
    out.push_back(copy_event(events[i]));
  return out;
}

/// Polls exactly one step.
inline claimed_step poll_one(tk_worker* worker) {
  auto got = poll(worker, 1);
  REQUIRE(got.size() == 1);
  return got.front();
}

inline tk_step_result success_result(const claimed_step& s, const char* result_json) {
  tk_step_result r{};
  r.step_id = s.step_id;
  r.fencing_token = s.fencing_token;
  r.kind = TK_RESULT_SUCCESS;
  r.result_json = result_json;
  return r;
}

inline tk_step_result failure_result(const claimed_step& s, const char* message, const char* type,
                                     bool retryable, std::int64_t retry_after_ms = 0) {
  tk_step_result r{};
  r.step_id = s.step_id;
  r.fencing_token = s.fencing_token;
  r.kind = TK_RESULT_FAILURE;
  r.error_message = message;
  r.error_type = type;
  r.retryable = retryable ? 1 : 0;
  r.retry_after_ms = retry_after_ms;
  return r;
}

inline tk_step_result wait_result(const claimed_step& s, const char* signal_name,
                                  std::int64_t timeout_ms) {
  tk_step_result r{};
  r.step_id = s.step_id;
  r.fencing_token = s.fencing_token;
  r.kind = TK_RESULT_WAIT;
  r.wait_signal = signal_name;
  r.wait_timeout_ms = timeout_ms;
  return r;
}

/// Completes a batch; returns the per-item outcomes.
inline std::vector<int> complete(tk_worker* worker, const std::vector<tk_step_result>& results) {
  tk_error err{};
  std::vector<int> outcomes(results.size(), -1);
  INFO("tk_complete: ", err.message);
  REQUIRE(tk_complete(worker, results.data(), results.size(), outcomes.data(), &err) == TK_OK);
  return outcomes;
}

/// Completes a batch and claims up to `max` steps in the same call
/// (tk_complete_and_poll): the outcomes go to `outcomes`, the
/// claimed steps come back.
inline std::vector<claimed_step> complete_and_poll(tk_worker* worker,
                                                   const std::vector<tk_step_result>& results,
                                                   std::vector<int>& outcomes,
                                                   std::size_t max = 10) {
  tk_error err{};
  outcomes.assign(results.size(), -1);
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  INFO("tk_complete_and_poll: ", err.message);
  REQUIRE(tk_complete_and_poll(worker, results.data(), results.size(), outcomes.data(), max,
                               &events, &count, &err)
          == TK_OK);
  std::vector<claimed_step> got;
  for (std::size_t i = 0; i < count; ++i)
    got.push_back(copy_event(events[i]));
  return got;
}

/// Completes one step successfully; returns its outcome.
inline int succeed(tk_worker* worker, const claimed_step& s, const char* result_json = "{}") {
  return complete(worker, {success_result(s, result_json)}).front();
}

/// Fails one step; returns its outcome.
inline int fail(tk_worker* worker, const claimed_step& s, bool retryable,
                std::int64_t retry_after_ms = 0, const char* message = "boom",
                const char* type = "test_error") {
  return complete(worker, {failure_result(s, message, type, retryable, retry_after_ms)}).front();
}

/// Answers "wait for `signal_name`" for one step; returns its outcome.
inline int wait_for(tk_worker* worker, const claimed_step& s, const char* signal_name,
                    std::int64_t timeout_ms) {
  return complete(worker, {wait_result(s, signal_name, timeout_ms)}).front();
}

/// tk_signal; returns its status (the message in `err`).
inline tk_status signal(tk_core* core, const std::string& token, const char* payload,
                        tk_error& err) {
  return tk_signal(core, token.c_str(), payload, &err);
}

/// Heartbeats one step (with the worker's lease); returns its outcome.
inline int heartbeat(tk_worker* worker, std::int64_t step_id, std::int64_t token) {
  tk_error err{};
  int outcome = -1;
  INFO("tk_heartbeat: ", err.message);
  REQUIRE(tk_heartbeat(worker, &step_id, &token, 1, &outcome, &err) == TK_OK);
  return outcome;
}

}  // namespace tasker::test
