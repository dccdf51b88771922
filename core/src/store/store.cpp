#include "store/store.hpp"

#include <algorithm>
#include <vector>

#include "abi/error.hpp"
#include "util/json.hpp"

namespace tasker::core {

const char* to_string(step_state s) {
  switch (s) {
    case step_state::pending: return "pending";
    case step_state::ready: return "ready";
    case step_state::running: return "running";
    case step_state::waiting_for_retry: return "waiting_for_retry";
    case step_state::complete: return "complete";
    case step_state::error: return "error";
    case step_state::cancelled: return "cancelled";
    case step_state::waiting: return "waiting";
    case step_state::dormant: return "dormant";
    case step_state::skipped: return "skipped";
  }
  return "unknown";
}

const char* to_string(task_state s) {
  switch (s) {
    case task_state::pending: return "pending";
    case task_state::running: return "running";
    case task_state::complete: return "complete";
    case task_state::error: return "error";
    case task_state::cancelled: return "cancelled";
  }
  return "unknown";
}

bool parse_task_state(std::string_view name, task_state& out) {
  for (auto s : {task_state::pending, task_state::running, task_state::complete, task_state::error,
                 task_state::cancelled})
    if (name == to_string(s)) {
      out = s;
      return true;
    }
  return false;
}

bool parse_step_state(std::string_view name, step_state& out) {
  for (auto s :
       {step_state::pending, step_state::ready, step_state::running, step_state::waiting_for_retry,
        step_state::complete, step_state::error, step_state::cancelled, step_state::waiting,
        step_state::dormant, step_state::skipped})
    if (name == to_string(s)) {
      out = s;
      return true;
    }
  return false;
}

namespace {

void field(std::string& out, const char* key) {
  out += '"';
  out += key;
  out += "\":";
}

void time_or_null(std::string& out, millis t) {
  if (t < 0)
    out += "null";
  else
    out += std::to_string(t);
}

void json_or_null(std::string& out, const std::string& json) {
  out += json.empty() ? std::string_view{"null"} : std::string_view{json};
}

// `{"id":…,"namespace":…,"name":…,"version":…,"state":…` — shared by status and list.
void append_task_head(std::string& out, const task_row& t) {
  const auto& p = *t.pipeline;
  out += "{\"id\":" + std::to_string(t.id) + ',';
  field(out, "namespace");
  append_json_string(out, p.namespace_name);
  out += ',';
  field(out, "name");
  append_json_string(out, p.name);
  out += ',';
  field(out, "version");
  append_json_string(out, p.version);
  out += ',';
  field(out, "state");
  append_json_string(out, to_string(t.state));
}

}  // namespace

std::string render_status(const task_row& t, const step_row* steps, std::size_t count,
                          const wait_key& key) {
  const auto& p = *t.pipeline;
  std::string out;
  out.reserve(256 + t.context.size() + count * 256);
  append_task_head(out, t);
  out += ",\"priority\":" + std::to_string(t.priority) + ",\"context\":" + t.context + ',';
  field(out, "idempotency_key");
  if (t.idempotency_key.empty())
    out += "null";
  else
    append_json_string(out, t.idempotency_key);
  out += ",\"created_at\":" + std::to_string(t.created_at)
         + ",\"updated_at\":" + std::to_string(t.updated_at) + ",\"completed_at\":";
  time_or_null(out, t.completed_at);
  out += ",\"steps_done\":" + std::to_string(t.steps_done)
         + ",\"steps_total\":" + std::to_string(t.steps_total);
  out += ",\"steps\":[";
  // In slot order: pipeline steps as declared, then batch worker instances.
  std::vector<const step_row*> order;
  order.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    order.push_back(&steps[i]);
  std::sort(order.begin(), order.end(),
            [](const step_row* a, const step_row* b) { return a->slot < b->slot; });
  bool first = true;
  for (const step_row* row : order) {
    const auto& s = *row;
    const auto& d = p.steps[static_cast<std::size_t>(s.index)];
    if (d.kind == step_kind::batch_worker && s.name.empty())
      continue;  // a template: its instances are the steps
    if (!first)
      out += ',';
    first = false;
    out += "{\"id\":" + std::to_string(s.id) + ',';
    field(out, "name");
    append_json_string(out, s.name.empty() ? d.name : s.name);
    out += ',';
    field(out, "handler");
    append_json_string(out, d.handler);
    out += ',';
    if (d.kind != step_kind::standard) {
      field(out, "type");
      append_json_string(out, to_string(d.kind));
      out += ',';
    }
    if (!s.inputs.empty()) {
      field(out, "inputs");
      out += s.inputs;
      out += ',';
    }
    field(out, "state");
    append_json_string(out, to_string(s.state));
    out += ",\"attempts\":" + std::to_string(s.attempts)
           + ",\"max_attempts\":" + std::to_string(d.retry.max_attempts) + ",\"result\":";
    json_or_null(out, s.result);
    out += ",\"last_error\":";
    json_or_null(out, s.last_error);
    out += ",\"created_at\":" + std::to_string(s.created_at) + ",\"started_at\":";
    time_or_null(out, s.started_at);
    out += ",\"finished_at\":";
    time_or_null(out, s.finished_at);
    out += ",\"next_attempt_at\":";
    time_or_null(out, s.state == step_state::waiting_for_retry ? s.due_at : -1);
    out += ",\"lease_expires_at\":";
    time_or_null(out, s.state == step_state::running ? s.due_at : -1);
    out += ",\"claimed_by\":";
    if (s.claimed_by.empty())
      out += "null";
    else
      append_json_string(out, s.claimed_by);
    out += ",\"wait\":";
    if (s.state == step_state::waiting) {
      out += "{\"signal\":";
      append_json_string(out, s.wait_name);
      out += ",\"token\":\"";
      append_wait_token(out, key, s.id, s.claim_seq);
      out += "\",\"timeout_at\":" + std::to_string(s.due_at) + '}';
    } else {
      out += "null";
    }
    out += ",\"signal\":";
    if (s.signal.empty()) {
      out += "null";
    } else {
      out += "{\"name\":";
      append_json_string(out, s.wait_name);
      out += ",\"payload\":" + s.signal + '}';
    }
    out += '}';
  }
  out += "]}";
  return out;
}

void render_list_entry(std::string& out, const task_row& t) {
  append_task_head(out, t);
  out += ",\"priority\":" + std::to_string(t.priority) + ",\"created_at\":"
         + std::to_string(t.created_at) + ",\"updated_at\":" + std::to_string(t.updated_at) + '}';
}

void effects::note(const task_row& t, task_state before) {
  if (before != t.state
      && (t.state == task_state::complete || t.state == task_state::error
          || t.state == task_state::cancelled))
    finished.emplace_back(t.id, t.state);
}

void store::inject_fault(std::int64_t) {
  fail(TK_UNSUPPORTED, "this store has no database to inject faults into");
}

std::string make_error_json(std::string_view message, std::string_view type, bool retryable,
                            int attempt, millis at) {
  std::string out = "{\"message\":";
  append_json_string(out, message);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"retryable\":";
  out += retryable ? "true" : "false";
  out += ",\"attempt\":" + std::to_string(attempt) + ",\"at\":" + std::to_string(at) + '}';
  return out;
}

}  // namespace tasker::core
