#include <tasker/actors/task_service.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include <caf/sec.hpp>

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

bool final_state(std::string_view s) {
  return s == "complete" || s == "error" || s == "cancelled";
}

}  // namespace

/// Who waits for which task. The core's task listener (any thread: the
/// poller's during its completions, a client's cancel, PostgreSQL's listening
/// thread) marks the task's slots and wakes their threads.
struct task_service::waiters {
  struct slot {
    std::string state;  ///< set when the task ended
  };
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_multimap<std::int64_t, slot*> slots;
  bool listening = false;
  bool stopped = false;  ///< stop_waits() ran

  static void on_task_ended(void* user, std::int64_t task_id, const char* state) {
    auto* w = static_cast<waiters*>(user);
    bool any = false;
    {
      std::lock_guard<std::mutex> g{w->mu};
      auto [b, e] = w->slots.equal_range(task_id);
      for (auto it = b; it != e; ++it) {
        it->second->state = state;
        any = true;
      }
    }
    if (any)
      w->cv.notify_all();
  }
};

task_service::task_service(core_handle core)
  : waiters_(std::make_unique<waiters>()), core_(std::move(core)) {
}

task_service::~task_service() {
  core_.reset();  // joins the core's threads: no listener call after this
}

caf::error task_service::register_pipeline(const std::string& pipeline_json) const {
  tk_error err{};
  if (tk_register_pipeline(core_, pipeline_json.c_str(), &err) != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::create(const task_request& r, std::int64_t& id, bool* created) const {
  const auto spec = to_spec(r);
  int is_new = 0;
  tk_error err{};
  if (tk_create_task(core_, &spec, &id, &is_new, &err) != TK_OK)
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
  if (tk_create_tasks(core_, specs.data(), specs.size(), ids.data(), nullptr, &err) != TK_OK)
    return core_error(static_cast<tk_status>(err.code),
                      std::string(err.message) + " (no task of the batch was created)");
  return {};
}

caf::error task_service::status(std::int64_t task_id, std::string& out) const {
  char* text = nullptr;
  tk_error err{};
  if (tk_task_status(core_, task_id, &text, &err) != TK_OK)
    return core_error(err);
  out = take(text);
  return {};
}

caf::error task_service::cancel(std::int64_t task_id) const {
  tk_error err{};
  if (tk_cancel_task(core_, task_id, &err) != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::signal(const std::string& token, const std::string& payload) const {
  tk_error err{};
  if (tk_signal(core_, token.c_str(), payload.empty() ? nullptr : payload.c_str(), &err) != TK_OK)
    return core_error(err);
  return {};
}

caf::error task_service::list(const std::string& filter, std::string& out) const {
  char* text = nullptr;
  tk_error err{};
  if (tk_list_tasks(core_, filter.empty() ? nullptr : filter.c_str(), &text, &err) != TK_OK)
    return core_error(err);
  out = take(text);
  return {};
}

caf::error task_service::ping() const {
  char* text = nullptr;
  tk_error err{};
  const auto status = tk_list_tasks(core_, "{\"limit\":1}", &text, &err);
  tk_free(text);
  if (status != TK_OK)
    return core_error(err);
  return {};
}

void task_service::stop_waits() const {
  {
    std::lock_guard<std::mutex> g{waiters_->mu};
    waiters_->stopped = true;
  }
  waiters_->cv.notify_all();
}

caf::error task_service::wait(std::int64_t task_id, std::chrono::milliseconds timeout,
                              std::string& state, std::chrono::milliseconds recheck) const {
  using clock = std::chrono::steady_clock;
  auto& w = *waiters_;
  {
    // Installed at the first wait only: a store shared between processes
    // then hears of every task any of them ends, which costs a worker
    // without waiters for nothing. Returns once the store hears them, so the
    // state read below misses no ending.
    std::unique_lock<std::mutex> lock{w.mu};
    if (!w.listening) {
      lock.unlock();
      tk_error err{};
      if (tk_set_task_listener(core_, &waiters::on_task_ended, &w, &err) != TK_OK)
        return core_error(err);
      lock.lock();
      w.listening = true;
    }
  }
  waiters::slot mine;
  {
    std::lock_guard<std::mutex> g{w.mu};
    w.slots.emplace(task_id, &mine);
  }
  auto forget = [&w, &mine, task_id] {
    std::lock_guard<std::mutex> g{w.mu};
    auto [b, e] = w.slots.equal_range(task_id);
    for (auto it = b; it != e; ++it)
      if (it->second == &mine) {
        w.slots.erase(it);
        break;
      }
  };
  const auto deadline = clock::now() + timeout;
  recheck = std::max(recheck, std::chrono::milliseconds{1});
  for (;;) {
    // Read the state (first, and on every recheck): the listener cannot
    // report an ending that happened before it was installed, or one made
    // by another process on a store that does not tell.
    const char* now_state = nullptr;
    tk_error err{};
    if (tk_task_state(core_, task_id, &now_state, &err) != TK_OK) {
      forget();
      return core_error(err);
    }
    std::unique_lock<std::mutex> lock{w.mu};
    if (mine.state.empty() && final_state(now_state))
      mine.state = now_state;
    const auto until = std::min(deadline, clock::now() + recheck);
    w.cv.wait_until(lock, until, [&] { return !mine.state.empty() || w.stopped; });
    if (mine.state.empty() && w.stopped) {
      lock.unlock();
      forget();
      return caf::make_error(caf::sec::runtime_error, "the worker stopped before task "
                                                          + std::to_string(task_id) + " ended");
    }
    if (!mine.state.empty()) {
      state = mine.state;
      lock.unlock();
      forget();
      return {};
    }
    if (clock::now() >= deadline) {
      lock.unlock();
      forget();
      return caf::make_error(caf::sec::request_timeout,
                             "task " + std::to_string(task_id) + " did not end within "
                                 + std::to_string(timeout.count()) + " ms");
    }
  }
}

}  // namespace tasker::actors
