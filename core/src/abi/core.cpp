// The C ABI shells: argument checks, locking, wake-ups, and the translation
// of internal errors into tk_status. No exception leaves this file.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "abi/error.hpp"
#include "store/memory/memory_store.hpp"
#include "store/postgres/url.hpp"  // make_pg_store, without libpq
#include "store/sqlite/sqlite_store.hpp"
#include "store/store.hpp"
#include "util/json.hpp"
#include <tasker/core.h>
#include <tasker/core_testing.h>

using namespace tasker::core;

namespace {
constexpr std::size_t default_max_json_bytes = 4u << 20;  ///< option "max_json_bytes"
}  // namespace

struct tk_core {
  std::mutex mu;  // serialises every store call
  std::unique_ptr<store> st;
  std::size_t max_json_bytes = default_max_json_bytes;
  millis default_lease_ms = 30000;
  tk_clock_fn clock = nullptr;  ///< tk_set_clock (tests); null: the system clock
  void* clock_user = nullptr;
  std::mt19937_64 rng;
  std::mutex wake_mu;  // guards the callbacks, never held while one runs
  tk_wakeup_fn wakeup = nullptr;
  void* wakeup_user = nullptr;
  tk_task_listener_fn listener = nullptr;
  void* listener_user = nullptr;
  /// Callbacks running now (under wake_mu); replacing a callback waits for
  /// them, so its `user` may be freed once tk_set_* returns.
  std::size_t calls_running = 0;
  std::condition_variable calls_done;
  /// Callbacks of any core running on this thread (a callback that replaces
  /// a callback must not wait for itself).
  static inline thread_local int in_callback = 0;

  millis now() const {
    if (clock)
      return clock(clock_user);
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // Tells the callbacks what a successful call changed; never under `mu`.
  // Tells the store which callbacks there are (store::interest). Not under
  // wake_mu: the store may wait for its listening thread, which calls wake.
  void tell_interest() {
    bool ready = false, done = false;
    {
      std::lock_guard<std::mutex> g{wake_mu};
      ready = wakeup != nullptr;
      done = listener != nullptr;
    }
    st->interest(ready, done);
  }

  void wake(const effects& fx) {
    if (!fx.work_ready && fx.finished.empty())
      return;
    tk_wakeup_fn fn;
    void* user;
    tk_task_listener_fn on_finished;
    void* on_finished_user;
    {
      std::lock_guard<std::mutex> g{wake_mu};
      fn = wakeup;
      user = wakeup_user;
      on_finished = listener;
      on_finished_user = listener_user;
      if (!fn && !on_finished)
        return;
      ++calls_running;
    }
    ++in_callback;
    try {  // a C callback does not throw; a C++ one that does stops here
      if (on_finished)
        for (const auto& [id, state] : fx.finished)
          on_finished(on_finished_user, id, to_string(state));
      if (fn && fx.work_ready)
        fn(user);
    } catch (...) {
    }
    --in_callback;
    {
      std::lock_guard<std::mutex> g{wake_mu};
      if (--calls_running == 0)
        calls_done.notify_all();
    }
  }

  // Replaces a callback; returns once no call of the old one runs on another
  // thread (on this one, a callback replacing itself, it cannot wait).
  template <class Set>
  void replace_callback(Set&& set) {
    {
      std::unique_lock<std::mutex> g{wake_mu};
      set();
      if (in_callback == 0)
        calls_done.wait(g, [this] { return calls_running == 0; });
    }
    tell_interest();
  }
};

struct tk_worker {
  tk_core* core = nullptr;
  std::string name;
  std::vector<std::string> namespaces;  ///< given at open; empty: all
  millis lease_ms = 0;                  ///< given at open (or the core's default)
  claim_request claim;                  ///< points at the above; each poll sets max and now
  event_buffer events;
  std::vector<int> outcomes;
  effects fx;  // reused by poll/complete
};

namespace {

void set_error(tk_error* err, tk_status code, const char* message) noexcept {
  if (!err)
    return;
  err->code = code;
  std::strncpy(err->message, message, sizeof(err->message) - 1);
  err->message[sizeof(err->message) - 1] = '\0';
}

// Runs `f`, mapping every exception to a status; the only way into the core.
template <class F>
tk_status guarded(tk_error* err, F&& f) noexcept {
  try {
    f();
    set_error(err, TK_OK, "");
    return TK_OK;
  } catch (const core_error& e) {
    set_error(err, e.code(), e.what());
    return e.code();
  } catch (const std::bad_alloc&) {
    set_error(err, TK_INTERNAL, "out of memory");
    return TK_INTERNAL;
  } catch (const std::exception& e) {
    set_error(err, TK_INTERNAL, e.what());
    return TK_INTERNAL;
  } catch (...) {
    set_error(err, TK_INTERNAL, "unknown internal error");
    return TK_INTERNAL;
  }
}

void require(const void* p, const char* what) {
  if (!p)
    fail(TK_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

char* to_c_string(const std::string& s) {
  auto* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (!out)
    throw std::bad_alloc{};
  std::memcpy(out, s.data(), s.size() + 1);
  return out;
}

std::string_view checked_json(const tk_core* c, const char* text, const char* what) {
  std::string_view sv{text};
  require_json(sv, c->max_json_bytes, what);
  return sv;
}

template <class T>
T option_int(const nlohmann::json& o, const char* key, T fallback, T min, T max) {
  auto it = o.find(key);
  if (it == o.end())
    return fallback;
  if (!it->is_number_integer() || it->get<std::int64_t>() < static_cast<std::int64_t>(min)
      || it->get<std::int64_t>() > static_cast<std::int64_t>(max))
    fail(TK_INVALID_ARGUMENT, std::string("option ") + key + " must be an integer from "
                                  + std::to_string(min) + " to " + std::to_string(max));
  return static_cast<T>(it->get<std::int64_t>());
}

void copy_namespaces(std::vector<std::string>& out, const char* const* ns, std::size_t n) {
  if (n > 0)
    require(ns, "namespaces");
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    require(ns[i], "a namespace");
    out[i].assign(ns[i]);
  }
}

}  // namespace

extern "C" {

TK_API const char* tk_version(void) {
  return TK_VERSION_STRING;
}

TK_API int tk_version_number(void) {
  return TK_VERSION_NUMBER;
}

TK_API const char* tk_status_name(tk_status status) {
  switch (status) {
    case TK_OK: return "TK_OK";
    case TK_INVALID_ARGUMENT: return "TK_INVALID_ARGUMENT";
    case TK_MALFORMED_JSON: return "TK_MALFORMED_JSON";
    case TK_VALIDATION: return "TK_VALIDATION";
    case TK_NOT_FOUND: return "TK_NOT_FOUND";
    case TK_CONFLICT: return "TK_CONFLICT";
    case TK_TOO_LARGE: return "TK_TOO_LARGE";
    case TK_STORE_ERROR: return "TK_STORE_ERROR";
    case TK_UNSUPPORTED: return "TK_UNSUPPORTED";
    case TK_INTERNAL: return "TK_INTERNAL";
    case TK_STALE: return "TK_STALE";
    case TK_DUPLICATE: return "TK_DUPLICATE";
  }
  return "unknown";
}

TK_API void tk_free(void* p) {
  std::free(p);
}

TK_API tk_core* tk_open(const char* url, const char* options_json, tk_error* err) {
  tk_core* result = nullptr;
  guarded(err, [&] {
    require(url, "url");
    auto core = std::make_unique<tk_core>();
    nlohmann::json opts = nlohmann::json::object();
    if (options_json) {
      if (auto e = json_error(options_json); !e.empty())
        fail(TK_MALFORMED_JSON, "options are not valid JSON: " + e);
      opts = nlohmann::json::parse(options_json);
      if (!opts.is_object())
        fail(TK_INVALID_ARGUMENT, "options must be a JSON object");
      for (auto& [key, _] : opts.items()) {
        static const char* known[] = {
            "max_json_bytes", "default_lease_ms", "busy_timeout_ms",     "synchronous",
            "seed",           "schema",           "async_worker_commits"};
        bool ok = false;
        for (const char* k : known)
          ok = ok || key == k;
        if (!ok)
          fail(TK_UNSUPPORTED, "unknown option \"" + key + "\"");
      }
    }
    core->max_json_bytes = option_int<std::size_t>(opts, "max_json_bytes", default_max_json_bytes,
                                                   64, std::size_t{1} << 30);
    core->default_lease_ms =
        option_int<millis>(opts, "default_lease_ms", 30000, 1, 7 * 86'400'000LL);
    if (auto seed = opts.find("seed"); seed != opts.end()) {
      if (!seed->is_number_unsigned())
        fail(TK_INVALID_ARGUMENT, "option seed must be a non-negative integer");
      core->rng.seed(seed->get<std::uint64_t>());
    } else {
      core->rng.seed(std::random_device{}());
    }
    std::string u{url};
    if (u == "memory:" || u == "memory://") {
      core->st = make_memory_store();
    } else if (u.rfind("sqlite:", 0) == 0) {
      sqlite_options so;
      so.path = u.substr(7);
      if (so.path.rfind("//", 0) == 0)
        so.path = so.path.substr(2);
      if (so.path.empty())
        fail(TK_INVALID_ARGUMENT, "sqlite: URL needs a file path, e.g. sqlite:tasker.db");
      so.busy_timeout_ms = option_int<int>(opts, "busy_timeout_ms", 5000, 0, 3'600'000);
      if (auto s = opts.find("synchronous"); s != opts.end()) {
        if (!s->is_string() || (*s != "normal" && *s != "full" && *s != "off"))
          fail(TK_INVALID_ARGUMENT, "option synchronous must be \"normal\", \"full\" or \"off\"");
        so.synchronous = s->get<std::string>();
      }
      core->st = make_sqlite_store(so);
    } else if (u.rfind("postgresql://", 0) == 0 || u.rfind("postgres://", 0) == 0) {
      auto po = parse_pg_url(u);
      if (auto s = opts.find("schema"); s != opts.end()) {
        if (!s->is_string())
          fail(TK_INVALID_ARGUMENT, "option schema must be a string");
        po.schema = s->get<std::string>();
      }
      if (auto a = opts.find("async_worker_commits"); a != opts.end()) {
        if (!a->is_boolean())
          fail(TK_INVALID_ARGUMENT, "option async_worker_commits must be true or false");
        po.async_worker_commits = a->get<bool>();
      }
      core->st = make_pg_store(po);
    } else {
      fail(TK_UNSUPPORTED, "unknown store URL \"" + u
                               + "\"; use memory:, sqlite:PATH or postgresql://USER@HOST:PORT/DB");
    }
    // Work made ready or tasks finished by other processes (PostgreSQL's
    // NOTIFY) reach the callbacks like our own.
    tk_core* self = core.get();
    core->st->watch([self](const effects& fx) { self->wake(fx); });
    result = core.release();
  });
  return result;
}

TK_API void tk_close(tk_core* core) {
  if (core)
    core->st.reset();  // first: its LISTEN thread calls back into the core
  delete core;
}

TK_API int64_t tk_now_ms(tk_core* core) {
  if (!core)
    return 0;
  std::lock_guard<std::mutex> g{core->mu};
  return core->now();
}

TK_API tk_status tk_set_wakeup(tk_core* core, tk_wakeup_fn fn, void* user, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    core->replace_callback([&] {
      core->wakeup = fn;
      core->wakeup_user = user;
    });
  });
}

TK_API tk_status tk_validate_pipeline(const char* pipeline_json, tk_error* err) {
  return guarded(err, [&] {
    require(pipeline_json, "pipeline_json");
    const std::string_view text{pipeline_json};
    require_json(text, default_max_json_bytes, "pipeline");
    parse_pipeline(text);
  });
}

TK_API tk_status tk_register_pipeline(tk_core* core, const char* pipeline_json, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    require(pipeline_json, "pipeline_json");
    auto text = checked_json(core, pipeline_json, "pipeline");
    auto p = parse_pipeline(text);
    std::lock_guard<std::mutex> g{core->mu};
    core->st->register_pipeline(std::move(p));
  });
}

namespace {

// Checks one spec and turns it into a store request; `where` prefixes messages.
task_request to_request(const tk_core* core, const tk_task_spec& spec, const std::string& where) {
  auto need = [&](const void* p, const char* what) {
    if (!p)
      fail(TK_INVALID_ARGUMENT, where + what + " is NULL");
  };
  need(spec.namespace_name, "spec->namespace_name");
  need(spec.name, "spec->name");
  need(spec.version, "spec->version");
  task_request r;
  r.namespace_name = spec.namespace_name;
  r.name = spec.name;
  r.version = spec.version;
  r.context = "{}";
  if (spec.context_json) {
    try {
      r.context = checked_json(core, spec.context_json, "task context");
    } catch (const core_error& e) {
      fail(e.code(), where + e.what());
    }
    if (!json_is_object(r.context))
      fail(TK_VALIDATION, where + "task context must be a JSON object");
  }
  if (spec.idempotency_key) {
    r.idempotency_key = spec.idempotency_key;
    if (r.idempotency_key.empty() || r.idempotency_key.size() > 255)
      fail(TK_INVALID_ARGUMENT, where + "idempotency key must be 1 to 255 bytes");
  }
  r.priority = spec.priority;
  return r;
}

}  // namespace

TK_API tk_status tk_create_task(tk_core* core, const tk_task_spec* spec, int64_t* task_id,
                                int* created, tk_error* err) {
  effects fx;
  auto status = guarded(err, [&] {
    require(core, "core");
    require(spec, "spec");
    require(task_id, "task_id");
    const auto r = to_request(core, *spec, "");
    std::lock_guard<std::mutex> g{core->mu};
    auto out = core->st->create_task(r, core->now(), fx);
    *task_id = out.task_id;
    if (created)
      *created = out.created ? 1 : 0;
  });
  if (status == TK_OK)
    core->wake(fx);
  return status;
}

TK_API tk_status tk_create_tasks(tk_core* core, const tk_task_spec* specs, size_t count,
                                 int64_t* task_ids, int* created, tk_error* err) {
  effects fx;
  auto status = guarded(err, [&] {
    require(core, "core");
    if (count == 0)
      return;
    require(specs, "specs");
    require(task_ids, "task_ids");
    std::vector<task_request> requests;
    requests.reserve(count);
    for (std::size_t i = 0; i < count; ++i)
      requests.push_back(to_request(
          core, specs[i], "task " + std::to_string(i + 1) + " of " + std::to_string(count) + ": "));
    std::vector<create_outcome> out(count);
    {
      std::lock_guard<std::mutex> g{core->mu};
      core->st->create_tasks(requests.data(), count, core->now(), out.data(), fx);
    }
    for (std::size_t i = 0; i < count; ++i) {
      task_ids[i] = out[i].task_id;
      if (created)
        created[i] = out[i].created ? 1 : 0;
    }
  });
  if (status == TK_OK)
    core->wake(fx);
  return status;
}

TK_API tk_status tk_task_status(tk_core* core, int64_t task_id, char** status_json, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    require(status_json, "status_json");
    *status_json = nullptr;
    std::string s;
    {
      std::lock_guard<std::mutex> g{core->mu};
      s = core->st->task_status(task_id);
    }
    *status_json = to_c_string(s);
  });
}

TK_API tk_status tk_task_state(tk_core* core, int64_t task_id, const char** state, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    require(state, "state");
    *state = nullptr;
    std::lock_guard<std::mutex> g{core->mu};
    *state = to_string(core->st->state_of(task_id));
  });
}

TK_API tk_status tk_cancel_task(tk_core* core, int64_t task_id, tk_error* err) {
  auto status = guarded(err, [&] {
    require(core, "core");
    std::lock_guard<std::mutex> g{core->mu};
    core->st->cancel_task(task_id, core->now());
  });
  if (status == TK_OK) {
    effects fx;
    fx.finished.emplace_back(task_id, task_state::cancelled);
    core->wake(fx);
  }
  return status;
}

TK_API tk_status tk_retry_task(tk_core* core, int64_t task_id, tk_error* err) {
  effects fx;
  auto status = guarded(err, [&] {
    require(core, "core");
    std::lock_guard<std::mutex> g{core->mu};
    core->st->retry_task(task_id, core->now(), fx);
  });
  if (status == TK_OK)
    core->wake(fx);
  return status;
}

TK_API tk_status tk_set_task_listener(tk_core* core, tk_task_listener_fn fn, void* user,
                                      tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    core->replace_callback([&] {
      core->listener = fn;
      core->listener_user = user;
    });
  });
}

TK_API tk_status tk_list_tasks(tk_core* core, const char* filter_json, char** list_json,
                               tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    require(list_json, "list_json");
    *list_json = nullptr;
    list_request r;
    if (filter_json) {
      auto text = checked_json(core, filter_json, "list filter");
      auto f = nlohmann::json::parse(text);
      if (!f.is_object())
        fail(TK_VALIDATION, "list filter must be a JSON object");
      for (auto& [key, v] : f.items()) {
        if (key == "state" || key == "namespace") {
          if (!v.is_null() && !v.is_string())
            fail(TK_VALIDATION, "list filter: \"" + key + "\" must be a string");
        } else if (key != "after" && key != "limit") {
          fail(TK_VALIDATION, "list filter: unknown field \"" + key + "\"");
        }
      }
      if (auto s = f.find("state"); s != f.end() && s->is_string())
        r.state = s->get<std::string>();
      if (auto s = f.find("namespace"); s != f.end() && s->is_string())
        r.namespace_name = s->get<std::string>();
      r.after = option_int<std::int64_t>(f, "after", 0, 0, INT64_MAX);
      r.limit = option_int<int>(f, "limit", 100, 1, 1000);
    }
    std::string s;
    {
      std::lock_guard<std::mutex> g{core->mu};
      s = core->st->list_tasks(r);
    }
    *list_json = to_c_string(s);
  });
}

TK_API tk_worker* tk_worker_open(tk_core* core, const tk_worker_options* options, tk_error* err) {
  tk_worker* w = nullptr;
  guarded(err, [&] {
    require(core, "core");
    require(options, "options");
    require(options->name, "worker name");
    auto worker = std::make_unique<tk_worker>();
    worker->core = core;
    worker->name = options->name;
    if (worker->name.empty() || worker->name.size() > 255)
      fail(TK_INVALID_ARGUMENT, "worker name must be 1 to 255 bytes");
    copy_namespaces(worker->namespaces, options->namespaces, options->namespace_count);
    if (options->lease_ms < 0)
      fail(TK_INVALID_ARGUMENT, "lease_ms must not be negative");
    worker->lease_ms = options->lease_ms > 0 ? options->lease_ms : core->default_lease_ms;
    worker->claim.namespaces = &worker->namespaces;
    worker->claim.lease_ms = worker->lease_ms;
    worker->claim.worker = worker->name;
    w = worker.release();
  });
  return w;
}

TK_API void tk_worker_close(tk_worker* worker) {
  delete worker;
}

TK_API tk_status tk_poll(tk_worker* worker, size_t max_events, const tk_step_event** events,
                         size_t* event_count, tk_error* err) {
  return tk_complete_and_poll(worker, nullptr, 0, nullptr, max_events, events, event_count, err);
}

TK_API tk_status tk_next_due(tk_worker* worker, int64_t* delay_ms, tk_error* err) {
  return guarded(err, [&] {
    require(worker, "worker");
    require(delay_ms, "delay_ms");
    auto* core = worker->core;
    std::lock_guard<std::mutex> g{core->mu};
    auto now = core->now();
    auto due = core->st->next_due(worker->namespaces, now);
    *delay_ms = due < 0 ? -1 : std::max<millis>(0, due - now);
  });
}

namespace {

// Checks each result before the store lock is taken: a bad result becomes
// its own outcome, the others still apply.
int* validate_results(tk_worker* worker, const tk_step_result* results, size_t count,
                      int* outcomes) {
  auto* core = worker->core;
  int* out = outcomes;
  if (!out) {
    worker->outcomes.resize(count);
    out = worker->outcomes.data();
  }
  for (std::size_t i = 0; i < count; ++i) {
    const auto& r = results[i];
    out[i] = TK_OK;
    try {
      if (r.kind == TK_RESULT_SUCCESS) {
        if (r.result_json)
          require_json(r.result_json, core->max_json_bytes, "step result");
      } else if (r.kind == TK_RESULT_FAILURE) {
        auto len = [](const char* s) { return s ? std::strlen(s) : 0; };
        if (len(r.error_message) + len(r.error_type) > core->max_json_bytes)
          fail(TK_TOO_LARGE, "error message is over the limit (option max_json_bytes)");
      } else if (r.kind == TK_RESULT_WAIT) {
        const auto n = r.wait_signal ? std::strlen(r.wait_signal) : 0;
        if (n == 0 || n > 255)
          fail(TK_INVALID_ARGUMENT, "a wait needs a signal name of 1 to 255 bytes");
        if (r.wait_timeout_ms <= 0)
          fail(TK_INVALID_ARGUMENT, "a wait needs a wait_timeout_ms > 0");
      } else if (r.kind == TK_RESULT_CHECKPOINT) {
        if (!r.result_json)
          fail(TK_INVALID_ARGUMENT, "a checkpoint needs its JSON in result_json");
        require_json(r.result_json, core->max_json_bytes, "step checkpoint");
      } else {
        fail(TK_INVALID_ARGUMENT, "result kind must be TK_RESULT_SUCCESS, TK_RESULT_FAILURE, "
                                  "TK_RESULT_WAIT or TK_RESULT_CHECKPOINT");
      }
    } catch (const core_error& e) {
      out[i] = e.code();
    }
  }
  return out;
}

}  // namespace

TK_API tk_status tk_complete(tk_worker* worker, const tk_step_result* results, size_t count,
                             int* outcomes, tk_error* err) {
  // The worker's reused effects: no allocation per call in steady state.
  effects scratch;
  effects& fx = worker ? worker->fx : scratch;
  fx.work_ready = false;
  fx.finished.clear();
  auto status = guarded(err, [&] {
    require(worker, "worker");
    if (count == 0)
      return;
    require(results, "results");
    int* out = validate_results(worker, results, count, outcomes);
    auto* core = worker->core;
    std::lock_guard<std::mutex> g{core->mu};
    core->st->complete(results, count, out, core->now(), core->rng, fx);
  });
  if (status == TK_OK)
    worker->core->wake(fx);
  return status;
}

TK_API tk_status tk_complete_and_poll(tk_worker* worker, const tk_step_result* results,
                                      size_t count, int* outcomes, size_t max_events,
                                      const tk_step_event** events, size_t* event_count,
                                      tk_error* err) {
  // The worker's reused effects: no allocation per call in steady state.
  effects scratch;
  effects& fx = worker ? worker->fx : scratch;
  fx.work_ready = false;
  fx.finished.clear();
  auto status = guarded(err, [&] {
    require(worker, "worker");
    require(events, "events");
    require(event_count, "event_count");
    *events = nullptr;
    *event_count = 0;
    if (count > 0)
      require(results, "results");
    int* out = count > 0 ? validate_results(worker, results, count, outcomes) : outcomes;
    worker->events.clear();
    auto* core = worker->core;
    claim_request& r = worker->claim;
    r.max = max_events;
    {
      std::lock_guard<std::mutex> g{core->mu};
      r.now = core->now();
      if (count == 0)
        core->st->claim(r, worker->events, core->rng, fx);
      else if (max_events == 0)
        core->st->complete(results, count, out, r.now, core->rng, fx);
      else
        core->st->complete_and_claim(results, count, out, r, worker->events, core->rng, fx);
    }
    *events = worker->events.finish();
    *event_count = worker->events.size();
  });
  if (status == TK_OK)
    worker->core->wake(fx);
  return status;
}

TK_API tk_status tk_signal(tk_core* core, const char* token, const char* payload_json,
                           tk_error* err) {
  effects fx;
  auto status = guarded(err, [&] {
    require(core, "core");
    require(token, "token");
    std::string_view payload = "null";
    if (payload_json)
      payload = checked_json(core, payload_json, "signal payload");
    std::int64_t step_id = 0, seq = 0;
    if (!check_wait_token(core->st->key(), token, step_id, seq))
      fail(TK_NOT_FOUND, "no wait has this token");
    std::lock_guard<std::mutex> g{core->mu};
    core->st->signal(step_id, seq, payload, core->now(), fx);
  });
  if (status == TK_OK)
    core->wake(fx);
  return status;
}

TK_API tk_status tk_heartbeat(tk_worker* worker, const int64_t* step_ids,
                              const int64_t* fencing_tokens, size_t count, int* outcomes,
                              tk_error* err) {
  return guarded(err, [&] {
    require(worker, "worker");
    if (count == 0)
      return;
    require(step_ids, "step_ids");
    require(fencing_tokens, "fencing_tokens");
    auto* core = worker->core;
    int* out = outcomes;
    if (!out) {
      worker->outcomes.resize(count);
      out = worker->outcomes.data();
    }
    std::lock_guard<std::mutex> g{core->mu};
    core->st->heartbeat(step_ids, fencing_tokens, count, core->now() + worker->lease_ms, out);
  });
}

// ---- core_testing.h -----------------------------------------------------

TK_API tk_status tk_set_clock(tk_core* core, tk_clock_fn fn, void* user, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    std::lock_guard<std::mutex> g{core->mu};
    core->clock = fn;
    core->clock_user = user;
  });
}

TK_API tk_status tk_set_event_pooling(tk_worker* worker, int pooled, tk_error* err) {
  return guarded(err, [&] {
    require(worker, "worker");
    worker->events.set_pooled(pooled != 0);
  });
}

TK_API tk_status tk_inject_store_fault(tk_core* core, int64_t after_statements, tk_error* err) {
  return guarded(err, [&] {
    require(core, "core");
    std::lock_guard<std::mutex> g{core->mu};
    core->st->inject_fault(after_statements < 0 ? -1 : after_statements);
  });
}

}  // extern "C"
