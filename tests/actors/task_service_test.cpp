// The task service: task operations and waits straight on the core, from
// plain threads (no actor system), on real memory and SQLite cores.
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include <caf/sec.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <tasker/actors/core_error.hpp>
#include <tasker/actors/task_service.hpp>
#include <tasker/test/core.hpp>
#include <tasker/test/temp_dir.hpp>

using namespace std::chrono_literals;
using nlohmann::json;
using tasker::actors::task_service;

namespace {

const std::string one_step = json{{"namespace", "ns"},
                                  {"name", "p"},
                                  {"version", "1"},
                                  {"steps", {{{"name", "a"}, {"handler", "h"}}}}}
                                 .dump();

tasker::task_request request() {
  tasker::task_request r;
  r.namespace_name = "ns";
  r.name = "p";
  r.version = "1";
  r.context_json = "{}";
  return r;
}

std::int64_t create(const task_service& s) {
  std::int64_t id = 0;
  REQUIRE_FALSE(s.create(request(), id));
  return id;
}

}  // namespace

TEST_CASE("a wait answers when another thread ends the task, and at once for an ended one"
          * doctest::timeout(30)) {
  task_service s{tasker::test::open_core("memory:")};
  REQUIRE_FALSE(s.register_pipeline(one_step));
  const auto id = create(s);
  auto waiting = std::async(std::launch::async, [&] {
    std::string state;
    auto e = s.wait(id, 20s, state, 10s);  // the listener must answer, not the recheck
    return e ? std::string("error") : state;
  });
  CHECK(waiting.wait_for(50ms) == std::future_status::timeout);
  REQUIRE_FALSE(s.cancel(id));
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  CHECK(waiting.get() == "cancelled");
  std::string again;
  CHECK_FALSE(s.wait(id, 1ms, again));
  CHECK(again == "cancelled");
}

TEST_CASE("a wait fails clearly: unknown task, timeout, stopped worker" * doctest::timeout(30)) {
  task_service s{tasker::test::open_core("memory:")};
  REQUIRE_FALSE(s.register_pipeline(one_step));
  std::string state;
  auto unknown = s.wait(424242, 1s, state);
  CHECK(tasker::actors::core_status(unknown) == TK_NOT_FOUND);
  const auto id = create(s);
  auto late = s.wait(id, 30ms, state);
  CHECK(late == caf::sec::request_timeout);
  CHECK(state.empty());
  auto waiting = std::async(std::launch::async, [&] {
    std::string st;
    return s.wait(id, 20s, st);
  });
  CHECK(waiting.wait_for(50ms) == std::future_status::timeout);
  s.stop_waits();
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  CHECK(waiting.get() == caf::sec::runtime_error);
  CHECK(s.wait(id, 20s, state) == caf::sec::runtime_error);  // later waits too
  std::string text;
  CHECK_FALSE(s.status(id, text));  // the other calls still work
}

TEST_CASE("a task another process ends on a shared SQLite file is seen by the recheck"
          * doctest::timeout(30)) {
  // SQLite's core reports only the endings it makes itself: the other core
  // stands for another process.
  tasker::test::temp_dir dir;
  const auto url = "sqlite:" + dir.file("shared.db");
  task_service here{tasker::test::open_core(url)};
  task_service there{tasker::test::open_core(url)};
  REQUIRE_FALSE(here.register_pipeline(one_step));
  const auto id = create(here);
  auto waiting = std::async(std::launch::async, [&] {
    std::string state;
    auto e = here.wait(id, 20s, state, 20ms);
    return e ? std::string("error") : state;
  });
  CHECK(waiting.wait_for(50ms) == std::future_status::timeout);
  REQUIRE_FALSE(there.cancel(id));
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  CHECK(waiting.get() == "cancelled");
}

TEST_CASE("a service with no core refuses every call" * doctest::timeout(10)) {
  task_service s{tasker::core_handle{}};
  std::string out;
  CHECK(s.status(1, out));
  CHECK(s.ping());
  CHECK(s.wait(1, 10ms, out));
}
