// demo_worker — the README's demo: four math workflows, a batch of tasks,
// one worker, and how long it all took.
//
//   linear     s1 ──▶ s2 ──▶ s3 ──▶ s4                             n^16
//   diamond    start ──▶ {b, c} ──▶ end                            n^16
//   tree       root ──▶ {left, right} ──▶ {d, e | f, g} ──▶ final   n^64
//   mixed_dag  init ──▶ {left, right} ──▶ {validate, transform,
//                                          analyze} ──▶ finalize   n^64
//
// Creates all tasks first (spread evenly over the four pipelines, inputs
// n = 6, 8, 10, …), then waits for each and checks every final value
// exactly (see math.hpp for values past 64 bits).
// Run: demo_worker [--tasks=200] [--store=sqlite:tasker.db | --store=memory:]
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "math.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

/// The worker's settings plus the size of the batch.
struct demo_config : tasker::worker_config {
  std::size_t tasks = 200;

  demo_config() {
    opt_group{custom_options_, "global"}.add(tasks, "tasks",
                                             "tasks to run, spread over 4 pipelines");
  }
};

/// One workflow of the demo: its pipeline, last step and final exponent.
struct workflow {
  tasker::pipeline pipeline;
  std::string last_step;
  unsigned exponent;  ///< the last step's value is n^exponent
  std::vector<std::int64_t> tasks = {};
  std::vector<unsigned> inputs = {};
};

std::vector<workflow> workflows() {
  tasker::pipeline linear{"demo", "linear", "1.0.0"};
  linear.step("s1", "square")
      .step("s2", "square", examples::squares({"s1"}))
      .step("s3", "square", examples::squares({"s2"}))
      .step("s4", "square", examples::squares({"s3"}));
  tasker::pipeline diamond{"demo", "diamond", "1.0.0"};
  diamond.step("start", "square")
      .step("b", "square", examples::squares({"start"}))
      .step("c", "square", examples::squares({"start"}))
      .step("end", "square", examples::squares({"b", "c"}));
  tasker::pipeline tree{"demo", "tree", "1.0.0"};
  tree.step("root", "square")
      .step("left", "square", examples::squares({"root"}))
      .step("right", "square", examples::squares({"root"}))
      .step("d", "square", examples::squares({"left"}))
      .step("e", "square", examples::squares({"left"}))
      .step("f", "square", examples::squares({"right"}))
      .step("g", "square", examples::squares({"right"}))
      .step("final", "square", examples::squares({"d", "e", "f", "g"}));
  tasker::pipeline mixed{"demo", "mixed_dag", "1.0.0"};
  mixed.step("init", "square")
      .step("left", "square", examples::squares({"init"}))
      .step("right", "square", examples::squares({"init"}))
      .step("validate", "square", examples::squares({"left", "right"}))
      .step("transform", "square", examples::squares({"left"}))
      .step("analyze", "square", examples::squares({"right"}))
      .step("finalize", "square", examples::squares({"validate", "transform", "analyze"}));
  return {{linear, "s4", 16}, {diamond, "end", 16}, {tree, "final", 64}, {mixed, "finalize", 64}};
}

}  // namespace

int main(int argc, char** argv) {
  demo_config cfg;
  return tasker::run_main(cfg, argc, argv, [&cfg](tasker::worker& w) {
    w.handle("square", examples::square);
    auto flows = workflows();
    for (const auto& f : flows)
      w.register_pipeline(f.pipeline);

    auto& client = w.client();
    const auto start = std::chrono::steady_clock::now();
    std::size_t steps = 0;
    for (std::size_t i = 0; i < cfg.tasks; ++i) {
      auto& f = flows[i % flows.size()];
      const auto n = static_cast<unsigned>(6 + 2 * (f.tasks.size() % 3));
      f.tasks.push_back(client.create(f.pipeline, {{"even_number", n}}));
      f.inputs.push_back(n);
      steps += f.pipeline.steps().size();
    }
    examples::checker check;
    for (const auto& f : flows)
      for (const auto task : f.tasks)
        check.equal(f.pipeline.name() + " task " + std::to_string(task) + " state",
                    client.wait(task), "complete");
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;

    std::cout << std::left << std::setw(11) << "pipeline" << std::right << std::setw(7) << "tasks"
              << std::setw(8) << "steps"
              << "  final value of its first task (n = 6)\n";
    for (const auto& f : flows) {
      for (std::size_t j = 0; j < f.tasks.size(); ++j)
        check.equal(f.pipeline.name() + " task " + std::to_string(f.tasks[j]) + " " + f.last_step,
                    examples::step_value(client, f.tasks[j], f.last_step),
                    examples::value_json(examples::power(f.inputs[j], f.exponent)));
      std::cout << std::left << std::setw(11) << f.pipeline.name() << std::right << std::setw(7)
                << f.tasks.size() << std::setw(8) << f.tasks.size() * f.pipeline.steps().size()
                << "  "
                << (f.tasks.empty() ? "-"
                                    : examples::show(
                                        examples::step_value(client, f.tasks.front(), f.last_step)))
                << '\n';
    }
    std::cout << cfg.tasks << " tasks, " << steps << " steps in " << std::fixed
              << std::setprecision(3) << wall.count() << " s: " << std::setprecision(0)
              << (wall.count() > 0 ? static_cast<double>(steps) / wall.count() : 0.0)
              << " steps/s on " << cfg.store << " (" << check.failures() << " failed checks)\n";
    return check.exit_code();
  });
}
