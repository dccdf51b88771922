// tree — a binary tree that fans out and converges in one final step.
//
//                 ┌──▶ d ──┐
//        ┌─▶ left ┤        │
//        │        └──▶ e ──┤
//   root ┤                 ├──▶ final      each step squares its parent;
//        │        ┌──▶ f ──┤               final = (d·e·f·g)²
//        └─▶ right┤        │
//                 └──▶ g ──┘
//
// Input {"even_number": 6} gives root 6^2, left/right 6^4, d..g 6^8 and
// final = 6^64, a 50-digit number: past 64 bits it travels as an exact
// decimal string (see math.hpp).
// Run: tree [--store=memory: | --store=sqlite:tree.db]
#include <iostream>

#include "math.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

/// 6^64, written out independently of big_uint (checked with Python: 6**64).
constexpr const char* six_to_the_64 = "63340286662973277706162286946811886609896461828096";

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("square", examples::square);

    tasker::pipeline tree{"examples", "tree", "1.0.0"};
    tree.step("root", "square")
        .step("left", "square", examples::squares({"root"}))
        .step("right", "square", examples::squares({"root"}))
        .step("d", "square", examples::squares({"left"}))
        .step("e", "square", examples::squares({"left"}))
        .step("f", "square", examples::squares({"right"}))
        .step("g", "square", examples::squares({"right"}))
        .step("final", "square", examples::squares({"d", "e", "f", "g"}));
    w.register_pipeline(tree);

    auto& client = w.client();
    const auto task = client.create(tree, {{"even_number", 6}});
    const auto state = client.wait(task);
    std::cout << "task " << task << " " << state
              << ": final = " << examples::step_value(client, task, "final") << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    check.equal("6^64", examples::power(6, 64).to_string(), six_to_the_64);
    const auto six_to_the = [](unsigned k) { return examples::power(6, k); };
    examples::check_values(check, client, task,
                           {{"root", six_to_the(2)},
                            {"left", six_to_the(4)},
                            {"right", six_to_the(4)},
                            {"d", six_to_the(8)},
                            {"e", six_to_the(8)},
                            {"f", six_to_the(8)},
                            {"g", six_to_the(8)},
                            {"final", examples::big_uint::from_decimal(six_to_the_64)}});
    return check.exit_code();
  });
}
