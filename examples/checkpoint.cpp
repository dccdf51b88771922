// checkpoint — a long step saves where it is (tasker::checkpoint) and yields;
// when an attempt fails, the retry resumes from the last checkpoint instead
// of from the start.
//
//   import (100 items, a checkpoint every 25) ──▶ report
//
// The first attempt fails at item 60, after its checkpoint at 50. The retry
// starts at 50, so items 0–49 are processed once, 50–59 twice (done after the
// last checkpoint, before the failure) and 60–99 once. The example counts
// every item's processing and checks exactly that.
// Run: checkpoint [--store=memory: | --store=sqlite:checkpoint.db]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "check.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

constexpr std::int64_t items = 100, every = 25, fail_at = 60;

std::mutex mu;
std::vector<int> processed(items, 0);  // how often each item was processed

tasker::step_result import_items(const tasker::step_context& ctx) {
  const auto saved = ctx.checkpoint();
  std::int64_t next = saved.is_null() ? 0 : saved.value("next", std::int64_t{0});
  const std::int64_t stop = std::min(items, next + every);
  for (; next < stop; ++next) {
    if (ctx.attempt() == 1 && next == fail_at)
      return tasker::failure("the connection dropped at item " + std::to_string(next),
                             "retryable_error", true);
    std::lock_guard<std::mutex> lock(mu);
    processed[static_cast<std::size_t>(next)] += 1;
  }
  if (next < items)
    return tasker::checkpoint({{"next", next}});
  return tasker::success({{"imported", items}, {"attempt", ctx.attempt()}});
}

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("import_items", import_items);
    w.handle("report", [](tasker::step_context& ctx) {
      return tasker::success({{"imported", ctx.dependency<std::int64_t>("import", "imported")}});
    });
    tasker::retry_policy quick;
    quick.max_attempts = 3;
    quick.backoff = "none";
    quick.base = std::chrono::milliseconds(0);
    tasker::pipeline p{"examples", "checkpoint", "1.0.0"};
    p.step("import", "import_items", tasker::step_options{}.retry(quick))
        .step("report", "report", tasker::after("import"));
    w.register_pipeline(p);

    auto& client = w.client();
    const auto task = client.create(p, tasker::json::object());
    const auto state = client.wait(task);
    const auto result = client.result(task, "import");
    examples::checker check;
    check.equal("task state", state, "complete");
    check.equal("the attempt that finished", examples::field(result, "attempt"), tasker::json(2));
    std::lock_guard<std::mutex> lock(mu);
    int once = 0, twice = 0;
    for (std::int64_t i = 0; i < items; ++i) {
      const int expected = i >= 50 && i < fail_at ? 2 : 1;
      const int got = processed[static_cast<std::size_t>(i)];
      once += got == 1;
      twice += got == 2;
      if (got != expected)
        check.equal("times item " + std::to_string(i) + " was processed", got, expected);
    }
    std::cout << "task " << task << " " << state << ": " << once << " items processed once, "
              << twice << " twice (after the last checkpoint, before the failure); finished on "
              << "attempt " << examples::field(result, "attempt") << '\n';
    return check.exit_code();
  });
}
