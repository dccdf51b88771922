#include <tasker/runtime/step_result.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace tasker {

step_result success(const json& value) {
  return success_raw(value.dump());
}

step_result checkpoint(const json& state) {
  return checkpoint_raw(state.dump());
}

namespace {

json object_or_empty(json fields) {
  return fields.is_object() ? std::move(fields) : json::object();
}

}  // namespace

step_result decide(const std::vector<std::string>& steps, json fields) {
  json result = object_or_empty(std::move(fields));
  result["decision_point_outcome"] = {{"type", "create_steps"}, {"step_names", steps}};
  return success(result);
}

step_result no_branches(json fields) {
  json result = object_or_empty(std::move(fields));
  result["decision_point_outcome"] = {{"type", "no_branches"}};
  return success(result);
}

std::vector<json> batch_cursors(std::int64_t total, std::int64_t batch_size,
                                std::int64_t max_workers, std::int64_t first) {
  if (batch_size < 1)
    throw std::invalid_argument("batch_cursors: batch_size must be at least 1");
  if (total < 0 || max_workers < 0)
    throw std::invalid_argument("batch_cursors: total and max_workers must not be negative");
  std::int64_t size = batch_size;
  if (max_workers > 0 && (total + size - 1) / size > max_workers)
    size = (total + max_workers - 1) / max_workers;
  std::vector<json> out;
  for (std::int64_t start = 0; start < total; start += size) {
    const std::int64_t end = std::min(total, start + size);
    char id[24];
    std::snprintf(id, sizeof id, "%03zu", out.size() + 1);
    out.push_back({{"batch_id", id},
                   {"start_cursor", first + start},
                   {"end_cursor", first + end},
                   {"batch_size", end - start}});
  }
  return out;
}

step_result create_batches(const std::vector<json>& cursors, json fields,
                           const std::string& worker) {
  if (cursors.empty())
    return no_batches(std::move(fields));
  json result = object_or_empty(std::move(fields));
  json outcome = {
      {"type", "create_batches"}, {"worker_count", cursors.size()}, {"cursor_configs", cursors}};
  if (!worker.empty())
    outcome["worker_template_name"] = worker;
  result["batch_processing_outcome"] = std::move(outcome);
  return success(result);
}

step_result no_batches(json fields) {
  json result = object_or_empty(std::move(fields));
  result["batch_processing_outcome"] = {{"type", "no_batches"}};
  return success(result);
}

}  // namespace tasker
