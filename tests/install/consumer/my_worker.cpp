// A worker built out of tree against the installed tasker: two steps, the
// second doubling what the first squared. Exit 0 only on the right answer.
#include <cstdint>
#include <iostream>

#include <tasker/runtime/worker.hpp>

int main() {
  tasker::worker_config cfg;
  cfg.store = "memory:";
  tasker::worker w{cfg};
  w.handle("square", [](tasker::step_context& ctx) {
    const auto n = ctx.input<std::int64_t>("n");
    return tasker::success({{"value", n * n}});
  });
  w.handle("double", [](tasker::step_context& ctx) {
    return tasker::success({{"value", 2 * ctx.dependency<std::int64_t>("square", "value")}});
  });
  tasker::pipeline p{"consumer", "square_then_double", "1.0.0"};
  p.step("square", "square").step("double", "double", tasker::after("square"));
  w.register_pipeline(p);
  const auto task = w.client().create(p, {{"n", 7}});
  const auto state = w.client().wait(task);
  const auto value = w.client().result(task, "double").at("value");
  std::cout << "task " << task << " " << state << ": double = " << value << '\n';
  return state == "complete" && value == 98 ? 0 : 1;
}
