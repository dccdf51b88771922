// The C ABI's contract at its edges: null pointers, bad JSON, size caps,
// unknown ids and URLs. Every failure must come back as a status and a
// message, never as a crash.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <tasker/test/core.hpp>

using namespace tasker::test;

namespace {

/// Checks a failed call: the status, the same code in `err`, and a message.
void check_failed(tk_status status, const tk_error& err, tk_status expected) {
  INFO("message: ", err.message);
  CHECK(status == expected);
  CHECK(err.code == expected);
  CHECK(std::strlen(err.message) > 0);
  CHECK(std::strlen(err.message) < sizeof err.message);
}

/// A memory core with test/flow@1 (a -> b) registered.
struct abi_env {
  manual_clock clock;
  core_handle core;
  explicit abi_env(const char* options = nullptr) {
    core = open_core("memory:", options);
    use_clock(core, clock);
    register_pipeline(core, pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}}));
  }
};

std::string padded_object(std::size_t bytes) {
  // {"pad":"xxxx...."} of exactly `bytes` bytes
  std::string s = R"({"pad":")";
  s.append(bytes - s.size() - 2, 'x');
  s += "\"}";
  return s;
}

}  // namespace

TEST_CASE("the version is a non-empty string" * doctest::timeout(5)) {
  REQUIRE(tk_version() != nullptr);
  CHECK(std::strlen(tk_version()) > 0);
}

TEST_CASE("the library's version is the one CMake generated into the header"
          * doctest::timeout(5)) {
  CHECK(std::string(tk_version()) == TK_VERSION_STRING);
  CHECK(tk_version_number() == TK_VERSION_NUMBER);
  CHECK(TK_VERSION_NUMBER == TK_VERSION_MAJOR * 10000 + TK_VERSION_MINOR * 100 + TK_VERSION_PATCH);
  CHECK(std::string(tk_version())
        == std::to_string(TK_VERSION_MAJOR) + "." + std::to_string(TK_VERSION_MINOR) + "."
               + std::to_string(TK_VERSION_PATCH));
}

TEST_CASE("every status has a name of its own" * doctest::timeout(5)) {
  const tk_status all[] = {TK_OK,          TK_INVALID_ARGUMENT, TK_MALFORMED_JSON, TK_VALIDATION,
                           TK_NOT_FOUND,   TK_CONFLICT,         TK_TOO_LARGE,      TK_STORE_ERROR,
                           TK_UNSUPPORTED, TK_INTERNAL,         TK_STALE,          TK_DUPLICATE};
  std::vector<std::string> names;
  for (tk_status s : all) {
    const char* name = tk_status_name(s);
    REQUIRE(name != nullptr);
    INFO("status ", static_cast<int>(s), ": ", name);
    CHECK(std::string(name) != "unknown");
    CHECK(std::find(names.begin(), names.end(), name) == names.end());
    names.emplace_back(name);
  }
  CHECK(std::string(tk_status_name(TK_NOT_FOUND)) == "TK_NOT_FOUND");
  CHECK(std::string(tk_status_name(static_cast<tk_status>(30))) == "unknown");
}

TEST_CASE("null pointers are invalid arguments and never crash" * doctest::timeout(10)) {
  abi_env env;
  tk_core* core = env.core;
  tk_error err{};

  SUBCASE("opening and closing") {
    CHECK(tk_open(nullptr, nullptr, &err) == nullptr);
    check_failed(err.code, err, TK_INVALID_ARGUMENT);
    tk_close(nullptr);
    tk_free(nullptr);
    tk_worker_close(nullptr);
  }
  SUBCASE("clock and wake-up") {
    check_failed(tk_set_clock(nullptr, &manual_clock::read, &env.clock, &err), err,
                 TK_INVALID_ARGUMENT);
    check_failed(tk_set_wakeup(nullptr, nullptr, nullptr, &err), err, TK_INVALID_ARGUMENT);
    // NULL restores the system clock.
    CHECK(tk_set_clock(core, nullptr, nullptr, &err) == TK_OK);
    CHECK(tk_now_ms(core) > clock_start_ms);
  }
  SUBCASE("pipelines and tasks") {
    check_failed(tk_register_pipeline(nullptr, "{}", &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_register_pipeline(core, nullptr, &err), err, TK_INVALID_ARGUMENT);

    tk_task_spec spec{};
    spec.namespace_name = "test";
    spec.name = "flow";
    spec.version = "1";
    std::int64_t id = 0;
    check_failed(tk_create_task(nullptr, &spec, &id, nullptr, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_create_task(core, nullptr, &id, nullptr, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_create_task(core, &spec, nullptr, nullptr, &err), err, TK_INVALID_ARGUMENT);
    for (int field = 0; field < 3; ++field) {
      INFO("null field ", field);
      tk_task_spec broken = spec;
      (field == 0 ? broken.namespace_name : field == 1 ? broken.name : broken.version) = nullptr;
      check_failed(tk_create_task(core, &broken, &id, nullptr, &err), err, TK_INVALID_ARGUMENT);
    }
    REQUIRE(tk_create_task(core, &spec, &id, nullptr, &err) == TK_OK);  // created may be NULL

    char* text = nullptr;
    check_failed(tk_task_status(nullptr, id, &text, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_task_status(core, id, nullptr, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_cancel_task(nullptr, id, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_list_tasks(nullptr, nullptr, &text, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_list_tasks(core, nullptr, nullptr, &err), err, TK_INVALID_ARGUMENT);
    CHECK(text == nullptr);
  }
  SUBCASE("the worker interface") {
    tk_worker_options named{};
    named.name = "w";
    CHECK(tk_worker_open(nullptr, &named, &err) == nullptr);
    check_failed(err.code, err, TK_INVALID_ARGUMENT);
    CHECK(tk_worker_open(core, nullptr, &err) == nullptr);
    check_failed(err.code, err, TK_INVALID_ARGUMENT);
    const char* with_null[] = {"test", nullptr};
    for (int broken = 0; broken < 4; ++broken) {
      INFO("broken options ", broken);
      tk_worker_options o = named;
      if (broken == 0) {
        o.name = nullptr;  // unnamed
      } else if (broken == 1) {
        o.namespace_count = 2;  // without the array
      } else if (broken == 2) {
        o.namespaces = with_null;
        o.namespace_count = 2;
      } else {
        o.lease_ms = -1;
      }
      err = tk_error{};
      tk_worker* w = tk_worker_open(core, &o, &err);
      CHECK(w == nullptr);
      check_failed(err.code, err, TK_INVALID_ARGUMENT);
      tk_worker_close(w);
    }

    create_task(core);
    worker_handle w(core, "w1");
    const tk_step_event* events = nullptr;
    std::size_t count = 0;
    check_failed(tk_poll(nullptr, 1, &events, &count, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_poll(w, 1, nullptr, &count, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_poll(w, 1, &events, nullptr, &err), err, TK_INVALID_ARGUMENT);
    std::int64_t delay = 0;
    check_failed(tk_next_due(nullptr, &delay, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_next_due(w, nullptr, &err), err, TK_INVALID_ARGUMENT);
    // None of the failed polls claimed anything.
    auto a = poll_one(w);
    CHECK(a.attempt == 1);

    check_failed(tk_complete(nullptr, nullptr, 0, nullptr, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_complete(w, nullptr, 1, nullptr, &err), err, TK_INVALID_ARGUMENT);
    const std::int64_t ids[] = {a.step_id};
    const std::int64_t tokens[] = {a.fencing_token};
    int outcome = -1;
    check_failed(tk_heartbeat(nullptr, ids, tokens, 1, &outcome, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_heartbeat(w, nullptr, tokens, 1, &outcome, &err), err, TK_INVALID_ARGUMENT);
    check_failed(tk_heartbeat(w, ids, nullptr, 1, &outcome, &err), err, TK_INVALID_ARGUMENT);
    // Outcomes may be NULL.
    CHECK(tk_heartbeat(w, ids, tokens, 1, nullptr, &err) == TK_OK);
    auto done = success_result(a, "{}");
    CHECK(tk_complete(w, &done, 1, nullptr, &err) == TK_OK);
    CHECK(step_status(task_status(core, a.task_id), "a").at("state") == "complete");
  }
}

TEST_CASE("the error pointer may be null" * doctest::timeout(10)) {
  abi_env env;
  CHECK(tk_open("nosuchscheme:x", nullptr, nullptr) == nullptr);
  CHECK(tk_open(nullptr, nullptr, nullptr) == nullptr);
  CHECK(tk_register_pipeline(env.core, "{", nullptr) == TK_MALFORMED_JSON);
  CHECK(tk_register_pipeline(env.core, nullptr, nullptr) == TK_INVALID_ARGUMENT);
  CHECK(tk_cancel_task(env.core, 424242, nullptr) == TK_NOT_FOUND);
  char* text = nullptr;
  CHECK(tk_task_status(env.core, 424242, &text, nullptr) == TK_NOT_FOUND);
  tk_worker_options named{};
  named.name = "w";
  CHECK(tk_worker_open(nullptr, &named, nullptr) == nullptr);
  worker_handle w(env.core, "w1");
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  CHECK(tk_poll(w, 1, &events, &count, nullptr) == TK_OK);
  CHECK(count == 0);
}

TEST_CASE("unknown ids are not found" * doctest::timeout(10)) {
  abi_env env;
  tk_error err{};
  char* text = nullptr;
  check_failed(tk_task_status(env.core, 424242, &text, &err), err, TK_NOT_FOUND);
  CHECK(text == nullptr);
  check_failed(tk_cancel_task(env.core, 424242, &err), err, TK_NOT_FOUND);
  check_failed(tk_cancel_task(env.core, -1, &err), err, TK_NOT_FOUND);

  worker_handle w(env.core, "w1");
  tk_step_result r{};
  r.step_id = 424242;
  r.fencing_token = 1;
  r.kind = TK_RESULT_SUCCESS;
  int outcome = -1;
  CHECK(tk_complete(w, &r, 1, &outcome, &err) == TK_OK);
  CHECK(outcome == TK_NOT_FOUND);
  CHECK(heartbeat(w, 424242, 1) == TK_NOT_FOUND);
}

TEST_CASE("an unknown store scheme or option is unsupported" * doctest::timeout(10)) {
  tk_error err{};
  for (const char* url : {"redis://localhost:6379", "nosuchscheme:x", "memory", ""}) {
    INFO("url '", std::string(url), "'");
    err = tk_error{};
    CHECK(tk_open(url, nullptr, &err) == nullptr);
    CHECK(err.code != TK_OK);
    CHECK(std::strlen(err.message) > 0);
  }
  err = tk_error{};
  CHECK(tk_open("redis://localhost:6379", nullptr, &err) == nullptr);
  check_failed(err.code, err, TK_UNSUPPORTED);

  err = tk_error{};
  CHECK(tk_open("memory:", R"({"no_such_option":1})", &err) == nullptr);
  check_failed(err.code, err, TK_UNSUPPORTED);

  err = tk_error{};
  CHECK(tk_open("memory:", R"({"max_json_bytes":)", &err) == nullptr);
  check_failed(err.code, err, TK_MALFORMED_JSON);

  // The unpooled baseline is a test control now (core_testing.h), not an option.
  err = tk_error{};
  CHECK(tk_open("memory:", R"({"pooled_events":false})", &err) == nullptr);
  check_failed(err.code, err, TK_UNSUPPORTED);
}

TEST_CASE("every documented option is accepted" * doctest::timeout(10)) {
  tk_error err{};
  // async_worker_commits and schema apply to PostgreSQL only; other stores
  // accept and ignore them.
  auto core =
      core_handle::open("memory:",
                        R"({"max_json_bytes":1024,"default_lease_ms":5000,"busy_timeout_ms":100,
                              "synchronous":"full","seed":7,"schema":"x",
                              "async_worker_commits":true})",
                        err);
  INFO(err.message);
  CHECK(core);
}

TEST_CASE("unpooled events carry the same content as pooled ones" * doctest::timeout(10)) {
  for (int pooled : {1, 0}) {
    INFO("pooled ", pooled);
    auto core = open_core("memory:");
    register_pipeline(core, pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}}));
    task_args args;
    args.context = R"({"n":3})";
    create_task(core, args);
    worker_handle w(core, "w");
    tk_error err{};
    REQUIRE(tk_set_event_pooling(w, pooled, &err) == TK_OK);
    auto a = poll_one(w);
    CHECK(a.context == json::parse(R"({"n":3})"));
    REQUIRE(succeed(w, a, R"({"v":9})") == TK_OK);
    auto b = poll_one(w);
    CHECK(b.dependency_results == json::parse(R"({"a":{"v":9}})"));
    CHECK(b.wait_token.size() > 30);
  }
}

TEST_CASE("a pipeline is validated without a core exactly as registration checks it"
          * doctest::timeout(10)) {
  auto core = open_core("memory:");
  tk_error err{};
  const auto good = pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}});
  CHECK(tk_validate_pipeline(good.c_str(), &err) == TK_OK);
  CHECK(err.code == TK_OK);
  const std::string bad[] = {
      "{",
      pipeline_json("test", "flow", {{"a", {"b"}}, {"b", {"a"}}}),
      pipeline_json("test", "flow", {{"a"}, {"b", {"ghost"}}}),
      pipeline_json("test", "flow", {{"twin"}, {"twin"}}),
  };
  for (const auto& text : bad) {
    INFO(text);
    tk_error validated{}, registered{};
    const auto status = tk_validate_pipeline(text.c_str(), &validated);
    CHECK(status != TK_OK);
    CHECK(tk_register_pipeline(core, text.c_str(), &registered) == status);
    CHECK(std::string(validated.message) == registered.message);
  }
  check_failed(tk_validate_pipeline(nullptr, &err), err, TK_INVALID_ARGUMENT);
}

TEST_CASE("every problem of a pipeline is reported at once, one a line" * doctest::timeout(10)) {
  tk_error err{};
  const auto text = pipeline_json("test", "flow", {{"a", {"ghost"}}, {"b", {}, nullptr, ""}});
  check_failed(tk_validate_pipeline(text.c_str(), &err), err, TK_VALIDATION);
  CHECK(std::string(err.message)
        == "pipeline test/flow@1 step \"a\": unknown dependency \"ghost\"\n"
           "pipeline test/flow@1 step \"b\": handler is empty");
  // More than fit in a message: the last line counts the rest.
  std::vector<step_spec> many;
  for (int i = 0; i < 40; ++i)
    many.push_back({"s" + std::to_string(i), {"missing"}});
  const auto crowded = pipeline_json("test", "flow", many);
  check_failed(tk_validate_pipeline(crowded.c_str(), &err), err, TK_VALIDATION);
  const std::string message = err.message;
  CHECK(message.rfind("pipeline test/flow@1 step \"s0\": unknown dependency \"missing\"\n", 0)
        == 0);
  CHECK(message.find(" more)") != std::string::npos);
}

TEST_CASE("malformed JSON is rejected wherever it comes in" * doctest::timeout(10)) {
  abi_env env;
  tk_error err{};
  SUBCASE("a pipeline") {
    for (const char* bad :
         {"{", "", "{\"namespace\":\"x\",}", "[1 2]", "{\"a\":\"\xff\"}", "{} trailing"}) {
      INFO("pipeline '", std::string(bad), "'");
      check_failed(tk_register_pipeline(env.core, bad, &err), err, TK_MALFORMED_JSON);
    }
  }
  SUBCASE("a task context") {
    for (const char* bad : {"{\"a\":", "{'a':1}", "{\"a\":01}", "{} {}"}) {
      INFO("context '", std::string(bad), "'");
      task_args args;
      args.context = bad;
      std::int64_t id = 0;
      check_failed(try_create_task(env.core, args, id, nullptr, err), err, TK_MALFORMED_JSON);
    }
    CHECK(list_tasks(env.core, nullptr).at("tasks").empty());
  }
  SUBCASE("a list filter") {
    char* text = nullptr;
    check_failed(tk_list_tasks(env.core, "{\"state\":", &text, &err), err, TK_MALFORMED_JSON);
  }
  SUBCASE("a completion's result, alone in its batch") {
    create_task(env.core);
    create_task(env.core);
    worker_handle w(env.core, "w1");
    auto steps = poll(w, 2);
    REQUIRE(steps.size() == 2);
    auto outcomes = complete(w, {success_result(steps[0], "[1,"), success_result(steps[1], "7")});
    CHECK(outcomes == std::vector<int>{TK_MALFORMED_JSON, TK_OK});
    auto rejected = step_status(task_status(env.core, steps[0].task_id), "a");
    CHECK(rejected.at("state") == "running");
    CHECK(rejected.at("result").is_null());
    auto applied = step_status(task_status(env.core, steps[1].task_id), "a");
    CHECK(applied.at("state") == "complete");
    CHECK(applied.at("result") == 7);
    // The rejected step can still be completed properly.
    CHECK(succeed(w, steps[0], "8") == TK_OK);
  }
}

TEST_CASE("input over max_json_bytes is too large" * doctest::timeout(10)) {
  abi_env env(R"({"max_json_bytes":1024})");
  tk_error err{};
  SUBCASE("a pipeline") {
    json p = json::parse(pipeline_json("test", "big", {{"a"}}));
    p["steps"][0]["config"] = json::parse(padded_object(2000));
    check_failed(tk_register_pipeline(env.core, p.dump().c_str(), &err), err, TK_TOO_LARGE);
  }
  SUBCASE("a task context") {
    task_args ok;
    ok.context = padded_object(1000);
    create_task(env.core, ok);
    task_args big;
    big.context = padded_object(1025);
    std::int64_t id = 0;
    check_failed(try_create_task(env.core, big, id, nullptr, err), err, TK_TOO_LARGE);
  }
  SUBCASE("a completion's result, alone in its batch") {
    create_task(env.core);
    create_task(env.core);
    worker_handle w(env.core, "w1");
    auto steps = poll(w, 2);
    REQUIRE(steps.size() == 2);
    const auto big = padded_object(4096);
    auto outcomes =
        complete(w, {success_result(steps[0], "{}"), success_result(steps[1], big.c_str())});
    CHECK(outcomes == std::vector<int>{TK_OK, TK_TOO_LARGE});
    CHECK(step_status(task_status(env.core, steps[0].task_id), "a").at("state") == "complete");
    CHECK(step_status(task_status(env.core, steps[1].task_id), "a").at("state") == "running");
  }
}

namespace {

/// A wake-up callback that takes its time: it says when it starts, sleeps,
/// and marks when it is done.
struct slow_callback {
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  static void call(void* user) {
    auto* self = static_cast<slow_callback*>(user);
    self->started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    self->finished = true;
  }
};

/// A wake-up callback that removes itself (and must not wait for itself).
struct self_removing {
  tk_core* core = nullptr;
  int calls = 0;
  tk_status removed = TK_INTERNAL;
  static void call(void* user) {
    auto* self = static_cast<self_removing*>(user);
    ++self->calls;
    self->removed = tk_set_wakeup(self->core, nullptr, nullptr, nullptr);
  }
};

}  // namespace

TEST_CASE("replacing a callback waits for its calls on other threads, so its user may be freed"
          * doctest::timeout(10)) {
  abi_env env;
  slow_callback slow;
  REQUIRE(tk_set_wakeup(env.core, &slow_callback::call, &slow, nullptr) == TK_OK);
  std::thread creator([&] {  // its task makes `a` ready: the core calls back on this thread
    tk_task_spec spec{};
    spec.namespace_name = "test";
    spec.name = "flow";
    spec.version = "1";
    spec.context_json = "{}";
    std::int64_t id = 0;
    tk_create_task(env.core, &spec, &id, nullptr, nullptr);
  });
  while (!slow.started)
    std::this_thread::yield();
  REQUIRE(tk_set_wakeup(env.core, nullptr, nullptr, nullptr) == TK_OK);
  CHECK(slow.finished);  // the call that was running when we replaced it had ended
  creator.join();

  SUBCASE("a callback that removes itself does not wait for itself") {
    self_removing remover{env.core.get()};
    REQUIRE(tk_set_wakeup(env.core, &self_removing::call, &remover, nullptr) == TK_OK);
    create_task(env.core);
    CHECK(remover.calls == 1);
    CHECK(remover.removed == TK_OK);
    create_task(env.core);
    CHECK(remover.calls == 1);  // removed
  }
}
