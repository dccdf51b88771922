// diamond — two branches run in parallel between a start and an end step.
//
//            ┌──▶ b ──┐
//   start ───┤        ├──▶ end        start = n², b = c = start², end = (b·c)²
//            └──▶ c ──┘
//
// Input {"even_number": 6} gives start 36, b = c = 1296 and end = 6^16 =
// 2821109907456. The `square` handler (math.hpp) reads the steps it depends
// on from its config `sources`.
// Run: diamond [--store=memory: | --store=sqlite:diamond.db]
#include <iostream>

#include "math.hpp"
#include <tasker/runtime/run_main.hpp>

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("square", examples::square);

    tasker::pipeline diamond{"examples", "diamond", "1.0.0"};
    diamond.step("start", "square")
        .step("b", "square", examples::squares({"start"}))
        .step("c", "square", examples::squares({"start"}))
        .step("end", "square", examples::squares({"b", "c"}));
    w.register_pipeline(diamond);

    auto& client = w.client();
    const auto task = client.create(diamond, {{"even_number", 6}});
    const auto state = client.wait(task);
    std::cout << "task " << task << " " << state
              << ": end = " << examples::step_value(client, task, "end") << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    examples::check_values(check, client, task,
                           {{"start", examples::power(6, 2)},
                            {"b", examples::power(6, 4)},
                            {"c", examples::power(6, 4)},
                            {"end", 2821109907456}});
    return check.exit_code();
  });
}
