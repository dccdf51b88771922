#include <tasker/actors/task_service.hpp>

#include <tasker/actors/core_error.hpp>

namespace tasker::actors {

namespace {

// The core's view of a request; points into `r`.
tk_task_spec to_spec(const task_request& r) {
  tk_task_spec spec{};
  spec.namespace_name = r.namespace_name.c_str();
  spec.name = r.name.c_str();
  spec.version = r.version.c_str();
  spec.context_json = r.context_json.c_str();
  spec.idempotency_key = r.idempotency_key.empty() ? nullptr : r.idempotency_key.c_str();
  spec.priority = r.priority;
  return spec;
}

// Takes a text the core allocated.
std::string take(char* text) {
  std::string out{text};
  tk_free(text);
  return out;
}

}  // namespace

caf::error task_service::register_pipeline(const std::string& pipeline_json) const {
  tk_error err{};
  if (tk_register_pipeline(core_.get(), pipeline_json.c_str(), &err) != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::create(const task_request& r, std::int64_t& id, bool* created) const {
  const auto spec = to_spec(r);
  int is_new = 0;
  tk_error err{};
  if (tk_create_task(core_.get(), &spec, &id, &is_new, &err) != TK_OK)
    return core_error(err);
  if (created)
    *created = is_new != 0;
  return {};
}

caf::error task_service::create_many(const std::vector<task_request>& batch,
                                     std::vector<std::int64_t>& ids) const {
  std::vector<tk_task_spec> specs(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i)
    specs[i] = to_spec(batch[i]);
  ids.assign(batch.size(), 0);
  tk_error err{};
  if (tk_create_tasks(core_.get(), specs.data(), specs.size(), ids.data(), nullptr, &err) != TK_OK)
    return core_error(static_cast<tk_status>(err.code),
                      std::string(err.message) + " (no task of the batch was created)");
  return {};
}

caf::error task_service::status(std::int64_t task_id, std::string& out) const {
  char* text = nullptr;
  tk_error err{};
  if (tk_task_status(core_.get(), task_id, &text, &err) != TK_OK)
    return core_error(err);
  out = take(text);
  return {};
}

caf::error task_service::cancel(std::int64_t task_id) const {
  tk_error err{};
  if (tk_cancel_task(core_.get(), task_id, &err) != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::signal(const std::string& token, const std::string& payload) const {
  tk_error err{};
  if (tk_signal(core_.get(), token.c_str(), payload.empty() ? nullptr : payload.c_str(), &err)
      != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::list(const std::string& filter, std::string& out) const {
  char* text = nullptr;
  tk_error err{};
  if (tk_list_tasks(core_.get(), filter.empty() ? nullptr : filter.c_str(), &text, &err) != TK_OK)
    return core_error(err);
  out = take(text);
  return {};
}

}  // namespace tasker::actors
