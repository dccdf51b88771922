// conditional_approval — a decision step creates only the branches a request
// needs, and a deferred convergence step waits for exactly those
// (templates/conditional_approval.yaml):
//
//   validate_request ─▶ routing_decision ─┬─▶ auto_approve ─────┐
//                                         ├─▶ manager_approval ─┼─▶ finalize_approval
//                                         └─▶ finance_review ───┘
//
// Three requests: 500 is approved automatically (4 steps run), 2,500 by a
// manager (4 steps), 10,000 by a manager and finance (5 steps). The
// finalizer must see exactly the approvals that ran.
// Run: conditional_approval [--store=memory: | --store=sqlite:approval.db]
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "check.hpp"
#include <tasker/runtime/run_main.hpp>

#ifndef TASKER_EXAMPLES_DIR
#error "TASKER_EXAMPLES_DIR (the examples source directory) must be defined by CMake"
#endif

namespace {

const std::vector<std::string> approvals = {"auto_approve", "manager_approval", "finance_review"};

tasker::step_result validate_request(const tasker::step_context& ctx) {
  const auto amount = ctx.input<double>("amount");
  if (!(amount > 0))
    return tasker::failure("amount must be positive", "validation_error", false);
  return tasker::success({{"amount", amount}, {"requester", ctx.input_or("requester", "unknown")}});
}

// Decides which approvals the amount needs; the core creates only those.
tasker::step_result routing_decision(const tasker::step_context& ctx) {
  const auto amount = ctx.dependency<double>("validate_request", "amount");
  const auto auto_limit = ctx.config_or<double>("auto_limit", 1000);
  const auto finance_from = ctx.config_or<double>("finance_from", 5000);
  if (amount < auto_limit)
    return tasker::decide({"auto_approve"}, {{"route", "auto"}});
  if (amount < finance_from)
    return tasker::decide({"manager_approval"}, {{"route", "manager"}});
  return tasker::decide({"manager_approval", "finance_review"}, {{"route", "manager+finance"}});
}

tasker::step_result approve(const tasker::step_context& ctx) {
  return tasker::success({{"approved", true}, {"by", ctx.config<std::string>("by")}});
}

// Sees the results of the approvals that were created, and no others.
tasker::step_result finalize_approval(const tasker::step_context& ctx) {
  tasker::json seen = tasker::json::array();
  bool approved = true;
  for (const auto& name : approvals) {
    const auto result = ctx.dependency_field(name);
    if (result.is_null())
      continue;
    seen.push_back(name);
    approved = approved && result.value("approved", false);
  }
  return tasker::success({{"approvals", seen}, {"approved", approved && !seen.empty()}});
}

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("validate_request", validate_request);
    w.handle("routing_decision", routing_decision);
    w.handle("approve", approve);
    w.handle("finalize_approval", finalize_approval);
    const auto routing = tasker::load_pipeline_yaml(std::filesystem::path{TASKER_EXAMPLES_DIR}
                                                    / "templates" / "conditional_approval.yaml");
    w.register_pipeline(routing);

    struct request {
      double amount;
      std::vector<std::string> expected;
    };
    const request requests[] = {{500, {"auto_approve"}},
                                {2500, {"manager_approval"}},
                                {10000, {"manager_approval", "finance_review"}}};
    auto& client = w.client();
    examples::checker check;
    for (const auto& r : requests) {
      const auto task = client.create(routing, {{"amount", r.amount}, {"requester", "ana"}});
      const auto state = client.wait(task);
      const auto status = client.status(task);
      int ran = 0;
      std::vector<std::string> skipped;
      tasker::json finalized;
      for (const auto& s : status.at("steps")) {
        if (s.at("state") == "complete")
          ++ran;
        else if (s.at("state") == "skipped")
          skipped.push_back(s.at("name"));
        if (s.at("name") == "finalize_approval")
          finalized = s.at("result");
      }
      std::cout << "amount " << r.amount << ": task " << task << " " << state << ", " << ran
                << " steps ran, approvals " << examples::field(finalized, "approvals")
                << ", skipped " << tasker::json(skipped) << '\n';
      const std::string what = "amount " + std::to_string(static_cast<long>(r.amount));
      check.equal(what + ": task state", state, "complete");
      check.equal(what + ": steps run", ran, static_cast<int>(r.expected.size()) + 3);
      check.equal(what + ": approvals the finalizer saw", examples::field(finalized, "approvals"),
                  tasker::json(r.expected));
      check.equal(what + ": approved", examples::field(finalized, "approved"), tasker::json(true));
    }
    return check.exit_code();
  });
}
