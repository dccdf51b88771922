// Real workers on the template fields that change how steps run: a step
// naming a handler method runs that entry point (function and actor
// handlers), a method nobody registered fails permanently, and a worker's
// environment hands its overrides to the handlers.
#include <chrono>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include <caf/typed_event_based_actor.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <tasker/runtime/worker.hpp>

using namespace std::chrono_literals;
using tasker::json;

namespace {

tasker::worker_config memory_config() {
  tasker::worker_config cfg;
  cfg.store = "memory:";
  cfg.log_level = "error";
  cfg.threads = 2;
  return cfg;
}

/// Tasker's method-dispatch fixture, shortened: one callable, three methods.
const char* const payments_yaml = R"(
name: payments
namespace_name: shop
version: 1.0.0
steps:
  - name: charge
    handler: {callable: payments}
  - name: refund
    handler: {callable: payments, method: refund, resolver: explicit_mapping}
    dependencies: [charge]
  - name: audit
    handler: {callable: payments, method: audit}
    dependencies: [refund]
)";

/// A worker's payments handler: charge (call) and refund, each saying which ran.
tasker::handler_methods payment_methods() {
  return {{"call",
           [](tasker::step_context& ctx) {
             return tasker::success({{"ran", "call"}, {"method", ctx.method()}});
           }},
          {"refund", [](tasker::step_context& ctx) {
             return tasker::success({{"ran", "refund"}, {"method", ctx.method()}});
           }}};
}

json step_named(const json& status, const std::string& name) {
  for (const auto& s : status.at("steps"))
    if (s.at("name") == name)
      return s;
  FAIL("no step " << name);
  return {};
}

}  // namespace

TEST_CASE("a step with method refund runs the refund entry point of its handler"
          * doctest::timeout(30)) {
  auto cfg = memory_config();
  tasker::worker w{cfg};
  auto methods = payment_methods();
  methods.emplace("audit", [](tasker::step_context& ctx) {
    return tasker::success({{"ran", "audit"}, {"saw", ctx.dependency_result("refund")}});
  });
  w.handle("payments", std::move(methods));
  const auto p = tasker::parse_pipeline_yaml(payments_yaml);
  w.register_pipeline(p);
  auto& c = w.client();
  const auto task = c.create(p);
  REQUIRE(c.wait(task, 20s) == "complete");
  const auto status = c.status(task);
  CHECK(step_named(status, "charge").at("result") == json{{"ran", "call"}, {"method", "call"}});
  CHECK(step_named(status, "refund").at("result") == json{{"ran", "refund"}, {"method", "refund"}});
  CHECK(step_named(status, "audit").at("result").at("ran") == "audit");
}

TEST_CASE("a step whose method its handler did not register fails at once as handler_not_found"
          * doctest::timeout(30)) {
  auto cfg = memory_config();
  cfg.log_level = "warn";
  std::optional<tasker::worker> w{std::in_place, cfg};  // sets up the "tasker" logger
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto logger = spdlog::default_logger();
  logger->sinks().push_back(sink);
  w->handle("payments", payment_methods());  // no audit
  const auto p = tasker::parse_pipeline_yaml(payments_yaml);
  w->register_pipeline(p);
  auto& c = w->client();
  const auto task = c.create(p);
  REQUIRE(c.wait(task, 20s) == "error");
  const auto audit = step_named(c.status(task), "audit");
  CHECK(audit.at("state") == "error");
  CHECK(audit.at("attempts") == 1);  // permanent: no retry
  CHECK(audit.at("last_error").at("type") == "handler_not_found");
  const auto message = audit.at("last_error").at("message").get<std::string>();
  CHECK(message.find("handler \"payments\" has no method \"audit\"") != std::string::npos);
  CHECK(message.find("(it has: call, refund)") != std::string::npos);
  w.reset();
  logger->flush();
  logger->sinks().pop_back();
  // The worker said so when it started, before any step ran.
  const auto text = captured.str();
  INFO(text);
  CHECK(text.find("pipeline shop/payments@1.0.0 step \"audit\" runs method \"audit\" of handler "
                  "\"payments\", which this worker registered without it")
        != std::string::npos);
}

TEST_CASE("an actor handler answers the methods it registered, reading the event's method"
          * doctest::timeout(30)) {
  auto cfg = memory_config();
  tasker::worker w{cfg};
  w.handle_actor(
      "payments", {"call", "refund", "audit"},
      [](tasker::step_handler_pointer) -> tasker::step_handler_behavior {
        return {[](const tasker::step_event& e) { return tasker::success({{"ran", e.method}}); }};
      });
  const auto p = tasker::parse_pipeline_yaml(payments_yaml);
  w.register_pipeline(p);
  auto& c = w.client();
  const auto task = c.create(p);
  REQUIRE(c.wait(task, 20s) == "complete");
  const auto status = c.status(task);
  CHECK(step_named(status, "charge").at("result") == json{{"ran", "call"}});
  CHECK(step_named(status, "refund").at("result") == json{{"ran", "refund"}});
  CHECK(step_named(status, "audit").at("result") == json{{"ran", "audit"}});
}

TEST_CASE("registering a handler without methods is refused at the call" * doctest::timeout(10)) {
  auto cfg = memory_config();
  tasker::worker w{cfg};
  CHECK_THROWS_AS(w.handle("none", tasker::handler_methods{}), std::logic_error);
  CHECK_THROWS_AS(
      w.handle("empty", {{"", [](tasker::step_context&) { return tasker::success(); }}}),
      std::logic_error);
  CHECK_THROWS_AS(w.handle("null", {{"call", nullptr}}), std::logic_error);
  CHECK_THROWS_AS(w.handle_actor("actor", std::vector<std::string>{}, nullptr), std::logic_error);
}

namespace {

const char* const greeter_yaml = R"(
name: greeter
namespace_name: env_tests
version: 1.0.0
steps:
  - name: greet
    handler: {callable: greet, initialization: {greeting: hello, punctuation: "."}}
    retry: {max_attempts: 4, backoff: none}
environments:
  test:
    steps:
      - name: greet
        handler: {initialization: {greeting: hi}}
        retry: {max_attempts: 1}
        timeout_seconds: 7
)";

/// What the greet handler saw, run by a worker in `environment`.
json greeting_in(const std::string& environment) {
  auto cfg = memory_config();
  cfg.environment = environment;
  tasker::worker w{cfg};
  w.handle("greet", [](tasker::step_context& ctx) {
    return tasker::success({{"config", ctx.config()},
                            {"max_attempts", ctx.max_attempts()},
                            {"timeout_ms", ctx.event().timeout_ms}});
  });
  const auto p = tasker::parse_pipeline_yaml(greeter_yaml);
  w.register_pipeline(p);
  auto& c = w.client();
  const auto task = c.create(p);
  REQUIRE(c.wait(task, 20s) == "complete");
  return c.status(task).at("steps")[0].at("result");
}

}  // namespace

TEST_CASE("a worker's environment hands that environment's overrides to the handler"
          * doctest::timeout(60)) {
  const auto test = greeting_in("test");
  CHECK(test.at("config") == json{{"greeting", "hi"}, {"punctuation", "."}});
  CHECK(test.at("max_attempts") == 1);
  CHECK(test.at("timeout_ms") == 7000);

  // No environment, or one the template does not define: as written.
  for (const char* environment : {"", "production"}) {
    CAPTURE(environment);
    const auto plain = greeting_in(environment);
    CHECK(plain.at("config") == json{{"greeting", "hello"}, {"punctuation", "."}});
    CHECK(plain.at("max_attempts") == 4);
    CHECK(plain.at("timeout_ms") == 0);
  }
}

TEST_CASE("the environment comes from --environment, else TASKER_ENV" * doctest::timeout(10)) {
  auto parsed = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    tasker::worker_config cfg;
    int code = -1;
    REQUIRE(cfg.parse_args(static_cast<int>(argv.size()), argv.data(), &code));
    return cfg.environment;
  };
  ::unsetenv("TASKER_ENV");
  CHECK(parsed({"w"}).empty());
  CHECK(parsed({"w", "--environment=test"}) == "test");
  ::setenv("TASKER_ENV", "development", 1);
  CHECK(parsed({"w"}) == "development");
  CHECK(parsed({"w", "--environment=test"}) == "test");
  ::unsetenv("TASKER_ENV");
}
