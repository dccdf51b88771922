// mixed_dag — fan-out, fan-in and single-parent edges in one workflow.
//
//          ┌──▶ left ──┬──────────▶ transform ──┐
//   init ──┤           ├──▶ validate ───────────┼──▶ finalize
//          └──▶ right ─┴──────────▶ analyze ────┘
//
// validate ← left + right, transform ← left, analyze ← right,
// finalize ← validate + transform + analyze. Each step squares the product of
// its parents' values. Input {"even_number": 6} gives init 6^2, left/right
// 6^4, validate 6^16, transform/analyze 6^8 and finalize 6^64, kept exact as
// a decimal string (see math.hpp).
// Run: mixed_dag [--store=memory: | --store=sqlite:mixed_dag.db]
#include <iostream>
#include <string>
#include <vector>

#include "math.hpp"
#include <tasker/runtime/run_main.hpp>

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("square", examples::square);

    tasker::pipeline mixed{"examples", "mixed_dag", "1.0.0"};
    mixed.step("init", "square")
        .step("left", "square", examples::squares({"init"}))
        .step("right", "square", examples::squares({"init"}))
        .step("validate", "square", examples::squares({"left", "right"}))
        .step("transform", "square", examples::squares({"left"}))
        .step("analyze", "square", examples::squares({"right"}))
        .step("finalize", "square", examples::squares({"validate", "transform", "analyze"}));
    w.register_pipeline(mixed);

    auto& client = w.client();
    const auto task = client.create(mixed, {{"even_number", 6}});
    const auto state = client.wait(task);
    std::cout << "task " << task << " " << state
              << ": finalize = " << examples::step_value(client, task, "finalize") << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    const auto six_to_the = [](unsigned k) { return examples::power(6, k); };
    examples::check_values(check, client, task,
                           {{"init", six_to_the(2)},
                            {"left", six_to_the(4)},
                            {"right", six_to_the(4)},
                            {"validate", six_to_the(16)},
                            {"transform", six_to_the(8)},
                            {"analyze", six_to_the(8)},
                            {"finalize", six_to_the(64)}});
    return check.exit_code();
  });
}
