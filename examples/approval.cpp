// approval — a durable wait answered over HTTP: an expense report waits for a
// manager, who approves (or rejects) it through the worker's HTTP API.
//
//   submit ──▶ manager_approval ──▶ reimburse
//
// `manager_approval` answers tasker::wait_for("approval", 1 h) on its first
// run: the step parks in state `waiting`, holding no worker slot and no
// lease. The manager finds the wait's token in the task's status
// (GET /v1/tasks/{id}) and answers POST /v1/signals/{token} with
// {"approved": true|false, "by": "..."}; the step then runs again, as the same
// attempt, with that payload, and the task goes on (or fails, if rejected).
// main() plays the submitter and the manager over real HTTP on loopback and
// checks every answer, including that a second answer to the same token is
// refused (409).
// Run: approval [--store=memory: | --store=sqlite:approval.db]
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>

#include "check.hpp"
#include "http_client.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

using namespace std::chrono_literals;
using tasker::json;

/// Polls GET /v1/tasks/{id} until step `name` waits; returns its token.
std::string wait_token(std::uint16_t port, std::int64_t id, const std::string& name,
                       const std::string& auth) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = examples::http_request(port, "GET", "/v1/tasks/" + std::to_string(id), "", auth);
    const json status = r.status == 200 ? json::parse(r.body) : json::object();
    for (const auto& s : status.value("steps", json::array()))
      if (s.at("name") == name && s.at("wait").is_object())
        return s.at("wait").at("token").get<std::string>();
    std::this_thread::sleep_for(5ms);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  tasker::worker_config cfg;
  cfg.http_port = 0;  // this example needs the HTTP API: an ephemeral port unless told
  cfg.http_token = "example-secret";
  return tasker::run_main(cfg, argc, argv, [&cfg](tasker::worker& w) {
    w.handle("submit", [](tasker::step_context& ctx) {
      return tasker::success({{"amount", ctx.input<double>("amount")},
                              {"employee", ctx.input<std::string>("employee")}});
    });
    w.handle("manager_approval", [](tasker::step_context& ctx) -> tasker::step_result {
      if (!ctx.signalled())
        return tasker::wait_for("approval", 1h);  // ctx.wait_token() is what the manager needs
      const auto answer = ctx.signal();
      const auto by = answer.value("by", std::string("?"));
      if (!answer.value("approved", false))
        return tasker::failure("rejected by " + by, "permanent_error", false);
      return tasker::success({{"approved_by", by}});
    });
    w.handle("reimburse", [](tasker::step_context& ctx) {
      return tasker::success(
          {{"paid", ctx.dependency<double>("submit", "amount")},
           {"approved_by", ctx.dependency<std::string>("manager_approval", "approved_by")}});
    });
    tasker::pipeline expenses{"finance", "expense_report", "1.0.0"};
    expenses.step("submit", "submit")
        .step("manager_approval", "manager_approval", tasker::after("submit"))
        .step("reimburse", "reimburse", tasker::after("manager_approval"));
    w.register_pipeline(expenses);
    w.start();
    const auto port = w.http_port();
    const auto& auth = cfg.http_token;
    examples::checker check;

    auto submit = [&](const std::string& employee, double amount) -> std::int64_t {
      const json body{{"namespace", "finance"},
                      {"name", "expense_report"},
                      {"version", "1.0.0"},
                      {"context", {{"employee", employee}, {"amount", amount}}}};
      const auto r = examples::http_request(port, "POST", "/v1/tasks", body.dump(), auth);
      check.equal("POST /v1/tasks status", r.status, 201);
      return json::parse(r.body).at("id").get<std::int64_t>();
    };
    const auto approved = submit("ada", 120.5);
    const auto rejected = submit("bob", 9999.0);

    // The manager: finds each wait's token and answers it.
    const auto t1 = wait_token(port, approved, "manager_approval", auth);
    const auto t2 = wait_token(port, rejected, "manager_approval", auth);
    check.that(!t1.empty() && !t2.empty(), "both reports wait for approval");
    auto signal = [&](const std::string& token, const json& answer) {
      return examples::http_request(port, "POST", "/v1/signals/" + token, answer.dump(), auth);
    };
    check.equal("approve: status", signal(t1, {{"approved", true}, {"by", "grace"}}).status, 200);
    check.equal("reject: status", signal(t2, {{"approved", false}, {"by", "grace"}}).status, 200);
    check.equal("a second answer to the same token", signal(t1, {{"approved", false}}).status, 409);
    check.equal("an unknown token", signal("1-1-0123456789abcdef0123456789abcdef", {}).status, 404);
    check.equal("without the bearer token",
                examples::http_request(port, "POST", "/v1/signals/" + t1, "{}").status, 401);

    auto& c = w.client();
    check.equal("approved report", c.wait(approved, 20s), std::string("complete"));
    check.equal("rejected report", c.wait(rejected, 20s), std::string("error"));
    const auto paid = c.result(approved, "reimburse");
    check.equal("paid", paid.value("paid", 0.0), 120.5);
    check.equal("approved by", paid.value("approved_by", std::string()), std::string("grace"));
    const auto ask = c.status(approved).at("steps")[1];
    check.equal("approval attempts (the wait is one attempt)", ask.at("attempts").get<int>(), 1);
    const auto why = c.status(rejected).at("steps")[1].at("last_error").at("message");
    check.equal("rejection", why.get<std::string>(), std::string("rejected by grace"));
    std::cout << "approval: report " << approved << " paid " << paid.dump() << "; report "
              << rejected << " rejected\n";
    return check.exit_code();
  });
}
