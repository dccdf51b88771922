// Building a handler's answer: the builders of messages/step_result.hpp,
// plus a success from a JSON value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tasker/messages/step_result.hpp>

namespace tasker {

using json = nlohmann::json;

/// A success whose result is `value` (any JSON; an object by convention).
step_result success(const json& value = json::object());

/// A checkpoint yield: `state` (e.g. {"cursor": 250, "partial": …}) is kept
/// and the step runs again at once as the same attempt, seeing it in
/// step_context::checkpoint(); a later attempt after a failure sees the last
/// one too.
step_result checkpoint(const json& state);

/// A decision step's answer: of the steps that depend on it, create those
/// named in `steps` (the others are skipped). `fields` are kept in the result
/// beside "decision_point_outcome", for the steps below to read.
step_result decide(const std::vector<std::string>& steps, json fields = json::object());
/// A decision step's answer: create none of the steps that depend on it.
step_result no_branches(json fields = json::object());

/// Cursor ranges that cover items [first, first + total): batches of
/// `batch_size` items, or larger ones when that would take more than
/// `max_workers` batches (0: no limit). Each is {"batch_id": "001",
/// "start_cursor", "end_cursor" (exclusive), "batch_size"}. Throws
/// std::invalid_argument for a batch_size below 1 or a negative total.
std::vector<json> batch_cursors(std::int64_t total, std::int64_t batch_size,
                                std::int64_t max_workers = 0, std::int64_t first = 0);
/// A batchable step's answer: one instance of its batch_worker step per
/// cursor (any JSON objects; batch_cursors makes the usual ones), named
/// "<worker>_001"…, each seeing its cursor (step_context::batch_cursor()).
/// `worker` names the batch_worker step when the batchable step has several.
/// No cursors: as no_batches().
step_result create_batches(const std::vector<json>& cursors, json fields = json::object(),
                           const std::string& worker = {});
/// A batchable step's answer: no batch. One placeholder instance
/// ("<worker>_000", result {"is_no_op": true}) completes at once, so the
/// steps after the batch still run.
step_result no_batches(json fields = json::object());

}  // namespace tasker
