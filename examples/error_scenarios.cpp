// error_scenarios — how failures end: at once, after every retry, or not at all.
//
//   permanent:  [charge_card]   fails, not retryable     → task error, 1 attempt
//   exhausted:  [call_service]  fails every time         → task error, 3 attempts
//   flaky:      [fetch_rates]   fails twice, then works  → task complete, 3 attempts
//
// Three one-step pipelines, one task each. A non-retryable failure ends the
// task on its first attempt whatever the retry policy; a retryable one is run
// again (linear backoff from 20 ms here) until max_attempts executions, the
// first included, have been used.
// Run: error_scenarios [--store=memory: | --store=sqlite:errors.db]
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "check.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

using tasker::json;
using namespace std::chrono_literals;

/// Three attempts in all, 20 ms, 40 ms… apart.
tasker::retry_policy three_quick_attempts() {
  tasker::retry_policy p;
  p.max_attempts = 3;
  p.backoff = "linear";
  p.base = 20ms;
  return p;
}

/// What one scenario should end with.
struct scenario {
  std::string pipeline;
  std::string step;
  std::string state;     ///< the task's final state
  int attempts;          ///< executions of the step
  json last_error_type;  ///< null: the step has no error
};

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("charge_card", [](tasker::step_context&) {
      return tasker::failure("card declined (insufficient funds)", "permanent_error", false);
    });
    w.handle("call_service", [](tasker::step_context& ctx) {
      return tasker::failure("service unavailable (attempt " + std::to_string(ctx.attempt()) + ")",
                             "retryable_error", true);
    });
    w.handle("fetch_rates", [](tasker::step_context& ctx) {
      if (ctx.attempt() < 3)
        return tasker::failure("rate service busy", "retryable_error", true);
      return tasker::success({{"usd_eur", 0.92}, {"attempt", ctx.attempt()}});
    });

    tasker::pipeline permanent{"examples", "permanent_error", "1.0.0"};
    permanent.step("charge_card", "charge_card",
                   tasker::step_options{}.retry(three_quick_attempts()));
    tasker::pipeline exhausted{"examples", "retries_exhausted", "1.0.0"};
    exhausted.step("call_service", "call_service",
                   tasker::step_options{}.retry(three_quick_attempts()));
    tasker::pipeline flaky{"examples", "fail_twice_then_succeed", "1.0.0"};
    flaky.step("fetch_rates", "fetch_rates", tasker::step_options{}.retry(three_quick_attempts()));
    for (const auto* p : {&permanent, &exhausted, &flaky})
      w.register_pipeline(*p);

    const std::vector<scenario> scenarios = {
        {"permanent_error", "charge_card", "error", 1, "permanent_error"},
        {"retries_exhausted", "call_service", "error", 3, "retryable_error"},
        {"fail_twice_then_succeed", "fetch_rates", "complete", 3, "retryable_error"}};
    auto& client = w.client();
    std::vector<std::int64_t> tasks;
    for (const auto& s : scenarios)
      tasks.push_back(client.create("examples", s.pipeline, "1.0.0"));

    examples::checker check;
    for (std::size_t i = 0; i < scenarios.size(); ++i) {
      const auto& s = scenarios[i];
      const auto state = client.wait(tasks[i]);
      const auto step = examples::step_status(client.status(tasks[i]), s.step);
      const auto error = examples::field(step, "last_error");
      std::cout << s.pipeline << ": task " << state << " after "
                << examples::field(step, "attempts") << " attempt(s); last error: "
                << (error.is_null()
                        ? "none"
                        : examples::show(examples::field(error, "type")) + " \""
                              + examples::show(examples::field(error, "message")) + "\"")
                << '\n';
      const auto what = s.pipeline + " ";
      check.equal(what + "task state", state, s.state);
      check.equal(what + s.step + " attempts", examples::field(step, "attempts"), json(s.attempts));
      check.equal(what + s.step + " last_error.type", examples::field(error, "type"),
                  s.last_error_type);
    }
    return check.exit_code();
  });
}
