// A worker process for the multi-process PostgreSQL tests and benchmark: it
// serves mp/diamond@1 (a -> b, c -> d) and mp/linear@1 (a -> b -> c -> d),
// whose `count` handler returns the number of results it was handed, and
// runs until SIGTERM. TASKER_TEST_STEP_DELAY_MS makes each step sleep. The store URL comes from
// TASKER_STORE or --store.
#include <chrono>
#include <cstdlib>
#include <thread>

#include <tasker/runtime/run_main.hpp>

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    // TASKER_TEST_STEP_DELAY_MS: each step takes this long, so that a test can
    // act in the middle of a run.
    const char* delay_env = std::getenv("TASKER_TEST_STEP_DELAY_MS");
    const std::chrono::milliseconds delay{delay_env ? std::atoi(delay_env) : 0};
    w.handle("count", [delay](tasker::step_context& ctx) {
      if (delay.count() > 0)
        std::this_thread::sleep_for(delay);
      return tasker::success({{"seen", ctx.dependency_results().size()}});
    });
    tasker::pipeline diamond{"mp", "diamond", "1"};
    diamond.step("a", "count")
        .step("b", "count", tasker::after("a"))
        .step("c", "count", tasker::after("a"))
        .step("d", "count", tasker::after("b", "c"));
    w.register_pipeline(diamond);
    tasker::pipeline linear{"mp", "linear", "1"};
    linear.step("a", "count")
        .step("b", "count", tasker::after("a"))
        .step("c", "count", tasker::after("b"))
        .step("d", "count", tasker::after("c"));
    w.register_pipeline(linear);
    return w.run();
  });
}
