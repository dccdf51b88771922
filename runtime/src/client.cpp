#include <tasker/runtime/client.hpp>

#include <utility>

#include <caf/sec.hpp>

#include <tasker/runtime/pipeline.hpp>

#include "detail/client_impl.hpp"

namespace tasker {

using std::chrono::milliseconds;

namespace detail {

std::string describe(caf::actor_system& sys, const caf::error& e) {
  const auto& ctx = e.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return sys.render(e);
}

}  // namespace detail

client::client(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}
client::~client() = default;

std::int64_t client::create(const std::string& namespace_name, const std::string& name,
                            const std::string& version, const json& context,
                            const create_options& options) {
  if (!context.is_object())
    throw client_error("a task's context must be a JSON object");
  task_request r;
  r.namespace_name = namespace_name;
  r.name = name;
  r.version = version;
  r.context_json = context.dump();
  r.idempotency_key = options.idempotency_key;
  r.priority = options.priority;
  std::int64_t id = 0;
  impl_->check(impl_->tasks.create(r, id));
  return id;
}

std::int64_t client::create(const pipeline& p, const json& context, const create_options& options) {
  return create(p.namespace_name(), p.name(), p.version(), context, options);
}

std::vector<std::int64_t> client::create_many(const pipeline& p, const std::vector<json>& contexts,
                                              std::int32_t priority) {
  std::vector<task_request> batch;
  batch.reserve(contexts.size());
  for (const auto& c : contexts) {
    if (!c.is_object())
      throw client_error("a task's context must be a JSON object (item "
                         + std::to_string(batch.size() + 1) + ")");
    task_request r;
    r.namespace_name = p.namespace_name();
    r.name = p.name();
    r.version = p.version();
    r.context_json = c.dump();
    r.priority = priority;
    batch.push_back(std::move(r));
  }
  std::vector<std::int64_t> ids;
  impl_->check(impl_->tasks.create_many(batch, ids));
  return ids;
}

std::string client::wait(std::int64_t task_id, milliseconds timeout) {
  std::string state;
  if (auto failed = impl_->tasks.wait(task_id, timeout, state))
    throw client_error("waiting for task " + std::to_string(task_id) + ": "
                       + detail::describe(impl_->sys, failed));
  return state;
}

json client::status(std::int64_t task_id) {
  std::string text;
  impl_->check(impl_->tasks.status(task_id, text));
  return json::parse(text);
}

void client::cancel(std::int64_t task_id) {
  impl_->check(impl_->tasks.cancel(task_id));
}

void client::signal(const std::string& token, const json& payload) {
  impl_->check(impl_->tasks.signal(token, payload.dump()));
}

json client::list(const json& filter) {
  if (!filter.is_object())
    throw client_error("a list filter must be a JSON object");
  std::string text;
  impl_->check(impl_->tasks.list(filter.dump(), text));
  return json::parse(text);
}

json client::result(std::int64_t task_id, const std::string& step) {
  const json st = status(task_id);  // outlives the loop (a temporary would not)
  for (const auto& s : st.at("steps"))
    if (s.at("name") == step)
      return s.at("result");
  throw client_error("task " + std::to_string(task_id) + " has no step \"" + step + "\"");
}

}  // namespace tasker
